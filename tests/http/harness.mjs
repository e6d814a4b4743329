// harness.mjs: starts a real `citadel serve` for one test file and gives the
// tests what they need to talk to it from outside.
//
// Every test file calls startServer() in before() and server.stop() in
// after(): one server per file, on a free loopback port (--port 0; the port is
// read from the server's "citadel serve: listening on http://HOST:PORT" line
// on stderr), ready once GET /health answers 200. The binary is $CITADEL_BIN
// (ctest sets it), else the repository's build/citadel; the model is
// $CITADEL_SHARED/models/stories260K.gguf, CITADEL_SHARED defaulting to the
// repository's ../shared.
//
// Besides the official `openai` client, tests get raw helpers (rawRequest,
// readSSE, parseMetrics) for what a client library hides: exact status codes
// and headers, bodies that are not valid JSON or UTF-8, the SSE framing.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';

const here = path.dirname(fileURLToPath(import.meta.url));

export const SHARED = process.env.CITADEL_SHARED || path.resolve(here, '../../../shared');
export const BIN = process.env.CITADEL_BIN || path.resolve(here, '../../build/citadel');
export const MODEL_PATH = path.join(SHARED, 'models', 'stories260K.gguf');
export const MODEL = 'stories260K'; // the model id: the file's base name without .gguf
export const N_EMBD = 64;           // stories260K: dim 64
export const N_VOCAB = 512;
export const N_CTX_TRAIN = 2048;    // stories260K's GGUF context_length: the default -c

const START_TIMEOUT_MS = 30000;
const SANITIZER_REPORT = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|WARNING: ThreadSanitizer/;

/* Lines of a golden JSONL file of ../shared/golden (recorded by a reference
 * engine, see ../shared/README.md). */
export function golden(name) {
  return readFileSync(path.join(SHARED, 'golden', name), 'utf8')
    .split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
}

/* Starts `citadel serve` with `args` (default: the stories260K model) plus
 * --host 127.0.0.1 --port 0, waits for the listening line and for /health 200.
 * Resolves to a server object:
 *   url      "http://127.0.0.1:PORT"
 *   client   an OpenAI client whose baseURL is url + "/v1"
 *   proc     the child process
 *   stderr() everything the server wrote to stderr so far
 *   exited   a promise of {code, signal} when the process ends
 *   stop()   SIGTERM, then SIGKILL after 10 s; resolves to {code, signal}
 *            and throws unless the server exited 0 with no sanitizer
 *            report on stderr (so after() hooks fail the file) */
export async function startServer({ args = ['-m', MODEL_PATH], apiKey = 'unused', extraEnv = {} } = {}) {
  if (!existsSync(BIN)) throw new Error(`citadel binary not found at ${BIN} (set CITADEL_BIN)`);
  if (!existsSync(MODEL_PATH)) throw new Error(`model not found at ${MODEL_PATH} (set CITADEL_SHARED)`);
  const argv = ['serve', ...args, '--host', '127.0.0.1', '--port', '0'];
  const env = { ...process.env };
  delete env.CITADEL_API_KEY; // the server's default --api-key: tests choose their own
  const proc = spawn(BIN, argv, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...env, ...extraEnv } });
  let err = '';
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`citadel ${argv.join(' ')}: no listening line within ${START_TIMEOUT_MS} ms; stderr:\n${err}`));
    }, START_TIMEOUT_MS);
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      err += chunk;
      const m = /citadel serve: listening on (http:\/\/[^\s:]+:(\d+))/.exec(err);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`citadel ${argv.join(' ')} exited (code ${code}, signal ${signal}) before listening; stderr:\n${err}`));
    });
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const r = await fetch(`${url}/health`).catch(() => null);
    if (r && r.status === 200) { await r.text(); break; }
    if (r) await r.text();
    if (Date.now() > deadline) throw new Error(`${url}/health not 200 within ${START_TIMEOUT_MS} ms`);
    await sleep(50);
  }
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0, timeout: 120000 });
  let exitInfo = null;
  exited.then((x) => { exitInfo = x; });
  return {
    url,
    client,
    proc,
    exited,
    stderr: () => err,
    async stop() {
      if (!exitInfo) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
        await exited;
        clearTimeout(t);
      }
      const r = await exited;
      if (r.code !== 0 || SANITIZER_REPORT.test(err)) {
        throw new Error(`citadel serve ended with code ${r.code}, signal ${r.signal} (SIGTERM must give a clean exit 0); stderr:\n${err.slice(-4000)}`);
      }
      return r;
    },
  };
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/* One HTTP request with node:http, so that any body bytes can be sent and the
 * exact status, headers and body come back. body: a Buffer, a string (sent
 * as is) or an object (JSON-encoded). Resolves to {status, headers, text,
 * json} (json null when the body does not parse). Write errors after the
 * server has answered (it may close early on a too-large body) are ignored. */
export function rawRequest(url, method, pathname, body, headers = {}) {
  let data = null;
  if (Buffer.isBuffer(body)) data = body;
  else if (typeof body === 'string') data = Buffer.from(body, 'utf8');
  else if (body !== undefined && body !== null) data = Buffer.from(JSON.stringify(body), 'utf8');
  const u = new URL(pathname, url);
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (data) {
      h['content-type'] = h['content-type'] || 'application/json';
      h['content-length'] = String(data.length);
    }
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: h,
                               agent: false });
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch { json = null; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', (e) => { if (!answered) reject(e); });
    if (data) req.end(data); else req.end();
  });
}

/* POSTs a JSON body and parses the response as Server-Sent Events. Resolves
 * to {status, headers, events, raw}: events are the `data:` payloads in
 * order (strings; "[DONE]" included), raw the whole body text. */
export async function postSSE(url, pathname, body) {
  const r = await fetch(new URL(pathname, url), {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  const raw = await r.text();
  return { status: r.status, headers: r.headers, events: parseSSE(raw), raw };
}

/* The data payloads of an SSE body (events separated by a blank line; the
 * data lines of one event joined by "\n"; comments and other fields skipped). */
export function parseSSE(raw) {
  const events = [];
  for (const block of raw.split(/\r?\n\r?\n/)) {
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (data.length) events.push(data.join('\n'));
  }
  return events;
}

/* GET /metrics, parsed: an array of {name, labels: {k: v}, value}. */
export async function getMetrics(url) {
  const r = await fetch(`${url}/metrics`);
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  return parseMetrics(await r.text());
}

export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    const labels = {};
    if (m[3]) {
      for (const lm of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]] = lm[2];
    }
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

/* Sum of the samples named `name` whose labels include every pair in `labels`. */
export function metric(samples, name, labels = {}) {
  let sum = 0;
  let found = false;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (!Object.entries(labels).every(([k, v]) => s.labels[k] === v)) continue;
    sum += s.value;
    found = true;
  }
  return found ? sum : undefined;
}

/* Polls /metrics until citadel_slots_busy{model} is 0 (or timeout_ms). */
export async function waitIdle(url, model = MODEL, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  let busy;
  for (;;) {
    busy = metric(await getMetrics(url), 'citadel_slots_busy', { model });
    if (busy === 0) return 0;
    if (Date.now() > deadline) return busy;
    await sleep(50);
  }
}

/* POST /tokenize -> the token ids. */
export async function tokenize(url, content, extra = {}) {
  const r = await rawRequest(url, 'POST', '/tokenize', { content, ...extra });
  if (r.status !== 200) throw new Error(`/tokenize answered ${r.status}: ${r.text}`);
  return r.json.tokens;
}
