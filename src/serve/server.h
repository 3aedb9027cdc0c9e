#pragma once
// The OpenAI-compatible HTTP server behind `thinkeys serve`: routes,
// authentication, server-sent events, metrics, graceful stop. It listens
// before the model is loaded (so /health can say 503 while loading) and is
// handed the model and scheduler once they are ready. Torch-free header.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "serve/api_request.h"
#include "serve/scheduler.h"

namespace thinkeys {
class Tokenizer;
}

namespace thinkeys::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;     // empty: no authentication
  std::string model_name;  // the id /v1/models lists and requests must name (or omit)
  std::size_t max_body_bytes = std::size_t{8} << 20;  // larger bodies get 413
  int http_threads = 32;      // connections served at once (each stream holds one)
  double drain_seconds = 10;  // graceful stop: time running requests get to finish
  double ping_seconds = 5;    // a stream silent this long (queued, prefilling) gets ': ping'
  bool log_requests = true;   // one line per request on stderr
};

// What the server needs of the loaded model; the pointees outlive the server.
struct ServedModel {
  const Tokenizer* tokenizer = nullptr;
  int vocab_size = 0;
  // Text of a completion prompt to tokens (BOS as `thinkeys generate` adds it).
  std::function<std::vector<int32_t>(const std::string&)> encode_prompt;
  // Chat messages to prompt tokens by the model's template; empty when the
  // model has none (chat requests then get a 400 that says so).
  std::function<std::vector<int32_t>(const std::vector<ChatMessage>&, bool add_generation_prompt)>
      render_chat;
  std::vector<int32_t> stop_tokens;  // every end-of-text id
  Scheduler* scheduler = nullptr;
};

class HttpServer {
 public:
  explicit HttpServer(ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port (throws Error when it cannot) and serves on a background
  // thread; until set_ready() /health is 503 and so is every API route.
  void start();
  int port() const { return port_; }
  // The model is loaded: starts the scheduler's thread and serves requests.
  void set_ready(ServedModel model);
  // Graceful stop: refuses new requests (503), lets running ones finish for
  // up to drain_seconds, cancels the rest, closes the listener and joins
  // every thread. Safe to call more than once.
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace thinkeys::serve
