#include "kernels/prefetch_tuning.h"

#include <cstring>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace thinkeys {

PrefetchTuning prefetch_tuning_for(std::string_view vendor, int family) {
  PrefetchTuning t;
  if (vendor == "AuthenticAMD" && family >= 26) {
    // Zen 5 VM, whole-model int8 steps paired in one process: weight lines
    // into L1 took 0.92-0.99x the time of L2 at 1K (10 cells in two runs),
    // 0.95-1.01x at 4K-16K. On the Zen 4 VM (family 25) L1 took 1.02-1.21x
    // the time of L2 at 1K-4K batch 1 and 0.96-1.23x at 16K, about the same at
    // batch 8 (paired the same way, docs/results/decode.md): there int8's LM head
    // streamed at 26-28 GB/s into L1 against bf16's 30-35, and at 31-34 into
    // L2. L2 is the default.
    t.int8_into_l1 = true;
  }
  if (vendor == "GenuineIntel") {
    // Measured on the Intel VM, whole-model steps paired in one process
    // (mha 1K, batch 1): int8 weights into L1 ran 1.12x the time of L2, and
    // 6 KiB ahead 1.02x of 3 KiB (2 KiB: 1.07x); bf16 rows 6 KiB ahead
    // 1.06x of 3 KiB. A 16 KiB start burst held the int8 kernel in its
    // prefetch loop for half of its samples (perf), the requests queueing
    // for fill buffers: 3 KiB ran steps 0.90x the time.
    t.weight_bytes = 3072;
    t.int8_bytes = 3072;
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

int cpu_family() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    const int base = static_cast<int>((a >> 8) & 0xf);
    return base == 0xf ? base + static_cast<int>((a >> 20) & 0xff) : base;
  }
#endif
  return 0;
}

const PrefetchTuning& prefetch_tuning() {
  static const PrefetchTuning tuning = prefetch_tuning_for(cpu_vendor(), cpu_family());
  return tuning;
}

}  // namespace thinkeys
