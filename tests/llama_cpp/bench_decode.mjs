// llama.cpp's decode speed on a GGUF file, the way llama-bench's tg test
// measures it: a short prompt, then N tokens generated greedily one at a
// time, timed from the first generated token on. CPU only, `threads` threads.
//
// Usage: node bench_decode.mjs MODEL.gguf [N=128] [threads=2] [prompt_tokens=16]
// Prints one JSON line: {"model", "tg_tokens", "seconds", "tokens_per_s", "cpu_backend"}.
import { openLlama } from "./llama.mjs";

const [modelPath, nArg, threadsArg, promptArg] = process.argv.slice(2);
if (!modelPath) {
  console.error("usage: node bench_decode.mjs MODEL.gguf [N] [threads] [prompt_tokens]");
  process.exit(2);
}
const n = Number(nArg ?? 128), threads = Number(threadsArg ?? 2), promptTokens = Number(promptArg ?? 16);
const judge = await openLlama();
const llama = judge.llama;
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const context = await model.createContext({ contextSize: 512, batchSize: 512, threads });
const sequence = context.getSequence();
// A fixed prompt of ordinary ids after BOS; what is generated does not matter.
const prompt = [model.tokens.bos ?? 1];
for (let i = 1; i < promptTokens; i++) prompt.push(100 + i);
let generated = 0, start = 0;
for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
  void token;
  if (generated === 0) start = performance.now();  // the prompt is done
  if (++generated > n) break;
}
const seconds = (performance.now() - start) / 1000;
console.log(JSON.stringify({ model: modelPath, tg_tokens: n, seconds, tokens_per_s: n / seconds, cpu_backend: judge.cpuBackend }));
await context.dispose();
await model.dispose();
await llama.dispose();
