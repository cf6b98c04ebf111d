// Tensor names in safetensors writer messages, and the writer's header cost.
// (Lives with the CLI tests: the hostile-name CLI test writes its input with
// this writer.)
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/safetensors.h"

namespace qf::formats {
namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(SafetensorsWriterNames, MessagesQuoteAndEscapeNames) {
  const std::string evil = "evil\nqforge: ok";
  const std::string dup =
      error_of([&] { (void)safetensors_header({{evil, DType::F32, {1}}, {evil, DType::F32, {1}}}, {}); });
  EXPECT_NE(dup.find("duplicate tensor name \"evil\\nqforge: ok\""), std::string::npos) << dup;
  EXPECT_EQ(dup.find('\n'), std::string::npos) << dup;
  const std::string big =
      error_of([&] { (void)safetensors_header({{evil, DType::F64, {int64_t{1} << 62, 4}}}, {}); });
  EXPECT_NE(big.find("\"evil\\nqforge: ok\""), std::string::npos) << big;
  EXPECT_EQ(big.find('\n'), std::string::npos) << big;

  const std::string path = ::testing::TempDir() + "qf_names_test.safetensors";
  SafetensorsWriter w(path, {{"a", DType::F32, {2}}});
  const std::string wrong = error_of([&] { w.write(evil, Tensor::zeros(DType::F32, {2})); });
  EXPECT_NE(wrong.find("tensor \"evil\\nqforge: ok\" written where \"a\" was planned"), std::string::npos) << wrong;
  EXPECT_EQ(wrong.find('\n'), std::string::npos) << wrong;
}

// ordered_json's operator[] is a linear search: building the header by
// indexing made it quadratic (40k tensors took 5 s). Appending is linear.
// Checked by scaling, not wall-clock, so sanitizer builds and a busy machine
// do not matter: 8x the tensors must cost far less than the 64x of O(n^2).
std::vector<TensorSpec> many_tensors(int n) {
  std::vector<TensorSpec> plan;
  for (int i = 0; i < n; ++i) plan.push_back({"model.layers." + std::to_string(i) + ".w", DType::F16, {4, 4}});
  return plan;
}

double best_seconds(const std::vector<TensorSpec>& plan) {
  double best = 1e30;
  for (int round = 0; round < 3; ++round) {
    const auto start = std::chrono::steady_clock::now();
    const std::string header = safetensors_header(plan, {});
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    EXPECT_FALSE(header.empty());
  }
  return best;
}

TEST(SafetensorsWriterNames, HeaderIsLinearInTheTensorCount) {
  const auto small = many_tensors(5000), large = many_tensors(40000);
  const double t_small = best_seconds(small), t_large = best_seconds(large);
  EXPECT_LT(t_large, 24.0 * t_small + 0.05) << "5000 tensors: " << t_small << " s, 40000: " << t_large << " s";
  // Order and content are those of the plan.
  const std::string header = safetensors_header(large, {{"k", "v"}});
  EXPECT_EQ(header.rfind("{\"__metadata__\":{\"k\":\"v\"},\"model.layers.0.w\":", 0), 0u) << header.substr(0, 80);
  EXPECT_NE(header.find("\"model.layers.39999.w\":{\"dtype\":\"F16\",\"shape\":[4,4],\"data_offsets\":[1279968,1280000]}"),
            std::string::npos);
  EXPECT_EQ(header.size() % 8, 0u);
}

}  // namespace
}  // namespace qf::formats
