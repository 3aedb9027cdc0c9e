#include "bench/model_decode_bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <random>
#include <span>
#include <sstream>

#include "bench/bandwidth_probe.h"
#include "bench/cpu_clock.h"
#include "bench/round_order.h"
#include "cache/paged_kv_cache.h"
#include "config/cache_layout.h"
#include "model/random_init.h"
#include "model/weight_format.h"
#include "runtime/batch_decoder.h"
#include "util/error.h"
#include "util/memory_info.h"

namespace thinkeys {
namespace {

std::string gib(double bytes) {
  std::ostringstream s;
  s.precision(1);
  s << std::fixed << bytes / (1 << 30) << " GiB";
  return s.str();
}

}  // namespace

std::vector<ModelDecodeShape> model_decode_shapes() { return {{"gqa", 4}, {"mha", 12}}; }

ModelConfig model_decode_config(const ModelDecodeShape& shape, int key_divisor) {
  ModelConfig c = llama_config({32000, 768, 12, 12, shape.kv_heads, 64, 2048, 1 << 17});
  c.attention.kind = shape.attention;
  if (shape.attention != AttentionKind::Standard && key_divisor > 1)
    throw Error("the " + shape.name + " shape caches its own rows: thin-key layouts do not apply");
  if (shape.attention == AttentionKind::MLA) {
    c.attention.latent = 256;
    c.attention.rope_dim = 32;
    c.attention.nope_dim = 64;
  } else if (shape.attention == AttentionKind::LRKV) {
    c.attention.rank = 16;
  }
  if (key_divisor > 1) c.key_rank.assign(c.n_layers, c.head_dim / key_divisor);
  c.validate();
  return c;
}

std::shared_ptr<const Model> model_decode_model(const ModelDecodeShape& shape, int key_divisor,
                                                const std::string& weights) {
  auto m = std::make_shared<Model>(random_model(model_decode_config(shape, key_divisor), 17));
  convert_weights(*m, parse_weight_format(weights));
  return m;
}

std::vector<ModelDecodeCache> model_decode_caches() {
  return {{"full-f16", 1, CacheDType::F16},
          {"thin-f16", 4, CacheDType::F16},
          {"thin-int8", 4, CacheDType::Int8},
          {"thin-int4", 4, CacheDType::Int4}};
}

ModelDecodeCache find_model_decode_cache(const std::string& name) {
  std::string known;
  auto list = model_decode_caches();
  list.push_back({"full-f16-bytoken", 1, CacheDType::F16, true});
  list.push_back({"thin-f16-bytoken", 4, CacheDType::F16, true});
  for (const auto& c : list) {
    if (c.name == name) return c;
    known += (known.empty() ? "" : ", ") + c.name;
  }
  throw Error("unknown whole-model decode cache '" + name + "' (expected one of " + known + ")");
}

ModelDecodeShape find_model_decode_shape(const std::string& name) {
  auto all = model_decode_shapes();
  all.push_back({"mla", 12, AttentionKind::MLA});
  all.push_back({"lrkv", 12, AttentionKind::LRKV});
  for (const auto& s : all)
    if (s.name == name) return s;
  throw Error("unknown whole-model decode shape '" + name + "' (expected gqa, mha, mla or lrkv)");
}

bool model_decode_cache_applies(const ModelDecodeShape& shape, const ModelDecodeCache& cache) {
  if (shape.attention == AttentionKind::Standard) return true;
  return cache.key_divisor == 1 &&
         (shape.attention == AttentionKind::LRKV || !is_quantized(cache.key_dtype));
}

namespace {

void check_options(const ModelDecodeBenchOptions& o) {
  if (o.ctx.empty() || o.batch.empty()) throw Error("whole-model decode: no contexts or batches");
  if (o.steps < 1 || o.long_steps < 1) throw Error("whole-model decode: need at least one step");
  for (int n : o.ctx)
    if (n < 1) throw Error("whole-model decode: context lengths must be positive");
  for (int b : o.batch)
    if (b < 1) throw Error("whole-model decode: batch sizes must be positive");
}

int max_steps(const ModelDecodeBenchOptions& o) { return 1 + std::max(o.steps, o.long_steps); }

BatchDecoderOptions decoder_options(const Model& model, const ModelDecodeCache& cc,
                                    const ModelDecodeBenchOptions& o) {
  BatchDecoderOptions d;
  d.cache.key_dtype = cc.key_dtype;
  d.cache.value_dtype = CacheDType::F16;
  d.cache.block_tokens = o.block_tokens;
  d.cache.keys_by_channel = !cc.keys_by_token;
  d.cache.budget_bytes = std::size_t{1} << 24;
  const PagedKVCache probe(cache_shape(model.config), d.cache);
  const int max_ctx = *std::max_element(o.ctx.begin(), o.ctx.end());
  const int max_batch = *std::max_element(o.batch.begin(), o.batch.end());
  const std::size_t blocks_per_seq =
      (static_cast<std::size_t>(max_ctx) + max_steps(o) + o.block_tokens - 1) / o.block_tokens;
  d.cache.budget_bytes = probe.block_bytes() * blocks_per_seq * max_batch;
  d.threads = o.threads;
  return d;
}

}  // namespace

std::size_t model_decode_cache_bytes(const ModelDecodeCase& c, const ModelDecodeBenchOptions& o) {
  check_options(o);
  return decoder_options(*c.model, c.cache, o).cache.budget_bytes;
}

std::vector<ModelDecodeRow> bench_model_decode(const std::string& shape_name,
                                               const std::vector<ModelDecodeCase>& cases,
                                               const ModelDecodeBenchOptions& o) {
  check_options(o);
  if (cases.empty()) throw Error("whole-model decode: no cache layouts");
  std::vector<int> ctxs = o.ctx;
  std::sort(ctxs.rbegin(), ctxs.rend());  // truncation only shortens
  std::vector<int> batches = o.batch;
  std::sort(batches.begin(), batches.end());
  const int max_ctx = ctxs.front(), max_batch = batches.back();
  const int n = static_cast<int>(cases.size());

  // Cases with the same cache layout (the model in other weight formats)
  // share one decoder and its cache: owner[i] is the first such case.
  std::vector<int> owner(n);
  std::vector<BatchDecoderOptions> dopts;
  std::size_t total = 0;
  for (int i = 0; i < n; ++i) {
    owner[i] = i;
    for (int j = 0; j < i; ++j)
      if (cases[j].cache.name == cases[i].cache.name) {
        owner[i] = j;
        break;
      }
    dopts.push_back(decoder_options(*cases[i].model, cases[i].cache, o));
    if (owner[i] == i) total += dopts.back().cache.budget_bytes;
  }
  auto base_row = [&](int i, int ctx, int batch) {
    ModelDecodeRow r;
    r.shape = shape_name;
    r.cache = cases[i].cache.name;
    r.weights = cases[i].weights;
    r.ctx = ctx;
    r.batch = batch;
    r.key_width = cases[i].model->config.key_width(0);
    r.weight_bytes = cases[i].model->weight_bytes();
    const PagedKVCache probe(cache_shape(cases[i].model->config),
                             CacheSpec{dopts[i].cache.key_dtype, dopts[i].cache.value_dtype,
                                       dopts[i].cache.group, o.block_tokens, std::size_t{1} << 24});
    r.kv_bytes_read = static_cast<int64_t>(probe.payload_bytes_per_token()) * (ctx + 1) * batch;
    r.interleaved = n > 1;
    return r;
  };
  // rows[i] holds case i's rows, longest context first.
  std::vector<std::vector<ModelDecodeRow>> rows(n);
  const std::size_t avail = mem_available_bytes();  // 0 if unknown: nothing is refused
  if (avail > 0 && total > o.memory_fraction * avail) {
    for (int i = 0; i < n; ++i)
      for (int ctx : ctxs)
        for (int batch : batches) {
          ModelDecodeRow r = base_row(i, ctx, batch);
          r.skipped = true;
          r.note = "caches of " + gib(static_cast<double>(total)) + " for " +
                   std::to_string(max_batch) + " x " + std::to_string(max_ctx) + " tokens exceed " +
                   std::to_string(static_cast<int>(100 * o.memory_fraction)) +
                   "% of available memory (" + gib(static_cast<double>(avail)) + ")";
          rows[i].push_back(r);
        }
  } else {
    std::vector<std::unique_ptr<BatchDecoder>> decs;
    std::vector<std::vector<int>> ids(n);
    for (int i = 0; i < n; ++i) {
      if (owner[i] != i) {
        decs.emplace_back();
        ids[i] = ids[owner[i]];
        continue;
      }
      const auto f0 = std::chrono::steady_clock::now();
      decs.push_back(std::make_unique<BatchDecoder>(*cases[i].model, dopts[i]));
      for (int b = 0; b < max_batch; ++b)
        ids[i].push_back(decs[i]->add_synthetic(max_ctx, 1000 + b));
      if (o.progress)
        std::fprintf(stderr, "  %s %s: filled %d x %d synthetic tokens in %.1f s\n",
                     shape_name.c_str(), cases[i].cache.name.c_str(), max_batch, max_ctx,
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - f0).count());
    }
    std::mt19937 rng(7);
    std::vector<int32_t> tokens(static_cast<std::size_t>(max_steps(o)) * max_batch);
    for (auto& t : tokens) t = static_cast<int32_t>(rng() % cases[0].model->config.vocab_size);
    std::vector<std::vector<double>> times(n, std::vector<double>(max_steps(o)));
    std::vector<std::vector<double>> lead_ins(n, std::vector<double>(max_steps(o)));
    std::vector<std::vector<double>> fractions(n, std::vector<double>(max_steps(o)));
    std::vector<double> probes(max_steps(o));
    std::vector<double> cpu(n), wall(n), step_bytes(n);
    // 256 MiB: eight times a Zen 4 CCD's L3, small beside the caches under test.
    StreamBuffer stream(o.threads, std::size_t{256} << 20);
    std::vector<int> order(n);

    for (int ctx : ctxs)
      for (int batch : batches) {
        const int steps = ctx >= 16384 ? o.long_steps : o.steps;
        for (int i = 0; i < n; ++i) {
          if (owner[i] == i)
            for (int b = 0; b < batch; ++b) decs[i]->truncate(ids[i][b], ctx);
          cpu[i] = wall[i] = 0;
          const ModelDecodeRow r = base_row(i, ctx, batch);
          step_bytes[i] = static_cast<double>(r.weight_bytes + r.kv_bytes_read);
        }
        // Round-robin over the layouts, one step each, so a change in the
        // machine's load hits all of them alike and their ratios hold; the
        // order changes every round (bench/round_order.h).
        for (int s = 0; s <= steps; ++s) {  // step 0 warms up
          round_order(s, order);
          for (const int i : order) {
            const std::span<const int> step_ids(ids[i].data(), batch);
            const std::span<const int32_t> toks(tokens.data() + static_cast<std::size_t>(s) * batch,
                                                batch);
            BatchDecoder& dec = *decs[owner[i]];
            // Each case appends one token per step; a shared cache must give
            // every case the same context, so the sequences go back to it.
            for (int b = 0; b < batch; ++b) dec.truncate(ids[i][b], ctx + s);
            dec.use_model(*cases[i].model);
            // The lead-in: decode is a loop, and the step a user waits for
            // follows a step of the same model, not the probe or another
            // case (ModelDecodeRow::lead_in_median_s).
            const auto l0 = std::chrono::steady_clock::now();
            dec.step(step_ids, toks);
            if (s > 0)
              lead_ins[i][s - 1] =
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - l0).count();
            for (int b = 0; b < batch; ++b) dec.truncate(ids[i][b], ctx + s);
            const PoolCpuSample c0 = pool_cpu_sample(dec.pool());
            const auto t0 = std::chrono::steady_clock::now();
            dec.step(step_ids, toks);
            const double sec =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            const PoolCpuSample c1 = pool_cpu_sample(dec.pool());
            if (s > 0) {
              times[i][s - 1] = sec;
              wall[i] += c1.wall - c0.wall;
              cpu[i] += c1.cpu - c0.cpu;
            }
          }
          if (s > 0) {
            const double gb_s = std::max(stream.read(false), stream.read(true));
            probes[s - 1] = gb_s;
            for (int i = 0; i < n; ++i)
              fractions[i][s - 1] = step_bytes[i] / (gb_s * 1e9) / times[i][s - 1];
          }
        }
        auto median = [steps](std::vector<double> v) {
          std::sort(v.begin(), v.begin() + steps);
          return steps % 2 ? v[steps / 2] : 0.5 * (v[steps / 2 - 1] + v[steps / 2]);
        };
        for (int i = 0; i < n; ++i) {
          ModelDecodeRow r = base_row(i, ctx, batch);
          r.steps = steps;
          r.best_s = *std::min_element(times[i].begin(), times[i].begin() + steps);
          r.median_s = median(times[i]);
          r.lead_in_median_s = median(lead_ins[i]);
          r.round_probe_gb_s = median(probes);
          r.fraction_of_round_probe = median(fractions[i]);
          r.cpu_util = pool_cpu_share({0, 0}, {cpu[i], wall[i]}, decs[owner[i]]->pool().threads());
          r.cpu_s_per_step = cpu[i] / steps;
          if (o.progress)
            std::fprintf(stderr, "  %s %s %s ctx %d batch %d: median %.1f ms/step\n",
                         shape_name.c_str(), r.cache.c_str(), r.weights.c_str(), ctx, batch,
                         1e3 * r.median_s);
          rows[i].push_back(r);
        }
      }
  }
  std::vector<ModelDecodeRow> out;
  for (auto& r : rows) out.insert(out.end(), r.begin(), r.end());
  return out;
}

}  // namespace thinkeys
