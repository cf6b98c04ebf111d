// qforge serve over real HTTP: the server runs on a free port and is spoken
// to with Node's fetch, curl and the npm `openai` client (an outside judge of
// the protocol: its SSE parser and response types are OpenAI's own).
//   node serve_test.mjs QFORGE_BIN SHARED_DATA
// Checks: streamed and whole responses equal `qforge generate` with the same
// seed; every kind of bad input gets its status and message; a client that
// disconnects frees its slot; SIGTERM drains in-flight requests, refuses new
// ones with 503 and exits 0.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';
import os from 'node:os';

// A keep-alive connection the server closed as idle at the moment fetch reused
// it fails with a socket error before anything was sent; retry that once, as
// HTTP clients do. (A server that crashed refuses the retry too.)
const rawFetch = globalThis.fetch;
globalThis.fetch = async (url, init) => {
  try {
    return await rawFetch(url, init);
  } catch (e) {
    if (!['UND_ERR_SOCKET', 'ECONNRESET'].includes(e.cause?.code)) throw e;
    return rawFetch(url, init);
  }
};

const [qforge, data] = process.argv.slice(2);
if (!qforge || !data) throw new Error('usage: node serve_test.mjs QFORGE_BIN SHARED_DATA');
const model = path.join(data, 'stories260K', 'stories260K.bin');
const KEY = 'test-key-123';
const CTX = 512;

let OpenAI = null;
try {
  OpenAI = (await import('openai')).default;
} catch {
  console.log('# the npm openai client is not installed (npm ci in tests/server_js); its checks are skipped');
}
const haveCurl = (() => {
  try { execFileSync('curl', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; }
})();

// Starts `qforge serve` on port 0; resolves with {proc, base, exited, banner} once it prints its address.
function startServer(args, modelPath = model) {
  const proc = spawn(qforge, ['serve', modelPath, '--port', '0', '--threads', '1', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal, stderr })));
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[^ ]+)/);
      if (m) resolve({ proc, base: m[1], exited, banner: out });
    });
    exited.then(({ code }) => reject(new Error(`qforge serve exited (${code}) before listening: ${stderr}`)));
  });
}

function generate(prompt, n, { temp = 0, topK = 0, topP = 1, seed = 0 } = {}, modelPath = model) {
  const out = execFileSync(qforge, ['generate', modelPath, '-p', prompt, '-n', String(n), '--temp', String(temp),
    '--top-k', String(topK), '--top-p', String(topP), '--seed', String(seed), '--ctx', String(CTX), '--threads', '1'],
    { encoding: 'utf8' });
  assert.ok(out.startsWith(prompt) && out.endsWith('\n'), out);
  return out.slice(prompt.length, -1);
}

// Parses an SSE body: the JSON of every data event, and whether it ended with [DONE].
function parseSse(text) {
  const events = [];
  let done = false;
  for (const block of text.split('\n\n')) {
    for (const line of block.split('\n')) {
      if (!line.startsWith('data: ')) continue;  // comments (': keep-alive') and blanks
      const payload = line.slice(6);
      if (payload === '[DONE]') { done = true; continue; }
      assert.equal(done, false, 'an event after [DONE]');
      events.push(JSON.parse(payload));
    }
  }
  return { events, done };
}

const server = await startServer(['--parallel', '2', '--ctx', String(CTX), '--api-key', KEY, '--max-body', '65536',
  '--model-name', 'stories']);
after(async () => {
  server.proc.kill('SIGTERM');
  const { code } = await server.exited;
  assert.equal(code, 0);
});
const auth = { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' };
const post = (route, body, headers = auth) =>
  fetch(server.base + route, { method: 'POST', headers, body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body) });

const cases = [
  { prompt: 'Once upon a time', n: 40, opts: { temp: 0 } },
  { prompt: 'The cat', n: 60, opts: { temp: 0.9, topK: 40, seed: 7 } },
  { prompt: 'Lily went', n: 50, opts: { temp: 1.0, topP: 0.9, seed: 1234 } },
  { prompt: '', n: 30, opts: { temp: 0.8, seed: 99 } },
];
const body = (c, extra = {}) => ({ model: 'stories', prompt: c.prompt, max_tokens: c.n, temperature: c.opts.temp,
  top_k: c.opts.topK ?? 0, top_p: c.opts.topP ?? 1, seed: c.opts.seed ?? 0, ...extra });

test('non-streamed and streamed completions equal qforge generate with the same seed', async () => {
  for (const c of cases) {
    const want = generate(c.prompt, c.n, c.opts);
    const r = await post('/v1/completions', body(c));
    assert.equal(r.status, 200);
    const j = await r.json();
    assert.equal(j.object, 'text_completion');
    assert.equal(j.choices[0].text, want, JSON.stringify(c));
    assert.ok(['stop', 'length'].includes(j.choices[0].finish_reason));
    assert.equal(j.usage.total_tokens, j.usage.prompt_tokens + j.usage.completion_tokens);

    const s = await post('/v1/completions', body(c, { stream: true }));
    assert.equal(s.status, 200);
    assert.match(s.headers.get('content-type'), /text\/event-stream/);
    const { events, done } = parseSse(await s.text());
    assert.ok(done, 'the stream ends with data: [DONE]');
    assert.equal(events.map((e) => e.choices[0].text).join(''), want);
    assert.equal(events.at(-1).choices[0].finish_reason, j.choices[0].finish_reason);
  }
});

test('concurrent greedy requests (batched decode) equal qforge generate', async () => {
  const prompts = ['Once upon a time', 'The dog', 'Tom and', 'She was', 'One day'];
  const wants = prompts.map((p) => generate(p, 80));
  const got = await Promise.all(prompts.map(async (p) => {
    const r = await post('/v1/completions', { prompt: p, max_tokens: 80, temperature: 0, stream: true });
    return parseSse(await r.text()).events.map((e) => e.choices[0].text).join('');
  }));
  assert.deepEqual(got, wants);
});

test('stop strings end the text before them, also across tokens', async () => {
  const full = generate('Once upon a time', 40);
  const stop = full.slice(20, 27);  // spans several tokens
  const r = await (await post('/v1/completions', { prompt: 'Once upon a time', max_tokens: 40, temperature: 0, stop: [stop] })).json();
  assert.equal(r.choices[0].text, full.slice(0, full.indexOf(stop)));
  assert.equal(r.choices[0].finish_reason, 'stop');
  const s = parseSse(await (await post('/v1/completions', { prompt: 'Once upon a time', max_tokens: 40, temperature: 0,
    stop, stream: true })).text());
  assert.equal(s.events.map((e) => e.choices[0].text).join(''), full.slice(0, full.indexOf(stop)));
});

test('logprobs: one per token, the chosen greedy token is the most likely', async () => {
  const r = await (await post('/v1/completions', { prompt: 'Once upon a time', max_tokens: 8, temperature: 0, logprobs: 3 })).json();
  const lp = r.choices[0].logprobs;
  assert.equal(lp.tokens.length, r.usage.completion_tokens);
  assert.equal(lp.tokens.join(''), r.choices[0].text);
  for (let i = 0; i < lp.tokens.length; ++i) {
    assert.ok(lp.token_logprobs[i] <= 0);
    const top = Object.entries(lp.top_logprobs[i]);
    assert.ok(top.length >= 1 && top.length <= 3);
    const best = Math.max(...top.map(([, v]) => v));
    assert.ok(Math.abs(best - lp.token_logprobs[i]) < 1e-6);
  }
});

test('chat completions: whole, streamed and through the openai client', async () => {
  const messages = [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'A story about a cat' }];
  const r = await post('/v1/chat/completions', { messages, max_tokens: 20, temperature: 0 });
  assert.equal(r.status, 200);
  const j = await r.json();
  assert.equal(j.object, 'chat.completion');
  assert.equal(j.choices[0].message.role, 'assistant');
  const s = parseSse(await (await post('/v1/chat/completions', { messages, max_tokens: 20, temperature: 0, stream: true })).text());
  assert.ok(s.done);
  assert.equal(s.events[0].choices[0].delta.role, 'assistant');
  assert.equal(s.events.map((e) => e.choices[0].delta.content ?? '').join(''), j.choices[0].message.content);
  if (!OpenAI) return;
  const client = new OpenAI({ apiKey: KEY, baseURL: server.base + '/v1' });
  const whole = await client.chat.completions.create({ model: 'stories', messages, max_tokens: 20, temperature: 0 });
  assert.equal(whole.choices[0].message.content, j.choices[0].message.content);
  const stream = await client.chat.completions.create({ model: 'stories', messages, max_tokens: 20, temperature: 0, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.equal(text, j.choices[0].message.content);
  const c = cases[1];
  const comp = await client.completions.create(body(c));
  assert.equal(comp.choices[0].text, generate(c.prompt, c.n, c.opts));
  const cstream = await client.completions.create(body(c, { stream: true }));
  let ctext = '';
  for await (const chunk of cstream) ctext += chunk.choices[0]?.text ?? '';
  assert.equal(ctext, comp.choices[0].text);
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), ['stories']);
  // The client raises its typed errors from our error bodies.
  await assert.rejects(client.completions.create({ model: 'other', prompt: 'x' }),
    (e) => e instanceof OpenAI.NotFoundError && /does not exist/.test(e.message));
  const bad = new OpenAI({ apiKey: 'wrong', baseURL: server.base + '/v1', maxRetries: 0 });
  await assert.rejects(bad.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
});

test('curl: whole and streamed (-N) responses', { skip: !haveCurl && 'curl is not installed' }, () => {
  const c = cases[2];
  const want = generate(c.prompt, c.n, c.opts);
  const curl = (b) => execFileSync('curl', ['-sS', '-N', '--fail-with-body', '-H', `Authorization: Bearer ${KEY}`,
    '-H', 'Content-Type: application/json', '-d', JSON.stringify(b), server.base + '/v1/completions'], { encoding: 'utf8' });
  assert.equal(JSON.parse(curl(body(c))).choices[0].text, want);
  const s = parseSse(curl(body(c, { stream: true })));
  assert.ok(s.done);
  assert.equal(s.events.map((e) => e.choices[0].text).join(''), want);
  const health = JSON.parse(execFileSync('curl', ['-sS', server.base + '/health'], { encoding: 'utf8' }));
  assert.equal(health.status, 'ok');
});

test('GET /v1/models, /health and /metrics', async () => {
  const m = await (await fetch(server.base + '/v1/models', { headers: auth })).json();
  assert.equal(m.object, 'list');
  assert.equal(m.data[0].id, 'stories');
  const h = await fetch(server.base + '/health');  // no key needed
  assert.equal(h.status, 200);
  const text = await (await fetch(server.base + '/metrics', { headers: auth })).text();
  // Prometheus text format: HELP/TYPE comments, then `name value` samples.
  const samples = {};
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const mm = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*) (-?[0-9.e+]+)$/);
    assert.ok(mm, `not a Prometheus sample line: ${line}`);
    samples[mm[1]] = Number(mm[2]);
  }
  for (const name of ['qforge_requests_total', 'qforge_prompt_tokens_total', 'qforge_completion_tokens_total',
    'qforge_queue_depth', 'qforge_tokens_per_second', 'qforge_slots_total'])
    assert.ok(name in samples, name);
  assert.ok(samples.qforge_completion_tokens_total > 0);
  assert.equal(samples.qforge_slots_total, 2);
});

test('bad input gets an OpenAI-style error with the right status', async () => {
  const expectError = async (res, status, pattern, code) => {
    assert.equal(res.status, status);
    const j = await res.json();
    assert.equal(typeof j.error, 'object');
    assert.match(j.error.message, pattern);
    assert.equal(typeof j.error.type, 'string');
    if (code) assert.equal(j.error.code, code);
  };
  await expectError(await post('/v1/completions', '{"prompt": "x",'), 400, /not valid JSON/, 'invalid_json');
  await expectError(await post('/v1/completions', '[1, 2]'), 400, /must be a JSON object/);
  await expectError(await post('/v1/completions', { prompt: 42 }), 400, /'prompt' must be a string/, 'invalid_type');
  await expectError(await post('/v1/completions', { prompt: 'x', max_tokens: '5' }), 400, /'max_tokens' must be an integer/);
  await expectError(await post('/v1/completions', { prompt: 'x', temperature: 'hot' }), 400, /'temperature' must be a number/);
  await expectError(await post('/v1/completions', { prompt: 'x', stream: 1 }), 400, /'stream' must be a boolean/);
  await expectError(await post('/v1/completions', { prompt: 'x', stop: [1] }), 400, /'stop\[0\]' must be a string/);
  await expectError(await post('/v1/chat/completions', { messages: 'hi' }), 400, /'messages' must be an array/);
  await expectError(await post('/v1/chat/completions', { messages: [{ role: 'robot', content: 'x' }] }), 400, /not a role/);
  await expectError(await post('/v1/completions', {}), 400, /'prompt' is required/);
  await expectError(await post('/v1/completions', { model: 'gpt-4', prompt: 'x' }), 404, /does not exist/, 'model_not_found');
  await expectError(await post('/v1/completions', { prompt: 'x', max_tokens: 0 }), 400, /'max_tokens' must be in/);
  await expectError(await post('/v1/completions', { prompt: 'x', max_tokens: -3 }), 400, /'max_tokens' must be in/);
  await expectError(await post('/v1/completions', { prompt: 'x', max_tokens: 1e12 }), 400, /max_tokens/);
  await expectError(await post('/v1/completions', { prompt: 'x', max_tokens: 100000 }), 400,
    /maximum context length is 512/, 'context_length_exceeded');
  await expectError(await post('/v1/completions', { prompt: 'the cat sat. '.repeat(300), max_tokens: 5 }), 400,
    /maximum context length is 512 tokens, but the prompt has/, 'context_length_exceeded');
  await expectError(await post('/v1/completions', JSON.stringify({ prompt: 'x'.repeat(70000) })), 413, /larger than/);
  const badUtf8 = Buffer.concat([Buffer.from('{"prompt": "a'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
  await expectError(await post('/v1/completions', badUtf8), 400, /not valid UTF-8/, 'invalid_encoding');
  await expectError(await post('/v1/completions', { prompt: 'x' }, { 'Content-Type': 'application/json' }), 401,
    /no API key/, 'invalid_api_key');
  await expectError(await post('/v1/completions', { prompt: 'x' }, { ...auth, Authorization: 'Bearer nope' }), 401,
    /incorrect API key/, 'invalid_api_key');
  await expectError(await fetch(server.base + '/v1/nothing', { headers: auth }), 404, /no route/);
  // The server is still fine.
  assert.equal((await post('/v1/completions', { prompt: 'x', max_tokens: 2 })).status, 200);
});

async function metric(base, name) {
  const text = await (await fetch(base + '/metrics', { headers: auth })).text();
  const m = text.match(new RegExp(`^${name} ([0-9.e+-]+)$`, 'm'));
  return Number(m[1]);
}

test('a client that disconnects frees its slot at once', async () => {
  const before = await metric(server.base, 'qforge_cancelled_total');
  const ctrl = new AbortController();
  const res = await fetch(server.base + '/v1/completions', { method: 'POST', headers: auth, signal: ctrl.signal,
    body: JSON.stringify({ prompt: 'Once', max_tokens: 500, temperature: 1, seed: 3, stream: true }) });
  const reader = res.body.getReader();
  await reader.read();  // the first chunk
  ctrl.abort();
  for (let i = 0; i < 100 && (await metric(server.base, 'qforge_cancelled_total')) === before; ++i)
    await new Promise((ok) => setTimeout(ok, 20));
  assert.equal(await metric(server.base, 'qforge_cancelled_total'), before + 1);
  assert.equal(await metric(server.base, 'qforge_slots_busy'), 0);
});

test('SIGTERM finishes the requests in flight, refuses new ones with 503 and exits 0', async () => {
  const s = await startServer(['--parallel', '1', '--ctx', String(CTX), '--model-name', 'stories']);
  const h = { 'Content-Type': 'application/json' };
  const req = (seed) => fetch(s.base + '/v1/completions', { method: 'POST', headers: h,
    body: JSON.stringify({ prompt: 'Once', max_tokens: 500, temperature: 1, top_k: 0, seed, stream: true }) });
  const responses = await Promise.all([1, 2, 3, 4, 5, 6].map(req));  // one runs, five queue
  const first = responses[0].body.getReader();
  await first.read();
  s.proc.kill('SIGTERM');
  await new Promise((ok) => setTimeout(ok, 50));
  const refused = await fetch(s.base + '/v1/completions', { method: 'POST', headers: h,
    body: JSON.stringify({ prompt: 'x', max_tokens: 2 }) });
  assert.equal(refused.status, 503);
  assert.match((await refused.json()).error.message, /shutting down/);
  let rest = '';
  for (;;) {
    const { value, done } = await first.read();
    if (done) break;
    rest += Buffer.from(value).toString('utf8');
  }
  assert.ok(rest.endsWith('data: [DONE]\n\n'));
  for (const r of responses.slice(1)) assert.ok(parseSse(await r.text()).done);
  const { code } = await s.exited;
  assert.equal(code, 0);
});

test('a ChatML template in tokenizer_config.json renders the chat prompt', async () => {
  // stories260K as a Hugging Face folder, with a ChatML template beside it. tok512 has no
  // <|im_start|> token, so the rendered prompt is plain text, which `qforge generate` can be given.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qf-serve-'));
  try {
    execFileSync(qforge, ['convert', model, dir], { stdio: 'ignore' });
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template:
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" }));
    const s = await startServer(['--ctx', String(CTX), '--model-name', 'stories'], dir);
    try {
      assert.match(s.banner, /chat format chatml/);
      const r = await (await fetch(s.base + '/v1/chat/completions', { method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ messages: [{ role: 'user', content: 'Tell a story' }], max_tokens: 30, temperature: 0 }) })).json();
      const rendered = '<|im_start|>user\nTell a story<|im_end|>\n<|im_start|>assistant\n';
      assert.equal(r.choices[0].message.content, generate(rendered, 30, {}, dir));
      assert.equal(r.usage.completion_tokens, 30);
    } finally {
      s.proc.kill('SIGTERM');
      assert.equal((await s.exited).code, 0);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('bad command lines fail with one line and a non-zero exit', () => {
  const port = new URL(server.base).port;
  const run = (args) => {
    try {
      execFileSync(qforge, ['serve', ...args], { stdio: 'pipe', encoding: 'utf8', timeout: 20000 });
      return { code: 0, stderr: '' };
    } catch (e) {
      return { code: e.status, stderr: e.stderr };
    }
  };
  let r = run([model, '--port', port]);  // taken by the test server
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /cannot listen on 127\.0\.0\.1:/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  r = run([path.join(data, 'no-such-model.bin')]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /^qforge: error: /);
  r = run([model, '--parallel', '0']);
  assert.equal(r.code, 2);
});
