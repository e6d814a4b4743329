// apikey.test.mjs: --api-key KEY: every /v1 route and /tokenize,
// /detokenize, /metrics need "Authorization: Bearer KEY" (401 otherwise, an
// OpenAI error document); /health answers without it (load balancers).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import OpenAI from 'openai';

import { MODEL, MODEL_PATH, rawRequest, startServer } from './harness.mjs';

const KEY = 'sk-test-citadel-123';

let srv;
before(async () => { srv = await startServer({ args: ['-m', MODEL_PATH, '--api-key', KEY], apiKey: KEY }); });
after(async () => { if (srv) await srv.stop(); });

test('the right key works through the openai client', async () => {
  const r = await srv.client.completions.create({ model: MODEL, prompt: 'x', max_tokens: 1 });
  assert.equal(r.choices.length, 1);
});

test('a wrong or missing key is 401; /health needs none', async () => {
  const bad = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
  await assert.rejects(bad.models.list(), (err) => err.status === 401);
  for (const [method, path, body] of [['POST', '/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 1 }],
    ['GET', '/v1/models', null], ['POST', '/tokenize', { content: 'x' }]]) {
    const r = await rawRequest(srv.url, method, path, body);
    assert.equal(r.status, 401, `${method} ${path} without a key: ${r.status}`);
    assert.equal(typeof r.json.error.message, 'string');
    const w = await rawRequest(srv.url, method, path, body, { authorization: 'Bearer sk-wrong' });
    assert.equal(w.status, 401, `${method} ${path} with a wrong key: ${w.status}`);
  }
  assert.equal((await rawRequest(srv.url, 'GET', '/health')).status, 200);
  const ok = await rawRequest(srv.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 1 },
    { authorization: `Bearer ${KEY}` });
  assert.equal(ok.status, 200);
});
