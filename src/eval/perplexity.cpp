#include "eval/perplexity.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "model/kv_cache.h"
#include "model/transformer.h"
#include "util/error.h"
#include "util/progress.h"

namespace thinkeys {

void PerplexityOptions::validate() const {
  if (ctx <= 0) throw Error("--ctx must be positive (got " + std::to_string(ctx) + ")");
  if (stride <= 0) throw Error("--stride must be positive (got " + std::to_string(stride) + ")");
  if (stride > ctx)
    throw Error("--stride (" + std::to_string(stride) + ") must not exceed --ctx (" +
                std::to_string(ctx) + "): tokens between windows would never be scored");
}

PerplexityResult evaluate_perplexity(const Model& model, std::span<const int32_t> tokens,
                                     const PerplexityOptions& opt, const WindowObserver& observer,
                                     const Model* reference, const WindowLogits& window_logits) {
  opt.validate();
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n < 2) throw Error("evaluation needs at least 2 tokens (got " + std::to_string(n) + ")");
  if (model.config.positions == PositionKind::Learned && opt.ctx > model.config.max_positions)
    throw Error("--ctx " + std::to_string(opt.ctx) + " exceeds the model's " +
                std::to_string(model.config.max_positions) + " learned positions");

  PerplexityResult res;
  res.tokens_total = n;
  if (reference && reference->config.vocab_size != model.config.vocab_size)
    throw Error("reference model has a different vocabulary (" +
                std::to_string(reference->config.vocab_size) + " vs " +
                std::to_string(model.config.vocab_size) + ")");
  KVCache cache(model.config, static_cast<int>(std::min<int64_t>(opt.ctx, n)));
  std::optional<KVCache> ref_cache;
  if (reference)
    ref_cache.emplace(reference->config, static_cast<int>(std::min<int64_t>(opt.ctx, n)));
  double nll_sum = 0.0, kl_sum = 0.0, ref_nll_sum = 0.0;
  int64_t agree = 0;
  int64_t processed = 0;
  const int64_t windows_total = n <= opt.ctx ? 1 : 1 + (n - opt.ctx + opt.stride - 1) / opt.stride;
  Progress progress("eval", windows_total, "win");
  if (!opt.show_progress) progress.finish();

  int64_t prev_end = 0;
  for (int64_t begin = 0;; begin += opt.stride) {
    const int64_t end = std::min(begin + opt.ctx, n);
    const int64_t first = std::max(prev_end, begin + 1);  // first target scored here
    at::Tensor logits;
    if (window_logits) {
      logits = window_logits(tokens.subspan(begin, end - begin));
    } else {
      cache.clear();
      logits = forward(model, tokens.subspan(begin, end - begin), cache);
    }
    processed += end - begin;
    if (first < end) {
      // Logit row i predicts token begin + i + 1.
      at::Tensor rows = logits.narrow(0, first - 1 - begin, end - first);
      at::Tensor logp = at::log_softmax(rows.to(at::kDouble), -1);
      at::Tensor targets =
          at::from_blob(const_cast<int32_t*>(tokens.data() + first), {end - first}, at::kInt)
              .to(at::kLong);
      nll_sum -= logp.gather(1, targets.unsqueeze(1)).sum().item<double>();
      res.tokens_scored += end - first;
      if (reference) {
        ref_cache->clear();
        at::Tensor ref_logits = forward(*reference, tokens.subspan(begin, end - begin), *ref_cache);
        at::Tensor ref_logp = at::log_softmax(
            ref_logits.narrow(0, first - 1 - begin, end - first).to(at::kDouble), -1);
        kl_sum += (ref_logp.exp() * (ref_logp - logp)).sum().item<double>();
        agree += (ref_logp.argmax(-1) == logp.argmax(-1)).sum().item<int64_t>();
        ref_nll_sum -= ref_logp.gather(1, targets.unsqueeze(1)).sum().item<double>();
      }
    }
    if (observer) observer(logits, begin, first);
    ++res.windows;
    if (opt.show_progress) progress.advance(1);
    prev_end = end;
    if (end == n) break;
  }
  progress.finish();
  res.seconds = progress.elapsed_seconds();
  res.mean_nll = nll_sum / static_cast<double>(res.tokens_scored);
  res.perplexity = std::exp(res.mean_nll);
  if (reference) {
    const double scored = static_cast<double>(res.tokens_scored);
    res.has_reference = true;
    res.kl_mean = kl_sum / scored;
    res.top1_agreement = static_cast<double>(agree) / scored;
    res.reference_nll = ref_nll_sum / scored;
  }
  res.tokens_per_second = res.seconds > 0 ? static_cast<double>(processed) / res.seconds : 0.0;
  return res;
}

DocumentsPerplexity evaluate_documents(const Model& model,
                                       const std::vector<std::vector<int32_t>>& documents,
                                       const PerplexityOptions& options, const Model* reference,
                                       const WindowLogits& window_logits) {
  if (documents.empty()) throw Error("evaluation needs at least one document");
  PerplexityOptions quiet = options;
  quiet.show_progress = false;
  Progress progress("eval", static_cast<int64_t>(documents.size()), "doc");
  if (!options.show_progress) progress.finish();
  DocumentsPerplexity out;
  PerplexityResult& t = out.total;
  double nll = 0, kl = 0, agree = 0, ref_nll = 0, processed = 0;
  for (const auto& doc : documents) {
    PerplexityResult r = evaluate_perplexity(model, doc, quiet, {}, reference, window_logits);
    const double scored = static_cast<double>(r.tokens_scored);
    t.tokens_total += r.tokens_total;
    t.tokens_scored += r.tokens_scored;
    t.windows += r.windows;
    t.seconds += r.seconds;
    processed += r.tokens_per_second * r.seconds;
    nll += r.mean_nll * scored;
    if (r.has_reference) {
      kl += r.kl_mean * scored;
      agree += r.top1_agreement * scored;
      ref_nll += r.reference_nll * scored;
    }
    out.per_document.push_back(r);
    if (options.show_progress) progress.advance(1);
  }
  progress.finish();
  const double scored = static_cast<double>(t.tokens_scored);
  t.mean_nll = nll / scored;
  t.perplexity = std::exp(t.mean_nll);
  t.tokens_per_second = t.seconds > 0 ? processed / t.seconds : 0.0;
  if (reference) {
    t.has_reference = true;
    t.kl_mean = kl / scored;
    t.top1_agreement = agree / scored;
    t.reference_nll = ref_nll / scored;
  }
  return out;
}

}  // namespace thinkeys
