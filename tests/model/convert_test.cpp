// Converting stories260K between formats must not change a single logit:
// llama2.c -> Hugging Face folder, -> GGUF, and GGUF -> Hugging Face folder
// (whose tokenizer.model we write ourselves from the GGUF vocabulary).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "formats/gguf_model.h"
#include "model/model.h"
#include "model/save.h"
#include "runtime/runtime.h"
#include "shared_data.h"
#include "tokenizer/load.h"
#include "tokenizer/save.h"
#include "tokenizer/tokenizer.h"

namespace qf::model {
namespace {

namespace fs = std::filesystem;
const std::string kModel = "stories260K/stories260K.bin";

class ConvertStories : public ::testing::Test {
 protected:
  void SetUp() override {
    QF_REQUIRE_SHARED_DATA(kModel);
    QF_REQUIRE_SHARED_DATA("stories260K/tok512.model");
    dir_ = fs::temp_directory_path() / ("qf_convert_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static Tensor logits_of(const std::string& path, const std::vector<int32_t>& tokens) {
    const Model m = load_model(path);
    runtime::Runtime rt(m, {.n_threads = 1, .context = 128});
    return rt.forward(tokens);
  }
  static void expect_identical(const Tensor& a, const Tensor& b) {
    ASSERT_EQ(a.shape(), b.shape());
    EXPECT_EQ(std::memcmp(a.bytes(), b.bytes(), a.nbytes()), 0) << "logits differ";
  }
  fs::path dir_;
};

TEST_F(ConvertStories, EveryFormatGivesBitIdenticalLogits) {
  const std::string src = test::shared_data_path(kModel);
  const Model m = load_model(src);
  const tokenizer::Vocab vocab = load_vocab(src);
  const auto tok = tokenizer::make_tokenizer(vocab);
  const std::vector<int32_t> tokens = tok->encode("Once upon a time, a little dog found a big red ball.", true);
  const Tensor reference = logits_of(src, tokens);

  const std::string hf = (dir_ / "hf").string();
  save_hf_folder(hf, m, vocab, src, DType::F32);
  expect_identical(logits_of(hf, tokens), reference);

  const std::string gguf = (dir_ / "model.gguf").string();
  formats::write_gguf_model(gguf, m.config, m.named_tensors(), &vocab, DType::F32);
  expect_identical(logits_of(gguf, tokens), reference);

  const std::string back = (dir_ / "from_gguf").string();
  save_hf_folder(back, load_model(gguf), load_vocab(gguf), gguf, DType::F32);
  EXPECT_TRUE(fs::exists(fs::path(back) / "tokenizer.model"));
  expect_identical(logits_of(back, tokens), reference);
  // The tokenizer written from the GGUF vocabulary encodes like the original.
  const auto back_tok = tokenizer::make_tokenizer(load_vocab(back));
  EXPECT_EQ(back_tok->encode("  Spaces,  digits 123 and\ttabs\r\n", true),
            tok->encode("  Spaces,  digits 123 and\ttabs\r\n", true));
}

TEST_F(ConvertStories, HalfPrecisionStorageRoundsOnlyTheMatrices) {
  const std::string src = test::shared_data_path(kModel);
  const Model m = load_model(src);
  const std::string hf = (dir_ / "hf16").string();
  save_hf_folder(hf, m, load_vocab(src), src, DType::F16);
  const Model h = load_model(hf);
  const auto a = m.named_tensors(), b = h.named_tensors();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const auto x = a[i].tensor.to_f32_vector(), y = b[i].tensor.to_f32_vector();
    ASSERT_EQ(x.size(), y.size());
    for (size_t j = 0; j < x.size(); ++j) {
      const float want = a[i].tensor.ndim() >= 2 ? Tensor::from_f32({&x[j], 1}, {1}).cast(DType::F16).to_f32_vector()[0]
                                                 : x[j];
      ASSERT_EQ(y[j], want) << a[i].name << "[" << j << "]";
    }
  }
}

TEST(SentencePieceWriter, WrittenModelLoadsThroughLibsentencepieceUnchanged) {
  QF_REQUIRE_SHARED_DATA("stories260K/tok512.model");
  const tokenizer::Vocab v = tokenizer::load_sentencepiece_model(test::shared_data_path("stories260K/tok512.model"));
  const auto path = fs::temp_directory_path() / ("qf_spm_" + std::to_string(::getpid()) + ".model");
  tokenizer::write_sentencepiece_model(path.string(), v);
  const tokenizer::Vocab w = tokenizer::load_sentencepiece_model(path.string());
  fs::remove(path);
  EXPECT_EQ(w.tokens, v.tokens);
  EXPECT_EQ(w.scores, v.scores);
  EXPECT_EQ(w.types, v.types);
  EXPECT_EQ(w.bos_id, v.bos_id);
  EXPECT_EQ(w.eos_id, v.eos_id);
  EXPECT_EQ(w.unk_id, v.unk_id);
  EXPECT_EQ(w.add_space_prefix, v.add_space_prefix);
  EXPECT_EQ(w.remove_extra_whitespaces, v.remove_extra_whitespaces);
}

// Gemma 3's GGUF vocabulary marks <unk> as a control token; libsentencepiece
// (which load_sentencepiece_model runs) refuses a model whose unk piece is
// not UNKNOWN, so the writer gives it that type.
TEST(SentencePieceWriter, UnkMarkedAsControlStillLoads) {
  QF_REQUIRE_SHARED_DATA("stories260K/tok512.model");
  tokenizer::Vocab v = tokenizer::load_sentencepiece_model(test::shared_data_path("stories260K/tok512.model"));
  ASSERT_GE(v.unk_id, 0);
  v.types[static_cast<size_t>(v.unk_id)] = tokenizer::TokenType::Control;
  const auto path = fs::temp_directory_path() / ("qf_spm_unk_" + std::to_string(::getpid()) + ".model");
  tokenizer::write_sentencepiece_model(path.string(), v);
  const tokenizer::Vocab w = tokenizer::load_sentencepiece_model(path.string());
  fs::remove(path);
  EXPECT_EQ(w.unk_id, v.unk_id);
  EXPECT_EQ(w.types[static_cast<size_t>(w.unk_id)], tokenizer::TokenType::Unknown);
  EXPECT_EQ(w.tokens, v.tokens);
}

}  // namespace
}  // namespace qf::model
