// Pieces every quantized checkpoint layout shares (ours in
// quantized_checkpoint.cpp, GPTQ, AWQ, compressed-tensors): finding the
// folder and its tensors, handing tensors out once, writing a model's float
// tensors with its quantized layers replaced by a layout's own tensors, and a
// layout-neutral view of an integer-quantized layer (codes, decoded scales,
// zero points as plain arrays) that the int32-packed layouts translate from and to.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/named_tensor.h"
#include "model/linear_layers.h"
#include "model/quantized_checkpoint.h"
#include "tokenizer/vocab.h"

namespace qf::model {

// The folder of `path` (a folder, or a file in it).
std::filesystem::path checkpoint_folder(const std::string& path);
// config.json parsed strictly (duplicate keys are errors), unordered.
nlohmann::json read_config_file(const std::string& file);
// quantization_config.quant_method of the folder's config.json; nullopt when
// there is no quantization_config (or config.json cannot be read: the loader
// reports that), "" when it is not an object with a string quant_method.
std::optional<std::string> quant_method_of(const std::string& path);

std::map<std::string, LinearLayer> linears_by_name(const ModelConfig& config);
// The linear layers of qm's model that qm does not quantize (kept in float,
// e.g. --skip), in name order: the writers list them so loaders skip them too.
std::vector<std::string> float_linears(const QuantizedModel& qm);

// The safetensors tensors of a quantized folder: model.safetensors, a sharded
// index, or else the folder's only *.safetensors file (AutoGPTQ names its file
// after the model, e.g. gptq_model-4bit-128g.safetensors). `file` gets the path read.
std::vector<formats::NamedTensor> read_folder_tensors(const std::filesystem::path& folder, std::string* file);

// transformers knows biases only by the family's rules (model/arch/family.h
// BiasRules): groups switched by attention_bias (q, k, v, o) and mlp_bias
// (gate, up, down), or fixed. Bias correction adds biases to single layers,
// so a group's switch is set and its layers without a bias get zero ones.
Model with_bias_groups(const Model& m);

// named_tensors() order, the weight of every layer in `replaced` swapped for
// what `tensors_of(layer name)` returns.
std::vector<formats::NamedTensor> tensors_replacing_linears(
    const Model& m, const std::set<std::string>& replaced,
    const std::function<std::vector<formats::NamedTensor>(const std::string&)>& tensors_of);

// Writes dir/model.safetensors, dir/config.json (the model's config with
// `quantization_config`), each of `extra_json` (file name -> content) and the
// tokenizer files, each atomically, after everything is assembled.
void write_quantized_folder(const std::string& dir, const Model& stored, const nlohmann::json& quantization_config,
                            const std::vector<formats::NamedTensor>& tensors, const tokenizer::Vocab& vocab,
                            const std::string& source, const std::map<std::string, nlohmann::json>& extra_json = {});

// Formats without activation quantization refuse models that have some:
// dropping them would change the model's outputs.
void check_no_activation_quantizers(const Model& m, const std::string& format);

// The tensors of a checkpoint by name; take() hands each out once.
class TensorPool {
 public:
  explicit TensorPool(std::vector<formats::NamedTensor> tensors);
  bool has(const std::string& name) const { return index_.count(name) > 0; }
  Tensor take(const std::string& name, const std::string& why);
  std::vector<formats::NamedTensor> rest() const;

 private:
  std::vector<formats::NamedTensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::set<std::string> taken_;
};

// An integer-quantized [out, in] layer as plain arrays.
struct IntLayer {
  int64_t out = 0, in = 0;
  int bits = 0;
  int64_t group_size = 0;  // values per scale along a row (in for one scale per row)
  int64_t groups = 0;      // ceil(in / group_size)
  std::vector<uint8_t> codes;   // [out, in], unsigned codes as quant/row_codec.h stores them
  std::vector<float> scales;    // [out, groups], decoded
  // [out, groups]: the z of x = s * (code - z); 2^(bits-1) for symmetric schemes.
  std::vector<int32_t> zeros;
};

// Tensor granularity becomes one (equal) scale per row. Throws for non-integer schemes.
IntLayer to_int_layer(const quant::QuantizedTensor& q);
// Builds the QuantizedTensor of `scheme` (integer; group size and width must
// agree with `l`): scales are stored in the scheme's scale format, which must
// hold them exactly; a symmetric scheme needs every zero to be 2^(bits-1).
quant::QuantizedTensor from_int_layer(const IntLayer& l, const quant::Scheme& scheme);
// w[o, i] = s * (code - z), the float weight [out, in] of the layer, computed
// as the dequantizer does.
Tensor dequantize_int_layer(const IntLayer& l, const std::vector<int32_t>& group_of_column);

// The layer's scales transposed to [groups, out] as F16, the layout GPTQ and
// AWQ store. `rounded` is set when some scale is not an fp16 value (F32
// scales, rounded to nearest); a scale beyond fp16's range is an error naming `name`.
Tensor f16_scales_by_group(const IntLayer& l, const std::string& name, bool* rounded);
// An owning I32 tensor holding `words`.
Tensor int32_tensor(const std::vector<int32_t>& words, const Shape& shape);
// i / group_size for each of `in` columns: the trivial g_idx.
std::vector<int32_t> contiguous_groups(int64_t in, int64_t group_size);
// The checkpoints' group_size field: the scheme's group, or -1 for per-channel.
int64_t group_size_of(const quant::Scheme& s);

// True when some code is 0: for a symmetric layer, that the full range
// [-2^(b-1), 2^(b-1)-1] is in use rather than the restricted one.
bool uses_code_zero(const std::vector<uint8_t>& codes);

// Typed fields of a quantization_config; a missing (or null) field takes
// `fallback`, or is an error naming the key when there is none.
int64_t config_int(const nlohmann::json& qc, const char* key, std::optional<int64_t> fallback = std::nullopt);
bool config_bool(const nlohmann::json& qc, const char* key, std::optional<bool> fallback = std::nullopt);
std::string config_string(const nlohmann::json& qc, const char* key,
                          std::optional<std::string> fallback = std::nullopt);

// Throws naming the tensor unless it has this dtype and shape.
void check_tensor_is(const std::string& name, const Tensor& t, DType dtype, const Shape& shape);
// An I32 tensor's words, after check_tensor_is.
std::vector<int32_t> int32_words_of(const std::string& name, const Tensor& t, const Shape& shape);
// A scale tensor (F16, BF16 or F32) of `shape` as floats, each finite and
// positive (else an error naming the tensor and the index).
std::vector<float> scales_of(const std::string& name, const Tensor& t, const Shape& shape);

// A line on stderr for what a reader or writer did that the user should know
// (a layer kept in float, scales rounded).
void notice(const std::string& line);

// Phi-3 style fused projections in the GPTQ / AWQ / compressed-tensors
// layouts transformers loads: a checkpoint module "model.layers.N.self_attn.
// qkv_proj" holds q, k and v, so each of its tensors (".qweight", ".scales",
// ...) is its parts' tensors stacked along one axis. The model keeps the
// parts (model/arch/fused_projections.h); these fuse and split at the file.
enum class FuseAxis {
  Rows,       // stacked along dim 0 ([out, ...] tensors, biases)
  Cols,       // stacked along dim 1 ([..., out] tensors: GPTQ/AWQ qweight, scales, qzeros)
  Same,       // one value shared by every part (GPTQ g_idx of one Hessian): must agree
  ShapeRows,  // an I64 [out, in] shape record: outs add up
};
// Tensor suffix after the module name (".qweight") -> how parts stack.
using FuseAxes = std::map<std::string, FuseAxis>;

// The checkpoint module a model module is stored in: the fused one for a part
// ("...q_proj" -> "...qkv_proj"), else itself; and a list of them, each once.
std::string checkpoint_module_name(const ModelConfig& c, const std::string& module);
std::vector<std::string> checkpoint_module_names(const ModelConfig& c, const std::vector<std::string>& modules);
// Every complete set of part tensors fused in the first part's place. A part
// whose tensors differ in kind from its siblings' (one quantized, one float;
// different schemes) or a packed width not proportional to the parts' rows is
// a qf::Error naming it: the fused module has one layout.
std::vector<formats::NamedTensor> fuse_checkpoint_projections(const ModelConfig& c,
                                                              const std::vector<formats::NamedTensor>& tensors,
                                                              const FuseAxes& axes);
// The inverse, for the readers: fused tensors become their parts' (copies).
std::vector<formats::NamedTensor> split_checkpoint_projections(const ModelConfig& c,
                                                               const std::vector<formats::NamedTensor>& tensors,
                                                               const FuseAxes& axes);

}  // namespace qf::model
