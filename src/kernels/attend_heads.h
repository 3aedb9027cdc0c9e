#pragma once
// The dispatched kernel behind decode_attention.h: heads of one sequence
// over the same tokens, in lockstep, on the best instruction set of this
// machine. Internal to kernels/ (the scheduler calls it after checking the
// tasks); everyone else uses decode_attention.h.
#include <span>

#include "kernels/decode_attention.h"

namespace thinkeys {

void attend_heads(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                  std::span<const LatentKeys* const> latents, AttentionScratch& scratch);

}  // namespace thinkeys
