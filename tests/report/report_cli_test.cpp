// `qforge report` end to end: stories260K against its int4 RTN and GPTQ
// versions and a static W8A8 one (built here with qforge quantize), the page opened in real
// Chromium by tests/report_js/check_report.mjs (puppeteer-core), which must
// find every chart plotting what the JSON says; plus the CLI's errors and the
// pin of the uPlot copy compiled into the page.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "file_text.h"
#include "run_command.h"
#include "shared_data.h"

namespace qf::test {
namespace {

namespace fs = std::filesystem;
const std::string kStories = "stories260K/stories260K.bin";
const std::string kText = "stories260K/tinystories_valid_sample_30KB.txt";
const fs::path kJsDir = fs::path(QF_SOURCE_DIR) / "tests" / "report_js";

// Why the browser check cannot run here, or "" when it can.
std::string browser_missing() {
  const char* env = std::getenv("QF_CHROMIUM");
  const std::string chromium = env ? env : "/usr/bin/chromium";
  if (!fs::exists(chromium)) return chromium + " is not installed (apt-get install chromium; or set QF_CHROMIUM)";
  if (std::system("node --version > /dev/null 2>&1") != 0) return "node is not installed";
  if (!fs::exists(kJsDir / "node_modules" / "puppeteer-core" / "package.json"))
    return "puppeteer-core is not installed: run npm ci --prefix tests/report_js";
  return "";
}

// A fresh folder per test process (CTest runs the tests in parallel).
fs::path work_dir(const std::string& name) {
  const fs::path d = fs::path(REPORT_TEST_OUT) / (name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void quantize(const std::string& out, const std::string& method, const std::string& flags = "--weights int4:g32") {
  const std::string calib = method == "rtn" && flags.find("--acts") == std::string::npos ? "" :
      " --calib " + shared_data_path(kText) + " --calib-samples 8 --calib-seqlen 128 --seed 1";
  const CommandResult r = run_qforge("quantize " + shared_data_path(kStories) + " -o " + out + " --method " + method +
                                     " " + flags + " -t 1" + calib);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

TEST(ReportCli, StoriesReportInChromiumAgreesWithItsJson) {
  QF_REQUIRE_SHARED_DATA(kStories);
  QF_REQUIRE_SHARED_DATA(kText);
  const fs::path dir = work_dir("report_stories");
  const std::string rtn = (dir / "int4-rtn").string(), gptq = (dir / "int4-gptq").string();
  ASSERT_NO_FATAL_FAILURE(quantize(rtn, "rtn"));
  ASSERT_NO_FATAL_FAILURE(quantize(gptq, "gptq"));
  // W8A8 with static activation scales: its activation grids are drawn too.
  const std::string w8a8 = (dir / "w8a8-static").string();
  ASSERT_NO_FATAL_FAILURE(quantize(w8a8, "rtn", "--weights int8:channel --acts int8 --act-mode static-tensor"));
  // The page, JSON and screenshot stay in the build folder for a look.
  const fs::path html = fs::path(REPORT_TEST_OUT) / "report_stories260K.html";
  const fs::path json = fs::path(REPORT_TEST_OUT) / "report_stories260K.json";
  const fs::path shot = fs::path(REPORT_TEST_OUT) / "report_stories260K.png";
  const CommandResult r = run_qforge("report " + shared_data_path(kStories) + " --compare " + rtn + "," + gptq + "," + w8a8 +
                                     " --text " + shared_data_path(kText) + " -o " + html.string() + " --json " +
                                     json.string() + " -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(html.string()), std::string::npos) << r.out;

  const std::string page = read_file(html);
  EXPECT_LT(page.size(), 5u << 20) << "the stories260K report should stay under 5 MB";
  const auto data = nlohmann::json::parse(read_file(json));
  ASSERT_EQ(data["models"].size(), 3u);
  EXPECT_EQ(data["models"][0]["name"], "int4-rtn");
  EXPECT_EQ(data["models"][1]["method"], "gptq");
  EXPECT_EQ(data["text"]["tokens"], 512);  // capped by stories260K's context
  EXPECT_EQ(data["models"][0]["kld"].size(), 511u);
  EXPECT_EQ(data["weights"].size(), 35u);      // 5 blocks x 7 linear layers
  EXPECT_EQ(data["activations"].size(), 20u);  // 5 blocks x 4 sites
  for (const auto& a : data["activations"]) {
    EXPECT_TRUE(a["grids"][0].empty());         // weight-only int4: no activation grid
    EXPECT_EQ(a["grids"][2].size(), 255u);      // static int8: -127..127 times its scale
  }
  for (const auto& m : data["models"]) {
    EXPECT_TRUE(m["norms_match"].get<bool>()) << m["name"];  // RTN and GPTQ leave the norms alone
    for (const auto& l : m["layers"]) EXPECT_GT(l["kld"].get<double>(), 0.0) << l["name"];
  }
  // GPTQ is what it is for: a lower mean KLD than RTN at the same bits.
  EXPECT_LT(data["models"][1]["summary"]["kld_mean"].get<double>(),
            data["models"][0]["summary"]["kld_mean"].get<double>());
  // The page embeds exactly the JSON it was built from.
  const std::string open = "<script id=\"qf-data\" type=\"application/json\">";
  const size_t a = page.find(open);
  ASSERT_NE(a, std::string::npos);
  const size_t b = page.find("</script>", a);
  ASSERT_NE(b, std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(page.substr(a + open.size(), b - a - open.size())), data);

  fs::remove_all(dir);  // the models; the page, JSON and screenshot stay
  const std::string missing = browser_missing();
  if (!missing.empty()) GTEST_SKIP() << "page written, browser check skipped: " << missing;
  fs::remove(shot);
  const std::string cmd = "node " + (kJsDir / "check_report.mjs").string() + " " + html.string() + " " +
                          json.string() + " " + shot.string() + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = ::pclose(p);
  EXPECT_EQ(status, 0) << out;
  EXPECT_TRUE(fs::exists(shot)) << out;
  std::printf("%s", out.c_str());
}

TEST(ReportCli, BadInputsFailWithOneLine) {
  QF_REQUIRE_SHARED_DATA(kStories);
  QF_REQUIRE_SHARED_DATA(kText);
  const fs::path dir = work_dir("report_errors");
  const std::string rtn = (dir / "rtn").string();
  ASSERT_NO_FATAL_FAILURE(quantize(rtn, "rtn"));
  const std::string model = shared_data_path(kStories), text = shared_data_path(kText);
  const std::string out = " -o " + (dir / "r.html").string();
  expect_one_line_error("report " + model + " --compare " + model + " --text " + text + out,
                        "not a quantized checkpoint");
  expect_one_line_error("report " + model + " --compare " + rtn + " --text " + (dir / "none.txt").string() + out,
                        "cannot open the text");
  expect_one_line_error("report " + model + " --compare " + rtn + " --text " + text + " --max-tokens 1" + out,
                        "--max-tokens");
  expect_one_line_error("report " + model + " --compare " + rtn + " --text " + text, "--output");
  expect_one_line_error("report " + model + " --compare " + rtn + " --text " + text + " -o " +
                            (dir / "no" / "such" / "dir" / "r.html").string(),
                        "r.html");
  // A text of one token (BOS only) has nothing to score.
  { std::ofstream(dir / "empty.txt"); }
  expect_one_line_error("report " + model + " --compare " + rtn + " --text " + (dir / "empty.txt").string() + out,
                        "at least 2");
  // Nothing half-written is left behind.
  EXPECT_FALSE(fs::exists(dir / "r.html"));
  fs::remove_all(dir);
}

// The uPlot compiled into every page (src/report/assets) must be the npm
// package's file, byte for byte, at the version package-lock.json pins.
TEST(ReportAssets, UplotCopyIsThePinnedNpmFile) {
  const fs::path assets = fs::path(QF_SOURCE_DIR) / "src" / "report" / "assets";
  const std::string ours = read_file(assets / "uPlot.iife.min.js");
  const auto lock = nlohmann::json::parse(read_file(kJsDir / "package-lock.json"));
  const std::string version = lock["packages"]["node_modules/uplot"]["version"];
  EXPECT_EQ(lock["packages"][""]["dependencies"]["uplot"], version) << "package.json must pin uplot exactly (npm i -E)";
  EXPECT_NE(ours.find("(v" + version + ")"), std::string::npos) << "the committed copy's header names another version";
  const fs::path npm = kJsDir / "node_modules" / "uplot" / "dist";
  if (!fs::exists(npm / "uPlot.iife.min.js")) GTEST_SKIP() << "run npm ci --prefix tests/report_js to compare the bytes";
  EXPECT_TRUE(ours == read_file(npm / "uPlot.iife.min.js")) << "src/report/assets/uPlot.iife.min.js differs from npm's";
  EXPECT_TRUE(read_file(assets / "uPlot.min.css") == read_file(npm / "uPlot.min.css"));
  EXPECT_TRUE(read_file(assets / "uPlot.LICENSE") == read_file(kJsDir / "node_modules" / "uplot" / "LICENSE"));
}

}  // namespace
}  // namespace qf::test
