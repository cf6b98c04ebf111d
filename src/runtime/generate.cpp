#include "runtime/generate.h"

#include "core/error.h"

namespace qf::runtime {

std::vector<int32_t> generate(Runtime& runtime, std::span<const int32_t> prompt, int64_t n_tokens, Sampler& sampler,
                              const TokenCallback& on_token) {
  QF_CHECK(!prompt.empty(), "generate() needs a non-empty prompt (at least a BOS token)");
  std::vector<int32_t> out;
  if (n_tokens <= 0) return out;
  Tensor logits = runtime.forward(prompt, Logits::Last);
  for (;;) {
    const int32_t token = sampler.sample({logits.data<float>(), static_cast<size_t>(logits.cols())});
    out.push_back(token);
    if (on_token && !on_token(token)) break;
    if (static_cast<int64_t>(out.size()) >= n_tokens || runtime.n_past() >= runtime.context()) break;
    logits = runtime.forward(std::span<const int32_t>(&token, 1), Logits::Last);
  }
  return out;
}

}  // namespace qf::runtime
