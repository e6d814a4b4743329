// errors.test.mjs: one table of bad requests, each answered with the right
// HTTP status and an OpenAI error document {"error": {"message", "type",
// "param", "code"}} whose message names the field (and param is that field)
// -- and the server still serving correctly after all of them.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import {
  MODEL, MODEL_PATH, N_VOCAB, getMetrics, golden, metric, rawRequest, startServer,
} from './harness.mjs';

const MAX_BODY = 65536;
const CTX = 256; // -c: positions per slot
const IDLE_S = 2; // --idle-timeout
const GREEDY = golden('stories260K-free-greedy.jsonl');

let srv;
before(async () => { srv = await startServer({ args: ['-m', MODEL_PATH, '--max-body', String(MAX_BODY), '-c', String(CTX), '--idle-timeout', String(IDLE_S)] }); });
after(async () => { if (srv) await srv.stop(); });

const CHAT = '/v1/chat/completions';
const COMP = '/v1/completions';
const chat = (extra) => ({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, ...extra });
const comp = (extra) => ({ model: MODEL, prompt: 'Hi', max_tokens: 4, ...extra });
const nested = (depth) => '['.repeat(depth) + ']'.repeat(depth);

// [name, method, path, body, status, param (null: none; undefined: not checked; a field also matches
//  its elements, "prompt[1]"), code (undefined: not checked), message regex]
// A body that is a string or Buffer is sent as is; an object is JSON-encoded.
const TABLE = [
  // wrong types
  ['temperature as a string', 'POST', CHAT, chat({ temperature: 'hot' }), 400, 'temperature', undefined, /temperature/],
  ['max_tokens as a string', 'POST', COMP, comp({ max_tokens: '10' }), 400, 'max_tokens', undefined, /max_tokens/],
  ['max_tokens not an integer', 'POST', COMP, comp({ max_tokens: 1.5 }), 400, 'max_tokens', undefined, /max_tokens/],
  ['n as a bool', 'POST', CHAT, chat({ n: true }), 400, 'n', undefined, /\bn\b/],
  ['seed as a string', 'POST', COMP, comp({ seed: 'abc' }), 400, 'seed', undefined, /seed/],
  ['stream as a string', 'POST', CHAT, chat({ stream: 'yes' }), 400, 'stream', undefined, /stream/],
  ['stop as a number', 'POST', COMP, comp({ stop: 5 }), 400, 'stop', undefined, /stop/],
  ['logprobs as a string', 'POST', CHAT, chat({ logprobs: 'yes' }), 400, 'logprobs', undefined, /logprobs/],
  ['top_k as a string', 'POST', COMP, comp({ top_k: 'x' }), 400, 'top_k', undefined, /top_k/],
  ['logit_bias as an array', 'POST', COMP, comp({ logit_bias: [1, 2] }), 400, 'logit_bias', undefined, /logit_bias/],
  ['model as a number', 'POST', CHAT, chat({ model: 123 }), 400, 'model', undefined, /model/],
  ['messages as a string', 'POST', CHAT, { model: MODEL, messages: 'hi' }, 400, 'messages', undefined, /messages/],
  ['message content as a number', 'POST', CHAT, { model: MODEL, messages: [{ role: 'user', content: 7 }] }, 400, /^messages/, undefined, /messages|content/],
  ['prompt as a number', 'POST', COMP, { model: MODEL, prompt: 42 }, 400, 'prompt', undefined, /prompt/],
  ['prompt ids with a float', 'POST', COMP, { model: MODEL, prompt: [1, 2.5] }, 400, 'prompt', undefined, /prompt/],
  ['tokenize content as a number', 'POST', '/tokenize', { content: 5 }, 400, 'content', undefined, /content/],
  ['detokenize tokens as a string', 'POST', '/detokenize', { tokens: 'abc' }, 400, 'tokens', undefined, /tokens/],
  ['embeddings input as an object', 'POST', '/v1/embeddings', { model: MODEL, input: { a: 1 } }, 400, 'input', undefined, /input/],
  // missing / empty
  ['messages missing', 'POST', CHAT, { model: MODEL }, 400, 'messages', undefined, /messages/],
  ['messages empty', 'POST', CHAT, { model: MODEL, messages: [] }, 400, 'messages', undefined, /messages/],
  ['unknown role', 'POST', CHAT, { model: MODEL, messages: [{ role: 'wizard', content: 'x' }] }, 400, /^messages/, undefined, /role|wizard/],
  ['prompt missing', 'POST', COMP, { model: MODEL, max_tokens: 3 }, 400, 'prompt', undefined, /prompt/],
  ['prompt ids empty', 'POST', COMP, { model: MODEL, prompt: [] }, 400, 'prompt', undefined, /prompt/],
  ['embeddings input missing', 'POST', '/v1/embeddings', { model: MODEL }, 400, 'input', undefined, /input/],
  ['tokenize content missing', 'POST', '/tokenize', {}, 400, 'content', undefined, /content/],
  // out of range
  ['temperature 3.5', 'POST', CHAT, chat({ temperature: 3.5 }), 400, 'temperature', undefined, /temperature.*3\.5|3\.5.*temperature/],
  ['temperature -1', 'POST', CHAT, chat({ temperature: -1 }), 400, 'temperature', undefined, /temperature/],
  ['top_p 1.5', 'POST', CHAT, chat({ top_p: 1.5 }), 400, 'top_p', undefined, /top_p/],
  ['min_p 2', 'POST', COMP, comp({ min_p: 2 }), 400, 'min_p', undefined, /min_p/],
  ['presence_penalty 3', 'POST', CHAT, chat({ presence_penalty: 3 }), 400, 'presence_penalty', undefined, /presence_penalty/],
  ['frequency_penalty -2.5', 'POST', CHAT, chat({ frequency_penalty: -2.5 }), 400, 'frequency_penalty', undefined, /frequency_penalty/],
  ['repetition_penalty 0', 'POST', COMP, comp({ repetition_penalty: 0 }), 400, 'repetition_penalty', undefined, /repetition_penalty/],
  ['max_tokens 0', 'POST', COMP, comp({ max_tokens: 0 }), 400, 'max_tokens', undefined, /max_tokens/],
  ['max_tokens -5', 'POST', COMP, comp({ max_tokens: -5 }), 400, 'max_tokens', undefined, /max_tokens/],
  ['n 0', 'POST', CHAT, chat({ n: 0 }), 400, 'n', undefined, /\bn\b/],
  ['n 17', 'POST', CHAT, chat({ n: 17 }), 400, 'n', undefined, /\bn\b.*16|16.*\bn\b/],
  ['top_logprobs 21', 'POST', CHAT, chat({ logprobs: true, top_logprobs: 21 }), 400, 'top_logprobs', undefined, /top_logprobs.*20|20.*top_logprobs/],
  ['completions logprobs 21', 'POST', COMP, comp({ logprobs: 21 }), 400, 'logprobs', undefined, /logprobs/],
  ['logit_bias value 101', 'POST', COMP, comp({ logit_bias: { 5: 101 } }), 400, 'logit_bias', undefined, /logit_bias/],
  ['too many stop strings', 'POST', COMP, comp({ stop: ['a', 'b', 'c', 'd', 'e'] }), 400, 'stop', undefined, /stop.*4|4.*stop/],
  ['stop string too long', 'POST', COMP, comp({ stop: ['x'.repeat(300)] }), 400, 'stop', undefined, /stop/],
  ['empty stop string', 'POST', COMP, comp({ stop: [''] }), 400, 'stop', undefined, /stop/],
  // token ids outside the vocabulary
  ['prompt token id = n_vocab', 'POST', COMP, { model: MODEL, prompt: [1, N_VOCAB] }, 400, 'prompt', undefined, new RegExp(`${N_VOCAB}`)],
  ['prompt token id -1', 'POST', COMP, { model: MODEL, prompt: [1, -1] }, 400, 'prompt', undefined, /prompt/],
  ['logit_bias token outside the vocabulary', 'POST', COMP, comp({ logit_bias: { 99999: 1 } }), 400, 'logit_bias', undefined, /99999|512/],
  ['logit_bias key not a number', 'POST', COMP, comp({ logit_bias: { abc: 1 } }), 400, 'logit_bias', undefined, /logit_bias/],
  ['detokenize id outside the vocabulary', 'POST', '/detokenize', { tokens: [1, 70000] }, 400, 'tokens', undefined, /tokens/],
  ['embedding ids outside the vocabulary', 'POST', '/v1/embeddings', { model: MODEL, input: [1, 600] }, 400, 'input', undefined, /input/],
  // context
  ['prompt + max_tokens beyond the context', 'POST', COMP, comp({ max_tokens: CTX }), 400, undefined, 'context_length_exceeded', new RegExp(`${CTX}`)],
  ['chat prompt + max_tokens beyond the context', 'POST', CHAT, chat({ max_tokens: CTX + 100 }), 400, undefined, 'context_length_exceeded', /context/],
  ['prompt alone beyond the context', 'POST', COMP, { model: MODEL, prompt: Array(CTX + 10).fill(300), max_tokens: 1 }, 400, undefined, 'context_length_exceeded', /context/],
  // model
  ['unknown model', 'POST', CHAT, chat({ model: 'gpt-4o' }), 404, 'model', 'model_not_found', /gpt-4o/],
  ['unknown model (completions)', 'POST', COMP, comp({ model: 'nope' }), 404, 'model', 'model_not_found', /nope/],
  ['unknown model (embeddings)', 'POST', '/v1/embeddings', { model: 'nope', input: 'x' }, 404, 'model', 'model_not_found', /nope/],
  // bytes and structure
  ['invalid JSON', 'POST', CHAT, '{"model": "stories260K", "messages": [', 400, null, undefined, /JSON|json|parse/],
  ['not JSON at all', 'POST', COMP, 'hello', 400, null, undefined, /JSON|json|parse/],
  ['empty body', 'POST', COMP, '', 400, null, undefined, /./],
  ['top level is an array', 'POST', COMP, '[1, 2, 3]', 400, null, undefined, /object/],
  ['number overflowing a double', 'POST', COMP, '{"model": "stories260K", "prompt": "x", "temperature": 1e999}', 400, undefined, undefined, /./],
  ['invalid UTF-8 in a string', 'POST', COMP, Buffer.concat([Buffer.from('{"model": "stories260K", "prompt": "ab'), Buffer.from([0xff, 0xfe, 0x80]), Buffer.from('"}')]), 400, null, undefined, /UTF-8|utf-8|UTF8/i],
  ['overlong UTF-8 encoding', 'POST', '/tokenize', Buffer.concat([Buffer.from('{"content": "'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]), 400, null, undefined, /UTF-8/i],
  ['UTF-16 surrogate encoded in UTF-8', 'POST', '/tokenize', Buffer.concat([Buffer.from('{"content": "'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]), 400, null, undefined, /UTF-8/i],
  ['lone surrogate escape', 'POST', '/tokenize', '{"content": "\\ud800"}', 400, undefined, undefined, /./],
  ['too deep JSON', 'POST', CHAT, `{"model": "stories260K", "messages": [{"role": "user", "content": "x"}], "user": ${nested(200)}}`, 400, null, undefined, /depth|deep|nest/i],
  ['too deep JSON (objects)', 'POST', COMP, '{"a":'.repeat(100) + '1' + '}'.repeat(100), 400, null, undefined, /depth|deep|nest/i],
  ['body too large', 'POST', CHAT, JSON.stringify(chat({ user: 'x'.repeat(MAX_BODY + 100) })), 413, null, undefined, new RegExp(`${MAX_BODY}`)],
  // routes and methods
  ['unknown route', 'GET', '/v1/nothing', null, 404, null, undefined, /./],
  ['unknown POST route', 'POST', '/v2/chat/completions', chat({}), 404, null, undefined, /./],
  ['GET on a POST route', 'GET', CHAT, null, 405, null, undefined, /./],
  ['DELETE on a GET route', 'DELETE', '/v1/models', null, 405, null, undefined, /./],
  ['POST on /health', 'POST', '/health', {}, 405, null, undefined, /./],
];

describe('bad requests', () => {
  for (const [name, method, path, body, status, param, code, msg] of TABLE) {
    test(`${name}: ${status}`, async () => {
      const r = await rawRequest(srv.url, method, path, body);
      assert.equal(r.status, status, `${method} ${path}: ${r.status} ${r.text.slice(0, 300)}`);
      assert.match(r.headers['content-type'] || '', /application\/json/);
      assert.ok(r.json && typeof r.json.error === 'object', `not an error document: ${r.text.slice(0, 300)}`);
      const e = r.json.error;
      assert.equal(typeof e.message, 'string');
      assert.equal(typeof e.type, 'string');
      assert.ok('param' in e && 'code' in e, 'error lacks param or code');
      assert.match(e.message, msg);
      if (param instanceof RegExp) assert.match(String(e.param), param);
      else if (param === null) assert.equal(e.param, null);
      else if (param !== undefined) {
        // the field itself, or an element of it ("prompt[1]", "logit_bias.5")
        assert.ok(e.param === param || e.param?.startsWith(`${param}[`) || e.param?.startsWith(`${param}.`),
          `param ${JSON.stringify(e.param)} is not ${param}`);
        assert.ok(e.message.includes(param), `message does not name ${param}: ${e.message}`);
      }
      if (code !== undefined) assert.equal(e.code, code);
      if (status === 405) assert.ok(r.headers.allow, 'a 405 without an Allow header');
    });
  }

  test('the official client surfaces the error as an APIError with status and param', async () => {
    await assert.rejects(
      srv.client.chat.completions.create(chat({ temperature: 9 })),
      (e) => e.status === 400 && e.param === 'temperature' && /temperature/.test(e.message),
    );
    await assert.rejects(
      srv.client.chat.completions.create(chat({ model: 'nope' })),
      (e) => e.status === 404 && e.code === 'model_not_found',
    );
  });

  test('an error in a streamed request comes before any event, as a plain JSON error', async () => {
    const r = await rawRequest(srv.url, 'POST', CHAT, chat({ stream: true, temperature: 'x' }));
    assert.equal(r.status, 400);
    assert.equal(r.json.error.param, 'temperature');
  });

  test('unknown fields are ignored', async () => {
    const r = await rawRequest(srv.url, 'POST', COMP, comp({ some_future_field: { a: 1 }, temperature: 0 }));
    assert.equal(r.status, 200);
  });

  test('half-open connections do not block others', { timeout: 30000 }, async () => {
    const { port } = new URL(srv.url);
    const socks = [];
    for (let i = 0; i < 16; i++) {
      const s = net.connect(Number(port), '127.0.0.1');
      s.on('error', () => {});
      s.write(i % 2 ? 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"mod' : 'GET /hea');
      socks.push(s);
    }
    try {
      const r = await srv.client.completions.create(comp({ temperature: 0 }));
      assert.equal(r.choices.length, 1);
    } finally {
      for (const s of socks) s.destroy();
    }
  });

  test('a client that stalls mid-request is disconnected after --idle-timeout', { timeout: 30000 }, async () => {
    const { port } = new URL(srv.url);
    const s = net.connect(Number(port), '127.0.0.1');
    s.on('error', () => {});
    await new Promise((resolve) => s.on('connect', resolve));
    s.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"mod');
    const t0 = Date.now();
    await new Promise((resolve) => s.on('close', resolve));
    const took = (Date.now() - t0) / 1000;
    assert.ok(took >= IDLE_S - 0.5 && took < IDLE_S + 5, `closed after ${took} s with --idle-timeout ${IDLE_S}`);
  });

  test('every answer says how long an idle connection lives (Keep-Alive: timeout = --idle-timeout)', async () => {
    for (const [method, path] of [['GET', '/health'], ['GET', '/v1/models'], ['GET', '/nope'], ['POST', '/health']]) {
      const r = await rawRequest(srv.url, method, path);
      assert.equal(r.headers['keep-alive'], `timeout=${IDLE_S}`, `${method} ${path}`);
    }
    const r = await rawRequest(srv.url, 'POST', '/v1/completions', { model: MODEL, prompt: [1], max_tokens: 1, stream: true });
    assert.equal(r.status, 200);
    assert.equal(r.headers['keep-alive'], `timeout=${IDLE_S}`);
  });

  test('still serving correctly after all of the above', async () => {
    assert.equal((await rawRequest(srv.url, 'GET', '/health')).status, 200);
    const g = GREEDY[4];
    const r = await srv.client.completions.create({ model: MODEL, prompt: g.prompt_ids, max_tokens: g.n_predict, temperature: 0 });
    assert.equal(r.choices[0].text, g.content);
    const m = await getMetrics(srv.url);
    const want = TABLE.filter((t) => t[2] === COMP && t[4] === 400).length;
    assert.ok(metric(m, 'citadel_requests_total', { route: COMP, status: '400' }) >= want);
    assert.ok(metric(m, 'citadel_requests_total', { status: '413' }) >= 1);
    assert.equal(metric(m, 'citadel_slots_busy', { model: MODEL }), 0);
  });
});
