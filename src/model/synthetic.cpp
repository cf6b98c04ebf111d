#include "model/synthetic.h"

#include <fstream>
#include <string>

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/linear_layers.h"
#include "model/packed_weights.h"
#include "quant/quantize.h"

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

// Uniform on [-a, a] with a = 0.02 * sqrt(3), i.e. std 0.02. Each value is a
// hash of (seed, key, index) (splitmix64's finalizer), so any thread count
// gives the same weights and filling costs about a nanosecond per value.
void fill_uniform(float* data, int64_t n, uint64_t seed, uint64_t key, ThreadPool& pool) {
  constexpr float kHalfWidth = 0.0346410162f;
  const uint64_t base = (seed * 0x9E3779B97F4A7C15ull) ^ (key << 40);
  pool.parallel_for(n, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      uint64_t z = base + static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      data[i] = kHalfWidth * (static_cast<float>(z >> 40) * 0x1.0p-23f - 1.0f);
    }
  });
}

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

Model synthetic_model(std::string_view name, const SyntheticOptions& options) {
  const ModelConfig c = synthetic_config(name);
  const bool pack = options.packed_scheme.has_value();
  const bool pack_head = pack && !c.tie_embeddings;  // the embedding and head tables too
  Filler f;
  const int64_t h = c.hidden_size, ff = c.intermediate_size, v = c.vocab_size;
  if (c.arch == Architecture::GPT2) {
    f.add("wte.weight", {v, h});
    f.add("wpe.weight", {c.max_positions, h});
    for (int64_t i = 0; i < c.n_layers; ++i) {
      const std::string p = "h." + std::to_string(i) + ".";
      f.add(p + "ln_1.weight", {h}, 1.0f, false);
      f.add(p + "ln_1.bias", {h}, 0.0f, false);
      f.add(p + "attn.c_attn.bias", {3 * h}, 0.0f, false);
      f.add(p + "attn.c_proj.bias", {h}, 0.0f, false);
      f.add(p + "ln_2.weight", {h}, 1.0f, false);
      f.add(p + "ln_2.bias", {h}, 0.0f, false);
      f.add(p + "mlp.c_fc.bias", {ff}, 0.0f, false);
      f.add(p + "mlp.c_proj.bias", {h}, 0.0f, false);
    }
    f.add("ln_f.weight", {h}, 1.0f, false);
    f.add("ln_f.bias", {h}, 0.0f, false);
  } else {
    if (!pack_head) f.add("model.embed_tokens.weight", {v, h});
    for (int64_t i = 0; i < c.n_layers; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      f.add(p + "input_layernorm.weight", {h}, 1.0f, false);
      f.add(p + "post_attention_layernorm.weight", {h}, 1.0f, false);
    }
    f.add("model.norm.weight", {h}, 1.0f, false);
    if (!pack_head && !c.tie_embeddings) f.add("lm_head.weight", {v, h});
  }
  // The matrices: fp32 tensors in their stored orientation, or packed one by one.
  const std::vector<LinearLayer> linears = all_linears(c);
  std::set<std::string> external;
  for (const LinearLayer& l : linears) {
    if (pack) {
      external.insert(l.name + ".weight");
    } else {
      f.add(l.name + ".weight", l.conv1d ? Shape{l.in_features, l.out_features} : Shape{l.out_features, l.in_features});
    }
  }
  if (pack_head) {
    external.insert("lm_head.weight");
    external.insert("model.embed_tokens.weight");
  }

  // Tensor::zeros only reserved address space so far; check before touching it.
  uint64_t bytes = 0;
  for (const auto& j : f.jobs) bytes += j.t.nbytes();
  if (pack) {
    int64_t matrix_params = pack_head ? 2 * v * h : 0;
    for (const LinearLayer& l : linears) matrix_params += l.in_features * l.out_features;
    // codes plus a float scale and a zero point (40 bits) per group, at worst per 32 weights
    bytes += static_cast<uint64_t>(static_cast<double>(matrix_params) * (options.packed_scheme->bits + 40.0 / 32) / 8);
  }
  const uint64_t available = available_memory_bytes();
  QF_CHECK(bytes < available, "synthetic {} needs {:.1f} GB of weights but only {:.1f} GB of memory is available", name,
           static_cast<double>(bytes) / 1e9, static_cast<double>(available) / 1e9);

  ThreadPool pool(options.n_threads);
  uint64_t key = 0;  // one random stream per tensor, in creation order
  for (auto& job : f.jobs) {
    if (job.random) {
      fill_uniform(job.t.mutable_data<float>(), job.t.numel(), options.seed, key, pool);
    } else {
      std::fill(job.t.mutable_data<float>(), job.t.mutable_data<float>() + job.t.numel(), job.constant);
    }
    ++key;
  }
  Model m = build_model(c, f.tensors, "synthetic:" + std::string(name), external);
  if (!pack) return m;

  auto make_packed = [&](int64_t rows, int64_t cols) {
    Tensor w = Tensor::zeros(DType::F32, {rows, cols});
    fill_uniform(w.mutable_data<float>(), w.numel(), options.seed, key++, pool);
    return rtn_pack(w.data<float>(), rows, cols, *options.packed_scheme, pool);
  };
  for (const LinearLayer& l : linears)
    m.layers[static_cast<size_t>(l.layer)].packed[static_cast<size_t>(l.kind)] =
        make_packed(l.out_features, l.in_features);
  if (pack_head) {
    m.embed_packed = make_packed(v, h);
    m.lm_head_packed = make_packed(v, h);
  }
  return m;
}

}  // namespace qf::model
