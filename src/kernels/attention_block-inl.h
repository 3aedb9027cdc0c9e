// The per-block driver of decode attention: a head's state, the scores of
// one block (decoding, rebuilding and rotating latent keys where needed),
// the online softmax and the value accumulation, with prefetch pacing; and
// AttendHeads, which walks heads of one sequence block by block. Per-target
// Highway code for decode_attention.cpp.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>

#include "format/row_codec.h"
#include "kernels/decode_attention.h"
#include "kernels/prefetch_cursor.h"

#if defined(THINKEYS_KERNELS_ATTENTION_BLOCK_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef THINKEYS_KERNELS_ATTENTION_BLOCK_INL_H_
#undef THINKEYS_KERNELS_ATTENTION_BLOCK_INL_H_
#else
#define THINKEYS_KERNELS_ATTENTION_BLOCK_INL_H_
#endif

// clang-format off
#include <hwy/highway.h>
#include "kernels/attention_tiles-inl.h"
#include "kernels/int8_channel_scores-inl.h"
#include "kernels/latent_rotation-inl.h"
#include "kernels/row_loaders-inl.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace thinkeys {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

// One head's running state in scratch: its scaled (and rotated) queries,
// value accumulators, softmax max and sum per query, and in latent RoPE mode
// the angles of its next token; for integer scores (IntegerScores) its
// queries' int8 levels, scales and group offsets.
struct HeadState {
  float *q, *acc, *m, *l;
  double *base_c, *base_s;
  int8_t* q8;
  float* q8_scale;
  int32_t* q8_offset;
  int ld8, ldo;
  std::size_t* pace;  // SetPacing's three sizes
};

HeadState StateOf(AttentionScratch& scratch, int h) {
  double* rope = scratch.rope(h);
  return {scratch.queries(h),
          scratch.accum(h),
          scratch.maxes(h),
          scratch.sums(h),
          rope,
          rope + scratch.rope_half(),
          scratch.query_levels(h),
          scratch.query_scales(h),
          scratch.query_offsets(h),
          scratch.query_levels_stride(),
          scratch.query_offsets_stride(),
          scratch.pacing(h)};
}

void Start(const AttentionShape& shape, const AttentionTask& task, const LatentKeys* latent,
           const HeadState& st) {
  const int G = task.n_queries, d = shape.head_dim;
  const int qw = latent ? d : task.keys.format.width;
  const int ldq = padded(qw), ldv = padded(d);
  // Rotated keys are stored as H k: scores use H q (or, in latent mode, the
  // decoded latents are rotated back before the rebuild).
  const bool rotate_q = task.keys.format.rotated && !latent;
  for (int g = 0; g < G; ++g) {
    float* q = st.q + g * ldq;
    for (int i = 0; i < qw; ++i) q[i] = task.q[g * qw + i] * shape.scale;
    if (rotate_q) hadamard_rotate(q, qw);
    std::fill(q + qw, q + ldq, 0.0f);
    std::fill(st.acc + g * ldv, st.acc + (g + 1) * ldv, 0.0f);
    st.m[g] = -std::numeric_limits<float>::infinity();
    st.l[g] = 0;
  }
  if (IntegerScores(task, latent))
    QuantizeQueries(st.q, ldq, G, qw, task.keys.format.group, st.q8, st.ld8, st.q8_scale,
                    st.q8_offset, st.ldo);
  if (latent && latent->rope)
    for (int i = 0; i < d / 2; ++i) {
      const double a = task.begin * latent->rope->inv_freq[i];
      st.base_c[i] = task.begin ? std::cos(a) : 1.0;
      st.base_s[i] = task.begin ? std::sin(a) : 0.0;
    }
}

// Prefetch pacing: the bytes the score pass moves the cursor on per key row.
// Moved on by the key bytes alone, it asks for little while rows of few bytes
// take long to score (an 18-byte int4 row against 4 queries takes about as
// long as a 256-byte value row takes to accumulate), and memory sits idle.
// So where the score pass would ask for less than a byte per unit of its work
// (units are about vector uops), it moves the cursor on by its share of the
// run's work instead, and the value passes by the rest; never by less than
// the key bytes, so the cursor stays ahead of the reader. Kernel harness,
// from DRAM: gqa thin int4 +10%. Applied to every shape it was within +-3%,
// and a little lower on gqa full-f16, hence the threshold.
int LoadUnits(CacheDType t) {  // per vector loaded: load, convert, scale
  switch (t) {
    case CacheDType::F32:
      return 1;
    case CacheDType::F16:
    case CacheDType::BF16:
      return 2;
    case CacheDType::Int8:
      return 4;
    case CacheDType::Int4:
      return 5;
  }
  return 2;
}
std::size_t ScoreAdvance(const AttentionTask& task, int d) {
  const int N = static_cast<int>(hn::Lanes(DF()));
  const int G = task.n_queries, per_value = G / task.n_values;
  const int kv = (task.keys.format.width + N - 1) / N, vv = (d + N - 1) / N;
  auto passes = [](int g, int widest) { return (g + widest - 1) / widest; };
  constexpr int kSumUnits = 3;  // a score's share of the horizontal sums
  const long score =
      static_cast<long>(G) * (kv + kSumUnits) +
      static_cast<long>(LoadUnits(task.keys.format.dtype)) * kv * passes(G, kPassQueries);
  long value = 0;
  std::size_t bytes = task.keys.format.bytes();
  for (int vh = 0; vh < task.n_values; ++vh) {
    const RowFormat& f = task.values[vh].format;
    value += static_cast<long>(vv) * (per_value + LoadUnits(f.dtype) * passes(per_value, 4));
    bytes += f.bytes();
  }
  const std::size_t key_bytes = task.keys.format.bytes();
  if (static_cast<long>(key_bytes) >= score) return key_bytes;
  return std::clamp<std::size_t>(bytes * score / (score + value), key_bytes, bytes);
}

// The same pacing for int8 keys stored by channel, in bytes per value row
// the value passes hold back (the score pass moves the cursor on by them
// instead). An int8 thin row is 18 bytes against an f16 row's 32 but costs a
// little more to score (levels are widened and converted, sums scaled), so
// moved on by its own bytes the score pass left memory idler than the f16
// one. Whole model, batch 1, 1K-32K, 5 interleaved quiet rounds: thin-int8 /
// thin-f16 step time 0.92-1.005 with this pacing, 0.97-1.02 without
// (docs/results/decode.md). Per N tokens: each channel is one vector,
// loaded once per pass and FMA'd once per query; each value row is vv
// vectors, loaded once per pass of up to 4 queries and FMA'd per query.
//
// Integer scores (IntegerScores) take the same pacing. By their
// instructions they would take none (their score pass costs less than its
// key bytes), but without it thin-int8 / thin-f16 step time was about 2%
// higher for mha at 16K-32K (docs/results/decode.md): the share also keeps
// the cursor further ahead of the value passes.
std::size_t ChannelValueLess(const AttentionTask& task, int d) {
  if (task.keys.format.dtype != CacheDType::Int8) return 0;
  const int N = static_cast<int>(hn::Lanes(DF()));
  const int G = task.n_queries, per_value = G / task.n_values, r = task.keys.format.width;
  auto passes = [](int g, int widest) { return (g + widest - 1) / widest; };
  const long score =
      static_cast<long>(r) * (G + LoadUnits(task.keys.format.dtype) * passes(G, kPassQueries));
  long value = 0;
  std::size_t bytes = task.keys.format.bytes(), value_bytes = ~std::size_t{0};
  for (int vh = 0; vh < task.n_values; ++vh) {
    const RowFormat& f = task.values[vh].format;
    value += static_cast<long>(N) * ((d + N - 1) / N) *
             (per_value + LoadUnits(f.dtype) * passes(per_value, 4));
    bytes += f.bytes();
    value_bytes = std::min(value_bytes, f.bytes());
  }
  const std::size_t share = bytes * score / (score + value), key_bytes = task.keys.format.bytes();
  if (share <= key_bytes) return 0;
  return std::min((share - key_bytes) / task.n_values, value_bytes);
}

// Where the key bytes of tokens [tb, tb + nb) of one block start, and how
// many there are from there on. By channel, from the first token's channel 0
// (int4: the part's start) to the last token's last channel, or its last
// scale when quantized (the other tokens' channels in between are prefetched
// too when the run is not a whole block).
const std::byte* KeyStart(const PagedRows& keys, int tb) {
  if (!keys.by_channel) return keys.row(tb);
  return keys.part(tb) + keys.element_bytes() * (tb % keys.block_tokens);
}
std::size_t KeySpan(const PagedRows& keys, int tb, int nb) {
  const RowFormat& f = keys.format;
  if (!keys.by_channel) return f.bytes() * nb;
  const std::size_t bt = keys.block_tokens, slot = tb % keys.block_tokens;
  const std::size_t end =
      f.groups() > 0
          ? keys.channels_bytes() + RowFormat::kScaleBytes * ((f.groups() - 1) * bt + slot + nb)
          : keys.element_bytes() * ((f.width - 1) * bt + slot + nb);
  return end - static_cast<std::size_t>(KeyStart(keys, tb) - keys.part(tb));
}

// A head's prefetch pacing: pace[0] the bytes the score pass moves the
// cursor on per key row, pace[1] the bytes each value pass holds back per
// row (ScoreAdvance, ChannelValueLess), pace[2] the key span of a whole
// block. Worked out once per call: per block and head, with the divisions
// in KeySpan, they took 1-6% of a resident block's time (in-process paired
// calls, docs/results/decode.md).
void SetPacing(const AttentionTask& task, const LatentKeys* latent, int d, std::size_t* pace) {
  const bool by_channel = task.keys.by_channel;
  const std::size_t key_advance =
      latent || by_channel ? task.keys.format.bytes() : ScoreAdvance(task, d);
  pace[0] = key_advance;
  pace[1] = latent       ? 0
            : by_channel ? ChannelValueLess(task, d)
                         : (key_advance - task.keys.format.bytes()) / task.n_values;
  pace[2] = KeySpan(task.keys, 0, task.keys.block_tokens);
}

// KeySpan of a run of one block, from the head's pacing for a whole block.
std::size_t RunKeySpan(const PagedRows& keys, const std::size_t* pace, int tb, int nb) {
  return nb == keys.block_tokens ? pace[2] : KeySpan(keys, tb, nb);
}

// Tokens [t0, t0 + n) of one block of int8 keys stored by channel, decoded
// channel by channel (out[j * n + t], t < n) and, for rotated rows, turned
// back to the original basis across channels: decode_row's arithmetic lane
// by lane (level times scale, then the Walsh-Hadamard butterflies in its
// order), so the values are read_row's bit for bit. read_row gathered and
// decoded a token at a time: latent int8 attention took 2-3.4x the time of
// latent f16 (kernel bench, docs/results/decode.md).
void DecodeInt8Channels(const PagedRows& keys, int t0, int n, float* out, float* row) {
  const DF df;
  const hn::Rebind<int8_t, DF> d8;
  const hn::Rebind<int32_t, DF> di;
  const hn::Rebind<hwy::float16_t, DF> dh;
  const int N = static_cast<int>(hn::Lanes(df));
  const RowFormat& f = keys.format;
  const int r = f.width, bt = keys.block_tokens, slot = t0 % bt;
  const std::byte* part = keys.part(t0);
  const auto* levels = reinterpret_cast<const int8_t*>(part) + slot;
  const auto* scales = reinterpret_cast<const hwy::float16_t*>(part + keys.channels_bytes()) + slot;
  const float norm = 1.0f / std::sqrt(static_cast<float>(r));
  int t = 0;
  for (; t + N <= n; t += N) {
    float* o = out + t;
    for (int j = 0; j < r; ++j) {
      const auto q =
          hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, levels + std::size_t(j) * bt + t)));
      const auto sc = hn::PromoteTo(df, hn::LoadU(dh, scales + std::size_t(j / f.group) * bt + t));
      hn::StoreU(hn::Mul(q, sc), df, o + std::size_t(j) * n);
    }
    if (!f.rotated) continue;
    for (int len = 1; len < r; len *= 2)
      for (int i = 0; i < r; i += 2 * len)
        for (int j = i; j < i + len; ++j) {
          const auto a = hn::LoadU(df, o + std::size_t(j) * n);
          const auto b = hn::LoadU(df, o + std::size_t(j + len) * n);
          hn::StoreU(hn::Add(a, b), df, o + std::size_t(j) * n);
          hn::StoreU(hn::Sub(a, b), df, o + std::size_t(j + len) * n);
        }
    const auto vn = hn::Set(df, norm);
    for (int j = 0; j < r; ++j)
      hn::StoreU(hn::Mul(hn::LoadU(df, o + std::size_t(j) * n), vn), df, o + std::size_t(j) * n);
  }
  for (; t < n; ++t) {  // the block's last tokens: read_row itself, through `row` (r floats)
    read_row(keys, t0 + t, row);
    for (int j = 0; j < r; ++j) out[std::size_t(j) * n + t] = row[j];
  }
}

// Rows [tb, tb + nb) of one head (its keys and every value head it reads),
// as a prefetch target.
struct Run {
  const AttentionTask* task = nullptr;
  const std::size_t* pace = nullptr;  // the head's SetPacing
  int tb = 0, nb = 0;
};

// The key rows of one block of one head: decoded for latent keys (and rebuilt
// and rotated), scored against every query of the head, then folded into the
// online softmax and the value accumulators. The start of `next` is
// prefetched meanwhile; `first` also asks for this run's start (no earlier
// run's cursor did). `same_angles`: the block's latent RoPE angles are the
// ones the previous head of the block left in the scratch.
void Block(const AttentionShape& shape, const AttentionTask& task, const LatentKeys* latent,
           AttentionScratch& scratch, const HeadState& st, int t0, int t1, bool first,
           const Run& next, bool same_angles) {
  const int G = task.n_queries, d = shape.head_dim, n = t1 - t0;
  const int r = task.keys.format.width;
  const int qw = latent ? d : r;
  const int ldq = padded(qw), ldv = padded(d), lds = padded(task.keys.block_tokens),
            ldc = padded(r);
  const int share = latent ? latent->share : 1;
  // Latent: query g dots with slice g / (G / share) of the rebuilt key; the
  // stride leaves room for the last slice's padded read.
  const int ldk = latent ? padded((share - 1) * d + ldq) : ldq;
  const int per_value = G / task.n_values;
  float* s = scratch.scores();
  float* kbuf = scratch.keys();
  float* vbuf = scratch.values();
  float alpha[kMaxQueries];

  // This run's rows, then the next run's: what the thread reads from here on.
  PrefetchCursor<> cursor;
  const std::size_t key_span = RunKeySpan(task.keys, st.pace, t0, n);
  auto add_run = [&](const AttentionTask& on, std::size_t span, int tb, int nb) {
    cursor.add(KeyStart(on.keys, tb), span);
    for (int vh = 0; vh < on.n_values; ++vh)
      cursor.add(on.values[vh].row(tb), on.values[vh].format.bytes() * nb);
  };
  add_run(task, key_span, t0, n);
  if (next.task)
    add_run(*next.task, RunKeySpan(next.task->keys, next.pace, next.tb, next.nb), next.tb, next.nb);
  cursor.start(first);
  const bool by_channel = task.keys.by_channel;
  const bool integer = IntegerScores(task, latent);
  const std::size_t key_advance = st.pace[0], value_less = st.pace[1];
  auto ahead = [&](const PagedRows& rows) {
    return Ahead{&cursor, &rows == &task.keys ? key_advance : rows.format.bytes() - value_less};
  };

  if (latent) {
    const RopeSteps* rope = latent->rope;
    const int W = share * d, half = d / 2;
    float* cbuf = scratch.latents();
    // Token t's (cos, sin) at angles + t * d: worked out by the first head
    // of the block and read by the others (same_angles), which share its
    // tokens and RoPE table and so would compute the same floats.
    float* angles = scratch.token_angles();
    // Latents by channel are decoded a channel (n tokens) at a time and
    // stay so: the rebuild reads them one scalar at a time either way.
    int c_token = ldc, c_channel = 1;
    if (by_channel && task.keys.format.dtype == CacheDType::Int8) {
      c_token = 1, c_channel = n;
      DecodeInt8Channels(task.keys, t0, n, cbuf, kbuf);  // kbuf: free until the rebuild
    } else if (by_channel && is_quantized(task.keys.format.dtype)) {
      for (int t = 0; t < n; ++t) {  // read_row decodes to the original basis
        float* c = cbuf + static_cast<std::size_t>(t) * ldc;
        read_row(task.keys, t0 + t, c);
        std::fill(c + r, c + ldc, 0.0f);
      }
    } else if (by_channel) {
      c_token = 1, c_channel = n;
      RowFormat channel = task.keys.format;
      channel.width = n;
      const std::size_t stride = task.keys.element_bytes() * task.keys.block_tokens;
      const std::byte* p = KeyStart(task.keys, t0);
      for (int j = 0; j < r; ++j) DecodeFloats(channel, p + stride * j, cbuf + j * n);
    } else {
      DecodeRows(task.keys.format, task.keys.row(t0), n, cbuf, ldc);
    }
    if (task.keys.format.rotated && !by_channel)
      for (int t = 0; t < n; ++t) hadamard_rotate(cbuf + static_cast<std::size_t>(t) * ldc, r);
    Rebuild(cbuf, c_token, c_channel, n, r, latent->up_t, W, kbuf, ldk);
    for (int t = 0; t < n; ++t) {
      float* k = kbuf + static_cast<std::size_t>(t) * ldk;
      std::fill(k + W, k + ldk, 0.0f);
      if (!rope) continue;
      float* tok_c = angles + static_cast<std::size_t>(t) * d;
      float* tok_s = tok_c + half;
      if (!same_angles) {
        const double* sc = rope->cos.data() + static_cast<std::size_t>(t) * half;
        const double* ss = rope->sin.data() + static_cast<std::size_t>(t) * half;
        for (int i = 0; i < half; ++i) {
          tok_c[i] = static_cast<float>(st.base_c[i] * sc[i] - st.base_s[i] * ss[i]);
          tok_s[i] = static_cast<float>(st.base_s[i] * sc[i] + st.base_c[i] * ss[i]);
        }
      }
      for (int seg = 0; seg < share; ++seg)
        RotatePairs(k + seg * d, k + seg * d + half, tok_c, tok_s, half);
    }
    if (rope) {
      const double* sc = rope->cos.data() + static_cast<std::size_t>(n) * half;
      const double* ss = rope->sin.data() + static_cast<std::size_t>(n) * half;
      for (int i = 0; i < half; ++i) {
        const double c = st.base_c[i] * sc[i] - st.base_s[i] * ss[i];
        st.base_s[i] = st.base_s[i] * sc[i] + st.base_c[i] * ss[i];
        st.base_c[i] = c;
      }
    }
    cursor.advance(key_span);  // few bytes: at once
    for (int seg = 0; seg < share; ++seg)
      Scores(ScratchRows{kbuf + seg * d, static_cast<std::size_t>(ldk)}, n, ldq, st.q, ldq,
             seg * (G / share), (seg + 1) * (G / share), s, lds, Ahead{});
  } else if (by_channel && !Int4ChannelVectors(task.keys, t0)) {
    // int4 keys from a slot off the vector grid (a window starting inside a
    // block): their rows gathered, then scored as rows.
    auto* rows = reinterpret_cast<std::byte*>(scratch.latents());
    const std::size_t rb = task.keys.format.bytes();
    for (int t = 0; t < n; ++t) stored_row(task.keys, t0 + t, rows + rb * t);
    cursor.advance(key_span);
    WithRows(task.keys.format, rows, n, kbuf, ldk, [&](const auto& rows, int w) {
      Scores(rows, n, w, st.q, ldq, 0, G, s, lds, Ahead{});
    });
  } else if (integer) {
    const std::size_t span = key_span + value_less * static_cast<std::size_t>(n) * task.n_values;
    IntegerChannelScores(task.keys, t0, n, st.q8, st.ld8, st.q8_scale, st.q8_offset, st.ldo, G, s,
                         lds, &cursor, span / r);
    cursor.advance(span % r);
  } else if (by_channel) {
    // The first pass moves the cursor on by a channel's share of the span
    // and of what the value passes hold back.
    const std::size_t span = key_span + value_less * static_cast<std::size_t>(n) * task.n_values;
    WithChannels(task.keys, t0, [&](const auto& ch) {
      ChannelScores(ch, n, r, st.q, ldq, G, s, lds, &cursor, span / r);
    });
    cursor.advance(span % r);
  } else {
    WithRows(task.keys.format, task.keys.row(t0), n, kbuf, ldk, [&](const auto& rows, int w) {
      Scores(rows, n, w, st.q, ldq, 0, G, s, lds, ahead(task.keys));
    });
  }

  // Online softmax, once per block (the rescale is applied inside
  // Accumulate).
  BlockSoftmax(s, lds, n, G, st.m, st.l, alpha);

  for (int vh = 0; vh < task.n_values; ++vh) {
    const PagedRows& V = task.values[vh];
    WithRows(V.format, V.row(t0), n, vbuf, ldv, [&](const auto& rows, int w) {
      Accumulate(rows, n, w, s, lds, alpha, vh * per_value, (vh + 1) * per_value, st.acc, ldv,
                 ahead(V));
    });
  }
}

void Finish(const AttentionShape& shape, const AttentionTask& task, const HeadState& st) {
  const int d = shape.head_dim, ldv = padded(d);
  for (int g = 0; g < task.n_queries; ++g) {
    const float inv = st.l[g] > 0 ? 1.0f / st.l[g] : 0.0f;
    for (int i = 0; i < d; ++i) task.out[g * d + i] = st.acc[g * ldv + i] * inv;
    if (task.lse)
      task.lse[g] =
          st.l[g] > 0 ? st.m[g] + std::log(st.l[g]) : -std::numeric_limits<float>::infinity();
  }
}

// Heads of one sequence over the same tokens, in lockstep: block by block,
// every head's rows of the block in turn. Heads' rows lie next to each other
// inside a block, so the thread reads one contiguous stretch per block
// instead of one short run per block and head; each run's cursor reaches
// into the next run in that order.
void AttendHeads(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                 std::span<const LatentKeys* const> latents, AttentionScratch& scratch) {
  const int H = static_cast<int>(tasks.size());
  if (H == 0) return;
  const int BT = shape.block_tokens, begin = tasks[0].begin, end = tasks[0].end;
  auto latent_of = [&](int h) { return latents.empty() ? nullptr : latents[h]; };
  for (int h = 0; h < H; ++h) {
    Start(shape, tasks[h], latent_of(h), StateOf(scratch, h));
    SetPacing(tasks[h], latent_of(h), shape.head_dim, scratch.pacing(h));
  }

  // Block k of the task (k = 0 holds begin), head h, as a prefetch target.
  const int b0 = begin / BT;
  auto block_run = [&](int k, int h) {
    const int tb = std::max(begin, (b0 + k) * BT);
    return Run{&tasks[h], scratch.pacing(h), tb, std::min(end, (b0 + k + 1) * BT) - tb};
  };
  // The blocks in takes: all of them at once, or, for a piece that shares
  // them (AttentionTask::blocks), as it claims them; the next claim is made
  // as the last head of the claimed blocks starts, so that its start is
  // prefetched and no piece holds blocks it has not begun.
  // Heads after the first reuse its per-token RoPE angles in latent mode
  // (Block): at 12 heads the angle walk was about a tenth of a latent block.
  bool shared_rope = !latents.empty() && latents[0];
  for (int h = 1; h < H && shared_rope; ++h)
    shared_rope = latent_of(h) && latent_of(h)->rope == latents[0]->rope;
  ShareClaims* claims = tasks[0].blocks;
  const int me = tasks[0].piece;
  const int blocks = end > begin ? (end - 1) / BT - b0 + 1 : 0;
  bool first = true;
  for (ShareClaims::Take take = claims ? claims->next(me, 1) : ShareClaims::Take{0, blocks};
       take.count > 0;) {
    ShareClaims::Take after{};
    for (int k = take.first; k < take.first + take.count; ++k) {
      const bool last = k + 1 == take.first + take.count;
      const Run at = block_run(k, 0);
      for (int h = 0; h < H; ++h) {
        Run next;
        if (h + 1 < H) {
          next = block_run(k, h + 1);
        } else if (!last) {
          next = block_run(k + 1, 0);
        } else if (claims) {
          after = claims->next(me, 1);
          if (after.count > 0) next = block_run(after.first, 0);
        }
        Block(shape, tasks[h], latent_of(h), scratch, StateOf(scratch, h), at.tb, at.tb + at.nb,
              first, next, h > 0 && shared_rope);
        first = false;
      }
    }
    take = after;
  }
  for (int h = 0; h < H; ++h) Finish(shape, tasks[h], StateOf(scratch, h));
}

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#endif  // THINKEYS_KERNELS_ATTENTION_BLOCK_INL_H_
