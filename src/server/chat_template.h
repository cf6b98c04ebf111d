// Chat messages -> one prompt string. Hugging Face models ship their template
// as Jinja in tokenizer_config.json ("chat_template"); rather than embed a
// Jinja interpreter we recognise the template's family by its marker strings
// and render that family's format ourselves, as llama.cpp's
// llama_chat_apply_template does. Families: ChatML (<|im_start|>), Llama-3
// (<|start_header_id|>), Llama-2 / Mistral ([INST]), Zephyr (<|user|>), Gemma
// (<start_of_turn>). A model without a template, or with one we do not
// recognise, gets the plain fallback ("System: ...\nUser: ...\nAssistant:").
// BOS is not part of the rendered text: the tokenizer adds it as for any prompt.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "server/request.h"

namespace qf::server {

enum class ChatFormat { Plain, ChatML, Llama3, Llama2, Zephyr, Gemma };

std::string_view chat_format_name(ChatFormat f);

// The family of a Jinja chat template (Plain when none matches).
ChatFormat detect_chat_format(std::string_view jinja_template);

// The template of a model: tokenizer_config.json in the model folder (or
// beside the model file), its "chat_template" string (or the entry named
// "default" of a list of named templates). Plain when there is none. Throws
// qf::Error for a tokenizer_config.json that is not valid JSON.
ChatFormat load_chat_format(const std::string& model_path);

// The prompt for `messages`, ending where the assistant's reply starts.
std::string apply_chat_template(ChatFormat format, const std::vector<ChatMessage>& messages);

// The strings that end an assistant turn in `format` (extra stop strings,
// for models whose end-of-turn marker is not their EOS token).
std::vector<std::string> chat_end_markers(ChatFormat format);

}  // namespace qf::server
