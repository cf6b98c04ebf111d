// Load client for `qforge serve`: N concurrent clients, each sending streamed
// /v1/completions requests back to back for D seconds (requests in flight at
// the deadline are finished and counted). Prints one JSON line: requests/s,
// generated tokens/s, p50/p99 time to first token and inter-token latency
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

async function one(i, seq) {
  const t0 = performance.now();
  let res;
  try {
    res = await fetch(base + '/v1/completions', { method: 'POST', headers, body: JSON.stringify({
      prompt: prompts[(i + seq) % prompts.length], max_tokens: maxTokens, temperature: 0.8, seed: i * 100003 + seq,
      stream: true }) });
  } catch (e) {
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
    return fail('stream: ' + e.message);
  }
  if (!done || !usage) return fail('no [DONE] or usage');
  ++requests;
  tokens += usage.completion_tokens;
}

const start = performance.now();
const deadline = start + seconds * 1000;
await Promise.all(Array.from({ length: clients }, async (_, i) => {
  for (let seq = 0; performance.now() < deadline; ++seq) await one(i, seq);
}));
const elapsed = (performance.now() - start) / 1000;
const pct = (v, p) => {
  if (v.length === 0) return null;
  const s = [...v].sort((a, b) => a - b);
  return Number(s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(1));
};
console.log(JSON.stringify({ clients, seconds: Number(elapsed.toFixed(1)), requests,
  requests_per_s: Number((requests / elapsed).toFixed(2)), tokens, tokens_per_s: Number((tokens / elapsed).toFixed(1)),
  ttft_ms_p50: pct(ttft, 0.5), ttft_ms_p99: pct(ttft, 0.99), itl_ms_p50: pct(itl, 0.5), itl_ms_p99: pct(itl, 0.99),
  errors, error_kinds: errorKinds }));
