// Decode attention's Highway entry points. Highway compiles this file once
// per instruction set (foreach_target.h) together with the per-target kernel
// pieces it includes, and picks the best one at run time
// (HWY_DYNAMIC_DISPATCH). The plain C++ around it (task checks, grouping,
// splitting over threads, scratch) is in attention_scheduler.cpp.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/decode_attention.cpp"
// clang-format off
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>
// clang-format on

#include "kernels/attend_heads.h"
#include "kernels/attention_block-inl.h"

HWY_BEFORE_NAMESPACE();
namespace thinkeys {
namespace HWY_NAMESPACE {

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }
bool HasIntegerScores() { return IntegerScoresHere(); }

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace thinkeys {

HWY_EXPORT(AttendHeads);
HWY_EXPORT(TargetName);
HWY_EXPORT(HasIntegerScores);

void attend_heads(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                  std::span<const LatentKeys* const> latents, AttentionScratch& scratch) {
  HWY_DYNAMIC_DISPATCH(AttendHeads)(shape, tasks, latents, scratch);
}

const char* decode_attention_target() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

bool decode_attention_integer_scores() { return HWY_DYNAMIC_DISPATCH(HasIntegerScores)(); }

}  // namespace thinkeys
#endif  // HWY_ONCE
