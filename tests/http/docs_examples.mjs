// docs_examples.mjs: the curl examples of docs/api.md, run against a server.
//
// Every ```sh block of docs/api.md whose text starts with "curl" is an
// example; the block after it (```json or ```text), or a line
// "OUTPUT:name" still waiting for one, is its output. docs.test.mjs runs each
// example against a test server and compares what it prints with the
// documented output (ignoring what changes from run to run: ids, timestamps,
// cache counts, metric values). Run as a script, it records fresh outputs
// into docs/api.md:
//
//   node tests/http/docs_examples.mjs --write [--url http://127.0.0.1:8080]
//
// (without --url it starts its own server the way the tests do).

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const API_MD = path.resolve(here, '../../docs/api.md');
export const DOC_URL = 'http://localhost:8080';

/* The examples: [{cmd, start, end, output, lang}] where start..end is the
 * line range (end exclusive) of the output block or OUTPUT: line to replace,
 * output the documented text ('' when still a placeholder). */
export function extractExamples(md) {
  const lines = md.split('\n');
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '```sh' || !lines[i + 1]?.startsWith('curl')) continue;
    let j = i + 1;
    const cmd = [];
    while (j < lines.length && lines[j] !== '```') cmd.push(lines[j++]);
    let k = j + 1;
    while (k < lines.length && lines[k].trim() === '') k++;
    if (lines[k]?.startsWith('OUTPUT:')) {
      out.push({ cmd: cmd.join('\n'), start: k, end: k + 1, output: '', lang: '' });
    } else if (lines[k] === '```json' || lines[k] === '```text') {
      let e = k + 1;
      const body = [];
      while (e < lines.length && lines[e] !== '```') body.push(lines[e++]);
      out.push({ cmd: cmd.join('\n'), start: k, end: e + 1, output: body.join('\n'), lang: lines[k].slice(3) });
    } else {
      throw new Error(`docs/api.md line ${j + 1}: a curl example without an output block after it`);
    }
  }
  return out;
}

/* Runs one example with its URL pointed at `url`; returns stdout. */
export function runExample(cmd, url) {
  const c = cmd.split(DOC_URL).join(url);
  return execFileSync('bash', ['-c', c], { encoding: 'utf8', timeout: 60000 });
}

/* How an output is shown: JSON pretty-printed (2 spaces, short arrays of
 * numbers on one line), SSE and other text as is. */
export function formatOutput(stdout) {
  const t = stdout.trim();
  try {
    return { lang: 'json', text: pretty(JSON.parse(t)) };
  } catch {
    return { lang: 'text', text: t };
  }
}

function pretty(v) {
  return JSON.stringify(v, null, 2).replace(/\[\n\s+(-?[\d.e+-]+(?:,\n\s+-?[\d.e+-]+)*)\n\s+\]/g,
    (m, inner) => `[${inner.split(/,\n\s+/).join(', ')}]`);
}

const VOLATILE = new Set(['id', 'created', 'cached_tokens', 'embedding']);

/* Compares a documented value with a real one: same structure and keys;
 * equal values except VOLATILE keys (type only) and numbers within 1e-3.
 * Returns a list of differences (empty: same). */
export function compareJSON(doc, real, where = '$', diffs = []) {
  if (diffs.length > 20) return diffs;
  if (typeof doc !== typeof real || Array.isArray(doc) !== Array.isArray(real) || (doc === null) !== (real === null)) {
    diffs.push(`${where}: documented ${JSON.stringify(doc)?.slice(0, 80)}, got ${JSON.stringify(real)?.slice(0, 80)}`);
  } else if (Array.isArray(doc)) {
    if (doc.length !== real.length) diffs.push(`${where}: documented ${doc.length} items, got ${real.length}`);
    else doc.forEach((d, i) => compareJSON(d, real[i], `${where}[${i}]`, diffs));
  } else if (doc && typeof doc === 'object') {
    const dk = Object.keys(doc).sort().join(',');
    const rk = Object.keys(real).sort().join(',');
    if (dk !== rk) diffs.push(`${where}: documented keys {${dk}}, got {${rk}}`);
    for (const k of Object.keys(doc)) {
      if (!(k in real)) continue;
      if (VOLATILE.has(k)) {
        if (typeof doc[k] !== typeof real[k]) diffs.push(`${where}.${k}: type ${typeof doc[k]} vs ${typeof real[k]}`);
        continue;
      }
      compareJSON(doc[k], real[k], `${where}.${k}`, diffs);
    }
  } else if (typeof doc === 'number') {
    if (Math.abs(doc - real) > 1e-3) diffs.push(`${where}: documented ${doc}, got ${real}`);
  } else if (doc !== real) {
    diffs.push(`${where}: documented ${JSON.stringify(doc)}, got ${JSON.stringify(real)}`);
  }
  return diffs;
}

/* Compares a documented output with a real stdout; returns differences. */
export function compareOutput(documented, stdout) {
  const real = stdout.trim();
  if (real.startsWith('data: ')) {
    const ev = (s) => s.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
    const d = ev(documented);
    const r = ev(real);
    if (d.length !== r.length) return [`documented ${d.length} events, got ${r.length}`];
    const diffs = [];
    d.forEach((x, i) => {
      if (x === '[DONE]' || r[i] === '[DONE]') { if (x !== r[i]) diffs.push(`event ${i}: ${x} vs ${r[i]}`); return; }
      compareJSON(JSON.parse(x), JSON.parse(r[i]), `event ${i}`, diffs);
    });
    return diffs;
  }
  if (real.startsWith('# HELP') || real.startsWith('# TYPE')) {
    // Prometheus text: the same series (names and labels), values aside
    const series = (s) => s.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.replace(/\s+\S+$/, ''))
      .filter((l) => !l.startsWith('citadel_requests_total')).sort().join('\n');
    return series(documented) === series(real) ? [] : ['the metric series differ'];
  }
  let d;
  try { d = JSON.parse(documented); } catch { return documented.trim() === real ? [] : ['text differs']; }
  return compareJSON(d, JSON.parse(real));
}

async function main() {
  const args = process.argv.slice(2);
  if (!args.includes('--write')) {
    console.error('usage: node tests/http/docs_examples.mjs --write [--url URL]');
    process.exit(2);
  }
  let url = args.includes('--url') ? args[args.indexOf('--url') + 1] : '';
  let srv = null;
  if (!url) {
    const { startServer } = await import('./harness.mjs');
    srv = await startServer();
    url = srv.url;
  }
  try {
    const md = readFileSync(API_MD, 'utf8');
    const lines = md.split('\n');
    const ex = extractExamples(md);
    const outs = ex.map((e) => formatOutput(runExample(e.cmd, url))); // in page order
    for (let i = ex.length - 1; i >= 0; i--) {
      lines.splice(ex[i].start, ex[i].end - ex[i].start, '```' + outs[i].lang, ...outs[i].text.split('\n'), '```');
    }
    writeFileSync(API_MD, lines.join('\n'));
    console.log(`recorded ${ex.length} example outputs into ${API_MD}`);
  } finally {
    if (srv) await srv.stop();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
