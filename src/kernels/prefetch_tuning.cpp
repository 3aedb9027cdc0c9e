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
    // Intel's L2 streamer runs ahead of a core by itself; requests further
    // on than about one page only take line-fill buffers from it. Into L1
    // (prefetcht0), the int8 kernel's steps took 1.12x as long.
    t.weight_bytes = 3072;
    t.int8_bytes = 3072;
    t.int8_into_l1 = false;
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
