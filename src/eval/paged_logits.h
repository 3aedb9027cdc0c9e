#pragma once
// Evaluation through the serving cache: a window's first token is prefilled,
// every later token is a decode step over the paged cache at the chosen key
// and value dtypes, so each scored logit saw only quantized keys and values,
// exactly as in deployment (the dense forward would see exact f32 ones).
#include "eval/perplexity.h"
#include "runtime/batch_decoder.h"

namespace thinkeys {

// The decoder is owned by the returned function; `model` must outlive it.
WindowLogits paged_window_logits(const Model& model, const BatchDecoderOptions& options);

}  // namespace thinkeys
