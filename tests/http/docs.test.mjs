// docs.test.mjs: every curl example of docs/api.md runs as written (URL
// aside) against a real server and prints what the page says it prints.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';

import { API_MD, compareOutput, extractExamples, runExample } from './docs_examples.mjs';
import { BIN, startServer } from './harness.mjs';

const examples = extractExamples(readFileSync(API_MD, 'utf8'));

let srv;
before(async () => { srv = await startServer(); });
after(async () => { if (srv) await srv.stop(); });

test('docs/api.md has examples, each with a recorded output', () => {
  assert.ok(examples.length >= 15, `only ${examples.length} curl examples`);
  for (const e of examples) assert.notEqual(e.output, '', `no output recorded for: ${e.cmd}`);
});

test('the parameter table in docs/api.md is what `citadel serve --list-params` prints', () => {
  const table = execFileSync(BIN, ['serve', '--list-params'], { encoding: 'utf8' });
  const md = readFileSync(API_MD, 'utf8');
  const m = md.match(/<!-- params-table[^\n]*-->\n\n([\s\S]*?)\n<!-- \/params-table -->/);
  assert.ok(m, 'docs/api.md has no params-table section');
  assert.equal(m[1], table, 'regenerate the table: citadel serve --list-params');
  assert.ok(table.split('\n').length > 25);
});

for (const e of examples) {
  test(`example: ${e.cmd.split('\n').slice(-1)[0].trim().slice(0, 110)}`, () => {
    const stdout = runExample(e.cmd, srv.url);
    const diffs = compareOutput(e.output, stdout);
    assert.deepEqual(diffs, [], `${e.cmd}\nprinted:\n${stdout.slice(0, 2000)}`);
  });
}
