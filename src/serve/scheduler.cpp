#include "serve/scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "runtime/batch_decoder.h"
#include "util/enum_names.h"

namespace thinkeys::serve {

using Clock = std::chrono::steady_clock;

const char* to_string(FinishReason r) {
  static constexpr EnumName<FinishReason> kNames[] = {{FinishReason::Stop, "stop"},
                                                      {FinishReason::Length, "length"},
                                                      {FinishReason::Cancelled, "cancelled"},
                                                      {FinishReason::Error, "error"}};
  return enum_name<FinishReason>(kNames, r);
}

void Wakeup::notify() {
  {
    std::lock_guard lock(mutex);
    pending = true;
  }
  cv.notify_all();
}

void Wakeup::wait_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex);
  cv.wait_for(lock, timeout, [&] { return pending; });
  pending = false;
}

struct Scheduler::Sequence {
  GenerationRequest request;
  std::shared_ptr<RequestSink> sink;
  std::shared_ptr<Ticket> ticket;
  Sampler sampler;
  // The prompt, then every token generated so far; kept over preemption.
  std::vector<int32_t> tokens;
  int prompt_len = 0, generated = 0;
  int id = -1;     // decoder sequence, -1 while not holding blocks
  int cached = 0;  // tokens in the decoder's cache
  int target = 0;  // tokens to prefill before decoding (set on admission)
  uint64_t admitted = 0;
  bool finished = false;
  Clock::time_point submitted, last_token;

  Sequence(GenerationRequest r, std::shared_ptr<RequestSink> s, std::shared_ptr<Ticket> t)
      : request(std::move(r)), sink(std::move(s)), ticket(std::move(t)), sampler(request.sampling) {
    tokens = request.prompt;
    prompt_len = static_cast<int>(tokens.size());
  }
  bool prefilling() const { return cached < target; }
};

Scheduler::Scheduler(const Model& model, const SchedulerOptions& options) : options_(options) {
  if (options_.max_batch < 1) throw Error("--max-batch must be at least 1");
  if (options_.max_queue < 0) throw Error("--max-queue must be >= 0");
  if (options_.prefill_chunk < 1) throw Error("--prefill-chunk must be at least 1");
  decoder_ =
      std::make_unique<BatchDecoder>(model, BatchDecoderOptions{options_.cache, options_.threads});
  const ModelConfig& c = decoder_->config();
  const int model_ctx = c.max_positions > 0 ? c.max_positions : std::numeric_limits<int>::max();
  if (options_.ctx < 0) throw Error("--ctx must be positive");
  if (options_.ctx > 0 && c.positions == PositionKind::Learned && options_.ctx > model_ctx)
    throw Error("--ctx " + std::to_string(options_.ctx) + " exceeds the model's " +
                std::to_string(model_ctx) + " learned positions");
  ctx_ = options_.ctx > 0 ? options_.ctx : model_ctx;
  std::lock_guard lock(mutex_);
  metrics_.blocks_total = decoder_->cache().total_blocks();
  metrics_.bytes_total = decoder_->cache().capacity_bytes();
}

Scheduler::~Scheduler() = default;

const PagedKVCache& Scheduler::cache() const { return decoder_->cache(); }

int Scheduler::pool_tokens() const {
  return decoder_->cache().total_blocks() * decoder_->cache().block_tokens();
}

int Scheduler::blocks_for(int tokens) const {
  const int bt = decoder_->cache().block_tokens();
  return (tokens + bt - 1) / bt;
}

std::shared_ptr<Ticket> Scheduler::submit(GenerationRequest request,
                                          std::shared_ptr<RequestSink> sink) {
  using K = Rejected::Kind;
  const int V = decoder_->config().vocab_size;
  const int n = static_cast<int>(request.prompt.size());
  if (n == 0) throw Rejected(K::Invalid, "the prompt has no tokens");
  for (int32_t t : request.prompt)
    if (t < 0 || t >= V)
      throw Rejected(K::Invalid, "token id " + std::to_string(t) + " is outside the vocabulary (" +
                                     std::to_string(V) + " tokens)");
  if (request.max_new_tokens < 0) throw Rejected(K::Invalid, "max_tokens must be >= 0");
  try {
    request.sampling.validate();
  } catch (const Error& e) {
    throw Rejected(K::Invalid, e.what());
  }
  if (n >= ctx_)
    throw Rejected(K::ContextLength, "this model's context is " + std::to_string(ctx_) +
                                         " tokens, but the prompt has " + std::to_string(n) +
                                         " (at least one token must remain to generate)");
  request.max_new_tokens = std::min(request.max_new_tokens, ctx_ - n);
  // The decode step that chose the last token never feeds it, so the cache
  // holds at most prompt + max_new - 1 tokens; a sequence alone in the pool
  // can always finish, which is what makes preemption livelock-free.
  const int peak = n + std::max(request.max_new_tokens - 1, 0);
  if (peak > pool_tokens())
    throw Rejected(K::ContextLength, "the request needs " + std::to_string(peak) +
                                         " tokens of KV cache, more than the whole pool holds (" +
                                         std::to_string(pool_tokens()) + ")");
  std::lock_guard lock(mutex_);
  if (stopping_) throw Rejected(K::Stopping, "the server is shutting down");
  if (static_cast<int>(waiting_.size()) >= options_.max_queue) {
    ++metrics_.requests_refused;
    throw Rejected(K::QueueFull, "the queue is full (" + std::to_string(options_.max_queue) +
                                     " requests waiting); retry later");
  }
  auto ticket = std::make_shared<Ticket>(next_ticket_++, wakeup_);
  auto s = std::make_unique<Sequence>(std::move(request), std::move(sink), ticket);
  s->submitted = Clock::now();
  waiting_.push_back(std::move(s));
  metrics_.waiting = static_cast<int>(waiting_.size());
  wakeup_->notify();
  return ticket;
}

void Scheduler::stop(bool cancel_running) {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    cancel_all_ = cancel_all_ || cancel_running;
  }
  wakeup_->notify();
}

bool Scheduler::idle() const {
  std::lock_guard lock(mutex_);
  return metrics_.running == 0 && waiting_.empty();
}

SchedulerMetrics Scheduler::metrics() const {
  std::lock_guard lock(mutex_);
  return metrics_;
}

int Scheduler::reserved_tokens(const Sequence& s) const {
  // The decode step that samples the last token never feeds it: the cache
  // peaks at prompt + max_new - 1 tokens.
  const int grow = std::max(s.request.max_new_tokens - 1, 0);
  const int promised =
      s.prompt_len + (options_.reserve_tokens < 0 ? grow : std::min(grow, options_.reserve_tokens));
  // A resumed sequence recomputes what it had generated, beyond the promise.
  return std::max(promised, s.target);
}

int Scheduler::reserved_blocks() const {
  int r = 0;
  for (const auto& s : running_) {
    if (s->finished) continue;
    const int held = s->id >= 0 ? decoder_->cache().blocks_of(s->id) : 0;
    r += std::max(blocks_for(reserved_tokens(*s)) - held, 0);
  }
  return r;
}

void Scheduler::finish(Sequence& s, FinishReason reason, const std::string& message) {
  if (s.finished) return;
  s.finished = true;
  if (s.id >= 0) {
    decoder_->remove(s.id);
    s.id = -1;
  }
  std::unique_lock lock(mutex_);
  // Before on_finish: a client that reads /metrics right after its answer
  // must see the blocks back.
  metrics_.blocks_used = decoder_->cache().total_blocks() - decoder_->cache().free_blocks();
  metrics_.bytes_used = decoder_->cache().used_bytes();
  ++metrics_.requests_finished;
  if (reason == FinishReason::Cancelled) ++metrics_.requests_cancelled;
  lock.unlock();
  s.sink->on_finish(reason, message);
}

void Scheduler::preempt(Sequence& s) {
  if (s.id >= 0) decoder_->remove(s.id);
  s.id = -1;
  s.cached = 0;
  s.target = 0;
  std::lock_guard lock(mutex_);
  ++metrics_.preemptions;
}

void Scheduler::admit() {
  std::vector<std::unique_ptr<Sequence>> admitted;
  {
    std::lock_guard lock(mutex_);
    int free = decoder_->cache().free_blocks() - reserved_blocks();
    while (!waiting_.empty() &&
           static_cast<int>(running_.size() + admitted.size()) < options_.max_batch) {
      Sequence& s = *waiting_.front();
      // Resumed sequences recompute everything but their last token, which
      // the next decode step feeds, as it would have without preemption.
      s.target = static_cast<int>(s.tokens.size()) - (s.generated > 0 ? 1 : 0);
      const int need = blocks_for(reserved_tokens(s));
      if (need > free) {  // first come, first served: nobody overtakes
        s.target = 0;
        break;
      }
      free -= need;
      admitted.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
    }
    metrics_.waiting = static_cast<int>(waiting_.size());
  }
  if (admitted.empty()) return;
  for (auto& s : admitted) {
    s->admitted = ++admissions_;
    running_.push_back(std::move(s));
  }
  std::lock_guard lock(mutex_);
  metrics_.running = static_cast<int>(running_.size());
  metrics_.running_peak = std::max(metrics_.running_peak, metrics_.running);
}

bool Scheduler::emit(Sequence& s, const float* logits, int vocab) {
  const int32_t next = s.sampler.sample(std::span<const float>(logits, vocab));
  const auto now = Clock::now();
  const auto& stops = s.request.stop_tokens;
  if (std::find(stops.begin(), stops.end(), next) != stops.end()) {
    finish(s, FinishReason::Stop);
    return false;
  }
  TokenChoice choice;
  choice.token = next;
  if (s.request.top_logprobs >= 0) {
    const float mx = *std::max_element(logits, logits + vocab);
    double sum = 0;
    for (int i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
    const double lse = mx + std::log(sum);
    choice.logprob = static_cast<float>(logits[next] - lse);
    const int k = std::min(s.request.top_logprobs, vocab);
    std::vector<int32_t> order(vocab);
    for (int i = 0; i < vocab; ++i) order[i] = i;
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (int i = 0; i < k; ++i)
      choice.top.emplace_back(order[i], static_cast<float>(logits[order[i]] - lse));
  }
  s.tokens.push_back(next);
  ++s.generated;
  {
    std::lock_guard lock(mutex_);
    ++metrics_.generated_tokens;
    if (s.generated == 1)
      metrics_.ttft_seconds.observe(std::chrono::duration<double>(now - s.submitted).count());
    else
      metrics_.itl_seconds.observe(std::chrono::duration<double>(now - s.last_token).count());
  }
  s.last_token = now;
  if (!s.sink->on_token(choice)) {
    finish(s, FinishReason::Stop);
    return false;
  }
  if (s.generated >= s.request.max_new_tokens) {
    finish(s, FinishReason::Length);
    return false;
  }
  return true;
}

void Scheduler::decode_step() {
  auto decoding = [&] {
    std::vector<Sequence*> d;
    for (auto& s : running_)
      if (!s->finished && s->id >= 0 && !s->prefilling()) d.push_back(s.get());
    return d;
  };
  std::vector<Sequence*> batch = decoding();
  if (batch.empty()) return;
  const PagedKVCache& cache = decoder_->cache();
  for (;;) {
    // A block within a sequence's reservation is already set aside for it;
    // only growth beyond it competes for the blocks nobody was promised.
    int need = 0;
    for (Sequence* s : batch)
      if (s->cached + 1 > cache.capacity(s->id) &&
          cache.blocks_of(s->id) + 1 > blocks_for(reserved_tokens(*s)))
        ++need;
    if (need <= cache.free_blocks() - reserved_blocks()) break;
    // The most recently admitted sequence gives its blocks back.
    auto victim = std::max_element(running_.begin(), running_.end(),
                                   [](auto& a, auto& b) { return a->admitted < b->admitted; });
    preempt(**victim);
    {
      std::lock_guard lock(mutex_);
      waiting_.push_front(std::move(*victim));
      metrics_.waiting = static_cast<int>(waiting_.size());
    }
    running_.erase(victim);
    batch = decoding();
    if (batch.empty()) return;
  }
  std::vector<int> ids;
  std::vector<int32_t> next;
  for (Sequence* s : batch) {
    ids.push_back(s->id);
    next.push_back(s->tokens.back());
  }
  LogitRows logits;
  try {
    logits = decoder_->step(ids, next);
  } catch (const std::exception& e) {
    for (Sequence* s : batch) finish(*s, FinishReason::Error, e.what());
    return;
  }
  for (std::size_t b = 0; b < batch.size(); ++b) {
    ++batch[b]->cached;
    emit(*batch[b], logits.row(static_cast<int>(b)).data(), logits.vocab);
  }
}

void Scheduler::prefill_chunk() {
  int budget = options_.prefill_chunk;
  for (auto& sp : running_) {
    Sequence& s = *sp;
    if (budget == 0) break;
    if (s.finished || !s.prefilling()) continue;
    // Pieces end at multiples of the chunk size counted from the sequence's
    // start, whatever else is prefilling: the same prompt is cut at the same
    // tokens under load as alone, so its GEMM shapes, and hence its cached
    // (possibly f16-rounded) keys, do not depend on the batch around it.
    const int chunk = options_.prefill_chunk;
    const int n = std::min(s.target - s.cached, chunk - s.cached % chunk);
    if (n > budget) continue;
    std::span<const int32_t> piece(s.tokens.data() + s.cached, n);
    const bool last = s.cached + n == s.target;
    std::vector<float>& logits = prompt_logits_;
    try {
      if (s.id < 0)
        s.id = decoder_->add(piece, last ? &logits : nullptr);
      else
        decoder_->extend(s.id, piece, last ? &logits : nullptr);
    } catch (const std::exception& e) {
      finish(s, FinishReason::Error, e.what());
      continue;
    }
    s.cached += n;
    budget -= n;
    if (last && s.generated == 0) {
      {
        std::lock_guard lock(mutex_);
        metrics_.prompt_tokens += s.prompt_len;
      }
      emit(s, logits.data(), static_cast<int>(logits.size()));
    }
  }
}

void Scheduler::drop_finished() {
  std::erase_if(running_, [](const auto& s) { return s->finished; });
  std::lock_guard lock(mutex_);
  metrics_.running = static_cast<int>(running_.size());
  metrics_.blocks_used = decoder_->cache().total_blocks() - decoder_->cache().free_blocks();
  metrics_.bytes_used = decoder_->cache().used_bytes();
}

bool Scheduler::iterate() {
  bool cancel_all;
  std::vector<std::unique_ptr<Sequence>> dropped;
  {
    std::lock_guard lock(mutex_);
    cancel_all = cancel_all_;
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if (cancel_all || (*it)->ticket->cancelled()) {
        dropped.push_back(std::move(*it));
        it = waiting_.erase(it);
      } else {
        ++it;
      }
    }
    metrics_.waiting = static_cast<int>(waiting_.size());
  }
  for (auto& s : dropped) finish(*s, FinishReason::Cancelled);
  for (auto& s : running_)
    if (cancel_all || s->ticket->cancelled()) finish(*s, FinishReason::Cancelled);
  drop_finished();
  admit();
  const bool work = !running_.empty();
  decode_step();
  drop_finished();
  prefill_chunk();
  drop_finished();
  return work || !dropped.empty();
}

void Scheduler::run() {
  for (;;) {
    if (!iterate()) {
      {
        std::lock_guard lock(mutex_);
        if (stopping_ && waiting_.empty() && running_.empty()) return;
      }
      wakeup_->wait_for(std::chrono::milliseconds(100));
    }
  }
}

}  // namespace thinkeys::serve
