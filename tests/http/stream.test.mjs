// stream.test.mjs: Server-Sent Events streaming (chat and text completions)
// and stop sequences, streamed and not. Greedy output without a stop string
// is the reference; with a stop string the answer must be exactly the text
// before the stop string's first occurrence, finish_reason "stop", and the
// stop string must never appear, in one piece or split over chunks.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { MODEL, golden, postSSE, startServer } from './harness.mjs';

const GREEDY = golden('stories260K-free-greedy.jsonl');

let srv;
before(async () => { srv = await startServer(); });
after(async () => { if (srv) await srv.stop(); });

/* Collects an openai-client stream: {chunks, text, finish, usage}. */
async function collect(stream, field) {
  const chunks = [];
  let text = '';
  let finish = null;
  let usage = null;
  for await (const ch of stream) {
    chunks.push(ch);
    if (ch.usage) usage = ch.usage;
    for (const c of ch.choices) {
      text += field === 'chat' ? (c.delta.content ?? '') : c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { chunks, text, finish, usage };
}

describe('streaming', () => {
  test('completion stream: chunks concatenate to the non-streamed greedy text', async () => {
    for (const g of GREEDY.slice(0, 3)) {
      const s = await srv.client.completions.create({
        model: MODEL, prompt: g.prompt_ids, max_tokens: g.n_predict, temperature: 0, stream: true,
      });
      const { chunks, text, finish, usage } = await collect(s, 'completion');
      assert.equal(text, g.content);
      assert.equal(finish, 'length');
      assert.equal(usage, null, 'usage sent without stream_options.include_usage');
      const id = chunks[0].id;
      assert.match(id, /^cmpl-./);
      for (const ch of chunks) {
        assert.equal(ch.id, id, 'every chunk has the same id');
        assert.equal(ch.object, 'text_completion');
        assert.equal(ch.model, MODEL);
        assert.equal(typeof ch.created, 'number');
      }
      // only the last chunk carries a finish_reason
      const finishes = chunks.flatMap((ch) => ch.choices.map((c) => c.finish_reason)).filter((f) => f);
      assert.deepEqual(finishes, ['length']);
      assert.ok(chunks.length >= 8, `only ${chunks.length} chunks for 64 tokens: not streamed`);
    }
  });

  test('chat stream: role first, content deltas, finish_reason last, usage chunk', async () => {
    const body = { model: MODEL, messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 24, temperature: 0 };
    const full = await srv.client.chat.completions.create(body);
    const s = await srv.client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
    const { chunks, text, finish, usage } = await collect(s, 'chat');
    assert.equal(text, full.choices[0].message.content);
    assert.equal(finish, full.choices[0].finish_reason);
    for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) assert.equal(usage[k], full.usage[k], k);
    const id = chunks[0].id;
    assert.match(id, /^chatcmpl-./);
    for (const ch of chunks) {
      assert.equal(ch.id, id);
      assert.equal(ch.object, 'chat.completion.chunk');
      assert.equal(ch.model, MODEL);
    }
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    assert.equal(chunks[0].choices[0].index, 0);
    // the usage chunk is last, with no choices; the ones before have usage null/absent
    const last = chunks[chunks.length - 1];
    assert.deepEqual(last.choices, []);
    assert.ok(last.usage);
    for (const ch of chunks.slice(0, -1)) assert.ok(ch.usage == null, 'usage before the last chunk');
    const withFinish = chunks.filter((ch) => ch.choices.some((c) => c.finish_reason));
    assert.equal(withFinish.length, 1);
    assert.equal(chunks.indexOf(withFinish[0]), chunks.length - 2, 'finish_reason chunk is not just before usage');
  });

  test('raw SSE framing: data: lines, blank-line separated, ending with data: [DONE]', async () => {
    const r = await postSSE(srv.url, '/v1/chat/completions', {
      model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8, temperature: 0, stream: true,
    });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/event-stream/);
    assert.ok(r.raw.endsWith('data: [DONE]\n\n'), JSON.stringify(r.raw.slice(-40)));
    assert.equal(r.events[r.events.length - 1], '[DONE]');
    assert.equal(r.events.filter((e) => e === '[DONE]').length, 1);
    for (const e of r.events.slice(0, -1)) JSON.parse(e);
    // every non-empty line is a data: line (or an SSE comment)
    for (const line of r.raw.split('\n')) assert.ok(line === '' || line.startsWith('data: ') || line.startsWith(':'), line);
  });

  test('streamed logprobs arrive with their tokens', async () => {
    const s = await srv.client.chat.completions.create({
      model: MODEL, messages: [{ role: 'user', content: 'A cat' }], max_tokens: 12, temperature: 0,
      logprobs: true, top_logprobs: 2, stream: true, stream_options: { include_usage: true },
    });
    const { chunks, text, usage } = await collect(s, 'chat');
    const toks = chunks.flatMap((ch) => ch.choices.flatMap((c) => c.logprobs?.content ?? []));
    assert.equal(toks.length, usage.completion_tokens);
    assert.equal(toks.map((t) => t.token).join(''), text);
    for (const t of toks) {
      assert.ok(t.logprob <= 0);
      assert.equal(t.top_logprobs.length, 2);
      assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
    }
  });
});

describe('stop sequences', () => {
  // GREEDY[0].content: ", there was a little girl named Lily. She loved to play outside in the park. ..."
  const g = GREEDY[0];
  const cases = [
    ['one word', ['Lily']],
    ['spanning several tokens', ['little girl named']],
    ['a single character', ['.']],
    ['inside a token', ['ove']],
    ['several; the earliest match wins', ['park', 'zzz', 'named', 'qqq']],
    ['a newline', ['\n']],
  ];
  for (const [name, stop] of cases) {
    const cut = Math.min(...stop.map((s) => g.content.indexOf(s)).filter((i) => i >= 0));
    const want = g.content.slice(0, cut);

    test(`stop ${name} (${JSON.stringify(stop)}), not streamed`, async () => {
      assert.ok(cut < g.content.length);
      const r = await srv.client.completions.create({
        model: MODEL, prompt: g.prompt_ids, max_tokens: g.n_predict, temperature: 0, stop,
      });
      assert.equal(r.choices[0].text, want);
      assert.equal(r.choices[0].finish_reason, 'stop');
      for (const s of stop) assert.ok(!r.choices[0].text.includes(s));
      assert.ok(r.usage.completion_tokens < g.n_predict);
    });

    test(`stop ${name} (${JSON.stringify(stop)}), streamed`, async () => {
      const s = await srv.client.completions.create({
        model: MODEL, prompt: g.prompt_ids, max_tokens: g.n_predict, temperature: 0, stop, stream: true,
      });
      const { chunks, text, finish } = await collect(s, 'completion');
      assert.equal(text, want);
      assert.equal(finish, 'stop');
      for (const ch of chunks) for (const c of ch.choices) for (const st of stop) assert.ok(!c.text.includes(st));
    });
  }

  test('stop as a plain string works like a one-element array', async () => {
    const r = await srv.client.completions.create({
      model: MODEL, prompt: g.prompt_ids, max_tokens: g.n_predict, temperature: 0, stop: 'Lily',
    });
    assert.equal(r.choices[0].text, g.content.slice(0, g.content.indexOf('Lily')));
    assert.equal(r.choices[0].finish_reason, 'stop');
  });

  test('a stop string that never occurs: finish_reason length, text unchanged', async () => {
    const r = await srv.client.completions.create({
      model: MODEL, prompt: g.prompt_ids, max_tokens: g.n_predict, temperature: 0, stop: ['elephant'],
    });
    assert.equal(r.choices[0].text, g.content);
    assert.equal(r.choices[0].finish_reason, 'length');
  });

  test('a held-back partial match is released when it turns out not to match', async () => {
    // "little boy" starts like "little girl": "little " is held back, then released
    const s = await srv.client.completions.create({
      model: MODEL, prompt: g.prompt_ids, max_tokens: g.n_predict, temperature: 0, stop: ['little boy'], stream: true,
    });
    const { text, finish } = await collect(s, 'completion');
    assert.equal(text, g.content);
    assert.equal(finish, 'length');
  });

  test('chat with stop', async () => {
    const body = { model: MODEL, messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 48, temperature: 0 };
    const full = (await srv.client.chat.completions.create(body)).choices[0].message.content;
    const words = full.split(' ').filter((w) => w.length >= 3);
    assert.ok(words.length >= 2, `chat output too short to pick a stop word: ${JSON.stringify(full)}`);
    const stop = words[1];
    const want = full.slice(0, full.indexOf(stop));
    const r = await srv.client.chat.completions.create({ ...body, stop: [stop] });
    assert.equal(r.choices[0].message.content, want);
    assert.equal(r.choices[0].finish_reason, 'stop');
    const st = await srv.client.chat.completions.create({ ...body, stop: [stop], stream: true });
    const c = await collect(st, 'chat');
    assert.equal(c.text, want);
    assert.equal(c.finish, 'stop');
  });
});
