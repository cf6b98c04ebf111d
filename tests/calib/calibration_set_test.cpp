#include "calib/calibration_set.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "test_data.h"
#include "error_of.h"

namespace qf::calib {
namespace {

using ::testing::HasSubstr;

using test::error_of;

// Token i has value i, so a window's first token is its offset.
std::vector<int32_t> iota_tokens(int32_t n) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), 0);
  return t;
}

std::vector<int32_t> starts(const std::vector<TokenSequence>& seqs) {
  std::vector<int32_t> s;
  for (const auto& q : seqs) s.push_back(q.front());
  return s;
}

// ---------------------------------------------------------------- sample_sequences

TEST(SampleSequences, DeterministicPerSeedAndSeedsDiffer) {
  const auto tokens = iota_tokens(10000);
  const auto a = sample_sequences(tokens, 8, 128, 42);
  EXPECT_EQ(a, sample_sequences(tokens, 8, 128, 42));
  EXPECT_NE(starts(a), starts(sample_sequences(tokens, 8, 128, 43)));
}

TEST(SampleSequences, KnownOffsetsForASeed) {
  // Pins the mapping from mt19937_64 to offsets, which is the same with every
  // standard library; a change here changes every calibration set.
  const auto tokens = iota_tokens(1000);
  EXPECT_EQ(starts(sample_sequences(tokens, 4, 50, 7)), (std::vector<int32_t>{162, 337, 404, 895}));
}

TEST(SampleSequences, WindowsAreInBoundsContiguousAndDisjoint) {
  for (int32_t n : {64, 100, 1000, 4097}) {
    const auto tokens = iota_tokens(n);
    for (int64_t length : {1, 7, 16, 64}) {
      for (int64_t count : {int64_t{1}, int64_t{3}, n / length}) {
        if (count < 1 || count * length > n) continue;
        for (uint64_t seed = 0; seed < 20; ++seed) {
          const auto seqs = sample_sequences(tokens, count, length, seed);
          ASSERT_EQ(static_cast<int64_t>(seqs.size()), count);
          int64_t end_of_previous = 0;
          for (const auto& q : seqs) {
            ASSERT_EQ(static_cast<int64_t>(q.size()), length);
            for (size_t i = 1; i < q.size(); ++i) ASSERT_EQ(q[i], q[0] + static_cast<int32_t>(i));
            ASSERT_GE(q.front(), end_of_previous) << "overlap or out of order, n " << n << " length " << length;
            ASSERT_LT(q.back(), n);
            end_of_previous = q.back() + 1;
          }
        }
      }
    }
  }
}

TEST(SampleSequences, ExactFitTakesTheWholeText) {
  const auto tokens = iota_tokens(120);
  const auto seqs = sample_sequences(tokens, 4, 30, 1);
  EXPECT_EQ(starts(seqs), (std::vector<int32_t>{0, 30, 60, 90}));
}

TEST(SampleSequences, OffsetsCoverTheTextRoughlyUniformly) {
  // One window of 10 in 100 tokens: 91 possible starts, each ~1/91.
  const auto tokens = iota_tokens(100);
  std::vector<int> hits(91, 0);
  for (uint64_t seed = 0; seed < 9100; ++seed) ++hits[static_cast<size_t>(sample_sequences(tokens, 1, 10, seed)[0][0])];
  EXPECT_GT(*std::min_element(hits.begin(), hits.end()), 50);
  EXPECT_LT(*std::max_element(hits.begin(), hits.end()), 160);
}

TEST(SampleSequences, Errors) {
  const auto tokens = iota_tokens(100);
  EXPECT_EQ(error_of([&] { sample_sequences(tokens, 1, 101, 0); }),
            "calibration text has 100 tokens, fewer than one sequence of 101");
  EXPECT_EQ(error_of([&] { sample_sequences({}, 1, 8, 0); }),
            "calibration text has 0 tokens, fewer than one sequence of 8");
  EXPECT_EQ(error_of([&] { sample_sequences(tokens, 4, 30, 0); }),
            "calibration text has 100 tokens, fewer than the 120 needed for 4 disjoint sequences of 30");
  EXPECT_THAT(error_of([&] { sample_sequences(tokens, std::numeric_limits<int64_t>::max(), 2, 0); }),
              HasSubstr("calibration text has 100 tokens, far fewer than"));
  EXPECT_EQ(error_of([&] { sample_sequences(tokens, 0, 8, 0); }),
            "calibration set: sequence count must be positive, got 0");
  EXPECT_EQ(error_of([&] { sample_sequences(tokens, 2, -1, 0); }),
            "calibration set: sequence length must be positive, got -1");
}

// ---------------------------------------------------------------- select_diverse

// `blobs` tight Gaussian blobs far apart, `per_blob` rows each, blob b
// holding rows [b * per_blob, (b + 1) * per_blob).
std::vector<float> blob_features(int64_t blobs, int64_t per_blob, int64_t dim, uint64_t seed) {
  testing::Rng rng(seed);
  std::vector<float> centre(static_cast<size_t>(blobs * dim));
  for (auto& c : centre) c = static_cast<float>(rng.uniform(-100.0, 100.0));
  std::vector<float> f;
  for (int64_t b = 0; b < blobs; ++b)
    for (int64_t i = 0; i < per_blob; ++i)
      for (int64_t d = 0; d < dim; ++d)
        f.push_back(centre[static_cast<size_t>(b * dim + d)] + static_cast<float>(0.5 * rng.normal()));
  return f;
}

TEST(SelectDiverse, OneRowPerWellSeparatedBlob) {
  const int64_t blobs = 6, per_blob = 40, dim = 8;
  const auto f = blob_features(blobs, per_blob, dim, 3);
  for (uint64_t seed = 0; seed < 10; ++seed) {
    const auto picked = select_diverse(f, blobs * per_blob, dim, blobs, seed);
    ASSERT_EQ(picked.size(), static_cast<size_t>(blobs));
    EXPECT_TRUE(std::is_sorted(picked.begin(), picked.end()));
    std::set<int64_t> hit;
    for (int64_t i : picked) hit.insert(i / per_blob);
    EXPECT_EQ(hit.size(), static_cast<size_t>(blobs)) << "seed " << seed;
  }
}

TEST(SelectDiverse, DeterministicSortedDistinct) {
  const int64_t n = 300, dim = 5;
  const auto f = testing::normal_values(9, n * dim);
  const auto a = select_diverse(f, n, dim, 17, 1);
  EXPECT_EQ(a, select_diverse(f, n, dim, 17, 1));
  ASSERT_EQ(a.size(), 17u);
  EXPECT_TRUE(std::adjacent_find(a.begin(), a.end(), std::greater_equal<>()) == a.end());
  EXPECT_GE(a.front(), 0);
  EXPECT_LT(a.back(), n);
}

TEST(SelectDiverse, KEqualsNReturnsAll) {
  const auto f = testing::normal_values(2, 7 * 3);
  EXPECT_EQ(select_diverse(f, 7, 3, 7, 0), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6}));
}

TEST(SelectDiverse, DuplicateRowsStillGiveKDistinctIndices) {
  // Two distinct points, each repeated: k = 5 must leave clusters empty.
  std::vector<float> f;
  for (int i = 0; i < 10; ++i) f.push_back(i % 2 ? 1.0f : -1.0f);
  const auto picked = select_diverse(f, 10, 1, 5, 4);
  ASSERT_EQ(picked.size(), 5u);
  EXPECT_EQ(std::set<int64_t>(picked.begin(), picked.end()).size(), 5u);
  EXPECT_TRUE(std::is_sorted(picked.begin(), picked.end()));
  const std::vector<float> same(12, 3.0f);
  EXPECT_EQ(select_diverse(same, 4, 3, 3, 0).size(), 3u);
}

TEST(SelectDiverse, Errors) {
  const std::vector<float> f(12, 0.0f);
  EXPECT_EQ(error_of([&] { select_diverse(f, 4, 3, 0, 0); }),
            "select_diverse: k = 0 is not in [1, 4] (the number of rows)");
  EXPECT_EQ(error_of([&] { select_diverse(f, 4, 3, 5, 0); }),
            "select_diverse: k = 5 is not in [1, 4] (the number of rows)");
  EXPECT_EQ(error_of([&] { select_diverse(f, 5, 3, 2, 0); }),
            "select_diverse: 12 feature values are not 5 rows x 3 dims");
  EXPECT_EQ(error_of([&] { select_diverse(f, 0, 3, 1, 0); }),
            "select_diverse: need a positive row count and dimension, got 0 x 3");
  EXPECT_EQ(error_of([&] { select_diverse(f, 4, 3, 2, 0, -1); }), "select_diverse: max_iter -1 is negative");
  std::vector<float> bad = f;
  bad[7] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(error_of([&] { select_diverse(bad, 4, 3, 2, 0); }),
            "select_diverse: feature row 2, dim 1 is not finite");
}

}  // namespace
}  // namespace qf::calib
