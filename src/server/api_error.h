// An error an OpenAI-style endpoint answers with: an HTTP status and the
// {"error": {"message", "type", "param", "code"}} body OpenAI's API returns.
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace qf::server {

struct ApiError : std::runtime_error {
  ApiError(int status_, std::string message, std::string param_ = {}, std::string code_ = {},
           std::string type_ = {})
      : std::runtime_error(std::move(message)),
        status(status_),
        param(std::move(param_)),
        code(std::move(code_)),
        type(type_.empty() ? default_type(status_) : std::move(type_)) {}

  int status;
  std::string param, code, type;

  // The type OpenAI uses for a status.
  static std::string default_type(int status);
};

// The JSON body of an error response (param / code null when empty).
nlohmann::json error_body(const ApiError& e);

}  // namespace qf::server
