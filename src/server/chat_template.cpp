#include "server/chat_template.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace qf::server {

std::string_view chat_format_name(ChatFormat f) {
  switch (f) {
    case ChatFormat::ChatML: return "chatml";
    case ChatFormat::Llama3: return "llama3";
    case ChatFormat::Llama2: return "llama2";
    case ChatFormat::Zephyr: return "zephyr";
    case ChatFormat::Gemma: return "gemma";
    case ChatFormat::Plain: break;
  }
  return "plain";
}

ChatFormat detect_chat_format(std::string_view t) {
  const auto has = [&](std::string_view s) { return t.find(s) != std::string_view::npos; };
  if (has("<|im_start|>")) return ChatFormat::ChatML;
  if (has("<|start_header_id|>")) return ChatFormat::Llama3;
  if (has("<start_of_turn>")) return ChatFormat::Gemma;
  if (has("[INST]")) return ChatFormat::Llama2;
  if (has("<|user|>")) return ChatFormat::Zephyr;
  return ChatFormat::Plain;
}

ChatFormat load_chat_format(const std::string& model_path) {
  namespace fs = std::filesystem;
  const fs::path p(model_path);
  const fs::path dir = fs::is_directory(p) ? p : p.parent_path();
  const fs::path cfg = dir / "tokenizer_config.json";
  if (!fs::exists(cfg)) return ChatFormat::Plain;
  std::ifstream in(cfg, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", cfg.string(), e.what()));
  }
  if (!j.is_object()) return ChatFormat::Plain;
  const auto it = j.find("chat_template");
  if (it == j.end()) return ChatFormat::Plain;
  if (it->is_string()) return detect_chat_format(it->get<std::string>());
  if (it->is_array()) {  // [{"name": "default", "template": "..."}, ...]
    for (const auto& e : *it) {
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
        return detect_chat_format(e["template"].get<std::string>());
    }
  }
  return ChatFormat::Plain;
}

std::string apply_chat_template(ChatFormat format, const std::vector<ChatMessage>& messages) {
  std::string out;
  switch (format) {
    case ChatFormat::ChatML:
      for (const ChatMessage& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      return out + "<|im_start|>assistant\n";
    case ChatFormat::Llama3:
      for (const ChatMessage& m : messages)
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + m.content + "<|eot_id|>";
      return out + "<|start_header_id|>assistant<|end_header_id|>\n\n";
    case ChatFormat::Gemma:
      // Gemma has no system role: a system message opens the first user turn.
      {
        std::string pending_system;
        for (const ChatMessage& m : messages) {
          if (m.role == "system") {
            pending_system += m.content + "\n\n";
            continue;
          }
          const std::string role = m.role == "assistant" ? "model" : "user";
          out += "<start_of_turn>" + role + "\n" + (role == "user" ? pending_system : "") + m.content +
                 "<end_of_turn>\n";
          if (role == "user") pending_system.clear();
        }
        return out + "<start_of_turn>model\n";
      }
    case ChatFormat::Llama2: {
      // [INST] <<SYS>>\nsys\n<</SYS>>\n\nuser [/INST] answer </s><s>[INST] user2 [/INST]
      std::string system;
      bool first_user = true;
      for (const ChatMessage& m : messages) {
        if (m.role == "system") {
          system += m.content;
        } else if (m.role == "user") {
          out += "[INST] ";
          if (first_user && !system.empty()) out += "<<SYS>>\n" + system + "\n<</SYS>>\n\n";
          out += m.content + " [/INST]";
          first_user = false;
        } else {
          out += " " + m.content + " ";
        }
      }
      return out;
    }
    case ChatFormat::Zephyr:
      for (const ChatMessage& m : messages) out += "<|" + m.role + "|>\n" + m.content + "</s>\n";
      return out + "<|assistant|>\n";
    case ChatFormat::Plain:
      break;
  }
  for (const ChatMessage& m : messages) {
    std::string role = m.role;
    role[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(role[0])));
    out += role + ": " + m.content + "\n";
  }
  return out + "Assistant:";
}

std::vector<std::string> chat_end_markers(ChatFormat format) {
  switch (format) {
    case ChatFormat::ChatML: return {"<|im_end|>"};
    case ChatFormat::Llama3: return {"<|eot_id|>"};
    case ChatFormat::Gemma: return {"<end_of_turn>"};
    case ChatFormat::Zephyr: return {"</s>"};
    case ChatFormat::Llama2: return {};
    case ChatFormat::Plain: return {"\nUser:"};
  }
  return {};
}

}  // namespace qf::server
