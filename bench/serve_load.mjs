#!/usr/bin/env node
// serve_load.mjs: load benchmark for `citadel serve` (or any OpenAI-compatible
// server). For each concurrency level C it runs C clients at once, each
// sending --requests-per-client streamed requests one after another
// (ignore_eos, so every request generates exactly --max-tokens tokens), and
// prints one Markdown row per level:
//   aggregate generated tokens/s  (all tokens generated / wall time of the level)
//   TTFT p50/p95                  (request sent -> first token's event received)
//   inter-token latency p50/p95   (between consecutive token events of one stream)
// Plain Node (>= 18): fetch and a small SSE parser, no dependencies.
//
// usage: node bench/serve_load.mjs --url http://127.0.0.1:8080 --model NAME
//          [--concurrency 1,2,4,8,16] [--max-tokens 128] [--requests-per-client 2]
//          [--endpoint completion|chat] [--prompt TEXT] [--temperature 0] [--seed 1]
//          [--warmup 1] [--json FILE]

import { writeFileSync } from 'node:fs';
import process from 'node:process';

const USAGE = `usage: node bench/serve_load.mjs --url URL --model NAME [--concurrency 1,2,4,8,16]
       [--max-tokens 128] [--requests-per-client 2] [--endpoint completion|chat]
       [--prompt TEXT] [--temperature 0] [--seed 1] [--warmup 1] [--json FILE]`;

function parseArgs(argv) {
  const o = {
    url: 'http://127.0.0.1:8080', model: '', concurrency: [1, 2, 4, 8, 16], maxTokens: 128, perClient: 2,
    endpoint: 'completion', prompt: 'Once upon a time, in a small village by the sea, there lived',
    temperature: 0, seed: 1, warmup: 1, json: '',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    const int = (min) => {
      const s = v();
      const n = Number(s);
      if (!Number.isInteger(n) || n < min) fail(`${a} must be an integer >= ${min}; got ${s}`);
      return n;
    };
    switch (a) {
      case '--url': o.url = v().replace(/\/+$/, ''); break;
      case '--model': o.model = v(); break;
      case '--concurrency': {
        const s = v();
        o.concurrency = s.split(',').map(Number);
        if (!o.concurrency.every((n) => Number.isInteger(n) && n >= 1 && n <= 1024)) fail(`--concurrency must be a list of integers in [1, 1024]; got ${s}`);
        break;
      }
      case '--max-tokens': o.maxTokens = int(1); break;
      case '--requests-per-client': o.perClient = int(1); break;
      case '--endpoint': o.endpoint = v(); if (!['completion', 'chat'].includes(o.endpoint)) fail(`--endpoint must be completion or chat; got ${o.endpoint}`); break;
      case '--prompt': o.prompt = v(); break;
      case '--temperature': { const s = v(); o.temperature = Number(s); if (!(o.temperature >= 0 && o.temperature <= 2)) fail(`--temperature must be in [0, 2]; got ${s}`); break; }
      case '--seed': o.seed = int(0); break;
      case '--warmup': o.warmup = int(0); break;
      case '--json': o.json = v(); break;
      case '-h': case '--help': console.log(USAGE); process.exit(0); break;
      default: fail(`unknown option ${a}`);
    }
  }
  return o;
}

function fail(msg) {
  console.error(`serve_load: ${msg}\n${USAGE}`);
  process.exit(2);
}

/* Nearest-rank percentile of a sorted array; NaN when empty. */
function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  const k = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[k];
}

/* One streamed request. Resolves to {tokens, ttft, itl: [...], error}. Times
 * in seconds. A "token event" is an SSE chunk carrying generated text (or a
 * logprobs entry); usage.completion_tokens, when sent, is the token count. */
async function oneRequest(o, seed) {
  const path = o.endpoint === 'chat' ? '/v1/chat/completions' : '/v1/completions';
  const body = {
    model: o.model || undefined, max_tokens: o.maxTokens, temperature: o.temperature, seed, ignore_eos: true,
    stream: true, stream_options: { include_usage: true },
  };
  if (o.endpoint === 'chat') body.messages = [{ role: 'user', content: o.prompt }];
  else body.prompt = o.prompt;
  const t0 = performance.now();
  let ttft = NaN;
  let last = NaN;
  const itl = [];
  let events = 0;
  let usageTokens = null;
  let error = null;
  try {
    const r = await fetch(o.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (r.status !== 200) return { tokens: 0, ttft, itl, error: `HTTP ${r.status}: ${(await r.text()).slice(0, 200)}` };
    const dec = new TextDecoder();
    let buf = '';
    const onEvent = (data) => {
      if (data === '[DONE]') return;
      const ch = JSON.parse(data);
      if (ch.error) { error = ch.error.message || JSON.stringify(ch.error); return; }
      if (ch.usage) usageTokens = ch.usage.completion_tokens;
      const hasToken = (ch.choices || []).some((c) => (o.endpoint === 'chat' ? c.delta?.content : c.text));
      if (!hasToken) return;
      const now = performance.now();
      if (events === 0) ttft = (now - t0) / 1000;
      else itl.push((now - last) / 1000);
      last = now;
      events++;
    };
    for await (const chunk of r.body) {
      buf += dec.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
        if (data) onEvent(data);
      }
    }
  } catch (e) {
    error = String(e.cause || e);
  }
  return { tokens: usageTokens ?? events, ttft, itl, error };
}

async function level(o, c) {
  const results = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: c }, async (_, client) => {
    for (let k = 0; k < o.perClient; k++) results.push(await oneRequest(o, o.seed + client * o.perClient + k));
  }));
  const wall = (performance.now() - t0) / 1000;
  const ok = results.filter((r) => !r.error);
  const tokens = ok.reduce((s, r) => s + r.tokens, 0);
  const ttft = ok.map((r) => r.ttft).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  const itl = ok.flatMap((r) => r.itl).sort((a, b) => a - b);
  return {
    concurrency: c, requests: results.length, errors: results.length - ok.length,
    firstError: results.find((r) => r.error)?.error ?? null,
    tokens, wall_s: wall, tok_s: tokens / wall,
    ttft_p50_ms: pct(ttft, 50) * 1000, ttft_p95_ms: pct(ttft, 95) * 1000,
    itl_p50_ms: pct(itl, 50) * 1000, itl_p95_ms: pct(itl, 95) * 1000,
  };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const h = await fetch(`${o.url}/health`).catch((e) => fail(`cannot reach ${o.url}/health: ${e.cause || e}`));
  if (h.status !== 200) fail(`${o.url}/health answered ${h.status}`);
  if (!o.model) {
    const m = await (await fetch(`${o.url}/v1/models`)).json();
    o.model = m.data[0].id;
  }
  console.log(`serve_load: ${o.url} model ${o.model}, ${o.endpoint}, max_tokens ${o.maxTokens} (ignore_eos), ` +
              `${o.perClient} request(s) per client, temperature ${o.temperature}, seed ${o.seed}+`);
  for (let i = 0; i < o.warmup; i++) {
    const w = await oneRequest({ ...o, maxTokens: Math.min(o.maxTokens, 16) }, o.seed);
    if (w.error) fail(`warm-up request failed: ${w.error}`);
  }
  console.log('');
  console.log('| concurrency | requests | errors | generated tokens | wall s | aggregate tok/s | TTFT p50 ms | TTFT p95 ms | ITL p50 ms | ITL p95 ms |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const rows = [];
  for (const c of o.concurrency) {
    const r = await level(o, c);
    rows.push(r);
    const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
    console.log(`| ${c} | ${r.requests} | ${r.errors} | ${r.tokens} | ${f(r.wall_s, 2)} | ${f(r.tok_s)} | ${f(r.ttft_p50_ms)} | ${f(r.ttft_p95_ms)} | ${f(r.itl_p50_ms, 2)} | ${f(r.itl_p95_ms, 2)} |`);
    if (r.firstError) console.error(`serve_load: concurrency ${c}: ${r.errors} request(s) failed, first: ${r.firstError}`);
  }
  if (o.json) writeFileSync(o.json, JSON.stringify({ options: o, rows }, null, 2) + '\n');
  if (rows.some((r) => r.errors)) process.exitCode = 1;
}

main();
