// A whole model (config, Hugging Face-named tensors, vocabulary) as a GGUF
// file the way llama.cpp expects it, and back.
//
// Architectures: ModelConfig model_type "llama" and "mistral" are written as
// general.architecture "llama" (as llama.cpp's convert_hf_to_gguf.py does;
// they read back as model_type "llama", Mistral's sliding window kept in
// llama.attention.sliding_window), "qwen2" as "qwen2", "gpt2" as "gpt2".
//
// Metadata: general.architecture, general.name, general.file_type (llama.cpp
// LLAMA_FTYPE: 0 all F32, 1 mostly F16, 32 mostly BF16, or the quantized
// mixture's, formats/gguf_recipe.h),
// general.quantization_version (2), and {arch}.context_length,
// .embedding_length, .block_count, .feed_forward_length, .vocab_size,
// .attention.head_count, .attention.head_count_kv,
// .attention.layer_norm_rms_epsilon (llama, qwen2) or
// .attention.layer_norm_epsilon (gpt2), .rope.freq_base and
// .rope.dimension_count (llama, qwen2), .attention.key_length/.value_length
// when head_dim is not hidden_size / n_heads. Integers are written as uint32
// and floats as float32, the types llama.cpp's loader insists on; the reader
// accepts any integer width, as the spec recommends.
//
// Tensor names (HF -> GGUF; ".weight" and ".bias" alike):
//   Llama/Qwen2: model.embed_tokens -> token_embd, model.norm -> output_norm,
//     lm_head -> output, model.layers.N. -> blk.N.: input_layernorm ->
//     attn_norm, self_attn.{q,k,v,o}_proj -> attn_{q,k,v,output},
//     post_attention_layernorm -> ffn_norm, mlp.{gate,up,down}_proj ->
//     ffn_{gate,up,down}.
//   GPT-2 (with or without the "transformer." prefix when writing; read back
//     with it): wte -> token_embd, wpe -> position_embd, ln_f -> output_norm,
//     lm_head -> output, h.N. -> blk.N.: ln_1 -> attn_norm, attn.c_attn ->
//     attn_qkv, attn.c_proj -> attn_output, ln_2 -> ffn_norm, mlp.c_fc ->
//     ffn_up, mlp.c_proj -> ffn_down.
//   Buffers that are not weights (GPT-2 h.N.attn.bias / attn.masked_bias
//   causal masks, rotary_emb.inv_freq) are dropped; a tied lm_head is not
//   written (llama.cpp falls back to token_embd when output.weight is absent,
//   which is also how the reader detects tied embeddings). Any other name is
//   a qf::Error naming it.
//
// Layout conversions, applied on write and undone on read so a model
// round-trips bit for bit:
//   - GPT-2 Conv1D weights (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj)
//     are [in, out] in HF; llama.cpp's converter transposes them, so the GGUF
//     holds [out, in] row-major (ggml dims {in, out}), like every other matrix.
//   - Llama q/k (weights and biases) are permuted per head from HF's
//     rotate_half RoPE layout (dimension i paired with i + head_dim/2) to the
//     interleaved layout llama.cpp's LLAMA_ROPE_TYPE_NORM expects (dimensions
//     2i, 2i+1 paired), exactly as convert_hf_to_gguf.py's LlamaModel.permute:
//     within each head, GGUF row 2i + j = HF row j * head_dim/2 + i (j = 0, 1);
//     q uses n_heads heads, k n_kv_heads. Qwen2 is not permuted: llama.cpp
//     runs it with NEOX (rotate_half) RoPE.
//   Hence the in-memory HF-named q/k tensors this API takes and returns are in
//   HF rotate_half layout, as model::Model expects. (llama.c checkpoints are
//   interleaved, i.e. already in GGUF's layout; model::load_model permutes
//   them to rotate_half before anything else sees them.)
//
// Data types: 2-D and larger tensors are stored as `dtype` (F32, F16 or BF16;
// other float inputs go through F32) or as the block type a recipe or
// pre-encoded blocks give them; 1-D tensors (norms, biases) always as F32,
// as llama.cpp's converter does. Block types are encoded row by row in GGUF
// orientation (blocks run along the input dimension). The reader returns
// what is stored: zero-copy views of the file, except permuted and
// transposed tensors (owning copies in the stored dtype) and block tensors
// (dequantized to F32, then permuted back).
//
// Tokenizer (tokenizer::Vocab <-> tokenizer.ggml.*): model ("llama" for
// SentencePiece, "gpt2" for byte-level BPE), pre ("default", or "gpt-2" /
// "qwen2" for those architectures' BPE), tokens, scores (when the vocab has
// them), token_type (when it has them), merges (when non-empty),
// bos/eos/unknown/padding_token_id (when >= 0), add_bos_token,
// add_space_prefix, remove_extra_whitespaces. A vocab shorter than
// config.vocab_size is padded with "[PAD<id>]" tokens of type Unused (score
// -1000), as llama.cpp's converter does, since llama.cpp requires one token
// per embedding row. Special token ids come from the vocab when there is one
// (config.bos/eos_token_id otherwise) and are read back into both.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "formats/gguf.h"
#include "formats/gguf_recipe.h"
#include "formats/named_tensor.h"
#include "model/config.h"
#include "tokenizer/vocab.h"

namespace qf::formats {

// Matrix rows already encoded as one block type (e.g. GPTQ codes on Q4_0's
// grid): U8 [rows, gguf_row_bytes(type, cols)] in [out, in] orientation (also
// for GPT-2 Conv1D weights) and HF row order; the writer applies llama.cpp's
// q/k row permutation to them as to float rows.
struct GgufBlocks {
  GgmlType type = GgmlType::Q4_0;
  Tensor rows;
};

struct GgufModelWriteOptions {
  DType dtype = DType::F32;  // matrices without a block type: F32, F16 or BF16
  std::string name;          // general.name; empty: the output file's name without extension
  // A llama.cpp mixture (formats/gguf_recipe.h): picks each matrix's block
  // type, encoded here with the ggml-reference encoders; general.file_type
  // becomes the mixture's.
  std::optional<GgufRecipe> recipe;
  // Per-column importance weights (E[x^2] of the layer's input) by HF tensor
  // name, used by the block encoders of those tensors.
  std::map<std::string, std::vector<float>> importance;
  // Pre-encoded tensors by HF name; written as they are, whatever the recipe says.
  std::map<std::string, GgufBlocks> blocks;
  std::optional<GgufFileType> file_type;  // overrides general.file_type
  // Where fallback notices go (one line each); empty: stderr.
  std::function<void(const std::string&)> notice;
};

// The stored type of every tensor write_gguf_model would write for these
// options, in the order given (tied lm_head and dropped buffers left out),
// with the recipe's fallback notices.
struct GgufTensorType {
  std::string hf_name;  // the file's tensor in HF terms (Phi-3: self_attn.qkv_proj.weight)
  std::string gguf_name;
  Shape gguf_shape;  // row-major, as stored
  GgmlType type = GgmlType::F32;
  std::string notice;
  // The given tensors it is made of: hf_name itself, or a fused projection's
  // parts (q_proj, k_proj, v_proj), stacked in that order.
  std::vector<std::string> hf_parts;
};
std::vector<GgufTensorType> gguf_model_tensor_types(const model::ModelConfig& config,
                                                    std::span<const NamedTensor> hf_tensors,
                                                    const GgufModelWriteOptions& options);

// Writes `hf_tensors` (HF names, row-major, HF layout; any order, written in
// that order) with the config's metadata and, when given, the vocabulary.
// Validates the config, every tensor's name and shape against it and that
// every required tensor is present; throws qf::Error naming `path` and the
// problem, leaving nothing behind.
void write_gguf_model(const std::string& path, const model::ModelConfig& config,
                      std::span<const NamedTensor> hf_tensors, const tokenizer::Vocab* vocab,
                      const GgufModelWriteOptions& options);
inline void write_gguf_model(const std::string& path, const model::ModelConfig& config,
                             std::span<const NamedTensor> hf_tensors, const tokenizer::Vocab* vocab,
                             DType out_dtype) {
  GgufModelWriteOptions options;
  options.dtype = out_dtype;
  write_gguf_model(path, config, hf_tensors, vocab, options);
}

struct GgufModel {
  model::ModelConfig config;
  std::vector<NamedTensor> tensors;       // HF names, row-major, HF layout, in file order
  // Block tensors kept as stored (GgufModelReadOptions::keep_blocks) by HF
  // name, [out, in] in HF row order (q/k rows permuted back), not in `tensors`.
  std::map<std::string, GgufBlocks> blocks;
  std::optional<tokenizer::Vocab> vocab;  // when the file has tokenizer.ggml.tokens
  std::string name;                       // general.name ("" when absent)
};

// Reads a GGUF written by write_gguf_model or llama.cpp (architectures llama,
// qwen2, gpt2). An unknown architecture or tokenizer model, a missing or
// mistyped required key, a missing or unexpected tensor, a wrong shape or an
// unsupported (quantized) tensor type is a qf::Error naming the file and it.
struct GgufModelReadOptions {
  // Matrices of a block type for which this returns true (given the type and
  // the HF name) are handed out as their stored blocks in GgufModel::blocks,
  // zero-copy unless q/k rows move, instead of dequantized to F32: what the
  // integer kernels repack without a float copy (model/gguf_packing.h).
  std::function<bool(GgmlType type, const std::string& hf_name)> keep_blocks;
};
GgufModel read_gguf_model(const std::string& path, const GgufModelReadOptions& options = {});
GgufModel gguf_model_from_contents(const GgufContents& contents, const GgufModelReadOptions& options = {});

// The pieces, for tools and tests.
GgufMetadata gguf_model_metadata(const model::ModelConfig& config, const tokenizer::Vocab* vocab, DType dtype,
                                 const std::string& name);
model::ModelConfig gguf_model_config(const GgufMetadata& metadata);  // tensor-derived fields left default
std::optional<tokenizer::Vocab> gguf_vocab(const GgufMetadata& metadata);
// "llama", "qwen2" or "gpt2" for a config; throws for anything else.
std::string gguf_architecture(const model::ModelConfig& config);
// Name mapping only (no shape or layer checks); nullopt for a name with no
// counterpart, including the dropped buffers.
std::optional<std::string> hf_to_gguf_tensor_name(const std::string& hf_name, model::Architecture arch);
std::optional<std::string> gguf_to_hf_tensor_name(const std::string& gguf_name, model::Architecture arch);

// The q/k row permutation (any dtype, bytes moved as they are; 1-D or 2-D
// with rows = n_heads * head_dim, head_dim even).
Tensor rope_rows_half_to_interleaved(const Tensor& w, int64_t n_heads);  // HF -> GGUF
Tensor rope_rows_interleaved_to_half(const Tensor& w, int64_t n_heads);  // GGUF -> HF

}  // namespace qf::formats
