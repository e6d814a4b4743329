// concurrency.test.mjs: many clients at once. Greedy and fixed-seed outputs
// must not depend on what else runs beside them (16 concurrent clients equal
// the same requests run one at a time, and the reference engine's greedy
// text); seeds are deterministic; a client that goes away mid-stream frees
// its slot (visible in /metrics) without disturbing anyone else's output.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  MODEL, MODEL_PATH, getMetrics, golden, metric, rawRequest, startServer, waitIdle,
} from './harness.mjs';

const GREEDY = golden('stories260K-free-greedy.jsonl');
const SLOTS = 16;

let srv;
before(async () => { srv = await startServer({ args: ['-m', MODEL_PATH, '--slots', String(SLOTS)] }); });
after(async () => { if (srv) await srv.stop(); });

const SYSTEM = 'You are a storyteller for small children. You write short, happy stories with simple words.';

/* 16 different requests: the 8 reference prompts as token ids (greedy, 64
 * tokens, known output), chats sharing one system prompt (prefix reuse), and
 * fixed-seed sampled completions. */
function requests() {
  const out = [];
  for (const g of GREEDY) {
    out.push({ kind: 'completion', want: g.content,
               body: { model: MODEL, prompt: g.prompt_ids, max_tokens: g.n_predict, temperature: 0 } });
  }
  for (const [i, q] of ['Tell me about a dog.', 'Tell me about a bird.', 'Tell me about the sea.', 'Tell me about a king.'].entries()) {
    out.push({ kind: 'chat', body: { model: MODEL, max_tokens: 40 + 8 * i, temperature: 0,
                                     messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: q }] } });
  }
  for (const seed of [1, 2, 3, 12345]) {
    out.push({ kind: 'completion', body: { model: MODEL, prompt: 'Once upon a time, in a big forest,', max_tokens: 48,
                                           temperature: 1, seed, ignore_eos: true } });
  }
  return out;
}

async function runOne(r, stream) {
  if (r.kind === 'chat') {
    if (!stream) return (await srv.client.chat.completions.create(r.body)).choices[0].message.content;
    let text = '';
    for await (const ch of await srv.client.chat.completions.create({ ...r.body, stream: true })) {
      for (const c of ch.choices) text += c.delta.content ?? '';
    }
    return text;
  }
  if (!stream) return (await srv.client.completions.create(r.body)).choices[0].text;
  let text = '';
  for await (const ch of await srv.client.completions.create({ ...r.body, stream: true })) {
    for (const c of ch.choices) text += c.text;
  }
  return text;
}

describe('determinism', () => {
  test('same seed at temperature 1 gives the same text; different seeds differ', async () => {
    const body = { model: MODEL, prompt: 'The little bird wanted to fly', max_tokens: 64, temperature: 1, ignore_eos: true };
    const a = await srv.client.completions.create({ ...body, seed: 42 });
    const b = await srv.client.completions.create({ ...body, seed: 42 });
    assert.equal(a.choices[0].text, b.choices[0].text);
    const texts = new Set([a.choices[0].text]);
    for (const seed of [0, 1, 43, 2 ** 31 + 7]) {
      texts.add((await srv.client.completions.create({ ...body, seed })).choices[0].text);
    }
    assert.equal(texts.size, 5, 'two different seeds gave the same 64-token text');
    // ...and the sampled text is not just the greedy one
    const greedy = await srv.client.completions.create({ ...body, temperature: 0 });
    assert.ok(texts.size === 5 && [...texts].some((t) => t !== greedy.choices[0].text));
  });

  test('same seed, chat, streamed and not', async () => {
    const body = { model: MODEL, messages: [{ role: 'user', content: 'A story about a frog' }], max_tokens: 40, temperature: 1, top_p: 0.9, seed: 7 };
    const a = await runOne({ kind: 'chat', body }, false);
    const b = await runOne({ kind: 'chat', body }, true);
    assert.equal(b, a);
  });
});

describe('sampling parameters', () => {
  // Settings that leave only the most likely token make sampling greedy
  // whatever the seed: the output must equal the reference's greedy text.
  const g = GREEDY[1];
  const base = { model: MODEL, prompt: g.prompt_ids, max_tokens: g.n_predict, temperature: 1 };
  for (const [name, extra] of [['top_k 1', { top_k: 1 }], ['top_p 1e-6', { top_p: 1e-6 }], ['min_p 1', { min_p: 1 }],
    ['temperature 0 with top_k 40', { temperature: 0, top_k: 40 }]]) {
    test(`${name} gives the greedy text`, async () => {
      for (const seed of [1, 2]) {
        const r = await srv.client.completions.create({ ...base, ...extra, seed });
        assert.equal(r.choices[0].text, g.content, `seed ${seed}`);
      }
    });
  }

  test('penalties change greedy output deterministically', async () => {
    // the reference greedy text repeats itself ("They wanted to play with ... They wanted to play with")
    const greedy = { ...base, temperature: 0 };
    for (const extra of [{ frequency_penalty: 2 }, { presence_penalty: 2 }, { repetition_penalty: 1.5 }]) {
      const a = await srv.client.completions.create({ ...greedy, ...extra });
      const b = await srv.client.completions.create({ ...greedy, ...extra });
      assert.equal(a.choices[0].text, b.choices[0].text);
      assert.notEqual(a.choices[0].text, g.content, `${JSON.stringify(extra)} changed nothing`);
    }
  });

  test('n > 1 streamed: each choice has its own index and finish', async () => {
    const s = await srv.client.completions.create({ ...base, temperature: 0, n: 3, stream: true });
    const text = ['', '', ''];
    const finish = [null, null, null];
    for await (const ch of s) {
      for (const c of ch.choices) {
        text[c.index] += c.text;
        if (c.finish_reason) finish[c.index] = c.finish_reason;
      }
    }
    assert.deepEqual(text, [g.content, g.content, g.content]);
    assert.deepEqual(finish, ['length', 'length', 'length']);
  });
});

describe('concurrency', () => {
  test(`${SLOTS} concurrent clients get what the same requests get one at a time`, { timeout: 120000 }, async () => {
    const reqs = requests();
    assert.equal(reqs.length, 16);
    const alone = [];
    for (const r of reqs) alone.push(await runOne(r, false));
    for (const [i, r] of reqs.entries()) if (r.want !== undefined) assert.equal(alone[i], r.want, `request ${i} alone vs reference`);
    // all at once, half of them streamed
    const together = await Promise.all(reqs.map((r, i) => runOne(r, i % 2 === 1)));
    for (let i = 0; i < reqs.length; i++) assert.equal(together[i], alone[i], `request ${i}: concurrent output differs`);
    // and once more, streamed the other way round and in reverse submission order
    const again = await Promise.all(reqs.map((r, i) => reqs.length - 1 - i).map((i) => runOne(reqs[i], i % 2 === 0)));
    for (let i = 0; i < reqs.length; i++) assert.equal(again[reqs.length - 1 - i], alone[i], `request ${i}: second concurrent run differs`);
    assert.equal(await waitIdle(srv.url), 0);
  });

  test('more clients than slots: the rest queue and still get the same outputs', { timeout: 120000 }, async () => {
    const g = GREEDY[2];
    const body = { model: MODEL, prompt: g.prompt_ids, max_tokens: g.n_predict, temperature: 0 };
    const outs = await Promise.all(Array.from({ length: SLOTS + 8 }, () => srv.client.completions.create(body)));
    for (const o of outs) assert.equal(o.choices[0].text, g.content);
  });
});

describe('client going away', () => {
  test('aborting mid-stream frees the slot; a neighbour is not disturbed', { timeout: 60000 }, async () => {
    const g = GREEDY[1];
    const neighbour = srv.client.completions.create({ model: MODEL, prompt: g.prompt_ids, max_tokens: g.n_predict, temperature: 0, stream: true });
    const ac = new AbortController();
    const long = await srv.client.completions.create(
      { model: MODEL, prompt: 'Once upon a time', max_tokens: 400, temperature: 1, seed: 3, ignore_eos: true, stream: true },
      { signal: ac.signal },
    );
    let got = 0;
    let finish = null;
    try {
      for await (const ch of long) {
        for (const c of ch.choices) if (c.finish_reason) finish = c.finish_reason;
        if (ch.choices.length && ++got === 3) ac.abort();
      }
    } catch (e) {
      // the openai client ends the loop quietly on abort, or throws an abort error
      assert.ok(e.name === 'AbortError' || /abort/i.test(String(e.message)), String(e));
    }
    assert.equal(finish, null, 'the stream ended normally before the abort');
    let text = '';
    for await (const ch of await neighbour) for (const c of ch.choices) text += c.text;
    assert.equal(text, g.content);
    assert.equal(await waitIdle(srv.url), 0, 'slot still busy after the client went away');
    const m = await getMetrics(srv.url);
    assert.equal(metric(m, 'citadel_queue_depth', { model: MODEL }), 0);
    // still serving
    const r = await srv.client.completions.create({ model: MODEL, prompt: g.prompt_ids, max_tokens: 8, temperature: 0 });
    assert.ok(g.content.startsWith(r.choices[0].text));
    assert.equal((await rawRequest(srv.url, 'GET', '/health')).status, 200);
  });

  test('aborting a non-streamed request also frees its slot', { timeout: 60000 }, async () => {
    const generated = async () => metric(await getMetrics(srv.url), 'citadel_generated_tokens_total', { model: MODEL });
    const before = await generated();
    const ac = new AbortController();
    const p = srv.client.completions.create(
      { model: MODEL, prompt: 'Once upon a time', max_tokens: 2000, temperature: 1, seed: 9, ignore_eos: true },
      { signal: ac.signal },
    );
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(p);
    assert.equal(await waitIdle(srv.url), 0);
    // cancelled while generating, not run to its 2000 tokens
    const spent = (await generated()) - before;
    assert.ok(spent < 2000, `the aborted request still generated ${spent} tokens`);
    const r = await srv.client.completions.create({ model: MODEL, prompt: 'Hi', max_tokens: 2, temperature: 0 });
    assert.equal(r.choices.length, 1);
  });

  test('many clients aborting at once', { timeout: 60000 }, async () => {
    const jobs = Array.from({ length: SLOTS }, async (_, i) => {
      const ac = new AbortController();
      const s = await srv.client.completions.create(
        { model: MODEL, prompt: `Story number ${i}:`, max_tokens: 400, temperature: 1, seed: i, ignore_eos: true, stream: true },
        { signal: ac.signal },
      );
      try {
        for await (const ch of s) if (ch.choices.length) { ac.abort(); }
      } catch { /* aborted */ }
    });
    await Promise.all(jobs);
    assert.equal(await waitIdle(srv.url), 0);
    const g = GREEDY[3];
    const r = await srv.client.completions.create({ model: MODEL, prompt: g.prompt_ids, max_tokens: g.n_predict, temperature: 0 });
    assert.equal(r.choices[0].text, g.content);
  });
});
