#include "experiments/selection_tasks.h"

#include <numeric>

#include "train/batch.h"
#include "train/training_forward.h"
#include "util/enum_names.h"
#include "util/error.h"

namespace thinkeys {
namespace {

// splitmix64: a tiny, fully specified generator, so a stream is the same on
// every platform and standard library (std:: distributions are not).
class SampleRng {
 public:
  SampleRng(uint64_t seed, int64_t index)
      : state_(seed * 0x9E3779B97F4A7C15ULL ^
               (static_cast<uint64_t>(index) + 0x632BE59BD9B4E019ULL)) {
    next();
  }
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) by rejection, so small vocabularies carry no modulo bias.
  int below(int n) {
    const uint64_t range = static_cast<uint64_t>(n);
    const uint64_t limit = UINT64_MAX - UINT64_MAX % range;
    uint64_t x;
    do x = next();
    while (x >= limit);
    return static_cast<int>(x % range);
  }

 private:
  uint64_t state_;
};

void require(bool ok, const std::string& message) {
  if (!ok) throw Error(message);
}

void check_request(int64_t first, int count) {
  require(first >= 0 && count > 0, "selection samples: first must be >= 0 and count positive");
}

}  // namespace

namespace {
constexpr EnumName<SelectionTask> kTasks[] = {{SelectionTask::Position, "position"},
                                              {SelectionTask::Retrieval, "retrieval"}};
}  // namespace

SelectionTask parse_selection_task(const std::string& s) {
  return parse_enum<SelectionTask>(kTasks, s, "selection task");
}

const char* to_string(SelectionTask t) { return enum_name<SelectionTask>(kTasks, t); }

void CopyBackSpec::validate() const {
  require(vocab >= 2, "copy-back task: vocabulary must have at least 2 symbols");
  require(period >= 1, "copy-back task: period must be positive");
  require(length > period, "copy-back task: length must exceed the period");
}

void RetrievalSpec::validate() const {
  require(n >= 2,
          "retrieval task: N (number of keys) must be at least 2, got " + std::to_string(n));
  require(pairs >= 1 && pairs <= n, "retrieval task: pairs per sequence must be in [1, N = " +
                                        std::to_string(n) + "], got " + std::to_string(pairs));
}

int default_retrieval_pairs(int n) { return std::min(n, 8); }

bool is_held_out_sequence(std::span<const int64_t> inputs) {
  uint64_t h = 0xCBF29CE484222325ULL;  // FNV-1a over the little-endian bytes of each token
  for (int64_t t : inputs) {
    auto u = static_cast<uint64_t>(t);
    for (int byte = 0; byte < 8; ++byte, u >>= 8) h = (h ^ (u & 0xFF)) * 0x100000001B3ULL;
  }
  // FNV's low bits mix poorly over short inputs: finalise as splitmix64 does.
  h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ULL;
  h = (h ^ (h >> 27)) * 0x94D049BB133111EBULL;
  h ^= h >> 31;
  return h % kHeldOutModulus == 0;
}

namespace {

bool in_split(SampleSplit split, std::span<const int64_t> inputs) {
  return split == SampleSplit::Any ||
         is_held_out_sequence(inputs) == (split == SampleSplit::HeldOut);
}

// Draws sequences from `rng` with `draw` (which fills `seq`) until one lies in
// `split`; Any takes the first draw, so the original streams are unchanged.
template <class Draw>
void draw_in_split(SampleSplit split, std::vector<int64_t>& seq, size_t input_tokens, Draw draw) {
  constexpr int kMaxDraws = 4096;
  for (int attempt = 0; attempt < kMaxDraws; ++attempt) {
    draw();
    if (in_split(split, std::span<const int64_t>(seq.data(), input_tokens))) return;
  }
  throw Error(std::string("selection samples: no ") +
              (split == SampleSplit::HeldOut ? "held-out" : "training") + " sequence in " +
              std::to_string(kMaxDraws) +
              " draws; the task has too few distinct sequences for a held-out split");
}

}  // namespace

Batch copy_back_batch(const CopyBackSpec& spec, uint64_t seed, int64_t first, int count,
                      SampleSplit split) {
  spec.validate();
  check_request(first, count);
  const int T = spec.length - 1;
  at::Tensor inputs = at::empty({count, T}, at::kLong);
  at::Tensor targets = at::empty({count, T}, at::kLong);
  auto in = inputs.accessor<int64_t, 2>();
  auto tg = targets.accessor<int64_t, 2>();
  std::vector<int64_t> seq(static_cast<size_t>(spec.length));
  for (int b = 0; b < count; ++b) {
    SampleRng rng(seed, first + b);
    draw_in_split(split, seq, static_cast<size_t>(T), [&] {
      for (int t = 0; t < spec.period; ++t) seq[t] = rng.below(spec.vocab);
      for (int t = spec.period; t < spec.length; ++t) seq[t] = seq[t - spec.period];
    });
    for (int t = 0; t < T; ++t) {
      in[b][t] = seq[t];
      // Output t predicts x_{t+1}, which the prefix determines once t+1 >= period.
      tg[b][t] = t + 1 >= spec.period ? seq[t + 1] : kIgnoreIndex;
    }
  }
  return {inputs, targets};
}

Batch retrieval_batch(const RetrievalSpec& spec, uint64_t seed, int64_t first, int count,
                      SampleSplit split) {
  spec.validate();
  check_request(first, count);
  const int T = spec.length();
  at::Tensor inputs = at::empty({count, T}, at::kLong);
  at::Tensor targets = at::full({count, T}, kIgnoreIndex, at::kLong);
  auto in = inputs.accessor<int64_t, 2>();
  auto tg = targets.accessor<int64_t, 2>();
  std::vector<int> keys(static_cast<size_t>(spec.n));
  std::vector<int64_t> seq(static_cast<size_t>(T));
  int64_t answer = 0;
  for (int b = 0; b < count; ++b) {
    SampleRng rng(seed, first + b);
    draw_in_split(split, seq, static_cast<size_t>(T), [&] {
      // Partial Fisher-Yates: the first `pairs` entries are distinct keys in random order.
      std::iota(keys.begin(), keys.end(), 0);
      for (int i = 0; i < spec.pairs; ++i) std::swap(keys[i], keys[i + rng.below(spec.n - i)]);
      for (int i = 0; i < spec.pairs; ++i) {
        seq[2 * i] = keys[i];
        seq[2 * i + 1] = spec.n + rng.below(spec.n);
      }
      const int asked = rng.below(spec.pairs);
      seq[T - 2] = spec.sep();
      seq[T - 1] = keys[asked];
      answer = seq[2 * asked + 1];
    });
    for (int t = 0; t < T; ++t) in[b][t] = seq[t];
    tg[b][T - 1] = answer;
  }
  return {inputs, targets};
}

SampleSource copy_back_source(const CopyBackSpec& spec, uint64_t seed, SampleSplit split) {
  spec.validate();
  return [spec, seed, split](int64_t first, int count) {
    return copy_back_batch(spec, seed, first, count, split);
  };
}

SampleSource retrieval_source(const RetrievalSpec& spec, uint64_t seed, SampleSplit split) {
  spec.validate();
  return [spec, seed, split](int64_t first, int count) {
    return retrieval_batch(spec, seed, first, count, split);
  };
}

}  // namespace thinkeys
