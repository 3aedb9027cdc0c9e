#pragma once
// Continuous batching over the paged KV cache: requests join and leave the
// running batch between decode steps, long prompts are prefilled in chunks
// (so running streams keep flowing), admission reserves the blocks a
// sequence will need (its prompt and, by default, every token max_tokens
// allows, so running sequences are never preempted and the number held at
// once is the planner's), and when a decode step still cannot get a block
// (a smaller reserve_tokens) the most recently admitted sequence is
// preempted (its blocks freed, its tokens kept) and later recomputed. One thread drives the decoder
// (iterate() or run()); any thread may submit and cancel. Torch-free header: the HTTP layer and the
// fuzz targets include it without libtorch.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cache/paged_kv_cache.h"
#include "runtime/sampler.h"
#include "serve/histogram.h"
#include "util/error.h"

namespace thinkeys {
class BatchDecoder;
struct Model;
}  // namespace thinkeys

namespace thinkeys::serve {

struct SchedulerOptions {
  CacheSpec cache;
  int threads = 1;          // attention threads of the decoder
  int max_batch = 8;        // sequences running (prefilling or decoding) at once
  int max_queue = 64;       // requests waiting beyond that; more are refused
  int prefill_chunk = 256;  // prompt tokens prefilled per iteration, across sequences
  int ctx = 0;              // per-sequence token limit (0: the model's positions)
  // Generated tokens admission reserves cache blocks for, per sequence: < 0
  // all of its max_tokens (a running sequence never needs a block it was
  // not promised, so nothing is preempted); 0 only the prompt (more run at
  // once, and they preempt each other when they outgrow the pool).
  int reserve_tokens = -1;
};

struct TokenChoice {
  int32_t token = 0;
  float logprob = 0;  // of the model's distribution (before temperature), natural log
  std::vector<std::pair<int32_t, float>> top;  // top_logprobs most likely, best first
};

enum class FinishReason { Stop, Length, Cancelled, Error };
const char* to_string(FinishReason r);

// Receives a sequence's tokens on the scheduler thread; keep it quick.
class RequestSink {
 public:
  virtual ~RequestSink() = default;
  // Returning false ends the sequence with reason Stop (a stop string matched).
  virtual bool on_token(const TokenChoice& choice) = 0;
  // Called once, last. For Error, `message` says why.
  virtual void on_finish(FinishReason reason, const std::string& message) = 0;
};

struct GenerationRequest {
  std::vector<int32_t> prompt;
  int max_new_tokens = 16;
  SamplingParams sampling;           // the seed gives this request its own random stream
  std::vector<int32_t> stop_tokens;  // end the sequence (and are not emitted)
  int top_logprobs = -1;             // < 0: no log-probabilities; 0: only the chosen token's
};

// Why submit() refused a request; the HTTP layer maps kinds to statuses.
class Rejected : public Error {
 public:
  enum class Kind { QueueFull, ContextLength, Invalid, Stopping };
  Rejected(Kind kind, const std::string& message) : Error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

// Wakes the scheduler thread; shared with tickets so a late cancel() after
// the scheduler is gone touches nothing freed.
struct Wakeup {
  std::mutex mutex;
  std::condition_variable cv;
  bool pending = false;
  void notify();
  // Waits until notified (or the timeout) and clears the flag.
  void wait_for(std::chrono::milliseconds timeout);
};

// A submitted request's handle: cancel() frees its blocks at the next step.
class Ticket {
 public:
  Ticket(uint64_t id, std::shared_ptr<Wakeup> wakeup) : id_(id), wakeup_(std::move(wakeup)) {}
  void cancel() {
    cancelled_ = true;
    wakeup_->notify();
  }
  bool cancelled() const { return cancelled_.load(); }
  uint64_t id() const { return id_; }

 private:
  uint64_t id_;
  std::shared_ptr<Wakeup> wakeup_;
  std::atomic<bool> cancelled_{false};
};

struct SchedulerMetrics {
  int running = 0, waiting = 0;
  int running_peak = 0;  // most sequences running at once since the start
  int blocks_used = 0, blocks_total = 0;
  std::size_t bytes_used = 0, bytes_total = 0;
  uint64_t prompt_tokens = 0, generated_tokens = 0;
  uint64_t preemptions = 0, requests_finished = 0, requests_refused = 0;
  uint64_t requests_cancelled = 0;  // by cancel() (client gone) or stop(true)
  Histogram ttft_seconds = Histogram::latency(), itl_seconds = Histogram::latency();
};

class Scheduler {
 public:
  // The model must outlive the scheduler.
  Scheduler(const Model& model, const SchedulerOptions& options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Thread-safe. Throws Rejected: QueueFull when max_queue requests wait,
  // ContextLength when the prompt does not fit ctx or prompt plus
  // max_new_tokens is larger than the whole pool, Invalid for bad tokens or
  // sampling values, Stopping after stop().
  std::shared_ptr<Ticket> submit(GenerationRequest request, std::shared_ptr<RequestSink> sink);

  // One scheduling iteration on the calling thread: drop cancelled
  // sequences, admit waiting ones, one decode step, one prefill chunk.
  // Returns false when there was nothing to do.
  bool iterate();
  // Iterates until stop(), sleeping while idle (the server's decode thread).
  void run();
  // Refuses new requests and wakes run(); with cancel_running, every
  // sequence (running or waiting) ends as Cancelled at the next iteration.
  void stop(bool cancel_running);
  bool idle() const;  // nothing running or waiting

  SchedulerMetrics metrics() const;
  const PagedKVCache& cache() const;  // scheduler thread only
  int ctx() const { return ctx_; }
  int pool_tokens() const;  // tokens the whole pool holds

 private:
  struct Sequence;
  int blocks_for(int tokens) const;
  // Tokens of cache a running sequence has been promised.
  int reserved_tokens(const Sequence& s) const;
  // Blocks promised to running sequences and not yet taken from the pool.
  int reserved_blocks() const;
  void admit();
  void decode_step();
  void prefill_chunk();
  void preempt(Sequence& s);
  void finish(Sequence& s, FinishReason reason, const std::string& message = {});
  // Samples from logits and hands the token on; false when the sequence ended.
  bool emit(Sequence& s, const float* logits, int vocab);
  void drop_finished();

  SchedulerOptions options_;
  int ctx_ = 0;
  std::unique_ptr<BatchDecoder> decoder_;

  std::shared_ptr<Wakeup> wakeup_ = std::make_shared<Wakeup>();
  mutable std::mutex mutex_;  // guards waiting_, stopping_, cancel_all_, metrics_
  bool stopping_ = false, cancel_all_ = false;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  SchedulerMetrics metrics_;
  uint64_t next_ticket_ = 1;

  // Scheduler thread only.
  std::vector<std::unique_ptr<Sequence>> running_;  // in admission order
  std::vector<float> prompt_logits_;  // a prefill's last logits, reused across prompts
  uint64_t admissions_ = 0;
};

}  // namespace thinkeys::serve
