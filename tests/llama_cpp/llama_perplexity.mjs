// llama.cpp's own scoring of a GGUF file under llama-perplexity's protocol:
// the text tokenized once by the file's vocabulary with BOS first, cut into
// windows of CTX tokens whose first token becomes BOS, the second half of
// each window scored. With BASE, also the KL divergence of the file's
// next-token distributions from BASE's and how often their argmax agrees
// (llama-perplexity --kl-divergence), on the same windows.
//
// Usage: node llama_perplexity.mjs MODEL.gguf TEXT CTX [BASE.gguf] [threads=2] [max_windows=0]
// Prints one JSON line: {"ppl", "scored", "windows", "kld_mean", "top1", "cpu_backend"}.
import { readFileSync } from "node:fs";
import { f32Cache, fullDistribution, openLlama } from "./llama.mjs";

const [modelPath, textPath, ctxArg, basePath, threadsArg, maxArg] = process.argv.slice(2);
if (!modelPath || !textPath || !ctxArg) {
  console.error("usage: node llama_perplexity.mjs MODEL.gguf TEXT CTX [BASE.gguf] [threads] [max_windows]");
  process.exit(2);
}
const nCtx = Number(ctxArg), threads = Number(threadsArg ?? 2), maxWindows = Number(maxArg ?? 0);
const judge = await openLlama();
const llama = judge.llama;

async function open(path) {
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  const context = await model.createContext({
    contextSize: nCtx, batchSize: nCtx, threads, flashAttention: false, ...f32Cache,
  });
  return { model, context, sequence: context.getSequence() };
}
async function windowProbs(side, tokens) {
  await side.sequence.clearHistory();
  const first = nCtx / 2;
  const out = await side.sequence.controlledEvaluate(tokens.map((t, i) => (i >= first && i < nCtx - 1 ? [t, { generateNext: fullDistribution }] : t)));
  return out;
}

const target = await open(modelPath);
const base = basePath ? await open(basePath) : null;  // "" = none
const bos = target.model.tokens.bos;
const all = [bos, ...target.model.tokenize(readFileSync(textPath, "utf8"), false)];
let windows = Math.floor(all.length / nCtx);
if (maxWindows > 0) windows = Math.min(windows, maxWindows);
let nll = 0, scored = 0, kld = 0, same = 0;
for (let w = 0; w < windows; w++) {
  const tokens = all.slice(w * nCtx, (w + 1) * nCtx);
  tokens[0] = bos;
  const p = await windowProbs(target, tokens);
  const q = base ? await windowProbs(base, tokens) : null;
  for (let i = nCtx / 2; i < nCtx - 1; i++) {
    const probs = p[i].next.probabilities;
    nll -= Math.log(Math.max(probs.get(tokens[i + 1]) ?? 0, 1e-45));
    scored++;
    if (q) {
      const baseProbs = q[i].next.probabilities;
      let kl = 0;
      for (const [id, pb] of baseProbs) if (pb > 0) kl += pb * (Math.log(pb) - Math.log(Math.max(probs.get(id) ?? 0, 1e-45)));
      kld += Math.max(kl, 0);
      same += probs.keys().next().value === baseProbs.keys().next().value ? 1 : 0;  // maps are sorted by probability
    }
  }
}
console.log(JSON.stringify({
  model: modelPath, ppl: Math.exp(nll / scored), scored, windows,
  kld_mean: base ? kld / scored : null, top1: base ? same / scored : null, cpu_backend: judge.cpuBackend,
}));
for (const side of [target, base]) if (side) { await side.context.dispose(); await side.model.dispose(); }
await llama.dispose();
