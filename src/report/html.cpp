#include "report/html.h"

#include <string_view>

#include "core/error.h"
#include "report/report_assets.h"  // generated from report/assets/ (src/report/CMakeLists.txt)

namespace qf::report {
namespace {

// Replaces the one occurrence of `marker` in `page` by `content`.
void fill(std::string& page, std::string_view marker, std::string_view content) {
  const size_t at = page.find(marker);
  QF_CHECK(at != std::string::npos && page.find(marker, at + 1) == std::string::npos,
           "report template: marker {} must appear exactly once", marker);
  page.replace(at, marker.size(), content);
}

}  // namespace

std::string render_html(const nlohmann::ordered_json& report) {
  // Paths and token pieces need not be UTF-8: bad bytes become U+FFFD.
  const std::string json = report.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  std::string safe;
  safe.reserve(json.size() + json.size() / 16);
  for (char c : json) {
    if (c == '<') {
      safe += "\\u003c";  // '<' occurs only inside JSON strings, where this escape is valid
    } else {
      safe += c;
    }
  }
  std::string page(assets::report_html);
  // Scripts and styles go in first: the data last, so nothing in it is ever
  // taken for a marker.
  fill(page, "/*@UPLOT_CSS@*/", assets::uplot_min_css);
  fill(page, "/*@REPORT_CSS@*/", assets::report_css);
  fill(page, "/*@UPLOT_JS@*/", assets::uplot_iife_min_js);
  fill(page, "/*@REPORT_JS@*/", assets::report_js);
  fill(page, "@REPORT_JSON@", safe);
  return page;
}

}  // namespace qf::report
