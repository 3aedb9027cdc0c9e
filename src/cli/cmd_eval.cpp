#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "checkpoint/model_loader.h"
#include "cli/cache_options.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/document_options.h"
#include "cli/shared_options.h"
#include "eval/document_slices.h"
#include "eval/paged_logits.h"
#include "eval/perplexity.h"
#include "util/error.h"
#include "util/text_file.h"

namespace thinkeys::cli {
namespace {

struct EvalOpts {
  std::string model, tokenizer, data, reference;
  std::string weights = "stored";
  bool paged = false;
  CacheOptions cache;
  DocumentOptions documents;
  int ctx = 512, stride = 256;
  int64_t max_tokens = 0;
  bool json = false, no_bos = false;
};

nlohmann::json cache_json(const EvalOpts& o, bool paged) {
  if (!paged) return "dense f32";
  return {{"key_dtype", o.cache.key_dtype},
          {"value_dtype", o.cache.value_dtype},
          {"key_rotation", !o.cache.no_key_rotation},
          {"block_tokens", o.cache.block_tokens}};
}

void add_result_json(nlohmann::json& j, const PerplexityResult& r) {
  j["tokens"] = r.tokens_total;
  j["tokens_scored"] = r.tokens_scored;
  j["windows"] = r.windows;
  j["mean_nll"] = r.mean_nll;
  j["perplexity"] = r.perplexity;
  if (r.has_reference) {
    j["kl_mean"] = r.kl_mean;
    j["top1_agreement"] = r.top1_agreement;
    j["reference_perplexity"] = std::exp(r.reference_nll);
  }
}

void print_result_lines(const EvalOpts& o, const PerplexityResult& r) {
  std::printf("tokens scored %lld\n", static_cast<long long>(r.tokens_scored));
  std::printf("mean NLL      %.4f nats/token\n", r.mean_nll);
  std::printf("perplexity    %.4f\n", r.perplexity);
  if (r.has_reference) {
    std::printf("reference     %s: perplexity %.4f\n", o.reference.c_str(),
                std::exp(r.reference_nll));
    std::printf("KL(ref||this) %.5f nats/token\n", r.kl_mean);
    std::printf("top-1 agree   %.2f%%\n", 100.0 * r.top1_agreement);
  }
}

void print_cache_line(const EvalOpts& o, bool paged) {
  if (paged)
    std::printf("cache         paged, K %s, V %s, %d tokens/block\n", o.cache.key_dtype.c_str(),
                o.cache.value_dtype.c_str(), o.cache.block_tokens);
}

void print_single(const EvalOpts& o, bool paged, const PerplexityOptions& po,
                  const PerplexityResult& r) {
  if (o.json) {
    nlohmann::json j = {{"model", o.model},
                        {"data", o.data},
                        {"cache", cache_json(o, paged)},
                        {"ctx", po.ctx},
                        {"stride", po.stride},
                        {"seconds", r.seconds},
                        {"tokens_per_second", r.tokens_per_second}};
    add_result_json(j, r);
    if (r.has_reference) j["reference"] = o.reference;
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("data          %s (%lld tokens)\n", o.data.c_str(),
              static_cast<long long>(r.tokens_total));
  print_cache_line(o, paged);
  std::printf("windows       %lld (ctx %d, stride %d)\n", static_cast<long long>(r.windows), po.ctx,
              po.stride);
  print_result_lines(o, r);
  std::printf("speed         %.0f tokens/s (%.1f s)\n", r.tokens_per_second, r.seconds);
}

nlohmann::json spread_json(const Spread& s) {
  return {{"n", s.n}, {"mean", s.mean}, {"sd", s.sd}, {"min", s.min}, {"max", s.max}};
}

// One row per slice (its tokens, perplexity, KL), then the mean and spread
// over slices of each figure: the slices are disjoint, so the spread says how
// much a reported figure owes to which text it was measured on.
void print_documents(const EvalOpts& o, bool paged, const PerplexityOptions& po,
                     const std::vector<std::string>& names, const std::vector<int>& slices,
                     const std::vector<DocumentsPerplexity>& runs) {
  const DocumentOptions& d = o.documents;
  std::vector<double> ppl, nll, kl, agree;
  for (const auto& run : runs) {
    ppl.push_back(run.total.perplexity);
    nll.push_back(run.total.mean_nll);
    kl.push_back(run.total.kl_mean);
    agree.push_back(run.total.top1_agreement);
  }
  const bool has_ref = runs.front().total.has_reference;
  if (o.json) {
    nlohmann::json j = {{"model", o.model},
                        {"data", o.data},
                        {"documents_index", d.index},
                        {"doc_tokens", d.per_document},
                        {"cache", cache_json(o, paged)},
                        {"ctx", po.ctx},
                        {"stride", po.stride}};
    if (has_ref) j["reference"] = o.reference;
    nlohmann::json js = nlohmann::json::array();
    for (std::size_t k = 0; k < runs.size(); ++k) {
      nlohmann::json e = {{"slice", slices[k]}};
      add_result_json(e, runs[k].total);
      nlohmann::json per = nlohmann::json::array();
      for (std::size_t i = 0; i < names.size(); ++i) {
        const auto& r = runs[k].per_document[i];
        nlohmann::json pe = {
            {"name", names[i]}, {"tokens_scored", r.tokens_scored}, {"perplexity", r.perplexity}};
        if (r.has_reference) pe["kl_mean"] = r.kl_mean;
        per.push_back(pe);
      }
      e["documents"] = per;
      js.push_back(e);
    }
    j["slices"] = js;
    if (runs.size() == 1) add_result_json(j, runs.front().total);
    j["perplexity_over_slices"] = spread_json(spread_of(ppl));
    j["mean_nll_over_slices"] = spread_json(spread_of(nll));
    if (has_ref) {
      j["kl_over_slices"] = spread_json(spread_of(kl));
      j["top1_over_slices"] = spread_json(spread_of(agree));
    }
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("data          %s, %zu document(s)", o.data.c_str(), names.size());
  if (d.per_document > 0)
    std::printf(", %lld tokens of each per slice", static_cast<long long>(d.per_document));
  std::printf("\n");
  print_cache_line(o, paged);
  std::printf("windows       ctx %d, stride %d; no window spans two documents\n", po.ctx,
              po.stride);
  for (std::size_t k = 0; k < runs.size(); ++k) {
    const auto& t = runs[k].total;
    if (d.per_document > 0)
      std::printf("slice %d       tokens [%lld, %lld) of each document\n", slices[k],
                  static_cast<long long>(slices[k] * d.per_document),
                  static_cast<long long>((slices[k] + 1) * d.per_document));
    if (names.size() > 1)
      for (std::size_t i = 0; i < names.size(); ++i)
        std::printf("  %-32s %8lld tokens  perplexity %.4f\n", names[i].c_str(),
                    static_cast<long long>(runs[k].per_document[i].tokens_scored),
                    runs[k].per_document[i].perplexity);
    print_result_lines(o, t);
  }
  if (runs.size() > 1) {
    const Spread p = spread_of(ppl);
    std::printf("over %d slices perplexity %.4f +- %.4f (sd; min %.4f, max %.4f)\n", p.n, p.mean,
                p.sd, p.min, p.max);
    if (has_ref) {
      const Spread k = spread_of(kl);
      std::printf("over %d slices KL         %.5f +- %.5f (sd; min %.5f, max %.5f)\n", k.n, k.mean,
                  k.sd, k.min, k.max);
    }
  }
}

}  // namespace

Command add_eval(CLI::App& app) {
  auto opts = std::make_shared<EvalOpts>();
  auto* sub = app.add_subcommand("eval", "Sliding-window perplexity over a text file");
  add_model_argument(sub, opts->model);
  sub->add_option("--data", opts->data,
                  "UTF-8 text file (one document unless --documents says where documents start)")
      ->required();
  sub->add_option("--ctx", opts->ctx, "Window length in tokens");
  sub->add_option("--stride", opts->stride, "Window advance in tokens (<= ctx)");
  sub->add_option("--max-tokens", opts->max_tokens, "Score only the first N tokens of the file");
  add_document_options(sub, opts->documents);
  add_tokenizer_option(sub, opts->tokenizer);
  sub->add_flag("--no-bos", opts->no_bos, "Do not prepend BOS to the document");
  sub->add_option("--reference", opts->reference,
                  "Original model: also report KL(original || model) and top-1 agreement");
  sub->add_flag("--paged", opts->paged,
                "Run every token after a window's first through the paged decode cache (the "
                "serving path), so the score reflects the cache dtypes");
  add_cache_options(sub, opts->cache, /*budget=*/false, "(implies --paged)");
  sub->add_flag("--json", opts->json, "Print JSON");
  add_weights_option(sub, opts->weights);  // the reference keeps its stored dtype
  return {sub, [opts, sub] {
            const bool paged = opts->paged || cache_dtype_given(sub);
            BatchDecoderOptions bo;
            if (paged) {
              bo.cache = cache_spec(opts->cache);
              bo.threads = attention_threads(opts->cache);
            }
            PerplexityOptions po{opts->ctx, opts->stride, !opts->json};
            po.validate();  // before the (possibly slow) load
            const DocumentOptions& dopt = opts->documents;
            check_document_options(dopt, opts->max_tokens);
            std::string text = read_file_bytes(opts->data);
            if (text.empty()) throw Error("data file " + opts->data + " is empty");
            Model m = load_model(opts->model, weights_choice(opts->weights));
            auto mt = model_tokenizer(opts->model, opts->tokenizer, &m);
            std::optional<Model> ref;
            if (!opts->reference.empty()) ref = load_model(opts->reference, std::nullopt);
            if (paged) {
              // One window at a time: its blocks are all the pool ever holds.
              const int64_t row = static_cast<int64_t>(m.config.kv_bytes_per_token(4, 4));
              bo.cache.budget_bytes = static_cast<std::size_t>(
                  row * (po.ctx + 2 * opts->cache.block_tokens) * 2 + (1 << 20));
            }
            const WindowLogits window = paged ? paged_window_logits(m, bo) : WindowLogits{};
            const int bos_mode = opts->no_bos ? 0 : -1;

            if (!documents_requested(dopt)) {
              auto tokens = prompt_tokens(m, mt, text, bos_mode);
              if (opts->max_tokens > 0 && static_cast<int64_t>(tokens.size()) > opts->max_tokens)
                tokens.resize(static_cast<size_t>(opts->max_tokens));
              auto r = evaluate_perplexity(m, tokens, po, {}, ref ? &*ref : nullptr, window);
              print_single(*opts, paged, po, r);
              return;
            }

            const TokenizedDocuments docs =
                tokenize_documents(m, mt, text, opts->data, dopt, bos_mode);
            std::vector<int> slices = slice_indices(dopt);
            std::vector<DocumentsPerplexity> runs;
            for (int s : slices) {
              const auto seqs = slice_sequences(docs, dopt, s);
              runs.push_back(evaluate_documents(m, seqs, po, ref ? &*ref : nullptr, window));
            }
            print_documents(*opts, paged, po, docs.names, slices, runs);
          }};
}

}  // namespace thinkeys::cli
