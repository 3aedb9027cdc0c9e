#include "serve/server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>

#include "serve/text_stream.h"
#include "tokenizer/tokenizer.h"

namespace thinkeys::serve {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status();
  if (e.status() == 503) res.set_header("Retry-After", "1");
  res.set_content(e.json(), "application/json");
}

ApiError unavailable(const std::string& why) { return ApiError(503, why, "unavailable_error"); }

// One entry of a response's log-probabilities.
struct LogprobEntry {
  std::string token;
  float logprob = 0;
  std::vector<std::pair<std::string, float>> top;
};

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

// The sink a request's tokens arrive in (scheduler thread) and the HTTP
// handler reads from (its own thread).
class ResponseStream : public RequestSink {
 public:
  ResponseStream(const Tokenizer& tok, int32_t prev, std::vector<std::string> stops, bool logprobs)
      : tok_(tok), prev_(prev), text_(std::move(stops)), logprobs_(logprobs) {}

  struct Delta {
    std::string text;
    std::vector<LogprobEntry> logprobs;
  };

  bool on_token(const TokenChoice& c) override {
    const std::string piece = tok_.decode_next(prev_, c.token);
    Delta d;
    d.text = text_.push(piece);
    if (logprobs_) {
      LogprobEntry e{piece, c.logprob, {}};
      for (auto& [t, lp] : c.top) e.top.emplace_back(tok_.decode_next(prev_, t), lp);
      d.logprobs.push_back(std::move(e));
    }
    prev_ = c.token;
    {
      std::lock_guard lock(mutex_);
      ++tokens_;
      if (tokens_ == 1) first_token_ = Clock::now();
      pending_.push_back(std::move(d));
    }
    cv_.notify_all();
    return !text_.stopped();
  }

  void on_finish(FinishReason reason, const std::string& message) override {
    std::string rest = text_.finish();
    {
      std::lock_guard lock(mutex_);
      if (!rest.empty()) pending_.push_back({std::move(rest), {}});
      done_ = true;
      reason_ = reason;
      message_ = message;
      finished_at_ = Clock::now();
    }
    cv_.notify_all();
  }

  // Waits up to `timeout` for news; moves pending deltas into `out`.
  // Returns true once the sequence has finished (and nothing is pending).
  bool wait(std::vector<Delta>& out, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return done_ || !pending_.empty(); });
    for (auto& d : pending_) out.push_back(std::move(d));
    pending_.clear();
    return done_;
  }

  FinishReason reason() const {
    std::lock_guard lock(mutex_);
    return reason_;
  }
  std::string message() const {
    std::lock_guard lock(mutex_);
    return message_;
  }
  int tokens() const {
    std::lock_guard lock(mutex_);
    return tokens_;
  }
  // Seconds to the first token and tokens/s after it, for the request log.
  std::pair<double, double> timing(Clock::time_point submitted) const {
    std::lock_guard lock(mutex_);
    if (tokens_ == 0) return {0, 0};
    const double ttft = std::chrono::duration<double>(first_token_ - submitted).count();
    const double rest = std::chrono::duration<double>(finished_at_ - first_token_).count();
    return {ttft, tokens_ > 1 && rest > 0 ? (tokens_ - 1) / rest : 0};
  }

 private:
  const Tokenizer& tok_;
  int32_t prev_;
  TextStream text_;  // scheduler thread only
  bool logprobs_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Delta> pending_;
  bool done_ = false;
  FinishReason reason_ = FinishReason::Error;
  std::string message_;
  int tokens_ = 0;
  Clock::time_point first_token_, finished_at_;
};

const char* finish_reason(FinishReason r) { return r == FinishReason::Length ? "length" : "stop"; }

}  // namespace

struct HttpServer::Impl {
  ServerOptions options;
  httplib::Server http;
  std::thread listener, decode;
  enum State { Loading, Ready, Stopping };
  std::atomic<int> state{Loading};
  ServedModel model;
  std::atomic<uint64_t> next_id{1};
  std::atomic<int> active_streams{0};
  std::mutex shutdown_mutex;
  bool shut_down = false;

  void routes();
  void check_auth(const httplib::Request& req) const;
  void check_ready() const {
    if (state.load() == Loading) throw unavailable("the model is still loading");
    if (state.load() == Stopping) throw unavailable("the server is shutting down");
  }
  void check_model(const SamplingFields& s) const {
    if (s.model && *s.model != options.model_name)
      throw ApiError(404,
                     "the model '" + *s.model + "' does not exist (this server serves '" +
                         options.model_name + "')",
                     "invalid_request_error", "model", "model_not_found");
  }
  void generate(const httplib::Request& req, httplib::Response& res, bool chat);
  std::string metrics_text() const;
};

HttpServer::HttpServer(ServerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
}

HttpServer::~HttpServer() { shutdown(); }

void HttpServer::Impl::check_auth(const httplib::Request& req) const {
  if (options.api_key.empty()) return;
  const std::string want = "Bearer " + options.api_key;
  if (!req.has_header("Authorization"))
    throw ApiError(401, "no API key given (send 'Authorization: Bearer KEY')",
                   "authentication_error", {}, "invalid_api_key");
  if (req.get_header_value("Authorization") != want)
    throw ApiError(401, "incorrect API key", "authentication_error", {}, "invalid_api_key");
}

void HttpServer::Impl::generate(const httplib::Request& req, httplib::Response& res, bool chat) {
  check_ready();
  check_auth(req);
  SamplingFields sampling;
  std::vector<int32_t> prompt;
  if (chat) {
    ChatRequest r = parse_chat_request(req.body);
    sampling = r.sampling;
    check_model(sampling);
    if (!model.render_chat)
      throw ApiError(
          400, "the model '" + options.model_name + "' has no chat template; use /v1/completions");
    prompt = model.render_chat(r.messages, r.add_generation_prompt);
  } else {
    CompletionRequest r = parse_completion_request(req.body);
    sampling = r.sampling;
    check_model(sampling);
    prompt = r.prompt_tokens ? *r.prompt_tokens : model.encode_prompt(*r.prompt_text);
    if (prompt.empty())
      throw ApiError(400, "the prompt has no tokens", "invalid_request_error", "prompt");
  }
  for (int32_t t : prompt)
    if (t >= model.vocab_size)
      throw ApiError(400,
                     "token id " + std::to_string(t) + " is outside the vocabulary (" +
                         std::to_string(model.vocab_size) + " tokens)",
                     "invalid_request_error", "prompt");
  Scheduler& sched = *model.scheduler;
  const int n = static_cast<int>(prompt.size());
  if (n >= sched.ctx())
    throw ApiError(400,
                   "this model's maximum context length is " + std::to_string(sched.ctx()) +
                       " tokens, but the prompt has " + std::to_string(n),
                   "invalid_request_error", chat ? "messages" : "prompt",
                   "context_length_exceeded");
  GenerationRequest g;
  g.prompt = prompt;
  // Unset, completions default to OpenAI's 16 tokens and chat runs to the
  // end of the context (or of what the pool could hold alone).
  g.max_new_tokens = sampling.max_tokens ? *sampling.max_tokens
                     : chat ? std::max(1, std::min(sched.ctx(), sched.pool_tokens() + 1) - n)
                            : 16;
  g.sampling.temperature = sampling.temperature;
  g.sampling.top_p = sampling.top_p;
  g.sampling.seed = sampling.seed ? *sampling.seed : std::random_device{}();
  g.stop_tokens = model.stop_tokens;
  g.top_logprobs = sampling.top_logprobs;
  auto stream = std::make_shared<ResponseStream>(*model.tokenizer, prompt.back(), sampling.stop,
                                                 sampling.top_logprobs >= 0);
  std::shared_ptr<Ticket> ticket;
  const auto submitted = Clock::now();
  try {
    ticket = sched.submit(std::move(g), stream);
  } catch (const Rejected& e) {
    switch (e.kind()) {
      case Rejected::Kind::QueueFull:
      case Rejected::Kind::Stopping:
        throw unavailable(e.what());
      case Rejected::Kind::ContextLength:
        throw ApiError(400, e.what(), "invalid_request_error", "max_tokens",
                       "context_length_exceeded");
      case Rejected::Kind::Invalid:
        throw ApiError(400, e.what());
    }
  }
  const std::string id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id++);
  const long long created = std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
  const bool logprobs = sampling.top_logprobs >= 0;
  auto log_line = [this, id, n, submitted, stream](const char* how = nullptr) {
    if (!options.log_requests) return;
    auto [ttft, rate] = stream->timing(submitted);
    std::fprintf(stderr,
                 "request %s: prompt %d tokens, generated %d, time to first token %.3f s, "
                 "%.1f tokens/s, %s\n",
                 id.c_str(), n, stream->tokens(), ttft, rate,
                 how ? how : to_string(stream->reason()));
  };
  // Log-probabilities in each endpoint's shape.
  auto completion_logprobs = [](const std::vector<LogprobEntry>& es, std::size_t offset0) {
    json tokens = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
    std::size_t off = offset0;
    for (const auto& e : es) {
      tokens.push_back(e.token);
      lps.push_back(e.logprob);
      json t = json::object();
      for (auto& [s, lp] : e.top) t[s] = lp;
      tops.push_back(t);
      offs.push_back(off);
      off += e.token.size();
    }
    return json{
        {"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
  };
  auto chat_logprobs = [](const std::vector<LogprobEntry>& es) {
    json content = json::array();
    for (const auto& e : es) {
      json top = json::array();
      for (auto& [s, lp] : e.top)
        top.push_back({{"token", s}, {"logprob", lp}, {"bytes", bytes_of(s)}});
      content.push_back({{"token", e.token},
                         {"logprob", e.logprob},
                         {"bytes", bytes_of(e.token)},
                         {"top_logprobs", top}});
    }
    return json{{"content", content}};
  };
  auto usage = [n](int generated) {
    return json{
        {"prompt_tokens", n}, {"completion_tokens", generated}, {"total_tokens", n + generated}};
  };
  const std::string model_name = options.model_name;

  if (!sampling.stream) {
    std::string text;
    std::vector<LogprobEntry> entries;
    bool done = false;
    while (!done) {
      std::vector<ResponseStream::Delta> ds;
      done = stream->wait(ds, std::chrono::milliseconds(1000));
      for (auto& d : ds) {
        text += d.text;
        for (auto& e : d.logprobs) entries.push_back(std::move(e));
      }
    }
    log_line();
    const FinishReason reason = stream->reason();
    if (reason == FinishReason::Cancelled) throw unavailable("the server is shutting down");
    if (reason == FinishReason::Error)
      throw ApiError(500, "generation failed: " + stream->message(), "server_error");
    json choice = {{"index", 0}, {"finish_reason", finish_reason(reason)}};
    if (chat) {
      choice["message"] = {{"role", "assistant"}, {"content", text}};
      choice["logprobs"] = logprobs ? chat_logprobs(entries) : json();
    } else {
      choice["text"] = text;
      choice["logprobs"] = logprobs ? completion_logprobs(entries, 0) : json();
    }
    json body = {{"id", id},
                 {"object", chat ? "chat.completion" : "text_completion"},
                 {"created", created},
                 {"model", model_name},
                 {"choices", json::array({choice})},
                 {"usage", usage(stream->tokens())}};
    res.set_content(dump(body), "application/json");
    return;
  }

  // Streaming: one SSE event per delta; ': ping' while nothing happens so a
  // long prefill does not look like a dead connection.
  struct StreamState {
    bool role_sent = false, finished = false;
    std::size_t text_offset = 0;
  };
  auto st = std::make_shared<StreamState>();
  ++active_streams;
  const bool include_usage = sampling.include_usage;
  const auto ping_after =
      std::chrono::milliseconds(std::max<long long>(1, std::llround(options.ping_seconds * 1000)));
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [=, this](std::size_t, httplib::DataSink& sink) {
        auto event = [&](const json& j) {
          const std::string s = "data: " + dump(j) + "\n\n";
          return sink.write(s.data(), s.size());
        };
        auto chunk = [&](json delta_or_text, const json& lp, const json& reason) {
          json c = {{"index", 0}, {"finish_reason", reason}};
          if (chat) {
            c["delta"] = std::move(delta_or_text);
            c["logprobs"] = lp;
          } else {
            c["text"] = std::move(delta_or_text);
            c["logprobs"] = lp;
          }
          return json{{"id", id},
                      {"object", chat ? "chat.completion.chunk" : "text_completion"},
                      {"created", created},
                      {"model", model_name},
                      {"choices", json::array({c})}};
        };
        if (chat && !st->role_sent) {
          st->role_sent = true;
          if (!event(chunk(json{{"role", "assistant"}, {"content", ""}}, json(), json())))
            return false;
        }
        std::vector<ResponseStream::Delta> ds;
        const bool done = stream->wait(ds, ping_after);
        if (ds.empty() && !done) {
          static const char ping[] = ": ping\n\n";
          return sink.write(ping, sizeof ping - 1);
        }
        for (auto& d : ds) {
          if (d.text.empty() && d.logprobs.empty()) continue;
          json lp;
          if (logprobs)
            lp =
                chat ? chat_logprobs(d.logprobs) : completion_logprobs(d.logprobs, st->text_offset);
          st->text_offset += d.text.size();
          json delta = chat ? json{{"content", d.text}} : json(d.text);
          if (!event(chunk(delta, lp, json()))) return false;
        }
        if (!done) return true;
        const FinishReason reason = stream->reason();
        if (reason == FinishReason::Cancelled || reason == FinishReason::Error) {
          ApiError e =
              reason == FinishReason::Cancelled
                  ? unavailable("the server is shutting down")
                  : ApiError(500, "generation failed: " + stream->message(), "server_error");
          event(json::parse(e.json()));
        } else {
          if (!event(chunk(chat ? json::object() : json(""), json(), finish_reason(reason))))
            return false;
          if (include_usage) {
            json u = {{"id", id},
                      {"object", chat ? "chat.completion.chunk" : "text_completion"},
                      {"created", created},
                      {"model", model_name},
                      {"choices", json::array()},
                      {"usage", usage(stream->tokens())}};
            if (!event(u)) return false;
          }
        }
        static const char end[] = "data: [DONE]\n\n";
        sink.write(end, sizeof end - 1);
        st->finished = true;
        sink.done();
        return true;
      },
      [this, ticket, st, log_line](bool) {
        // The client went away (or the write failed) before the end: the
        // sequence is cancelled and its blocks return at the next step.
        if (!st->finished) ticket->cancel();
        log_line(st->finished ? nullptr : "client disconnected, cancelled");
        --active_streams;
      });
}

std::string HttpServer::Impl::metrics_text() const {
  std::string out;
  auto gauge = [&](const char* name, const char* help, double v, const char* type = "gauge") {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + " " + buf + "\n";
  };
  gauge("thinkeys_ready", "1 once the model is loaded and requests are served",
        state.load() == Ready ? 1 : 0);
  if (!model.scheduler) return out;
  const SchedulerMetrics m = model.scheduler->metrics();
  gauge("thinkeys_requests_running", "Sequences in the running batch (prefilling or decoding)",
        m.running);
  gauge("thinkeys_requests_running_peak", "Most sequences running at once since the start",
        m.running_peak);
  gauge("thinkeys_requests_waiting", "Requests queued for admission", m.waiting);
  gauge("thinkeys_kv_blocks_used", "KV cache blocks held by sequences", m.blocks_used);
  gauge("thinkeys_kv_blocks_total", "KV cache blocks in the pool", m.blocks_total);
  gauge("thinkeys_kv_bytes_used", "KV cache bytes held by sequences",
        static_cast<double>(m.bytes_used));
  gauge("thinkeys_kv_bytes_total", "KV cache bytes in the pool",
        static_cast<double>(m.bytes_total));
  gauge("thinkeys_kv_cache_usage_ratio", "Fraction of KV cache blocks in use (0-1)",
        m.blocks_total ? static_cast<double>(m.blocks_used) / m.blocks_total : 0.0);
  gauge("thinkeys_prompt_tokens_total", "Prompt tokens prefilled",
        static_cast<double>(m.prompt_tokens), "counter");
  gauge("thinkeys_generation_tokens_total", "Tokens generated",
        static_cast<double>(m.generated_tokens), "counter");
  gauge("thinkeys_preemptions_total", "Sequences preempted (blocks freed, later recomputed)",
        static_cast<double>(m.preemptions), "counter");
  gauge("thinkeys_requests_finished_total", "Requests finished (any reason)",
        static_cast<double>(m.requests_finished), "counter");
  gauge("thinkeys_requests_cancelled_total",
        "Requests cancelled (client disconnected, or cancelled at shutdown)",
        static_cast<double>(m.requests_cancelled), "counter");
  gauge("thinkeys_requests_refused_total", "Requests refused because the queue was full",
        static_cast<double>(m.requests_refused), "counter");
  out += m.ttft_seconds.prometheus("thinkeys_time_to_first_token_seconds",
                                   "Time from submission to the first generated token");
  out += m.itl_seconds.prometheus("thinkeys_inter_token_latency_seconds",
                                  "Time between consecutive generated tokens of a sequence");
  return out;
}

void HttpServer::Impl::routes() {
  auto guarded = [this](auto body) {
    return [this, body](const httplib::Request& req, httplib::Response& res) {
      try {
        body(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const std::exception& e) {
        send_error(res, ApiError(500, e.what(), "server_error"));
      }
    };
  };
  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const int s = state.load();
    if (s == Ready) {
      res.set_content(R"({"status":"ok"})", "application/json");
    } else {
      send_error(res, unavailable(s == Loading ? "the model is still loading"
                                               : "the server is shutting down"));
    }
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_text(), "text/plain; version=0.0.4");
  });
  http.Get(
      "/v1/models", guarded([this](const httplib::Request& req, httplib::Response& res) {
        check_auth(req);
        json m = {{"id", options.model_name},
                  {"object", "model"},
                  {"created", 0},
                  {"owned_by", "thinkeys"}};
        res.set_content(dump({{"object", "list"}, {"data", json::array({m})}}), "application/json");
      }));
  http.Post("/v1/completions", guarded([this](const httplib::Request& req, httplib::Response& res) {
              generate(req, res, false);
            }));
  http.Post("/v1/chat/completions",
            guarded([this](const httplib::Request& req, httplib::Response& res) {
              generate(req, res, true);
            }));
  http.Post("/tokenize", guarded([this](const httplib::Request& req, httplib::Response& res) {
              check_ready();
              check_auth(req);
              TokenizeRequest r = parse_tokenize_request(req.body);
              std::vector<int32_t> t = r.add_special ? model.encode_prompt(r.content)
                                                     : model.tokenizer->encode(r.content);
              res.set_content(dump({{"tokens", t}}), "application/json");
            }));
  http.Post(
      "/detokenize", guarded([this](const httplib::Request& req, httplib::Response& res) {
        check_ready();
        check_auth(req);
        DetokenizeRequest r = parse_detokenize_request(req.body);
        for (int32_t t : r.tokens)
          if (t >= model.vocab_size)
            throw ApiError(400, "token id " + std::to_string(t) + " is outside the vocabulary",
                           "invalid_request_error", "tokens");
        res.set_content(dump({{"content", model.tokenizer->decode(r.tokens)}}), "application/json");
      }));
  // Statuses httplib sets itself (unknown route 404, oversized body 413)
  // still get OpenAI's error JSON.
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404)
      send_error(res, ApiError(404, "no route " + req.method + " " + req.path, "not_found_error"));
    else if (res.status == 413)
      send_error(res, ApiError(413, "the request body is too large", "invalid_request_error"));
    else
      send_error(res,
                 ApiError(res.status, "request failed with status " + std::to_string(res.status),
                          "invalid_request_error"));
  });
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        send_error(res, ApiError(500, what, "server_error"));
      });
}

void HttpServer::start() {
  Impl& m = *impl_;
  m.routes();
  m.http.set_payload_max_length(m.options.max_body_bytes);
  const int threads = std::max(4, m.options.http_threads);
  m.http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // Server-sent events are many small writes: without TCP_NODELAY, Nagle
  // holds each behind the previous one's delayed ACK (tens of ms a token).
  m.http.set_tcp_nodelay(true);
  // httplib's default sets SO_REUSEPORT, which lets a second server bind a
  // port that is in use (the kernel then splits connections between the
  // two); SO_REUSEADDR only allows a restart over TIME_WAIT connections.
  int listening = -1;
  m.http.set_socket_options([&listening](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listening = sock;
  });
  if (m.options.port == 0) {
    port_ = m.http.bind_to_any_port(m.options.host);
    if (port_ < 0) throw Error("cannot listen on " + m.options.host);
  } else {
    if (!m.http.bind_to_port(m.options.host, m.options.port))
      throw Error("cannot listen on " + m.options.host + ":" + std::to_string(m.options.port) +
                  " (in use, or not an address of this machine)");
    port_ = m.options.port;
  }
  // Debian's libcpp-httplib is built to listen with a backlog of 5: a burst
  // of clients (a load test, nginx retrying a replica) overflows it and the
  // kernel drops their SYNs, which they resend only a second later. Calling
  // listen() again on the bound socket raises it (capped by somaxconn).
  if (listening >= 0) ::listen(listening, 1024);
  m.listener = std::thread([&m] { m.http.listen_after_bind(); });
}

void HttpServer::set_ready(ServedModel model) {
  Impl& m = *impl_;
  m.model = std::move(model);
  Scheduler* s = m.model.scheduler;
  m.decode = std::thread([s] { s->run(); });
  m.state = Impl::Ready;
}

void HttpServer::shutdown() {
  Impl& m = *impl_;
  std::lock_guard lock(m.shutdown_mutex);
  if (m.shut_down) return;
  m.shut_down = true;
  m.state = Impl::Stopping;
  if (Scheduler* s = m.model.scheduler) {
    s->stop(false);
    const auto deadline =
        Clock::now() + std::chrono::milliseconds(static_cast<long>(m.options.drain_seconds * 1000));
    while (!s->idle() && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    s->stop(true);
  }
  if (m.decode.joinable()) m.decode.join();
  // Streams write their last events (finish or the shutdown error) and end.
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  while (m.active_streams.load() > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  m.http.stop();
  if (m.listener.joinable()) m.listener.join();
}

}  // namespace thinkeys::serve
