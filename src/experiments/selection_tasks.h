#pragma once
// Synthetic selection tasks from the Thin Keys paper (seed-experiments.md
// sections 1 and 2), as endless deterministic sample streams for the trainer.
//
// Positional selection (copy-back): a random prefix of `period` tokens over
// `vocab` symbols is tiled to `length`, so x_t = x_{t - period}. Inputs are
// x_0..x_{length-2}, targets x_1..x_{length-1}; only outputs whose target is
// determined by the prefix are scored (output position t >= period - 1).
//
// Content retrieval among N patterns: vocabulary keys 0..N-1, values
// N..2N-1, SEP = 2N. A sequence is `pairs` distinct keys in random order, each
// followed by a value drawn uniformly (repeats allowed), then SEP, then one of
// the keys in the sequence; only the last position is scored and its target is
// the value paired with that key. The paper has N = 16 and 8 pairs; for other
// N we keep 8 pairs (min(N, 8) when N < 8), so the context length stays 18 and
// only the number of patterns the query selects among changes.
//
// Sample i of a stream is a pure function of (seed, i): the trainer's resume
// and data-parallel rules hold. Streams with another seed repeat each other's
// sequences only by chance; at small N (N = 4 has 24,576 retrieval sequences)
// that chance is large. The split below makes held-out evaluation exact: every
// possible sequence belongs to exactly one of two classes, fixed by its tokens
// alone, so a Train stream and a HeldOut stream can never share a sequence,
// whatever their seeds.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "train/sample_source.h"

namespace thinkeys {

enum class SelectionTask { Position, Retrieval };

SelectionTask parse_selection_task(const std::string& s);  // "position" or "retrieval"
const char* to_string(SelectionTask t);

struct CopyBackSpec {
  int vocab = 16;
  int period = 8;   // K in the paper
  int length = 64;  // tokens per sequence before the input/target shift
  void validate() const;
};

struct RetrievalSpec {
  int n = 16;     // keys (and values)
  int pairs = 8;  // key-value pairs per sequence, at most n
  void validate() const;
  int vocab() const { return 2 * n + 1; }
  int sep() const { return 2 * n; }
  int length() const { return 2 * pairs + 2; }
};

// The pair count used for N keys when none is given: min(N, 8).
int default_retrieval_pairs(int n);

// Which sequences a stream may produce. Any: every sequence (the original
// streams, unchanged). Train: only sequences that are not held out. HeldOut:
// only held-out ones. A sample of a split stream keeps drawing from its own
// generator until it lands in its class, so it is still a pure function of
// (seed, index), and within its class it is as uniform as the Any stream.
enum class SampleSplit { Any, Train, HeldOut };

// One sequence in kHeldOutModulus is held out: the one whose input tokens
// (which determine its targets) hash to 0 mod kHeldOutModulus (64-bit FNV-1a,
// then the splitmix64 finaliser).
inline constexpr uint64_t kHeldOutModulus = 8;
bool is_held_out_sequence(std::span<const int64_t> inputs);

// Samples [first, first + count) of the stream for `seed`. Inputs and targets
// are [count, T] int64; unscored targets are kIgnoreIndex. A split stream
// throws Error when a sample finds no sequence of its class in 4,096 draws
// (a task so small that its held-out class is empty or nearly so).
Batch copy_back_batch(const CopyBackSpec& spec, uint64_t seed, int64_t first, int count,
                      SampleSplit split = SampleSplit::Any);
Batch retrieval_batch(const RetrievalSpec& spec, uint64_t seed, int64_t first, int count,
                      SampleSplit split = SampleSplit::Any);

SampleSource copy_back_source(const CopyBackSpec& spec, uint64_t seed,
                              SampleSplit split = SampleSplit::Any);
SampleSource retrieval_source(const RetrievalSpec& spec, uint64_t seed,
                              SampleSplit split = SampleSplit::Any);

}  // namespace thinkeys
