#include "model/synthetic.h"

#include <fstream>
#include <random>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"

namespace qf::model {
namespace {

ModelConfig llama_shapes(int64_t vocab, int64_t hidden, int64_t inter, int64_t layers, int64_t heads,
                         int64_t kv_heads, int64_t positions) {
  ModelConfig c;
  c.arch = Architecture::Llama;
  c.model_type = "llama";
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.max_positions = positions;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  return c;
}

// Bytes the kernel says can still be allocated without swapping.
uint64_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return UINT64_MAX;  // unknown: let the allocation decide
}

struct Filler {
  std::vector<formats::NamedTensor> tensors;
  void add(const std::string& name, Shape shape, float constant = 0.0f, bool random = true) {
    Tensor t = Tensor::zeros(DType::F32, std::move(shape));
    tensors.push_back({name, t});
    jobs.push_back({t, constant, random});
  }
  struct Job {
    Tensor t;
    float constant;
    bool random;
  };
  std::vector<Job> jobs;
};

}  // namespace

std::vector<std::string> synthetic_names() { return {"gpt2-124m", "llama-1b", "llama-7b"}; }

ModelConfig synthetic_config(std::string_view name) {
  if (name == "llama-1b") return llama_shapes(32000, 2048, 5632, 22, 32, 4, 2048);
  if (name == "llama-7b") return llama_shapes(32000, 4096, 11008, 32, 32, 32, 4096);
  if (name == "gpt2-124m") {
    ModelConfig c;
    c.arch = Architecture::GPT2;
    c.model_type = "gpt2";
    c.vocab_size = 50257;
    c.hidden_size = 768;
    c.intermediate_size = 3072;
    c.n_layers = 12;
    c.n_heads = 12;
    c.n_kv_heads = 12;
    c.head_dim = 64;
    c.max_positions = 1024;
    c.norm_eps = 1e-5f;
    c.tie_embeddings = true;
    c.attention_bias = true;
    c.bos_token_id = 50256;
    c.eos_token_id = 50256;
    return c;
  }
  fail("unknown synthetic model '{}' (valid: gpt2-124m, llama-1b, llama-7b)", name);
}

Model synthetic_model(std::string_view name, uint64_t seed, int n_threads) {
  const ModelConfig c = synthetic_config(name);
  Filler f;
  const int64_t h = c.hidden_size, ff = c.intermediate_size, v = c.vocab_size;
  if (c.arch == Architecture::GPT2) {
    f.add("wte.weight", {v, h});
    f.add("wpe.weight", {c.max_positions, h});
    for (int64_t i = 0; i < c.n_layers; ++i) {
      const std::string p = "h." + std::to_string(i) + ".";
      f.add(p + "ln_1.weight", {h}, 1.0f, false);
      f.add(p + "ln_1.bias", {h}, 0.0f, false);
      f.add(p + "attn.c_attn.weight", {h, 3 * h});
      f.add(p + "attn.c_attn.bias", {3 * h}, 0.0f, false);
      f.add(p + "attn.c_proj.weight", {h, h});
      f.add(p + "attn.c_proj.bias", {h}, 0.0f, false);
      f.add(p + "ln_2.weight", {h}, 1.0f, false);
      f.add(p + "ln_2.bias", {h}, 0.0f, false);
      f.add(p + "mlp.c_fc.weight", {h, ff});
      f.add(p + "mlp.c_fc.bias", {ff}, 0.0f, false);
      f.add(p + "mlp.c_proj.weight", {ff, h});
      f.add(p + "mlp.c_proj.bias", {h}, 0.0f, false);
    }
    f.add("ln_f.weight", {h}, 1.0f, false);
    f.add("ln_f.bias", {h}, 0.0f, false);
  } else {
    f.add("model.embed_tokens.weight", {v, h});
    for (int64_t i = 0; i < c.n_layers; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      f.add(p + "input_layernorm.weight", {h}, 1.0f, false);
      f.add(p + "self_attn.q_proj.weight", {c.q_dim(), h});
      f.add(p + "self_attn.k_proj.weight", {c.kv_dim(), h});
      f.add(p + "self_attn.v_proj.weight", {c.kv_dim(), h});
      f.add(p + "self_attn.o_proj.weight", {h, c.q_dim()});
      f.add(p + "post_attention_layernorm.weight", {h}, 1.0f, false);
      f.add(p + "mlp.gate_proj.weight", {ff, h});
      f.add(p + "mlp.up_proj.weight", {ff, h});
      f.add(p + "mlp.down_proj.weight", {h, ff});
    }
    f.add("model.norm.weight", {h}, 1.0f, false);
    f.add("lm_head.weight", {v, h});
  }
  // Tensor::zeros only reserved address space so far; check before touching it.
  uint64_t bytes = 0;
  for (const auto& j : f.jobs) bytes += j.t.nbytes();
  const uint64_t available = available_memory_bytes();
  QF_CHECK(bytes < available, "synthetic {} needs {:.1f} GB of fp32 weights but only {:.1f} GB of memory is available",
           name, static_cast<double>(bytes) / 1e9, static_cast<double>(available) / 1e9);

  // Uniform on [-a, a] has std a / sqrt(3); a = 0.02 * sqrt(3) gives std 0.02.
  constexpr float kHalfWidth = 0.0346410162f;
  ThreadPool pool(n_threads);
  for (size_t k = 0; k < f.jobs.size(); ++k) {
    auto& job = f.jobs[k];
    float* data = job.t.mutable_data<float>();
    const int64_t n = job.t.numel();
    pool.parallel_for((n + 65535) / 65536, [&](int64_t b, int64_t e) {
      for (int64_t blk = b; blk < e; ++blk) {
        const int64_t lo = blk * 65536, hi = std::min(n, lo + 65536);
        if (!job.random) {
          std::fill(data + lo, data + hi, job.constant);
          continue;
        }
        // One generator per block: the same weights for any thread count.
        std::mt19937 rng(static_cast<uint32_t>(seed * 1000003u + k * 7919u + static_cast<uint64_t>(blk)));
        for (int64_t i = lo; i < hi; ++i)
          data[i] = kHalfWidth * (static_cast<float>(rng() >> 8) * 0x1.0p-23f - 1.0f);
      }
    });
  }
  return build_model(c, f.tensors, "synthetic:" + std::string(name));
}

}  // namespace qf::model
