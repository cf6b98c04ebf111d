// Load client for `qforge serve`: N concurrent clients, each sending streamed
// /v1/completions requests back to back for D seconds. At the deadline the
// requests still running are aborted (the server must free their slots; they
// are not errors and not counted as requests). Prints one JSON line:
// completed requests/s, generated tokens/s (the server's
// qforge_completion_tokens_total over the window, so tokens of aborted
// requests count too), p50/p99 time to first token and inter-token latency
// (between successive SSE chunks that carry text), and errors.
//   node scripts/serve_load_client.mjs BASE_URL CLIENTS SECONDS MAX_TOKENS [API_KEY]
const [base, clientsArg, secondsArg, maxTokensArg, key] = process.argv.slice(2);
if (!base || !clientsArg || !secondsArg || !maxTokensArg)
  throw new Error('usage: node serve_load_client.mjs BASE_URL CLIENTS SECONDS MAX_TOKENS [API_KEY]');
const clients = Number(clientsArg), seconds = Number(secondsArg), maxTokens = Number(maxTokensArg);
const prompts = ['Once upon a time', 'The little dog', 'One day, Tom', 'She looked at the sky', 'There was a big tree',
  'Mom said', 'The sun was hot', 'A bird sang'];
const headers = { 'Content-Type': 'application/json', ...(key ? { Authorization: `Bearer ${key}` } : {}) };

const ttft = [], itl = [];
let requests = 0, tokens = 0, errors = 0;
const errorKinds = {};
const fail = (kind) => { ++errors; errorKinds[kind] = (errorKinds[kind] ?? 0) + 1; };

// One controller per request (a shared signal would collect a listener per fetch).
const stop = new AbortController();
const running = new Set();
stop.signal.addEventListener('abort', () => { for (const c of running) c.abort(); });
async function one(i, seq) {
  const ctrl = new AbortController();
  running.add(ctrl);
  try { await request(i, seq, ctrl.signal); } finally { running.delete(ctrl); }
}
async function request(i, seq, signal) {
  const t0 = performance.now();
  let res;
  try {
    res = await fetch(base + '/v1/completions', { method: 'POST', headers, signal, body: JSON.stringify({
      prompt: prompts[(i + seq) % prompts.length], max_tokens: maxTokens, temperature: 0.8, seed: i * 100003 + seq,
      stream: true }) });
  } catch (e) {
    if (stop.signal.aborted) return;
    return fail('connect: ' + (e.cause?.code ?? e.message));
  }
  if (res.status !== 200) { await res.text(); return fail(`status ${res.status}`); }
  const decoder = new TextDecoder();
  let buf = '', last = null, done = false, usage = null;
  try {
    for await (const part of res.body) {
      buf += decoder.decode(part, { stream: true });
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        if (!event.startsWith('data: ')) continue;  // keep-alive comments
        const payload = event.slice(6);
        if (payload === '[DONE]') { done = true; continue; }
        const j = JSON.parse(payload);
        if (j.usage) usage = j.usage;
        if (!j.choices?.[0]?.text) continue;
        const now = performance.now();
        if (last === null) ttft.push(now - t0); else itl.push(now - last);
        last = now;
      }
    }
  } catch (e) {
    if (stop.signal.aborted) return;
    return fail('stream: ' + e.message);
  }
  if (!done || !usage) return fail('no [DONE] or usage');
  ++requests;
}

async function generatedTokens() {
  const text = await (await fetch(base + '/metrics', { headers })).text();
  return Number(text.match(/^qforge_completion_tokens_total ([0-9.e+]+)$/m)[1]);
}

const tokens0 = await generatedTokens();
const start = performance.now();
const deadline = start + seconds * 1000;
const timer = setTimeout(() => stop.abort(), seconds * 1000);
await Promise.all(Array.from({ length: clients }, async (_, i) => {
  for (let seq = 0; performance.now() < deadline && !stop.signal.aborted; ++seq) await one(i, seq);
}));
clearTimeout(timer);
const elapsed = (performance.now() - start) / 1000;
tokens = (await generatedTokens()) - tokens0;
// The aborted requests' slots must come free.
let busy = -1;
for (let i = 0; i < 100 && busy !== 0; ++i) {
  const text = await (await fetch(base + '/metrics', { headers })).text();
  busy = Number(text.match(/^qforge_slots_busy ([0-9]+)$/m)[1]) + Number(text.match(/^qforge_queue_depth ([0-9]+)$/m)[1]);
  if (busy !== 0) await new Promise((ok) => setTimeout(ok, 100));
}
if (busy !== 0) fail('slots still busy 10 s after the clients left');
const pct = (v, p) => {
  if (v.length === 0) return null;
  const s = [...v].sort((a, b) => a - b);
  return Number(s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(1));
};
console.log(JSON.stringify({ clients, seconds: Number(elapsed.toFixed(1)), requests,
  requests_per_s: Number((requests / elapsed).toFixed(2)), tokens, tokens_per_s: Number((tokens / elapsed).toFixed(1)),
  ttft_ms_p50: pct(ttft, 0.5), ttft_ms_p99: pct(ttft, 0.99), itl_ms_p50: pct(itl, 0.5), itl_ms_p99: pct(itl, 0.99),
  errors, error_kinds: errorKinds }));
