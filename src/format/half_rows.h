#pragma once
// f32 -> f16 for a whole cache row at once. A prompt writes every key and
// value row of every layer; converted one element at a time (a libgcc call
// per element where the baseline target has no F16C) that was about a tenth
// of a 512-token prefill.
#include <cstddef>

namespace thinkeys {

// dst = the f16 bits of src[0, n), rounded to nearest even (as f32_to_f16),
// written as 2n bytes in the host's byte order; dst needs no alignment.
void f32_to_f16_row(const float* src, std::size_t n, std::byte* dst);

}  // namespace thinkeys
