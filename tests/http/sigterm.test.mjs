// sigterm.test.mjs: SIGTERM while requests stream. The server stops
// accepting, lets in-flight requests finish (within --drain-timeout, after
// which it cancels them cleanly: the stream still ends with an event, not a
// torn connection) and exits 0. Each test starts its own server, since it
// ends it.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { MODEL, MODEL_PATH, golden, parseSSE, sleep, startServer } from './harness.mjs';

const GREEDY = golden('stories260K-free-greedy.jsonl');

const servers = [];
after(async () => { for (const s of servers) await s.stop(); });

/* Starts a streamed completion with fetch; resolves once the first event has
 * arrived to {rest}: a promise of {raw, error} with the whole body (or the
 * network error that ended it). */
async function startStream(url, body) {
  const r = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }),
  });
  assert.equal(r.status, 200);
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let raw = '';
  while (!raw.includes('\n\n')) {
    const { value, done } = await reader.read();
    if (done) break;
    raw += dec.decode(value, { stream: true });
  }
  const rest = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return { raw, error: null };
        raw += dec.decode(value, { stream: true });
      }
    } catch (e) {
      return { raw, error: e };
    }
  })();
  return { rest };
}

test('SIGTERM during a stream: the stream completes and the process exits 0', { timeout: 60000 }, async () => {
  const srv = await startServer({ args: ['-m', MODEL_PATH, '--drain-timeout', '30'] });
  servers.push(srv);
  const g = GREEDY[6];
  const streams = await Promise.all([0, 1, 2].map(() => startStream(srv.url, { model: MODEL, prompt: g.prompt_ids, max_tokens: g.n_predict, temperature: 0 })));
  srv.proc.kill('SIGTERM');
  let finishedAll = false;
  Promise.all(streams.map((s) => s.rest)).then(() => { finishedAll = true; });
  await sleep(30);
  // new connections are no longer served (refused, or 503) while draining
  const probe = await fetch(`${srv.url}/health`).then((r) => r.status, (e) => e.cause?.code || 'error');
  if (!finishedAll) assert.notEqual(probe, 200, 'a new request was served during the drain');
  for (const s of streams) {
    const { raw, error } = await s.rest;
    assert.equal(error, null, `stream torn: ${error}`);
    const events = parseSSE(raw);
    assert.equal(events[events.length - 1], '[DONE]');
    let text = '';
    let finish = null;
    for (const e of events.slice(0, -1)) {
      const ch = JSON.parse(e);
      for (const c of ch.choices) { text += c.text; if (c.finish_reason) finish = c.finish_reason; }
    }
    assert.equal(text, g.content);
    assert.equal(finish, 'length');
  }
  const { code, signal } = await srv.exited;
  assert.equal(signal, null);
  assert.equal(code, 0, `exit code ${code}; stderr:\n${srv.stderr()}`);
});

test('SIGTERM with a short drain timeout: long streams are cut cleanly, exit 0', { timeout: 60000 }, async () => {
  const srv = await startServer({ args: ['-m', MODEL_PATH, '--slots', '2', '--drain-timeout', '1', '-t', '1'] });
  servers.push(srv);
  // more work than a second holds: 2 running + 4 queued, 2000 tokens each
  const streams = await Promise.all(Array.from({ length: 2 }, (_, i) => startStream(srv.url,
    { model: MODEL, prompt: 'Once upon a time', max_tokens: 2000, temperature: 1, seed: i, ignore_eos: true })));
  const queued = Array.from({ length: 4 }, (_, i) => fetch(`${srv.url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, prompt: 'Once upon a time', max_tokens: 2000, temperature: 1, seed: 10 + i, ignore_eos: true, stream: true }),
  }).then(async (r) => ({ status: r.status, raw: await r.text(), error: null }), (e) => ({ error: e })));
  await sleep(50);
  const t0 = Date.now();
  srv.proc.kill('SIGTERM');
  const { code, signal } = await srv.exited;
  const took = (Date.now() - t0) / 1000;
  assert.equal(signal, null);
  assert.equal(code, 0, `exit code ${code}; stderr:\n${srv.stderr()}`);
  assert.ok(took < 1 + 5, `exit took ${took} s with --drain-timeout 1`);
  for (const s of streams) {
    const { raw, error } = await s.rest;
    assert.equal(error, null, `stream torn: ${error}`);
    checkCutStream(raw);
  }
  for (const q of await Promise.all(queued)) {
    // a queued request was either answered (and ended cleanly) or refused; never torn mid-body
    if (q.error) { assert.ok(/ECONNREFUSED|ECONNRESET/.test(`${q.error} ${q.error.cause?.code}`), `${q.error} ${q.error.cause}`); continue; }
    if (q.status === 200) checkCutStream(q.raw);
    else assert.ok([503, 429].includes(q.status), `queued request answered ${q.status}`);
  }
});

/* A stream that SIGTERM may have cut: it ends either normally (a chunk with
 * finish_reason "length" -- these requests have ignore_eos and no stop
 * strings, so "stop" would be a cut stream claiming a natural end -- then
 * data: [DONE]) or with an error event (or finish_reason "cancelled"). */
function checkCutStream(raw) {
  const events = parseSSE(raw);
  assert.ok(events.length >= 1, 'empty stream');
  const json = events.filter((e) => e !== '[DONE]').map((e) => JSON.parse(e));
  const last = json[json.length - 1];
  if (last.error) {
    assert.equal(typeof last.error.message, 'string');
    return;
  }
  assert.equal(events[events.length - 1], '[DONE]', `stream ended with neither [DONE] nor an error event: ...${raw.slice(-300)}`);
  const finishes = json.flatMap((ch) => ch.choices.map((c) => c.finish_reason)).filter((f) => f);
  assert.equal(finishes.length, 1, `finish_reasons: ${finishes}`);
  assert.ok(['length', 'cancelled'].includes(finishes[0]),
    `a stream cut by the drain timeout ended with finish_reason ${JSON.stringify(finishes[0])}, as if complete`);
}
