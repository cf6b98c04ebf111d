// The engine against runtime::generate on stories260K: with one slot every
// request's text is exactly generate()'s for the same prompt and seed; with
// several slots (batched decode) greedy texts still equal it; cancelling a job
// frees its slot; drain() finishes what was accepted and refuses the rest.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "runtime/generate.h"
#include "runtime/runtime.h"
#include "server/engine.h"
#include "server/prompt.h"
#include "tokenizer/load.h"
#include "shared_data.h"
#include "tokenizer/tokenizer.h"

namespace qf::server {
namespace {

const char* kModel = "stories260K/stories260K.bin";

struct Fixture {
  model::Model model = model::load_model(test::shared_data_path(kModel));
  std::unique_ptr<tokenizer::Tokenizer> tok = tokenizer::make_tokenizer(model::load_vocab(test::shared_data_path(kModel)));
};

// What `qforge generate` prints after the prompt.
std::string reference(const Fixture& f, const std::string& prompt, int64_t n, runtime::SamplerConfig sc) {
  runtime::Runtime rt(f.model, {.n_threads = 1});
  runtime::Sampler sampler(sc);
  const std::vector<int32_t> ids = f.tok->encode(prompt, true);
  std::string out;
  bool at_start = prompt.empty();
  runtime::generate(rt, ids, n, sampler, [&](int32_t t) {
    if (t == f.tok->eos_id()) return false;
    std::string piece = f.tok->token_to_piece(t);
    if (at_start && piece.starts_with(' ')) piece.erase(0, 1);
    at_start = false;
    out += piece;
    return true;
  });
  return out;
}

Generation request(const Fixture& f, const std::string& prompt, int64_t n, runtime::SamplerConfig sc) {
  Generation g;
  g.prompt = f.tok->encode(prompt, true);
  g.max_tokens = n;
  g.sampler = sc;
  g.stop_tokens = {f.tok->eos_id()};
  g.strip_leading_space = prompt.empty();
  return g;
}

std::string collect(Job& job) {
  std::string text;
  Delta d;
  while (!job.finished())
    if (job.wait(d, std::chrono::milliseconds(100))) text += d.text;
  return text;
}

struct Req {
  std::string prompt;
  int64_t n;
  runtime::SamplerConfig sc;
};

void expect_engine_matches_generate(int parallel, const std::vector<Req>& reqs) {
  QF_REQUIRE_SHARED_DATA(kModel);
  Fixture f;
  runtime::Runtime rt(f.model, {.n_threads = 1});
  Metrics metrics;
  Engine engine(rt, *f.tok, {.parallel = parallel}, metrics);
  std::vector<std::shared_ptr<Job>> jobs;
  for (const Req& r : reqs) jobs.push_back(engine.submit(request(f, r.prompt, r.n, r.sc)));
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_NE(jobs[i], nullptr);
    EXPECT_EQ(collect(*jobs[i]), reference(f, reqs[i].prompt, reqs[i].n, reqs[i].sc))
        << "request " << i << " with " << parallel << " slots";
    EXPECT_TRUE(jobs[i]->finish_reason() == "length" || jobs[i]->finish_reason() == "stop");
    EXPECT_EQ(jobs[i]->prompt_tokens(), static_cast<int64_t>(f.tok->encode(reqs[i].prompt, true).size()));
  }
  engine.drain();
  EXPECT_EQ(metrics.completions.load(), static_cast<int64_t>(reqs.size()));
  EXPECT_EQ(metrics.slots_busy.load(), 0);
  if (parallel > 1) {
    EXPECT_GT(metrics.decode_rows.load(), metrics.decode_steps.load()) << "no step was batched";
  }
}

TEST(Engine, OneSlotEqualsGenerateForEverySampler) {
  expect_engine_matches_generate(1, {{"Once upon a time", 60, {}},
                                     {"The cat", 80, {.temperature = 0.9f, .top_k = 40, .seed = 7}},
                                     {"Lily", 50, {.temperature = 1.0f, .top_p = 0.9f, .seed = 1234}},
                                     {"", 40, {.temperature = 0.7f, .seed = 5}}});
}

TEST(Engine, BatchedSlotsEqualGenerateWhenGreedy) {
  std::vector<Req> reqs;
  for (const char* p : {"Once upon a time", "The dog", "Tom and", "She was", "One day", "The sun", "A bird"})
    reqs.push_back({p, 70, {}});
  expect_engine_matches_generate(3, reqs);
}

TEST(Engine, CancelFreesTheSlot) {
  QF_REQUIRE_SHARED_DATA(kModel);
  Fixture f;
  runtime::Runtime rt(f.model, {.n_threads = 1});
  Metrics metrics;
  Engine engine(rt, *f.tok, {.parallel = 1}, metrics);
  auto g = request(f, "Once", 500, {.temperature = 1.0f, .seed = 3});
  g.stop_tokens.clear();  // would end the story early
  auto long_job = engine.submit(g);
  auto next = engine.submit(request(f, "The cat", 10, {}));
  Delta d;
  while (!long_job->wait(d, std::chrono::milliseconds(100))) {
  }
  long_job->cancel();
  EXPECT_EQ(collect(*next), reference(f, "The cat", 10, {}));  // it got the slot
  EXPECT_EQ(long_job->finish_reason(), "cancelled");
  EXPECT_LT(long_job->completion_tokens(), 500);
  EXPECT_EQ(metrics.cancelled.load(), 1);
}

TEST(Engine, DrainFinishesAcceptedWorkAndRefusesNew) {
  QF_REQUIRE_SHARED_DATA(kModel);
  Fixture f;
  runtime::Runtime rt(f.model, {.n_threads = 1});
  Metrics metrics;
  Engine engine(rt, *f.tok, {.parallel = 1, .max_queue = 2}, metrics);
  // A long job holds the only slot, so what follows can only queue. Counting
  // accepted jobs without it raced the engine: a short job could end between
  // two submits and free room for a fourth (seen in CI).
  auto g = request(f, "Once", 500, {.temperature = 1.0f, .seed = 3});
  g.stop_tokens.clear();
  auto running = engine.submit(g);
  ASSERT_NE(running, nullptr);
  Delta d;
  while (!running->wait(d, std::chrono::milliseconds(100))) ASSERT_FALSE(running->finished());
  std::vector<std::shared_ptr<Job>> queued;
  for (int i = 0; i < 3; ++i) queued.push_back(engine.submit(request(f, "Once", 30, {})));
  if (!running->finished()) {  // the slot stayed taken through the submits: exact counts
    EXPECT_NE(queued[0], nullptr);
    EXPECT_NE(queued[1], nullptr);
    EXPECT_EQ(queued[2], nullptr) << "the queue holds 2";
  }
  engine.drain();
  EXPECT_EQ(running->finish_reason(), "length");
  for (auto& j : queued) {
    if (j) {
      EXPECT_FALSE(j->finish_reason().empty()) << "drain() returned before an accepted job ended";
    }
  }
  EXPECT_EQ(engine.submit(request(f, "x", 2, {})), nullptr);
}

// Chat template markers are control tokens: cut out of the text and inserted by id.
TEST(Prompt, ControlTokensInTextBecomeTheirIds) {
  QF_REQUIRE_SHARED_DATA("tokenizers/gpt2/encoder.json");
  const auto tok = tokenizer::make_tokenizer(tokenizer::find_tokenizer(test::shared_data_path("tokenizers/gpt2")));
  const int32_t eot = 50256;  // <|endoftext|>
  ASSERT_EQ(tok->vocab().tokens[eot], "<|endoftext|>");
  const std::vector<int32_t> plain_a = tok->encode("Hello", false), plain_b = tok->encode(" world", false);
  std::vector<int32_t> want = plain_a;
  want.push_back(eot);
  want.insert(want.end(), plain_b.begin(), plain_b.end());
  want.push_back(eot);
  EXPECT_EQ(encode_with_special_tokens(*tok, "Hello<|endoftext|> world<|endoftext|>", false), want);
  EXPECT_EQ(encode_with_special_tokens(*tok, "Hello", false), plain_a);
  EXPECT_NE(tok->encode("<|endoftext|>", false), std::vector<int32_t>{eot});  // what plain encode does
}

}  // namespace
}  // namespace qf::server
