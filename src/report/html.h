// The self-contained report page: report/assets/report.html with the report
// JSON, the page's script and style and the pinned uPlot copy inlined, so it
// opens offline from a single file.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace qf::report {

// The JSON is embedded as <script type="application/json">, every '<' written
// as \u003c so no string in it can close the script element.
std::string render_html(const nlohmann::ordered_json& report);

}  // namespace qf::report
