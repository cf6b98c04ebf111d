// Calibration data: token sequences cut from a tokenized text, chosen at
// random (seeded) or for diversity (k-means over per-sequence features, one
// sequence nearest each centroid, as the seed documents describe).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace qf::calib {

using TokenSequence = std::vector<int32_t>;

// `count` disjoint windows of `length` tokens from `tokens`, in text order,
// placed uniformly at random among all disjoint placements (std::mt19937_64
// seeded with `seed`, mapped to offsets by rejection sampling rather than
// std::uniform_int_distribution, so results do not depend on the standard
// library). Windows never overlap: a text too short for `count` disjoint
// ones is an error. Throws qf::Error when tokens.size() < length
// ("calibration text has N tokens, fewer than one sequence of L"), or when the
// text holds fewer than count * length tokens (naming both numbers), for
// count <= 0 or length <= 0.
std::vector<TokenSequence> sample_sequences(std::span<const int32_t> tokens, int64_t count, int64_t length,
                                            uint64_t seed);

// Indices of `k` rows of `features` ([n, dim], row-major) spread over the
// data: k-means++ seeding (seeded), Lloyd iterations until assignments stop
// changing (at most max_iter), then per cluster the member nearest its
// centroid. Distinct indices in increasing order; deterministic for a seed
// (squared Euclidean distances accumulated in double; ties go to the lower
// index). A cluster left empty (duplicate rows) takes the nearest row not yet
// chosen; k == n returns every row. Throws qf::Error for k <= 0, k > n, a size
// mismatch, non-finite features or max_iter < 0.
std::vector<int64_t> select_diverse(std::span<const float> features, int64_t n, int64_t dim, int64_t k,
                                    uint64_t seed, int max_iter = 100);

}  // namespace qf::calib
