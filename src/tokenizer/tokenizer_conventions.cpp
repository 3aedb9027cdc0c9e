#include "tokenizer/tokenizer_conventions.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "tokenizer/special_split.h"
#include "util/enum_names.h"
#include "util/error.h"

namespace thinkeys {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error("cannot read '" + p.string() + "'");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

json read_json(const fs::path& p) {
  try {
    return json::parse(read_text(p));
  } catch (const json::exception& e) {
    throw Error("'" + p.string() + "' is not valid JSON: " + e.what());
  }
}

fs::path directory_of(const fs::path& p) {
  std::error_code ec;
  if (fs::is_directory(p, ec)) return p;
  return p.parent_path().empty() ? fs::path(".") : p.parent_path();
}

// bos_token and friends are a string, an AddedToken object with "content",
// or null.
std::optional<std::string> token_text(const json& config, const char* key, const fs::path& file) {
  if (!config.contains(key) || config[key].is_null()) return std::nullopt;
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  throw Error("'" + file.string() + "': " + key + " must be a string or {\"content\": ...}, got " +
              v.dump());
}

std::vector<int32_t> token_ids(const json& v, const fs::path& file, const char* key) {
  std::vector<int32_t> out;
  if (v.is_null()) return out;
  if (v.is_number_integer()) return {v.get<int32_t>()};
  if (v.is_array()) {
    for (const json& x : v) {
      if (!x.is_number_integer()) break;
      out.push_back(x.get<int32_t>());
    }
    if (out.size() == v.size()) return out;
  }
  throw Error("'" + file.string() + "': " + key +
              " must be an integer or a list of integers, got " + v.dump());
}

// Tokenizer classes whose Hugging Face implementation defaults add_bos_token
// to true and applies it over the tokenizer.json post-processor.
bool defaults_to_bos(const std::string& tokenizer_class) {
  for (const char* c : {"LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer",
                        "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast"}) {
    if (tokenizer_class == c) return true;
  }
  return false;
}

const char* kind_name(TokenizerKind k) {
  static constexpr EnumName<TokenizerKind> kNames[] = {
      {TokenizerKind::TokenizerJson, "tokenizer.json"},
      {TokenizerKind::Gpt2Files, "GPT-2-style vocabulary + merges"},
      {TokenizerKind::SentencePiece, "SentencePiece tokenizer.model"},
      {TokenizerKind::Llama2c, "llama2.c tokenizer.bin"}};
  return enum_name<TokenizerKind>(kNames, k);
}

void add_special(TokenizerConventions& c, const std::string& text, int32_t id) {
  if (text.empty()) return;
  for (const auto& [t, i] : c.special_tokens) {
    if (t == text) return;
  }
  c.special_tokens.emplace_back(text, id);
}

}  // namespace

bool TokenizerConventions::is_stop(int32_t id) const {
  return std::find(stop_ids.begin(), stop_ids.end(), id) != stop_ids.end();
}

std::optional<int32_t> TokenizerConventions::special_id(std::string_view token) const {
  for (const auto& [t, id] : special_tokens) {
    if (t == token) return id;
  }
  return std::nullopt;
}

std::vector<int32_t> TokenizerConventions::encode(const Tokenizer& tok, std::string_view text,
                                                  bool add_special_tokens) const {
  std::vector<int32_t> out;
  if (add_special_tokens && add_bos) {
    if (!bos_id) throw Error("the tokenizer should start text with BOS but defines no BOS token");
    out.push_back(*bos_id);
  }
  // Leftmost special token first, the longest at a position (the list is
  // sorted longest first); the text between goes through the tokenizer.
  split_at_special_tokens(
      text, [this](unsigned char) -> const auto& { return special_tokens; },
      [&](std::string_view piece) {
        const auto ids = tok.encode(piece);
        out.insert(out.end(), ids.begin(), ids.end());
      },
      [&](int32_t id) { out.push_back(id); });
  if (add_special_tokens && add_eos) {
    if (!eos_id) throw Error("the tokenizer should end text with EOS but defines no EOS token");
    out.push_back(*eos_id);
  }
  return out;
}

json TokenizerConventions::to_json() const {
  json j;
  j["add_bos"] = add_bos;
  j["add_eos"] = add_eos;
  j["bos_rule"] = bos_rule;
  j["bos_token"] = bos_token.empty() ? json(nullptr) : json(bos_token);
  j["bos_id"] = bos_id ? json(*bos_id) : json(nullptr);
  j["eos_token"] = eos_token.empty() ? json(nullptr) : json(eos_token);
  j["eos_id"] = eos_id ? json(*eos_id) : json(nullptr);
  j["stop_ids"] = stop_ids;
  j["special_tokens"] = special_tokens.size();
  j["chat_template"] = chat_template ? json(chat_template_origin) : json(nullptr);
  j["files"] = files;
  return j;
}

TokenizerConventions load_tokenizer_conventions(const fs::path& model_path, const Tokenizer& tok,
                                                const fs::path& tokenizer_dir) {
  TokenizerConventions c;
  const fs::path model_dir = directory_of(model_path);
  std::vector<fs::path> dirs;
  if (!tokenizer_dir.empty()) dirs.push_back(directory_of(tokenizer_dir));
  dirs.push_back(model_dir);
  auto find = [&](const char* name) -> std::optional<fs::path> {
    for (const fs::path& d : dirs) {
      if (is_file(d / name)) return d / name;
    }
    return std::nullopt;
  };

  json config = json::object();
  std::optional<fs::path> config_file = find("tokenizer_config.json");
  if (config_file) {
    config = read_json(*config_file);
    if (!config.is_object()) throw Error("'" + config_file->string() + "' is not a JSON object");
    c.files.push_back(config_file->string());
  }

  // Special tokens: what the tokenizer declares, then tokenizer_config.json's.
  for (const auto& [text, id] : tok.added_tokens()) add_special(c, text, id);
  auto resolve = [&](const std::string& text, const char* what) -> int32_t {
    if (auto id = tok.token_id(text)) return *id;
    throw Error("'" + config_file->string() + "': " + what + " '" + text + "' is not a token of " +
                tok.describe());
  };
  if (config.contains("added_tokens_decoder")) {
    const json& decoder = config["added_tokens_decoder"];
    if (!decoder.is_object())
      throw Error("'" + config_file->string() + "': added_tokens_decoder must be an object");
    for (auto it = decoder.begin(); it != decoder.end(); ++it) {
      if (!it.value().is_object() || !it.value().contains("content")) continue;
      int32_t id = 0;
      try {
        id = std::stoi(it.key());
      } catch (const std::exception&) {
        throw Error("'" + config_file->string() + "': added_tokens_decoder key '" + it.key() +
                    "' is not an id");
      }
      add_special(c, it.value()["content"].get<std::string>(), id);
    }
  }
  if (config.contains("additional_special_tokens") &&
      config["additional_special_tokens"].is_array()) {
    for (const json& t : config["additional_special_tokens"]) {
      const std::string text = t.is_object() ? t.value("content", "") : t.get<std::string>();
      add_special(c, text, resolve(text, "additional special token"));
    }
  }

  const std::optional<std::string> bos_text =
      config_file ? token_text(config, "bos_token", *config_file) : std::nullopt;
  const std::optional<std::string> eos_text =
      config_file ? token_text(config, "eos_token", *config_file) : std::nullopt;
  if (config_file) {
    c.unk_token = token_text(config, "unk_token", *config_file);
    c.pad_token = token_text(config, "pad_token", *config_file);
  }

  // BOS and EOS: named in tokenizer_config.json, else the format's own.
  const PostProcessor post = tok.post_processor();
  if (bos_text) {
    c.bos_token = *bos_text;
    c.bos_id = resolve(*bos_text, "bos_token");
  } else if (!config_file || !config.contains("bos_token")) {
    c.bos_id = !post.before.empty() ? std::optional<int32_t>(post.before.front()) : tok.bos_id();
  }
  if (eos_text) {
    c.eos_token = *eos_text;
    c.eos_id = resolve(*eos_text, "eos_token");
  } else if (!config_file || !config.contains("eos_token")) {
    c.eos_id = tok.eos_id();
  }
  auto spelled = [&](std::optional<int32_t> id) -> std::string {
    if (!id) return {};
    for (const auto& [text, i] : c.special_tokens) {
      if (i == *id) return text;
    }
    return tok.decode(std::vector<int32_t>{*id});
  };
  if (c.bos_token.empty()) c.bos_token = spelled(c.bos_id);
  if (c.eos_token.empty()) c.eos_token = spelled(c.eos_id);
  if (c.bos_id) add_special(c, c.bos_token, *c.bos_id);
  if (c.eos_id) add_special(c, c.eos_token, *c.eos_id);
  for (const auto& t : {c.unk_token, c.pad_token}) {
    if (t) {
      if (auto id = tok.token_id(*t)) add_special(c, *t, *id);
    }
  }

  // Whether text starts with BOS.
  const std::string tokenizer_class = config.value("tokenizer_class", "");
  if (config.contains("add_bos_token") && config["add_bos_token"].is_boolean()) {
    c.add_bos = config["add_bos_token"].get<bool>();
    c.bos_rule = std::string("add_bos_token: ") + (c.add_bos ? "true" : "false") +
                 " in tokenizer_config.json";
  } else if (defaults_to_bos(tokenizer_class)) {
    c.add_bos = true;
    c.bos_rule = tokenizer_class + " adds BOS by default";
  } else if (post.present) {
    c.add_bos = !post.before.empty();
    c.bos_rule = "tokenizer.json post-processor: " + post.description;
    if (c.add_bos) c.bos_id = post.before.front();
  } else {
    c.add_bos = tok.kind() == TokenizerKind::SentencePiece || tok.kind() == TokenizerKind::Llama2c;
    c.bos_rule = std::string("default for a ") + kind_name(tok.kind()) + ": " +
                 (c.add_bos ? "BOS" : "no BOS");
  }
  if (config.contains("add_eos_token") && config["add_eos_token"].is_boolean()) {
    c.add_eos = config["add_eos_token"].get<bool>();
  } else if (!defaults_to_bos(tokenizer_class) && post.present && !post.after.empty()) {
    c.add_eos = true;
    c.eos_id = post.after.back();
  }

  // Stop ids: EOS, plus every eos_token_id in generation_config.json, or in
  // config.json when there is no generation config.
  if (c.eos_id) c.stop_ids.push_back(*c.eos_id);
  // llama2.c's run.c stops at BOS: its models emit it between stories.
  if (tok.kind() == TokenizerKind::Llama2c && c.bos_id && !c.is_stop(*c.bos_id)) {
    c.stop_ids.push_back(*c.bos_id);
  }
  auto add_stops = [&](const fs::path& file) {
    const json j = read_json(file);
    if (!j.is_object()) throw Error("'" + file.string() + "' is not a JSON object");
    c.files.push_back(file.string());
    if (!j.contains("eos_token_id")) return false;
    for (int32_t id : token_ids(j["eos_token_id"], file, "eos_token_id")) {
      if (id < 0 || id >= tok.vocab_size()) {
        throw Error("'" + file.string() + "': eos_token_id " + std::to_string(id) +
                    " is outside the vocabulary of " + std::to_string(tok.vocab_size()));
      }
      if (!c.is_stop(id)) c.stop_ids.push_back(id);
    }
    return true;
  };
  bool have_stops = false;
  if (is_file(model_dir / "generation_config.json")) {
    have_stops = add_stops(model_dir / "generation_config.json");
  }
  if (!have_stops && is_file(model_dir / "config.json")) add_stops(model_dir / "config.json");

  // The chat template: chat_template.jinja (newer transformers) or
  // tokenizer_config.json's chat_template (a string, or named templates of
  // which "default" is used).
  if (auto jinja = find("chat_template.jinja")) {
    c.chat_template = read_text(*jinja);
    c.chat_template_origin = jinja->string();
    c.files.push_back(jinja->string());
  } else if (config.contains("chat_template") && !config["chat_template"].is_null()) {
    const json& t = config["chat_template"];
    if (t.is_string()) {
      c.chat_template = t.get<std::string>();
    } else if (t.is_array()) {
      for (const json& named : t) {
        if (named.is_object() && named.value("name", "") == "default" &&
            named.contains("template") && named["template"].is_string()) {
          c.chat_template = named["template"].get<std::string>();
        }
      }
      if (!c.chat_template) {
        throw Error("'" + config_file->string() +
                    "' has named chat templates but none called \"default\"; pass "
                    "--chat-template");
      }
    } else {
      throw Error("'" + config_file->string() + "': chat_template must be a string or a list");
    }
    c.chat_template_origin = config_file->string();
  }

  std::stable_sort(c.special_tokens.begin(), c.special_tokens.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  return c;
}

}  // namespace thinkeys
