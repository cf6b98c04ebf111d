// Rotations against outliers (QuaRot, SpinQuant): orthogonal transforms fused
// into a Llama-family model's weights so that the float model computes the
// same function while activations and weights lose their outlier channels
// (an orthogonal mix spreads one large channel over all of them), which makes
// both easier to quantize.
//
// What rotate_model does, with x a row vector and Q orthogonal (x W^T = (x Q)(W Q)^T):
//   residual     every RMSNorm weight is folded into the columns of the
//                linears reading it (q/k/v, gate/up; the final norm into the
//                head) and set to 1, so RMSNorm(x Q) = RMSNorm(x) Q. Then the
//                embedding and every linear reading the residual get W Q, the
//                writers (o_proj, down_proj, their biases) Q^T W, the head W Q.
//                Q = D (R (x) H): random signs D, Walsh-Hadamard H and, for a
//                width that is not a power of two, a random orthogonal R
//                (quant/hadamard.h). Exact, offline.
//   attn_heads   per-head Q_h on the attention output (the o_proj input):
//                v_proj rows (and bias) Q_h^T per head, o_proj columns Q_h per
//                head. Exact, offline: attention mixes value vectors of a head
//                with scalar weights, so (sum p v) Q_h = sum p (v Q_h).
//   attn_out     an online transform T over the whole o_proj input
//                (heads x head_dim), o_proj W T: what attn_heads does per head
//                plus the mix across heads, which cannot be fused offline (a
//                Hadamard over heads mixes softmax outputs of different heads).
//                For n_heads and head_dim powers of two T = H_heads (x) H_hd
//                = H_qdim: QuaRot's o_proj Hadamard.
//   ffn_hidden   an online transform T = R (x) H at the down_proj input
//                (model::InputTransform, applied by the runtime before the
//                activation quantizer), down_proj W D T, random signs D folded
//                into up_proj's rows (silu(g) * (u d) = (silu(g) * u) d).
// q/k are not rotated: RoPE does not commute with a rotation across
// dimensions, and only a quantized KV cache (which we do not have) would need it.
// GPT-2 (LayerNorm subtracts the mean, which a rotation does not preserve
// unless the mean direction is fixed) is refused.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"

namespace qf::algo {

// Sizes that are not powers of two: b = the largest power of two dividing the
// size, m = size / b.
//   Kronecker  R_m (x) H_b, R a random orthogonal [m, m] (n m + n log b per row)
//   Dense      a random orthogonal [n, n] (n^2 per row; only for small widths)
enum class OddSizeRotation { Kronecker, Dense };

struct RotationOptions {
  // The defaults are --rotate hadamard.
  bool residual = true;
  bool attn_heads = false;  // offline (what hadamard-offline uses instead of attn_out)
  bool ffn_hidden = true;  // online
  bool attn_out = true;    // online, over the whole o_proj input (replaces attn_heads)
  OddSizeRotation odd_size = OddSizeRotation::Kronecker;
  uint64_t seed = 0;
};

// "none" -> nullopt; "hadamard" -> residual + online attn_out and ffn_hidden;
// "hadamard-offline" -> the offline ones only (residual + attention heads),
// which every export format can hold. Throws qf::Error for anything else.
std::optional<RotationOptions> parse_rotation(std::string_view spec, uint64_t seed);

// Rotates a float Llama-family model in place (see above); the tensors it
// changes become owning copies. A tied head whose final norm is not all ones
// becomes an untied head (the norm folded into the head would otherwise
// change the embedding too); config.tie_embeddings says so. Throws qf::Error
// for GPT-2, packed (integer-kernel) weights, a model that already carries
// activation quantizers or online transforms.
void rotate_model(model::Model& model, const RotationOptions& options);

// Orthogonal matrices composed onto a model rotate_model has rotated (the
// learned part of SpinQuant-style rotations, algo/rotation_learning.h). Each
// is row-major [n, n] and acts on row vectors, x -> x M; empty = identity.
struct RotationRefinement {
  std::vector<float> residual;                 // [hidden, hidden], offline like the residual Q
  std::vector<std::vector<float>> attn_out;    // per layer [q_dim, q_dim]: online T becomes T M
  std::vector<std::vector<float>> ffn_hidden;  // per layer [ff, ff]: online T becomes T M
};

// Applies `r` in place, keeping the float function: the residual M like the
// residual Q above (embedding, readers and head W M, writers M^T W); an online
// site's transform T becomes the dense T M and its layer W M. Throws
// qf::Error when the model is not rotated where `r` needs it (norms not
// folded, no online transform at a refined site) or a size does not match.
void refine_rotation(model::Model& model, const RotationRefinement& r);

// What goes into a quantized folder's description of how it was made.
nlohmann::json rotation_info(const RotationOptions& options);

}  // namespace qf::algo
