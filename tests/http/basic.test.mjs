// basic.test.mjs: the non-streaming endpoints and their exact OpenAI shapes:
// /health, /v1/models, chat and text completions (checked against greedy
// output recorded by a reference engine, ../shared/golden), usage counts
// against /tokenize, logprobs, embeddings, /tokenize and /detokenize, and
// /metrics counters moving by exactly what a request did.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  MODEL, N_EMBD, N_VOCAB, getMetrics, golden, metric, rawRequest, startServer, tokenize,
} from './harness.mjs';

const GREEDY = golden('stories260K-free-greedy.jsonl'); // 64 greedy tokens, no bias
const BIASED = golden('stories260K.jsonl');             // 32 tokens, byte-fallback ids barred, top-10 logprobs

let srv;
before(async () => { srv = await startServer(); });
after(async () => { if (srv) await srv.stop(); });

const nowS = () => Math.floor(Date.now() / 1000);

/* The text that tokens `more` add after the prompt `ids`, per /detokenize. */
async function continuation(ids, more) {
  const whole = await rawRequest(srv.url, 'POST', '/detokenize', { tokens: [...ids, ...more] });
  const base = await rawRequest(srv.url, 'POST', '/detokenize', { tokens: ids });
  assert.equal(whole.status, 200);
  assert.ok(whole.json.content.startsWith(base.json.content));
  return whole.json.content.slice(base.json.content.length);
}

function checkUsage(usage) {
  assert.equal(typeof usage.prompt_tokens, 'number');
  assert.equal(typeof usage.completion_tokens, 'number');
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
}

describe('health and models', () => {
  test('GET /health is 200 {"status":"ok"} once loaded', async () => {
    const r = await rawRequest(srv.url, 'GET', '/health');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { status: 'ok' });
  });

  test('GET /v1/models lists the model by its file base name', async () => {
    const r = await rawRequest(srv.url, 'GET', '/v1/models');
    assert.equal(r.status, 200);
    assert.equal(r.json.object, 'list');
    assert.equal(r.json.data.length, 1);
    const m = r.json.data[0];
    assert.equal(m.id, MODEL);
    assert.equal(m.object, 'model');
    assert.equal(typeof m.created, 'number');
    assert.equal(typeof m.owned_by, 'string');
    const viaClient = [];
    for await (const x of srv.client.models.list()) viaClient.push(x.id);
    assert.deepEqual(viaClient, [MODEL]);
  });
});

describe('completions', () => {
  test('greedy completion from token ids reproduces the reference engine', async () => {
    for (const g of GREEDY) {
      const r = await srv.client.completions.create({
        model: MODEL, prompt: g.prompt_ids, max_tokens: g.n_predict, temperature: 0,
      });
      assert.match(r.id, /^cmpl-./);
      assert.equal(r.object, 'text_completion');
      assert.equal(r.model, MODEL);
      assert.ok(Math.abs(r.created - nowS()) < 60, `created ${r.created} is not now`);
      assert.equal(r.choices.length, 1);
      const c = r.choices[0];
      assert.equal(c.index, 0);
      assert.equal(c.text, g.content, `prompt ${JSON.stringify(g.prompt)}`);
      assert.equal(c.finish_reason, 'length');
      assert.equal(c.logprobs, null);
      checkUsage(r.usage);
      assert.equal(r.usage.prompt_tokens, g.prompt_ids.length);
      assert.equal(r.usage.completion_tokens, g.n_predict);
    }
  });

  test('a text prompt is tokenized as the reference did (BOS added)', async () => {
    for (const g of GREEDY) {
      assert.deepEqual(await tokenize(srv.url, g.prompt), g.prompt_ids);
      const r = await srv.client.completions.create({
        model: MODEL, prompt: g.prompt, max_tokens: 16, temperature: 0,
      });
      assert.equal(r.usage.prompt_tokens, g.prompt_ids.length);
      assert.ok(g.content.startsWith(r.choices[0].text), `${JSON.stringify(r.choices[0].text)} is not a prefix of the reference output`);
      assert.equal(r.usage.completion_tokens, 16);
    }
  });

  test('usage.prompt_tokens equals /tokenize\'s count', async () => {
    for (const prompt of ['a', 'Hello world, this is a longer prompt with punctuation!', 'ümlaut ✓ 日本']) {
      const ids = await tokenize(srv.url, prompt);
      const r = await srv.client.completions.create({ model: MODEL, prompt, max_tokens: 3, temperature: 0 });
      assert.equal(r.usage.prompt_tokens, ids.length, `prompt ${JSON.stringify(prompt)}`);
      assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 3);
    }
  });

  test('max_tokens ends with finish_reason "length" and exactly that many tokens', async () => {
    const r = await srv.client.completions.create({
      model: MODEL, prompt: 'Once upon a time', max_tokens: 7, temperature: 0.8, seed: 5, ignore_eos: true,
    });
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(r.usage.completion_tokens, 7);
  });

  test('logprobs (completions format) match the reference engine', async () => {
    for (const g of BIASED.slice(0, 3)) {
      const bias = {};
      for (let id = 3; id <= 258; id++) bias[id] = -100; // as recorded: byte-fallback ids barred
      const K = 5;
      const r = await srv.client.completions.create({
        model: MODEL, prompt: g.prompt_ids, max_tokens: g.n_predict, temperature: 0, logprobs: K, logit_bias: bias,
      });
      const c = r.choices[0];
      assert.equal(c.text, g.content);
      const lp = c.logprobs;
      assert.equal(lp.tokens.length, g.n_predict);
      assert.equal(lp.token_logprobs.length, g.n_predict);
      assert.equal(lp.top_logprobs.length, g.n_predict);
      assert.equal(lp.tokens.join(''), c.text);
      // text_offset: where each token starts in the text (the prompt is ids, not echoed)
      assert.equal(lp.text_offset.length, g.n_predict);
      let off = lp.text_offset[0];
      for (let i = 0; i < g.n_predict; i++) {
        assert.equal(lp.text_offset[i], off);
        off += lp.tokens[i].length;
      }
      for (let i = 0; i < g.n_predict; i++) {
        const step = g.steps[i];
        assert.ok(lp.token_logprobs[i] <= 0);
        assert.ok(Math.abs(lp.token_logprobs[i] - step.logprob) < 1e-3,
          `step ${i}: logprob ${lp.token_logprobs[i]} vs reference ${step.logprob}`);
        // an object keyed by token text (two tokens with the same text would share a key; no
        // such pair is among these steps' top K): its values are the reference's K best
        const top = Object.values(lp.top_logprobs[i]);
        assert.ok(top.length >= 1 && top.length <= K, `step ${i}: ${top.length} top entries`);
        const want = step.top.slice(0, top.length).map((x) => x[1]);
        const got = [...top].sort((a, b) => b - a);
        for (let k = 0; k < got.length; k++) {
          assert.ok(got[k] <= 0);
          assert.ok(Math.abs(got[k] - want[k]) < 1e-3, `step ${i} top ${k}: ${got[k]} vs reference ${want[k]}`);
        }
      }
    }
  });

  test('echo prepends the prompt', async () => {
    const r = await srv.client.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 4, temperature: 0, echo: true });
    assert.ok(r.choices[0].text.startsWith('Once upon a time'), JSON.stringify(r.choices[0].text));
    assert.equal(r.choices[0].text, 'Once upon a time' + GREEDY[0].content.slice(0, r.choices[0].text.length - 16));
  });

  test('n choices are independent samples with their own index', async () => {
    const r = await srv.client.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 24, n: 3, seed: 11, temperature: 1, ignore_eos: true });
    assert.deepEqual(r.choices.map((c) => c.index).sort(), [0, 1, 2]);
    assert.equal(r.usage.completion_tokens, 3 * 24);
    assert.equal(r.usage.prompt_tokens, 5);
  });
});

describe('chat completions', () => {
  test('shape of a chat completion', async () => {
    const r = await srv.client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'Tell me about a cat.' }],
      max_tokens: 20, temperature: 0, user: 'user-1234',
    });
    assert.match(r.id, /^chatcmpl-./);
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.model, MODEL);
    assert.ok(Math.abs(r.created - nowS()) < 60);
    assert.equal(r.choices.length, 1);
    const c = r.choices[0];
    assert.equal(c.index, 0);
    assert.equal(c.message.role, 'assistant');
    assert.equal(typeof c.message.content, 'string');
    assert.ok(['stop', 'length'].includes(c.finish_reason));
    assert.equal(c.logprobs, null);
    checkUsage(r.usage);
    assert.ok(r.usage.prompt_tokens > 5);
    assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 20);
    if (c.finish_reason === 'length') assert.equal(r.usage.completion_tokens, 20);
  });

  test('max_completion_tokens is honoured like max_tokens', async () => {
    const r = await srv.client.chat.completions.create({
      model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_completion_tokens: 6, temperature: 0.7, seed: 1, ignore_eos: true,
    });
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(r.usage.completion_tokens, 6);
  });

  test('content as an array of text parts equals the same text as a string', async () => {
    const base = { model: MODEL, max_tokens: 12, temperature: 0 };
    const a = await srv.client.chat.completions.create({ ...base, messages: [{ role: 'user', content: 'A dog and a cat' }] });
    const b = await srv.client.chat.completions.create({
      ...base, messages: [{ role: 'user', content: [{ type: 'text', text: 'A dog and a cat' }] }],
    });
    assert.equal(b.choices[0].message.content, a.choices[0].message.content);
    assert.equal(b.usage.prompt_tokens, a.usage.prompt_tokens);
  });

  test('chat logprobs and top_logprobs shapes and values', async () => {
    const r = await srv.client.chat.completions.create({
      model: MODEL, messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 10, temperature: 0,
      logprobs: true, top_logprobs: 4, ignore_eos: true,
    });
    const c = r.choices[0];
    const content = c.logprobs.content;
    assert.equal(content.length, r.usage.completion_tokens);
    assert.equal(content.map((t) => t.token).join(''), c.message.content);
    for (const t of content) {
      assert.equal(typeof t.token, 'string');
      assert.ok(t.logprob <= 0);
      assert.deepEqual(t.bytes, [...Buffer.from(t.token, 'utf8')]);
      assert.equal(t.top_logprobs.length, 4);
      for (let k = 0; k < 4; k++) {
        assert.ok(t.top_logprobs[k].logprob <= 0);
        assert.equal(typeof t.top_logprobs[k].token, 'string');
        assert.ok(Array.isArray(t.top_logprobs[k].bytes));
        if (k) assert.ok(t.top_logprobs[k - 1].logprob >= t.top_logprobs[k].logprob, 'top_logprobs not sorted');
      }
      // greedy: the chosen token is the most likely one
      assert.equal(t.top_logprobs[0].token, t.token);
      assert.ok(Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-6);
      // probabilities of distinct tokens sum to at most 1
      assert.ok(t.top_logprobs.reduce((s, x) => s + Math.exp(x.logprob), 0) <= 1 + 1e-4);
    }
  });

  test('logprobs without top_logprobs gives empty top lists', async () => {
    const r = await srv.client.chat.completions.create({
      model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, temperature: 0, logprobs: true,
    });
    for (const t of r.choices[0].logprobs.content) {
      assert.ok(t.logprob <= 0);
      assert.deepEqual(t.top_logprobs, []);
    }
  });

  test('logit_bias +100 on one token makes greedy output only that token', async () => {
    const [id] = await tokenize(srv.url, ' cat', { add_special: false });
    const ids = await tokenize(srv.url, 'Once upon a time');
    const r = await srv.client.completions.create({
      model: MODEL, prompt: ids, max_tokens: 5, temperature: 0, logit_bias: { [id]: 100 }, ignore_eos: true,
    });
    assert.equal(r.choices[0].text, await continuation(ids, [id, id, id, id, id]));
  });

  test('logit_bias -100 on the greedy first token changes it', async () => {
    const g = GREEDY[0];
    const r = await srv.client.completions.create({
      model: MODEL, prompt: g.prompt_ids, max_tokens: 1, temperature: 0, logit_bias: { [g.steps[0].id]: -100 },
    });
    // the next most likely token per the reference's top list
    assert.equal(r.choices[0].text, await continuation(g.prompt_ids, [g.steps[0].top[1][0]]));
  });
});

describe('embeddings', () => {
  test('one input: n_embd floats of unit norm', async () => {
    const r = await srv.client.embeddings.create({ model: MODEL, input: 'The little bird wanted to fly' });
    assert.equal(r.object, 'list');
    assert.equal(r.model, MODEL);
    assert.equal(r.data.length, 1);
    const e = r.data[0];
    assert.equal(e.object, 'embedding');
    assert.equal(e.index, 0);
    assert.equal(e.embedding.length, N_EMBD);
    const norm = Math.hypot(...e.embedding);
    assert.ok(Math.abs(norm - 1) < 1e-4, `norm ${norm}`);
    assert.equal(r.usage.prompt_tokens, (await tokenize(srv.url, 'The little bird wanted to fly')).length);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens);
  });

  test('several inputs, and ids equal to the same text give the same vector', async () => {
    const text = 'Sara had a cat. The cat';
    const ids = await tokenize(srv.url, text);
    const r = await srv.client.embeddings.create({ model: MODEL, input: [text, 'Tim was sad because', text] });
    assert.deepEqual(r.data.map((d) => d.index), [0, 1, 2]);
    const [a, b, c] = r.data.map((d) => d.embedding);
    const dot = (x, y) => x.reduce((s, v, i) => s + v * y[i], 0);
    assert.ok(Math.abs(dot(a, c) - 1) < 1e-5, 'same text, different vectors');
    assert.ok(dot(a, b) < 0.9999, 'different texts, same vector');
    const r2 = await rawRequest(srv.url, 'POST', '/v1/embeddings', { model: MODEL, input: ids });
    assert.equal(r2.status, 200);
    assert.ok(Math.abs(dot(r2.json.data[0].embedding, a) - 1) < 1e-5);
  });
});

describe('tokenize and detokenize', () => {
  test('round trip, with and without BOS', async () => {
    for (const text of ['Once upon a time', ' leading space', 'ümlaut ✓ 日本 🙂', 'a\nb\tc']) {
      const withBos = await tokenize(srv.url, text);
      const noBos = await tokenize(srv.url, text, { add_special: false });
      assert.equal(withBos[0], 1, 'BOS first');
      assert.deepEqual(withBos.slice(1), noBos);
      for (const id of noBos) assert.ok(Number.isInteger(id) && id >= 0 && id < N_VOCAB);
      const d = await rawRequest(srv.url, 'POST', '/detokenize', { tokens: noBos });
      assert.equal(d.status, 200);
      assert.equal(d.json.content, text);
    }
  });

  test('with_pieces gives {id, piece} objects', async () => {
    const r = await rawRequest(srv.url, 'POST', '/tokenize', { content: 'Once upon a time', with_pieces: true, add_special: false });
    assert.equal(r.status, 200);
    const ids = await tokenize(srv.url, 'Once upon a time', { add_special: false });
    assert.deepEqual(r.json.tokens.map((t) => t.id), ids);
    for (const t of r.json.tokens) assert.equal(typeof t.piece, 'string');
    assert.equal(r.json.tokens.map((t) => t.piece).join('').trim(), 'Once upon a time');
  });
});

describe('metrics', () => {
  test('every metric is exposed, per model where per model', async () => {
    const r = await rawRequest(srv.url, 'GET', '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/plain/);
    const names = ['citadel_prompt_tokens_total', 'citadel_generated_tokens_total', 'citadel_cached_tokens_total',
      'citadel_time_to_first_token_seconds_bucket', 'citadel_time_to_first_token_seconds_sum', 'citadel_time_to_first_token_seconds_count',
      'citadel_inter_token_latency_seconds_bucket', 'citadel_inter_token_latency_seconds_count',
      'citadel_queue_depth', 'citadel_slots_busy', 'citadel_slots_total', 'citadel_kv_cache_used_ratio'];
    const m = await getMetrics(srv.url);
    for (const n of names) assert.notEqual(metric(m, n, { model: MODEL }), undefined, `${n}{model="${MODEL}"} missing`);
    assert.match(r.text, /# TYPE citadel_time_to_first_token_seconds histogram/);
    assert.match(r.text, /# TYPE citadel_requests_total counter/);
    assert.equal(metric(m, 'citadel_slots_busy', { model: MODEL }), 0);
    assert.equal(metric(m, 'citadel_queue_depth', { model: MODEL }), 0);
    assert.ok(metric(m, 'citadel_slots_total', { model: MODEL }) >= 1);
    const ratio = metric(m, 'citadel_kv_cache_used_ratio', { model: MODEL });
    assert.ok(ratio >= 0 && ratio <= 1);
    const inf = m.find((s) => s.name === 'citadel_time_to_first_token_seconds_bucket' && s.labels.le === '+Inf' && s.labels.model === MODEL);
    assert.equal(inf.value, metric(m, 'citadel_time_to_first_token_seconds_count', { model: MODEL }));
  });

  test('counters move by exactly what one request did', async () => {
    const m0 = await getMetrics(srv.url);
    const r = await srv.client.completions.create({ model: MODEL, prompt: 'The little bird', max_tokens: 9, temperature: 0, ignore_eos: true });
    let m1 = await getMetrics(srv.url);
    const d = (name, labels = { model: MODEL }) => (metric(m1, name, labels) ?? 0) - (metric(m0, name, labels) ?? 0);
    // citadel_requests_total counts a request once the server has finished sending it (the
    // libmicrohttpd completion callback), which can run just after the client has read the
    // whole reply: wait up to 2 s for it, then require exactly one
    for (let i = 0; i < 100 && d('citadel_requests_total', { route: '/v1/completions', status: '200' }) === 0; i++) {
      await new Promise((ok) => setTimeout(ok, 20));
      m1 = await getMetrics(srv.url);
    }
    assert.equal(d('citadel_generated_tokens_total'), r.usage.completion_tokens);
    assert.equal(d('citadel_prompt_tokens_total') + d('citadel_cached_tokens_total'), r.usage.prompt_tokens);
    assert.equal(d('citadel_time_to_first_token_seconds_count'), 1);
    assert.equal(d('citadel_inter_token_latency_seconds_count'), r.usage.completion_tokens - 1);
    assert.equal(d('citadel_requests_total', { route: '/v1/completions', status: '200' }), 1);
    // the /metrics request itself is counted too, but not as a completion
    assert.equal(d('citadel_requests_total', { route: '/v1/chat/completions' }), 0);
  });

  test('a repeated prompt is served from the prefix cache', async () => {
    const prompt = 'Lily and Ben went to the park. They saw a big dog and a small cat.';
    await srv.client.completions.create({ model: MODEL, prompt, max_tokens: 2, temperature: 0 });
    const m0 = await getMetrics(srv.url);
    const r = await srv.client.completions.create({ model: MODEL, prompt, max_tokens: 2, temperature: 0 });
    const m1 = await getMetrics(srv.url);
    const cached = metric(m1, 'citadel_cached_tokens_total', { model: MODEL }) - metric(m0, 'citadel_cached_tokens_total', { model: MODEL });
    assert.ok(cached >= r.usage.prompt_tokens - 1, `only ${cached} of ${r.usage.prompt_tokens} prompt tokens reused`);
  });
});
