// thinkeys tokenize: the ids and pieces of a text, or of a conversation
// rendered with the model's chat template.
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "chat/chat_template.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/shared_options.h"
#include "util/error.h"

namespace thinkeys::cli {

Command add_tokenize(CLI::App& app) {
  struct Opts {
    std::string model, tokenizer, text, messages, chat_template;
    bool add_generation_prompt = false, json = false;
  };
  auto opts = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "tokenize", "Token ids of a text, or of a conversation rendered with the chat template");
  add_model_argument(sub, opts->model);
  auto* text = sub->add_option("--text", opts->text,
                               "Text to tokenize (BOS/EOS added as the tokenizer's settings say)");
  auto* messages = sub->add_option("--messages", opts->messages,
                                   "JSON file holding an array of {role, content} messages");
  text->excludes(messages);
  sub->add_flag("--add-generation-prompt", opts->add_generation_prompt,
                "With --messages: end with the start of an assistant turn");
  add_chat_template_option(sub, opts->chat_template);
  add_tokenizer_option(sub, opts->tokenizer);
  sub->add_flag("--json", opts->json, "Print {\"text\": ..., \"ids\": [...]}");
  return {
      sub, [opts, text, messages] {
        if (text->count() == 0 && messages->count() == 0) {
          throw Error("tokenize needs --text TEXT or --messages FILE.json");
        }
        ModelTokenizer mt = model_tokenizer(opts->model, opts->tokenizer);
        std::string rendered = opts->text;
        std::vector<int32_t> ids;
        if (messages->count() > 0) {
          std::ifstream in(opts->messages, std::ios::binary);
          if (!in) throw Error("cannot read messages file '" + opts->messages + "'");
          std::ostringstream s;
          s << in.rdbuf();
          nlohmann::ordered_json conversation;
          try {
            conversation = nlohmann::ordered_json::parse(s.str());
          } catch (const nlohmann::json::exception& e) {
            throw Error("messages file '" + opts->messages + "' is not valid JSON: " + e.what());
          }
          const auto tmpl = chat::resolve_chat_template(opts->chat_template, mt.conventions);
          rendered = tmpl.render(conversation, opts->add_generation_prompt, mt.conventions);
          // The template writes BOS itself, as in Hugging Face's apply_chat_template.
          ids = mt.conventions.encode(*mt.tokenizer, rendered, false);
        } else {
          ids = mt.conventions.encode(*mt.tokenizer, rendered, true);
        }
        if (opts->json) {
          nlohmann::ordered_json out;
          out["text"] = rendered;
          out["ids"] = ids;
          std::printf("%s\n",
                      out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
          return;
        }
        std::printf("%s\n", rendered.c_str());
        std::printf("%zu tokens\n", ids.size());
        int32_t prev = -1;
        for (int32_t id : ids) {
          const std::string piece = mt.tokenizer->decode_next(prev, id);
          prev = id;
          std::printf("%8d  %s\n", id,
                      nlohmann::json(piece)
                          .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                          .c_str());
        }
      }};
}

}  // namespace thinkeys::cli
