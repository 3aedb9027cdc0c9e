#pragma once
// Per-layer attention fidelity of a (compressed) model against its original:
// relative Frobenius errors of the scores QK^T, the softmax weights and the
// attention output, the quantities the KQ-SVD paper reports.
#include <cstdint>
#include <span>
#include <vector>

#include "model/weights.h"

namespace thinkeys {

struct FidelityLayer {
  // ||X_model - X_ref||_F / ||X_ref||_F summed over all windows. Scores skip
  // masked (query, key) pairs and are centred per query row (softmax is
  // invariant to a per-query shift, so only the centred part can matter).
  double scores = 0, probs = 0, output = 0;
};

struct FidelityReport {
  int64_t tokens = 0;
  int64_t windows = 0;
  int ctx = 0;
  std::vector<FidelityLayer> layers;
  FidelityLayer overall;  // the same ratios with numerators and denominators summed over layers
};

// Runs both models over consecutive, non-overlapping windows of `ctx` tokens.
// Throws Error unless both share vocabulary, layers, heads and head width.
FidelityReport measure_fidelity(const Model& model, const Model& reference,
                                std::span<const int32_t> tokens, int ctx, bool progress);

// The same over several documents, each cut into its own windows (no window
// spans two documents); numerators and denominators are summed over all.
FidelityReport measure_fidelity(const Model& model, const Model& reference,
                                const std::vector<std::span<const int32_t>>& documents, int ctx,
                                bool progress);

}  // namespace thinkeys
