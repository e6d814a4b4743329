// queue.test.mjs: a full queue is answered at once with 429 and Retry-After
// (never a hang, never a dropped connection), and the server recovers.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { MODEL, MODEL_PATH, golden, rawRequest, startServer, waitIdle } from './harness.mjs';

const GREEDY = golden('stories260K-free-greedy.jsonl');

let srv;
before(async () => { srv = await startServer({ args: ['-m', MODEL_PATH, '--slots', '1', '--queue', '1'] }); });
after(async () => { if (srv) await srv.stop(); });

test('one slot, queue of one: the rest get 429 with Retry-After', { timeout: 60000 }, async () => {
  const body = { model: MODEL, prompt: 'Once upon a time', max_tokens: 400, temperature: 1, seed: 1, ignore_eos: true };
  const rs = await Promise.all(Array.from({ length: 8 }, () => rawRequest(srv.url, 'POST', '/v1/completions', body)));
  const ok = rs.filter((r) => r.status === 200);
  const busy = rs.filter((r) => r.status === 429);
  assert.equal(ok.length + busy.length, 8, `statuses: ${rs.map((r) => r.status)}`);
  // at least the first is served (a second may be refused while the first still waits to be admitted)
  assert.ok(ok.length >= 1, 'none served');
  assert.ok(busy.length >= 1, 'nothing was refused although 8 requests met 1 slot and a queue of 1');
  for (const r of busy) {
    assert.match(r.headers['retry-after'] || '', /^\d+$/, 'Retry-After missing or not delay-seconds');
    assert.equal(typeof r.json.error.message, 'string');
    assert.equal(typeof r.json.error.type, 'string');
  }
  for (const r of ok) assert.equal(r.json.usage.completion_tokens, 400);
  // fixed seed: every served request gave the same text
  assert.equal(new Set(ok.map((r) => r.json.choices[0].text)).size, 1);
  assert.equal(await waitIdle(srv.url), 0);
  const g = GREEDY[5];
  const r = await srv.client.completions.create({ model: MODEL, prompt: g.prompt_ids, max_tokens: g.n_predict, temperature: 0 });
  assert.equal(r.choices[0].text, g.content);
});

test('the openai client sees a 429 as RateLimitError', { timeout: 60000 }, async () => {
  const body = { model: MODEL, prompt: 'Once upon a time', max_tokens: 400, temperature: 1, seed: 2, ignore_eos: true };
  const rs = await Promise.allSettled(Array.from({ length: 6 }, () => srv.client.completions.create(body)));
  const refused = rs.filter((r) => r.status === 'rejected');
  assert.ok(refused.length >= 1);
  for (const r of refused) assert.equal(r.reason.status, 429, String(r.reason));
});
