// llama.cpp's view of GGUF files: node-llama-cpp's prebuilt llama.cpp
// (CPU only, never built or downloaded here) loads each file, evaluates a
// fixed token sequence in one batch and writes the full next-token
// distribution after every position; it can also tokenize a text with the
// file's own vocabulary. QuantForge's tests compare both with qforge.
//
// Usage: node llama_judge.mjs JOBS.json > RESULT.json
//   JOBS.json: {"threads": 2, "jobs": [{"model": "a.gguf",
//               "tokens": [1, 403, ...],        (optional: evaluate these ids)
//               "probs_out": "a.probs.f32",     (with tokens: float32 [T, n_vocab], row t =
//                                                 p(next | tokens[0..t]), ids in order)
//               "text_file": "story.txt"}]}     (optional: tokenize this text, no BOS)
//   RESULT.json: {"llama_cpp": {"release", "cpu_backend"}, "results": [{"model", "ok",
//                 "error", "n_vocab", "n_positions", "tokens"}]}
// A file llama.cpp refuses is reported with ok=false and its error; the exit
// code is 0 unless the jobs file itself is bad or llama.cpp cannot start.
import { readFileSync, writeFileSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { f32Cache, fullDistribution, openLlama } from "./llama.mjs";

const jobsPath = process.argv[2];
if (!jobsPath) {
  console.error("usage: node llama_judge.mjs JOBS.json");
  process.exit(2);
}
const spec = JSON.parse(readFileSync(jobsPath, "utf8"));

const logLines = [];
const judge = await openLlama({ onWarning: (line) => logLines.push(line) });
const llama = judge.llama;
const modules = join(dirname(fileURLToPath(import.meta.url)), "node_modules");
const readJson = (p) => { try { return JSON.parse(readFileSync(join(modules, p), "utf8")); } catch { return {}; } };
const packageVersion = readJson("node-llama-cpp/package.json").version;
const llamaCppRelease = readJson("@node-llama-cpp/linux-x64/bins/linux-x64/_nlcBuildMetadata.json")?.buildOptions?.llamaCpp?.release;

const results = [];
for (const job of spec.jobs) {
  const result = { model: job.model, ok: false };
  logLines.length = 0;
  let model, context;
  try {
    model = await llama.loadModel({ modelPath: job.model, gpuLayers: 0 });
    if (job.text_file) {
      const text = readFileSync(job.text_file, "utf8");
      result.tokens = Array.from(model.tokenize(text, false));
    }
    if (job.tokens) {
      const n = job.tokens.length;
      const size = Math.max(64, Math.ceil((n + 1) / 64) * 64);
      context = await model.createContext({
        contextSize: size, batchSize: size, threads: spec.threads ?? 2, flashAttention: false, ...f32Cache,
      });
      const sequence = context.getSequence();
      const out = await sequence.controlledEvaluate(job.tokens.map((t) => [t, { generateNext: fullDistribution }]));
      let vocab = 0;
      for (const o of out) vocab = Math.max(vocab, o?.next?.probabilities?.size ?? 0);
      const probs = new Float32Array(n * vocab);
      out.forEach((o, t) => {
        if (!o?.next?.probabilities) throw new Error(`no probabilities at position ${t}`);
        for (const [id, p] of o.next.probabilities) probs[t * vocab + id] = p;
      });
      result.n_vocab = vocab;
      result.n_positions = n;
      writeFileSync(job.probs_out + ".tmp", Buffer.from(probs.buffer));
      renameSync(job.probs_out + ".tmp", job.probs_out);
    }
    result.ok = true;
  } catch (e) {
    result.error = [String(e?.message ?? e), ...logLines].join(" | ");
  } finally {
    await context?.dispose();
    await model?.dispose();
  }
  results.push(result);
}
process.stdout.write(JSON.stringify({ llama_cpp: { node_llama_cpp: packageVersion, release: llamaCppRelease, cpu_backend: judge.cpuBackend }, results }) + "\n");
await llama.dispose();
