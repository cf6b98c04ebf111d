// Autoregressive generation on top of Runtime::forward.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "runtime/runtime.h"
#include "runtime/sampler.h"

namespace qf::runtime {

// Called with each generated token as soon as it is sampled; return false to stop.
using TokenCallback = std::function<bool(int32_t token)>;

// Feeds `prompt` in one batched forward (its positions follow whatever the
// runtime's cache already holds), then samples up to `n_tokens` tokens,
// feeding each one back before sampling the next. Stops early when
// `on_token` returns false (that token is still returned) or when the context
// is full: the last sampled token is never fed, so a context of C positions
// yields at most C - (cached + prompt length) + 1 tokens. Returns the
// generated tokens. Throws qf::Error for an empty prompt (there would be no
// logits to sample from) or a prompt that does not fit the context.
std::vector<int32_t> generate(Runtime& runtime, std::span<const int32_t> prompt, int64_t n_tokens, Sampler& sampler,
                              const TokenCallback& on_token = nullptr);

}  // namespace qf::runtime
