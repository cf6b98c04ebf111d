// Hugging Face tokenizer.json (BPE models) -> Vocab.
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <unordered_map>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/strict_json.h"
#include "tokenizer/load.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

namespace qf::tokenizer {
namespace {

using Json = nlohmann::ordered_json;
using formats::quote;

using detail::kSpace;
// The GPT-2 pre-tokenization regex as Hugging Face writes it in Split pre-tokenizers.
constexpr std::string_view kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

Json read_json_file(const std::string& path) {
  const auto file = MappedFile::open(path);
  return with_context(path, [&] {
    return formats::parse_strict_json(std::string_view(reinterpret_cast<const char*>(file->data()), file->size()));
  });
}

std::string type_of(const Json& j) {
  if (!j.is_object()) return {};
  const auto it = j.find("type");
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// root[key], or a null value when absent (a reference that outlives the call).
const Json& member(const Json& j, const char* key) {
  static const Json null_json;
  const auto it = j.find(key);
  return it == j.end() ? null_json : *it;
}

// The parts of a (possibly nested) Sequence normalizer, pre-tokenizer or post-processor.
void flatten(const Json& j, const char* list_key, std::vector<const Json*>& out) {
  if (j.is_null()) return;
  QF_CHECK(j.is_object(), "expected an object, found {}", quote(j.dump()));
  if (type_of(j) == "Sequence") {
    const auto it = j.find(list_key);
    QF_CHECK(it != j.end() && it->is_array(), "Sequence without a '{}' list", list_key);
    for (const auto& part : *it) flatten(part, list_key, out);
    return;
  }
  out.push_back(&j);
}

bool bool_field(const Json& j, const char* key, bool fallback) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  QF_CHECK(it->is_boolean(), "'{}' must be true or false", key);
  return it->get<bool>();
}

std::string string_field(const Json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  QF_CHECK(it->is_string(), "'{}' must be a string", key);
  return it->get<std::string>();
}

// A token named in tokenizer_config.json: "<s>" or {"content": "<s>", ...}.
std::optional<std::string> config_token(const Json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    const auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
  }
  fail("tokenizer_config.json: '{}' is neither a string nor an object with 'content'", key);
}

}  // namespace

Vocab load_hf_tokenizer_json(const std::string& path) {
  const Json root = read_json_file(path);
  Vocab v;
  with_context(path, [&] {
    QF_CHECK(root.is_object(), "expected a JSON object at the top level");
    const auto model_it = root.find("model");
    QF_CHECK(model_it != root.end() && model_it->is_object(), "no 'model' object");
    const Json& model = *model_it;
    const std::string model_type = type_of(model);
    QF_CHECK(model_type == "BPE" || (model_type.empty() && model.contains("merges")),
             "model type {} is not supported (only BPE)", quote(model_type));
    QF_CHECK(string_field(model, "continuing_subword_prefix").empty() &&
                 string_field(model, "end_of_word_suffix").empty(),
             "BPE with continuing_subword_prefix or end_of_word_suffix is not supported");
    QF_CHECK(!bool_field(model, "ignore_merges", false), "BPE with ignore_merges is not supported");
    const bool byte_fallback = bool_field(model, "byte_fallback", false);

    // Which family: Llama-style SentencePiece or GPT-2 byte-level.
    std::vector<const Json*> normalizers, pre_tokenizers;
    flatten(member(root, "normalizer"), "normalizers", normalizers);
    flatten(member(root, "pre_tokenizer"), "pretokenizers", pre_tokenizers);
    bool prepend_space = false, replace_space = false, metaspace = false, byte_level = false, gpt2_split = false;
    bool byte_level_regex = true, byte_level_prefix = false, metaspace_prefix = true;
    for (const Json* n : normalizers) {
      const std::string t = type_of(*n);
      if (t == "Prepend" && string_field(*n, "prepend") == kSpace) {
        prepend_space = true;
      } else if (t == "Replace" && n->contains("pattern") && (*n)["pattern"].is_object() &&
                 (*n)["pattern"].value("String", std::string()) == " " && string_field(*n, "content") == kSpace) {
        replace_space = true;
      } else {
        fail("normalizer {} is not supported", quote(n->dump()));
      }
    }
    for (const Json* p : pre_tokenizers) {
      const std::string t = type_of(*p);
      if (t == "ByteLevel") {
        byte_level = true;
        byte_level_regex = bool_field(*p, "use_regex", true);
        byte_level_prefix = bool_field(*p, "add_prefix_space", false);
      } else if (t == "Metaspace") {
        metaspace = true;
        QF_CHECK(string_field(*p, "replacement").empty() || string_field(*p, "replacement") == kSpace,
                 "Metaspace with replacement {} is not supported", quote(string_field(*p, "replacement")));
        const std::string scheme = string_field(*p, "prepend_scheme");
        metaspace_prefix = scheme.empty() ? bool_field(*p, "add_prefix_space", true) : scheme != "never";
      } else if (t == "Split" && p->contains("pattern") && (*p)["pattern"].is_object() &&
                 (*p)["pattern"].value("Regex", std::string()) == kGpt2Pattern) {
        gpt2_split = true;
      } else {
        fail("pre-tokenizer {} is not supported (only ByteLevel with GPT-2's regex, and Metaspace)",
             quote(p->dump(), 300));
      }
    }
    if (byte_level) {
      QF_CHECK(!metaspace && normalizers.empty(), "ByteLevel mixed with SentencePiece-style normalization");
      QF_CHECK(byte_level_regex || gpt2_split, "ByteLevel without GPT-2's regex is not supported");
      v.kind = VocabKind::ByteLevelBPE;
      v.add_space_prefix = byte_level_prefix;
    } else if (metaspace || replace_space) {
      QF_CHECK(!gpt2_split, "a GPT-2 Split pre-tokenizer without ByteLevel is not supported");
      v.kind = VocabKind::SentencePiece;
      v.add_space_prefix = metaspace ? metaspace_prefix : prepend_space;
    } else {
      fail("cannot tell the tokenizer family: neither a ByteLevel pre-tokenizer (GPT-2) nor a Metaspace "
           "pre-tokenizer or ' ' -> U+2581 normalizer (SentencePiece/Llama)");
    }

    // Vocabulary.
    const auto vocab_it = model.find("vocab");
    QF_CHECK(vocab_it != model.end() && vocab_it->is_object(), "model.vocab must be an object of token -> id");
    std::map<uint64_t, std::string> by_id;
    const auto add_token = [&](const std::string& token, const Json& id_json, const char* where) {
      const auto id = formats::json_to_uint(id_json);
      QF_CHECK(id.has_value() && *id < static_cast<uint64_t>(std::numeric_limits<int32_t>::max()),
               "{}: token {} has id {}, not a valid token id", where, quote(token), id_json.dump());
      const auto [it, inserted] = by_id.emplace(*id, token);
      QF_CHECK(inserted || it->second == token, "{}: tokens {} and {} share id {}", where, quote(it->second),
               quote(token), *id);
      return static_cast<int32_t>(*id);
    };
    for (const auto& [token, id] : vocab_it->items()) add_token(token, id, "model.vocab");

    struct Added {
      int32_t id;
      bool special;
    };
    std::vector<Added> added;
    if (const auto at = root.find("added_tokens"); at != root.end() && !at->is_null()) {
      QF_CHECK(at->is_array(), "added_tokens must be a list");
      for (const auto& t : *at) {
        QF_CHECK(t.is_object() && t.contains("id") && t.contains("content") && t["content"].is_string(),
                 "added_tokens entry {} lacks an id or content", quote(t.dump()));
        const int32_t id = add_token(t["content"].get<std::string>(), t["id"], "added_tokens");
        added.push_back({id, bool_field(t, "special", false)});
      }
    }
    QF_CHECK(!by_id.empty(), "the vocabulary is empty");
    QF_CHECK(by_id.rbegin()->first + 1 == by_id.size(),
             "token ids are not contiguous: {} tokens but the largest id is {}", by_id.size(),
             by_id.rbegin()->first);
    v.tokens.reserve(by_id.size());
    for (auto& [id, token] : by_id) v.tokens.push_back(std::move(token));
    const size_t n = v.tokens.size();
    std::unordered_map<std::string_view, int32_t> ids;
    for (size_t i = 0; i < n; ++i) {
      QF_CHECK(ids.emplace(v.tokens[i], static_cast<int32_t>(i)).second, "token {} appears twice",
               quote(v.tokens[i]));
    }
    const auto id_of = [&](const std::string& token) -> int32_t {
      const auto it = ids.find(token);
      return it == ids.end() ? -1 : it->second;
    };

    // Types.
    v.types.assign(n, TokenType::Normal);
    if (const std::string unk = string_field(model, "unk_token"); !unk.empty()) {
      v.unk_id = id_of(unk);
      QF_CHECK(v.unk_id >= 0, "unk_token {} is not in the vocabulary", quote(unk));
    }
    if (v.kind == VocabKind::SentencePiece && byte_fallback) {
      for (size_t i = 0; i < n; ++i) {
        if (parse_byte_piece(v.tokens[i]) >= 0) v.types[i] = TokenType::Byte;
      }
    }
    for (const Added& a : added) v.types[a.id] = a.special ? TokenType::Control : TokenType::UserDefined;
    if (v.unk_id >= 0) v.types[v.unk_id] = TokenType::Unknown;

    // Merges.
    const auto merges_it = model.find("merges");
    QF_CHECK(merges_it != model.end() && merges_it->is_array(), "model.merges must be a list");
    std::vector<float> merge_score(n, 0.0f);
    std::vector<bool> made_by_merge(n, false);
    size_t rank = 0;
    std::string left, right;
    for (const auto& m : *merges_it) {
      if (m.is_string()) {
        const std::string& s = m.get_ref<const std::string&>();
        const size_t space = s.find(' ');
        QF_CHECK(space != std::string::npos && space > 0 && space + 1 < s.size() &&
                     s.find(' ', space + 1) == std::string::npos,
                 "merge {} ({}) is not two tokens separated by one space", rank, quote(s));
        left = s.substr(0, space);
        right = s.substr(space + 1);
      } else {
        QF_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(),
                 "merge {} ({}) is neither \"a b\" nor [\"a\", \"b\"]", rank, quote(m.dump()));
        left = m[0].get<std::string>();
        right = m[1].get<std::string>();
      }
      QF_CHECK(id_of(left) >= 0, "merge {} refers to unknown token {}", rank, quote(left));
      QF_CHECK(id_of(right) >= 0, "merge {} refers to unknown token {}", rank, quote(right));
      const int32_t merged = id_of(left + right);
      QF_CHECK(merged >= 0, "merge {} ({} + {}) makes {}, which is not in the vocabulary", rank, quote(left),
               quote(right), quote(left + right));
      if (v.kind == VocabKind::ByteLevelBPE) {
        QF_CHECK(left.find(' ') == std::string::npos && right.find(' ') == std::string::npos,
                 "merge {} has a token with a space, which a byte-level vocabulary cannot hold", rank);
        v.merges.push_back(left + " " + right);
      } else if (!made_by_merge[merged]) {
        made_by_merge[merged] = true;
        merge_score[merged] = -static_cast<float>(rank);
      }
      ++rank;
    }
    if (v.kind == VocabKind::SentencePiece) {
      // Scores that make "highest score first" equal "lowest merge rank first";
      // pieces no merge makes rank after every merge.
      v.scores.resize(n);
      for (size_t i = 0; i < n; ++i) {
        if (made_by_merge[i]) {
          v.scores[i] = merge_score[i];
        } else if (v.types[i] == TokenType::Normal) {
          v.scores[i] = -static_cast<float>(rank + i);
        } else {
          v.scores[i] = 0.0f;
        }
      }
    }

    // BOS / EOS: the post-processor's template, tokenizer_config.json, usual names.
    std::optional<bool> add_bos;
    std::vector<const Json*> post;
    flatten(member(root, "post_processor"), "processors", post);
    for (const Json* p : post) {
      if (type_of(*p) != "TemplateProcessing") continue;
      const auto single = p->find("single");
      if (single == p->end() || !single->is_array() || single->empty()) continue;
      const Json& first = (*single)[0];
      add_bos = false;
      if (first.is_object() && first.contains("SpecialToken")) {
        const std::string name = string_field(first["SpecialToken"], "id");
        int32_t id = id_of(name);
        if (const auto st = p->find("special_tokens"); st != p->end() && st->is_object() && st->contains(name)) {
          const Json& ids_json = (*st)[name]["ids"];
          if (ids_json.is_array() && ids_json.size() == 1) {
            const auto x = formats::json_to_uint(ids_json[0]);
            if (x && *x < n) id = static_cast<int32_t>(*x);
          }
        }
        QF_CHECK(id >= 0, "post_processor: special token {} is not in the vocabulary", quote(name));
        v.bos_id = id;
        add_bos = true;
      }
    }
    const auto config_path = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
    std::error_code ec;
    if (std::filesystem::is_regular_file(config_path, ec)) {
      const Json config = read_json_file(config_path.string());
      with_context(config_path.string(), [&] {
        QF_CHECK(config.is_object(), "expected a JSON object at the top level");
        const auto lookup = [&](const char* key, int32_t& slot) {
          if (const auto name = config_token(config, key)) {
            const int32_t id = id_of(*name);
            QF_CHECK(id >= 0, "{} {} is not in {}", key, quote(*name), path);
            slot = id;
          }
        };
        lookup("bos_token", v.bos_id);
        lookup("eos_token", v.eos_id);
        lookup("unk_token", v.unk_id);
        lookup("pad_token", v.pad_id);
        if (config.contains("add_bos_token")) add_bos = bool_field(config, "add_bos_token", true);
      });
    }
    const auto guess = [&](int32_t& slot, std::initializer_list<const char*> names) {
      for (const char* name : names) {
        if (slot < 0) slot = id_of(name);
      }
    };
    if (v.kind == VocabKind::SentencePiece) {
      guess(v.bos_id, {"<s>", "<bos>", "<|begin_of_text|>"});
      guess(v.eos_id, {"</s>", "<eos>", "<|end_of_text|>", "<|endoftext|>"});
    } else {
      guess(v.eos_id, {"<|endoftext|>", "<|end_of_text|>", "</s>"});
      guess(v.bos_id, {"<|begin_of_text|>", "<|startoftext|>", "<s>", "<|endoftext|>"});
    }
    v.add_bos = add_bos.value_or(v.kind == VocabKind::SentencePiece) && v.bos_id >= 0;
    validate_vocab(v);
  });
  return v;
}

}  // namespace qf::tokenizer
