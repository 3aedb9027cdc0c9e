#include "kernels/prefetch_tuning.h"

#include <cstring>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace thinkeys {

PrefetchTuning prefetch_tuning_for(std::string_view vendor) {
  PrefetchTuning t;
  if (vendor == "GenuineIntel") {
    // Measured on the Intel VM, whole-model steps paired in one process
    // (mha 1K, batch 1): int8 weights into L1 ran 1.12x the time of L2, and
    // 6 KiB ahead 1.02x of 3 KiB (2 KiB: 1.07x); bf16 rows 6 KiB ahead
    // 1.06x of 3 KiB. A 16 KiB start burst held the int8 kernel in its
    // prefetch loop for half of its samples (perf), the requests queueing
    // for fill buffers: 3 KiB ran steps 0.90x the time.
    t.weight_bytes = 3072;
    t.int8_bytes = 3072;
    t.int8_into_l1 = false;
    t.int8_start_bytes = 3072;
    t.attention_bytes = 3072;
  }
  return t;
}

std::string_view cpu_vendor() {
  static const std::string vendor = [] {
#if defined(__x86_64__) || defined(__i386__)
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (__get_cpuid(0, &a, &b, &c, &d)) {
      char s[13] = {};
      std::memcpy(s, &b, 4);
      std::memcpy(s + 4, &d, 4);
      std::memcpy(s + 8, &c, 4);
      return std::string(s);
    }
#endif
    return std::string();
  }();
  return vendor;
}

const PrefetchTuning& prefetch_tuning() {
  static const PrefetchTuning tuning = prefetch_tuning_for(cpu_vendor());
  return tuning;
}

}  // namespace thinkeys
