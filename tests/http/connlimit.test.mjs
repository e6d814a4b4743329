// connlimit.test.mjs: --max-connections-per-ip caps how many connections one
// client address can hold open (slow clients that trickle bytes under the
// idle timeout), and the server serves again once they are gone.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';

import { MODEL, MODEL_PATH, rawRequest, startServer } from './harness.mjs';

const CAP = 3;

let srv;
before(async () => { srv = await startServer({ args: ['-m', MODEL_PATH, '--max-connections-per-ip', String(CAP)] }); });
after(async () => { if (srv) await srv.stop(); });

// Opens a connection that has sent half a request; resolves once connected.
function stalled(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.on('connect', () => { s.write('GET /hea'); resolve(s); });
  });
}

test('one address holds at most --max-connections-per-ip connections', { timeout: 30000 }, async () => {
  const port = Number(new URL(srv.url).port);
  const held = [];
  for (let i = 0; i < CAP; i++) held.push(await stalled(port));
  try {
    // The next connection from the same address is closed without an answer.
    const extra = await stalled(port);
    const closed = await new Promise((resolve) => {
      let data = '';
      extra.on('data', (d) => { data += d; });
      extra.on('close', () => resolve(data));
      setTimeout(() => resolve(null), 5000);
    });
    assert.notEqual(closed, null, 'a connection over the cap was kept open');
    assert.doesNotMatch(closed, /200 OK/);
  } finally {
    for (const s of held) s.destroy();
  }
  // Once they are gone the server answers again.
  let r;
  for (let i = 0; i < 50; i++) {
    try { r = await rawRequest(srv.url, 'POST', '/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 1 }); break; } catch { await new Promise((ok) => setTimeout(ok, 100)); }
  }
  assert.equal(r.status, 200);
});
