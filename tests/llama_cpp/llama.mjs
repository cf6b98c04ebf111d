// node-llama-cpp's llama.cpp for the judge scripts: CPU only, never built or
// downloaded here, with the ggml CPU build it picked for this machine
// (haswell, skylakex, zen4, sapphirerapids, ...) recorded, since a wrong
// SIMD path makes llama.cpp itself score nonsense and every verdict names it.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

export async function openLlama({ onWarning } = {}) {
  const state = { cpuBackend: "unknown" };
  state.llama = await getLlama({
    gpu: false,
    build: "never",
    progressLogs: false,
    logLevel: LlamaLogLevel.debug,  // the backend line is logged at debug level
    logger: (level, message) => {
      const m = /loaded CPU backend from (\S+)/.exec(message);
      if (m) state.cpuBackend = m[1].replace(/^.*libggml-cpu-/, "").replace(/\.so$/, "");
      if (onWarning && (level === "error" || level === "warn")) onWarning(message.trim());
    },
  });
  return state;
}

// llama.cpp keeps K and V in F16 by default; F32 so that only a file's
// weights, not the cache, separate its numbers from qforge's.
export const f32Cache = { experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" };

// temperature 1 and no truncation: the probabilities are softmax(logits).
export const fullDistribution = { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } };
