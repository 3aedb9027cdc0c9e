// thinkeys chat: an interactive conversation in the terminal. Each turn the
// whole conversation is rendered with the chat template and tokenized; the
// tokens the paged cache already holds (the longest common prefix with what
// it held after the previous answer) are reused and only the rest is
// prefilled, then the answer streams token by token.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "chat/chat_template.h"
#include "checkpoint/loaded_model.h"
#include "cli/cache_options.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/shared_options.h"
#include "runtime/batch_decoder.h"
#include "runtime/sampler.h"
#include "util/atomic_output.h"
#include "util/error.h"

namespace thinkeys::cli {
namespace {

using Json = nlohmann::ordered_json;

std::string trimmed(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  std::size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

}  // namespace

Command add_chat(CLI::App& app) {
  struct Opts {
    std::string model, tokenizer, system, chat_template, transcript;
    std::string weights = "stored";
    CacheOptions cache;
    int n = 512;
    SamplingParams sampling;
  };
  auto opts = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "chat", "Talk to an instruction-tuned model in the terminal (type /exit or Ctrl-D to leave)");
  add_model_argument(sub, opts->model);
  sub->add_option("--system", opts->system, "System prompt");
  add_chat_template_option(sub, opts->chat_template);
  add_tokenizer_option(sub, opts->tokenizer);
  sub->add_option("--transcript", opts->transcript,
                  "Write the conversation as JSON messages to this file after every answer");
  sub->add_option("-n,--tokens", opts->n, "Maximum tokens per answer")->check(CLI::PositiveNumber);
  add_sampling_options(sub, opts->sampling);
  add_cache_options(sub, opts->cache);
  add_weights_option(sub, opts->weights);
  return {
      sub, [opts] {
        const LoadedModel lm = load_model_handle(opts->model, weights_choice(opts->weights));
        const Model& m = lm.model();
        ModelTokenizer mt = model_tokenizer(opts->model, opts->tokenizer, &m);
        const Tokenizer& tok = *mt.tokenizer;
        const TokenizerConventions& conv = mt.conventions;
        const chat::ChatTemplate tmpl = chat::resolve_chat_template(opts->chat_template, conv);
        const SamplingParams& sampling = opts->sampling;
        sampling.validate();
        Sampler sampler(sampling);

        BatchDecoderOptions dopts;
        dopts.cache = cache_spec(opts->cache);
        dopts.threads = attention_threads(opts->cache);
        BatchDecoder dec(m, dopts);
        const int max_context = lm.config().positions == PositionKind::Learned
                                    ? lm.config().max_positions
                                    : std::numeric_limits<int>::max();

        std::fprintf(stderr, "chat with %s (%s; K %s, V %s cache); stop ids:", opts->model.c_str(),
                     tmpl.origin().c_str(), to_string(dopts.cache.key_dtype),
                     to_string(dopts.cache.value_dtype));
        for (int32_t id : conv.stop_ids) std::fprintf(stderr, " %d", id);
        std::fprintf(stderr, "\ntype /exit or press Ctrl-D to leave, /reset to start over\n");

        Json messages = Json::array();
        if (!opts->system.empty())
          messages.push_back({{"role", "system"}, {"content", opts->system}});
        const std::size_t base_messages = messages.size();
        int seq = -1;
        std::vector<int32_t> cached;  // the tokens the cache holds for `seq`
        std::string line;
        while (true) {
          std::fputs("> ", stdout);
          std::fflush(stdout);
          if (!std::getline(std::cin, line)) {
            std::fputs("\n", stdout);
            break;
          }
          const std::string text = trimmed(line);
          if (text.empty()) continue;
          if (text == "/exit" || text == "/quit") break;
          if (text == "/reset") {
            messages.erase(messages.begin() + static_cast<std::ptrdiff_t>(base_messages),
                           messages.end());
            if (seq >= 0) dec.remove(seq);
            seq = -1;
            cached.clear();
            std::fprintf(stderr, "[conversation cleared]\n");
            continue;
          }
          messages.push_back({{"role", "user"}, {"content", text}});
          std::vector<int32_t> ids;
          try {
            ids = conv.encode(tok, tmpl.render(messages, true, conv), false);
          } catch (const Error& e) {
            messages.erase(messages.end() - 1);
            std::fprintf(stderr, "error: %s\n", e.what());
            continue;
          }
          if (static_cast<int>(ids.size()) >= max_context) {
            messages.erase(messages.end() - 1);
            std::fprintf(stderr,
                         "error: the conversation (%zu tokens) no longer fits the model's %d "
                         "positions; /reset to start over\n",
                         ids.size(), max_context);
            continue;
          }

          // Reuse what the cache holds; at least the last token is run
          // again so that there are logits to sample from.
          std::size_t reuse = seq >= 0 ? std::min(common_prefix(cached, ids), ids.size() - 1) : 0;
          const auto t0 = std::chrono::steady_clock::now();
          std::vector<float> prompt_logits;
          if (reuse == 0) {
            if (seq >= 0) dec.remove(seq);
            seq = dec.add(ids, &prompt_logits);
          } else {
            if (reuse < cached.size()) dec.truncate(seq, static_cast<int>(reuse));
            dec.extend(seq, std::span<const int32_t>(ids).subspan(reuse), &prompt_logits);
          }
          std::span<const float> logits = prompt_logits;
          const double prefill_s =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          cached = ids;
          std::fprintf(stderr,
                       "[prefill %zu new tokens, %zu reused from cache, %zu in context, %.2f s]\n",
                       ids.size() - reuse, reuse, ids.size(), prefill_s);

          std::string answer;
          // Decoded in context, so the answer is the exact text of its tokens
          // and the next turn's prompt re-tokenizes to them.
          int32_t prev = ids.back();
          int generated = 0;
          const auto t1 = std::chrono::steady_clock::now();
          bool context_full = false;
          for (; generated < opts->n; ++generated) {
            const int32_t t = sampler.sample(logits);
            if (conv.is_stop(t)) break;
            const std::string piece = tok.decode_next(prev, t);
            prev = t;
            answer += piece;
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
            if (static_cast<int>(cached.size()) + 1 >= max_context) {
              context_full = true;
              ++generated;
              break;
            }
            const int ids_one[1] = {seq};
            const int32_t tok_one[1] = {t};
            logits = dec.step(ids_one, tok_one).row(0);
            cached.push_back(t);
          }
          const double decode_s =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
          std::fputs("\n", stdout);
          std::fflush(stdout);
          std::fprintf(stderr, "[%d tokens at %.1f tokens/s%s]\n", generated,
                       decode_s > 0 ? generated / decode_s : 0.0,
                       context_full           ? "; context full"
                       : generated == opts->n ? "; token limit"
                                              : "");
          messages.push_back({{"role", "assistant"}, {"content", answer}});
          if (!opts->transcript.empty()) {
            write_text_atomically(opts->transcript, messages.dump(2) + "\n");
          }
        }
      }};
}

}  // namespace thinkeys::cli
