#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "chat/chat_template.h"
#include "checkpoint/loaded_model.h"
#include "cli/cache_options.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/shared_options.h"
#include "plan/sequence_capacity.h"
#include "serve/server.h"
#include "util/memory_info.h"

namespace thinkeys::cli {

namespace {

std::atomic<int> g_signal{0};

void on_signal(int sig) { g_signal = sig; }

// The base of --cache-fraction.
std::size_t available_memory_bytes() {
  const std::size_t avail = mem_available_bytes();
  if (avail == 0) throw Error("cannot read MemAvailable from /proc/meminfo; pass --cache-mb");
  return avail;
}

std::string model_name_of(const std::string& path) {
  std::filesystem::path p(path);
  while (!p.empty() && !p.has_filename()) p = p.parent_path();
  return std::filesystem::is_directory(p) ? p.filename().string() : p.stem().string();
}

}  // namespace

Command add_serve(CLI::App& app) {
  struct Opts {
    std::string model, tokenizer, chat_template, host = "127.0.0.1", api_key, model_name;
    int port = 8080;
    CacheOptions cache;
    std::string weights = "stored";
    double cache_fraction = 0;
    int max_batch = 8, max_queue = 64, ctx = 0, prefill_chunk = 256, reserve_tokens = -1;
    double drain_seconds = 10, ping_seconds = 5;
    bool quiet = false;
  };
  auto opts = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "serve", "Serve a model over an OpenAI-compatible HTTP API with continuous batching");
  add_model_argument(sub, opts->model);
  sub->add_option("--host", opts->host, "Address to listen on");
  sub->add_option("--port", opts->port, "Port to listen on (0: any free port)")
      ->check(CLI::Range(0, 65535));
  CLI::Option* mb = add_cache_options(sub, opts->cache);
  sub->add_option("--cache-fraction", opts->cache_fraction,
                  "KV cache budget as a fraction of available memory (MemAvailable)")
      ->check(CLI::Range(0.0001, 0.95))
      ->excludes(mb);
  sub->add_option("--reserve-tokens", opts->reserve_tokens,
                  "Generated tokens admission reserves cache for, per request (default: all of "
                  "its max_tokens, so running requests are never preempted; 0: the prompt "
                  "only, more run at once and preempt each other when the pool runs out)")
      ->check(CLI::Range(-1, 1 << 30));
  sub->add_option("--max-batch", opts->max_batch, "Sequences running at once")
      ->check(CLI::Range(1, 4096));
  sub->add_option("--max-queue", opts->max_queue,
                  "Requests waiting beyond the batch; more get 503 with Retry-After")
      ->check(CLI::Range(0, 100000));
  sub->add_option("--ctx", opts->ctx, "Per-sequence token limit (default: the model's)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--prefill-chunk", opts->prefill_chunk,
                  "Prompt tokens prefilled per scheduler iteration, so running streams keep "
                  "flowing during long prompts")
      ->check(CLI::Range(1, 1 << 20));
  sub->add_option("--api-key", opts->api_key,
                  "Require 'Authorization: Bearer KEY' (not on /health and /metrics)");
  add_weights_option(sub, opts->weights);
  sub->add_option("--model-name", opts->model_name,
                  "Model id in /v1/models and requests (default: the model's file or folder name)");
  add_tokenizer_option(sub, opts->tokenizer);
  sub->add_option("--chat-template", opts->chat_template,
                  "Chat template for /v1/chat/completions: a built-in name (chatml, llama2, "
                  "llama3, mistral) or a file (default: the model's own; none: chat is a 400)");
  sub->add_option("--drain-seconds", opts->drain_seconds,
                  "On SIGINT/SIGTERM, time running requests get to finish before they are "
                  "cancelled")
      ->check(CLI::Range(0.0, 3600.0));
  sub->add_option("--ping-seconds", opts->ping_seconds,
                  "A stream with nothing to send for this long (queued or prefilling) gets an "
                  "SSE ': ping' comment, so proxies and clients do not time it out")
      ->check(CLI::Range(0.01, 3600.0));
  sub->add_flag("--quiet,-q", opts->quiet, "No per-request log lines");
  return {sub, [opts] {
            struct sigaction sa {};
            sa.sa_handler = on_signal;
            sigemptyset(&sa.sa_mask);
            sigaction(SIGINT, &sa, nullptr);
            sigaction(SIGTERM, &sa, nullptr);
            std::signal(SIGPIPE, SIG_IGN);

            serve::ServerOptions so;
            so.host = opts->host;
            so.port = opts->port;
            so.api_key = opts->api_key;
            so.model_name =
                opts->model_name.empty() ? model_name_of(opts->model) : opts->model_name;
            so.http_threads = opts->max_batch + opts->max_queue + 8;
            so.drain_seconds = opts->drain_seconds;
            so.ping_seconds = opts->ping_seconds;
            so.log_requests = !opts->quiet;
            serve::HttpServer server(so);
            server.start();  // /health says 503 while the model loads
            std::fprintf(stderr, "listening on http://%s:%d (model loading)\n", so.host.c_str(),
                         server.port());

            const LoadedModel lm = load_model_handle(opts->model, weights_choice(opts->weights));
            const Model& m = lm.model();
            ModelTokenizer mt = model_tokenizer(opts->model, opts->tokenizer, &m);
            const Tokenizer* tp = mt.tokenizer.get();
            const TokenizerConventions& conv = mt.conventions;
            std::optional<chat::ChatTemplate> tmpl;
            if (!opts->chat_template.empty() || conv.chat_template)
              tmpl = chat::resolve_chat_template(opts->chat_template, conv);
            serve::SchedulerOptions sch;
            sch.cache = cache_spec(opts->cache);
            if (opts->cache_fraction > 0)
              sch.cache.budget_bytes =
                  static_cast<std::size_t>(opts->cache_fraction * available_memory_bytes());
            sch.threads = attention_threads(opts->cache);
            sch.reserve_tokens = opts->reserve_tokens;
            sch.max_batch = opts->max_batch;
            sch.max_queue = opts->max_queue;
            sch.ctx = opts->ctx;
            sch.prefill_chunk = opts->prefill_chunk;
            serve::Scheduler scheduler(m, sch);

            // The planner's accounting: the block layout the pool itself uses.
            SequenceCapacity cap = sequence_capacity(lm.config(), sch.cache, scheduler.ctx());
            // The server stops every sequence at its context, however many blocks are free.
            cap.longest_tokens = std::min<long long>(cap.longest_tokens, scheduler.ctx());
            std::fprintf(stderr, "KV cache: K %s, V %s, %.1f bytes/token; %s\n",
                         to_string(sch.cache.key_dtype), to_string(sch.cache.value_dtype),
                         scheduler.cache().bytes_per_token(), describe(cap).c_str());
            serve::ServedModel sm;
            sm.tokenizer = tp;
            sm.vocab_size = lm.config().vocab_size;
            const Model* mp = &m;
            const ModelTokenizer* mtp = &mt;
            sm.encode_prompt = [mp, mtp](const std::string& text) {
              return prompt_tokens(*mp, *mtp, text, -1);
            };
            if (tmpl)
              sm.render_chat = [&tmpl, &conv, tp](const std::vector<serve::ChatMessage>& msgs,
                                                  bool add_generation_prompt) {
                nlohmann::json arr = nlohmann::json::array();
                for (const auto& x : msgs)
                  arr.push_back({{"role", x.role}, {"content", x.content}});
                try {
                  return conv.encode(*tp, tmpl->render(arr, add_generation_prompt, conv), false);
                } catch (const Error& e) {
                  throw serve::ApiError(400, std::string("chat template: ") + e.what());
                }
              };
            // Every end-of-text id stops a sequence: the tokenizer conventions'
            // stop ids, and EOS/BOS as `thinkeys generate` stops at them.
            std::vector<std::optional<int32_t>> ids = {lm.config().eos_id, lm.config().bos_id,
                                                       tp->eos_id()};
            for (int32_t id : conv.stop_ids) ids.push_back(id);
            for (auto id : ids)
              if (id && std::find(sm.stop_tokens.begin(), sm.stop_tokens.end(), *id) ==
                            sm.stop_tokens.end())
                sm.stop_tokens.push_back(*id);
            sm.scheduler = &scheduler;
            server.set_ready(sm);
            std::fprintf(stderr, "ready: serving '%s' on http://%s:%d\n", so.model_name.c_str(),
                         so.host.c_str(), server.port());
            while (g_signal.load() == 0)
              std::this_thread::sleep_for(std::chrono::milliseconds(100));
            std::fprintf(stderr, "signal %d: stopping (running requests get %.0f s)\n",
                         g_signal.load(), so.drain_seconds);
            server.shutdown();
            std::fprintf(stderr, "stopped\n");
          }};
}

}  // namespace thinkeys::cli
