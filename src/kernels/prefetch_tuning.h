#pragma once
// How far ahead of its reads, and into which cache, each decode kernel
// requests the bytes it streams. The best settings differ between the kinds
// of 2-vCPU VM these kernels run on, by more than any other choice in them,
// so they are picked once per process from the CPU's vendor and family
// (docs/results/decode.md, "Prefetch by CPU"). Intel's and Zen 5's
// departures are in prefetch_tuning.cpp; the defaults were tuned on the AMD
// Zen 4/5 VMs, where 6 KiB beat 3 KiB by 13-24% in the attention kernel and
// 16 KiB starts beat 8 KiB by 5-10% (kernels/weight_prefetch.h).
#include <cstddef>
#include <string_view>

namespace thinkeys {

struct PrefetchTuning {
  // 16-bit and f32 weight rows (kernels/small_gemm.cpp), into L2; at least
  // one tile of rows ahead.
  std::size_t weight_bytes = 6144;
  // Packed int8 weights (kernels/packed_gemm.cpp), one request per line read.
  std::size_t int8_bytes = 6144;
  bool int8_into_l1 = false;  // prefetcht0; else prefetcht1 (L2)
  // Requested at once as a thread starts a range of int8 rows: the
  // steady-state requests of the range before do not reach them in time.
  std::size_t int8_start_bytes = 16384;
  // Decode attention's key and value rows (kernels/prefetch_cursor.h), into L2.
  std::size_t attention_bytes = 6144;
};

// The settings for a CPU whose CPUID vendor string is `vendor`
// ("GenuineIntel", "AuthenticAMD", ...) and whose family is `family` (as
// Linux's /proc/cpuinfo gives it: 25 for Zen 3 and 4, 26 for Zen 5): Intel's
// for Intel, Zen 5's for AMD from family 26 on, otherwise AMD's, the ones
// measured on more machines.
PrefetchTuning prefetch_tuning_for(std::string_view vendor, int family);

// This CPU's vendor string ("" where CPUID does not exist).
std::string_view cpu_vendor();
// Its family: CPUID's base family, plus the extended family where the base
// is 15 (0 where CPUID does not exist).
int cpu_family();

// prefetch_tuning_for(cpu_vendor(), cpu_family()), worked out once.
const PrefetchTuning& prefetch_tuning();

}  // namespace thinkeys
