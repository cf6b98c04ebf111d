// What a transformer block is made of, as data: the description every family
// file (model/arch/*.cpp) gives and the runtime, calibration, training and
// writers ask, instead of testing the architecture's name. Built from the same
// few parts llama.cpp's graph builders and CTranslate2's layer specs combine.
#pragma once

namespace qf::model {

enum class NormKind {
  RMS,         // x / rms(x) * w                      (Llama, Mistral, Qwen)
  RMSPlusOne,  // x / rms(x) * (1 + w)                (Gemma: weights stored as offsets from 1)
  Layer,       // (x - mean) / std(x) * w + b         (GPT-2, BERT)
};

enum class MlpKind {
  SwiGLU,    // down(silu(gate(x)) * up(x))
  GeGLU,     // down(gelu_tanh(gate(x)) * up(x))      (Gemma)
  GeluTanh,  // down(gelu_tanh(up(x)))                (GPT-2: c_fc, c_proj)
};

struct BlockSpec {
  NormKind norm = NormKind::RMS;
  MlpKind mlp = MlpKind::SwiGLU;
  // Positions: rotary (rotate_half layout, config's RoPE settings) unless the
  // model adds a learned position table to the embedding (GPT-2's wpe).
  bool learned_positions = false;
  // Weights stored [in, out] (GPT-2 Conv1D) instead of nn.Linear's [out, in].
  bool conv1d_weights = false;
  // One fused q|k|v projection (GPT-2 c_attn) instead of three.
  bool fused_qkv = false;
  // A norm of `norm` kind over each head of q and k, before RoPE (Qwen3, Gemma 3).
  bool qk_norm = false;
  // Gemma's "sandwich": the attention and MLP outputs are normed before the
  // residual add (post_attention_layernorm, post_feedforward_layernorm), and
  // the MLP's input norm is pre_feedforward_layernorm.
  bool sandwich_norms = false;
  // The token embedding is multiplied by sqrt(hidden_size) (Gemma).
  bool scale_embedding = false;

  bool operator==(const BlockSpec&) const = default;
};

}  // namespace qf::model
