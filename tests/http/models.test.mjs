// models.test.mjs: several models in one server, chosen by the request's
// `model` field (aliases).
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { MODEL_PATH, SHARED, golden, startServer } from './harness.mjs';

const MICRO = path.join(SHARED, 'models', 'micro-llama-Q4_0.gguf');
const GREEDY = golden('stories260K-free-greedy.jsonl');

let srv;
before(async () => {
  srv = await startServer({ args: ['-m', MODEL_PATH, '--alias', 'stories', '-m', MICRO] });
});
after(async () => { if (srv) await srv.stop(); });

test('/v1/models lists both, by alias and by base name', async () => {
  const ids = [];
  for await (const m of srv.client.models.list()) ids.push(m.id);
  assert.deepEqual(ids.sort(), ['micro-llama-Q4_0', 'stories']);
});

test('each request goes to the model it names', async () => {
  const g = GREEDY[0];
  const a = await srv.client.completions.create({ model: 'stories', prompt: g.prompt_ids, max_tokens: 32, temperature: 0 });
  assert.equal(a.model, 'stories');
  assert.ok(g.content.startsWith(a.choices[0].text));
  assert.equal(a.choices[0].text.length > 0, true);
  const b = await srv.client.completions.create({ model: 'micro-llama-Q4_0', prompt: g.prompt_ids, max_tokens: 32, temperature: 0, ignore_eos: true });
  assert.equal(b.model, 'micro-llama-Q4_0');
  assert.notEqual(b.choices[0].text, a.choices[0].text, 'random-weight model wrote the stories model\'s text');
  const e = await srv.client.embeddings.create({ model: 'micro-llama-Q4_0', input: 'x' });
  assert.equal(e.data[0].embedding.length, 256); // micro-llama: dim 256
  const e2 = await srv.client.embeddings.create({ model: 'stories', input: 'x' });
  assert.equal(e2.data[0].embedding.length, 64);
});

test('the file base name of an aliased model is not an id', async () => {
  await assert.rejects(
    srv.client.completions.create({ model: 'stories260K', prompt: 'x', max_tokens: 1 }),
    (err) => err.status === 404 && err.code === 'model_not_found',
  );
});

test('--repack serves the same answers (Q4_0 interleaved at load)', async () => {
  // A second server with the Q4_0 weights copied into the decode kernel's
  // layout: greedy text and embeddings must match the first server's bits.
  // On a CPU without AVX-512 the server says so and serves the file as is.
  const packed = await startServer({ args: ['-m', MICRO, '--repack'] });
  try {
    const g = GREEDY[1];
    const req = { model: 'micro-llama-Q4_0', prompt: g.prompt_ids, max_tokens: 24, temperature: 0, ignore_eos: true };
    const a = await srv.client.completions.create(req);
    const b = await packed.client.completions.create(req);
    assert.equal(b.choices[0].text, a.choices[0].text);
    const ea = await srv.client.embeddings.create({ model: 'micro-llama-Q4_0', input: 'a story about a cat' });
    const eb = await packed.client.embeddings.create({ model: 'micro-llama-Q4_0', input: 'a story about a cat' });
    assert.deepEqual(eb.data[0].embedding, ea.data[0].embedding);
  } finally {
    await packed.stop();
  }
});
