#pragma once
// Sliding-window perplexity: windows of ctx tokens advance by stride; each
// window scores only the tokens no earlier window scored, so every scored token
// (after the first window) sees at least ctx - stride tokens of context.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "model/weights.h"

namespace thinkeys {

struct PerplexityOptions {
  int ctx = 512;
  int stride = 256;
  bool show_progress = true;
  void validate() const;
};

struct PerplexityResult {
  int64_t tokens_total = 0;
  int64_t tokens_scored = 0;
  int64_t windows = 0;
  double mean_nll = 0;
  double perplexity = 0;
  double seconds = 0;
  double tokens_per_second = 0;  // tokens run through the model per second
  // Against a reference model (same tokens, same windows), per scored token:
  bool has_reference = false;
  double kl_mean = 0;         // mean KL(reference || model), nats
  double top1_agreement = 0;  // fraction where both argmaxes agree
  double reference_nll = 0;   // the reference's own mean NLL on these tokens
};

// Logits [n, V] of one window of n tokens run from an empty cache. The
// default is the dense forward pass; paged_window_logits (eval/paged_logits.h)
// runs every token through the paged, possibly quantized, decode cache.
using WindowLogits = std::function<at::Tensor(std::span<const int32_t> window)>;

// Per-window hook: logits [n, V] of the window and the index of its first token.
using WindowObserver =
    std::function<void(const at::Tensor& logits, int64_t begin, int64_t first_scored)>;

PerplexityResult evaluate_perplexity(const Model& model, std::span<const int32_t> tokens,
                                     const PerplexityOptions& options,
                                     const WindowObserver& observer = {},
                                     const Model* reference = nullptr,
                                     const WindowLogits& window_logits = {});

// Several documents, each scored on its own (its first window starts from an
// empty cache, so no document is context for another). The total is exact:
// NLL, KL and agreement summed over every scored token of every document.
struct DocumentsPerplexity {
  PerplexityResult total;
  std::vector<PerplexityResult> per_document;
};
DocumentsPerplexity evaluate_documents(const Model& model,
                                       const std::vector<std::vector<int32_t>>& documents,
                                       const PerplexityOptions& options,
                                       const Model* reference = nullptr,
                                       const WindowLogits& window_logits = {});

}  // namespace thinkeys
