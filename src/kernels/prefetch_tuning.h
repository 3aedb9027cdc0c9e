#pragma once
// How far ahead of its reads, and into which cache, each decode kernel
// requests the bytes it streams. The best distances differ between the two
// kinds of 2-vCPU VM these kernels run on, by more than any other choice in
// them, so they are picked once per process from the CPU's vendor. Paired
// whole-model steps in one process (docs/results/decode.md, "Prefetch by
// CPU"): on the Intel VM (Xeon, 2 MiB L2 per core) the AMD settings ran int8
// weight steps at mha 1K 1.12-1.18x the time of these, bf16 steps 1.06x;
// on the AMD Zen 4/5 VMs 6 KiB beat 3 KiB by 13-24% in the attention kernel
// and int8 weights read 3-6% faster into L1 than into L2.
#include <cstddef>
#include <string_view>

namespace thinkeys {

struct PrefetchTuning {
  // 16-bit and f32 weight rows (kernels/small_gemm.cpp), into L2; at least
  // one tile of rows ahead.
  std::size_t weight_bytes = 6144;
  // Packed int8 weights (kernels/int8_gemm.cpp), one request per line read.
  std::size_t int8_bytes = 6144;
  bool int8_into_l1 = true;  // prefetcht0; else prefetcht1 (L2)
  // Decode attention's key and value rows (kernels/prefetch_cursor.h), into L2.
  std::size_t attention_bytes = 6144;
};

// The settings for a CPU whose CPUID vendor string is `vendor`
// ("GenuineIntel", "AuthenticAMD", ...): Intel's for Intel, otherwise AMD's,
// the ones measured on more machines.
PrefetchTuning prefetch_tuning_for(std::string_view vendor);

// This CPU's vendor string ("" where CPUID does not exist).
std::string_view cpu_vendor();

// prefetch_tuning_for(cpu_vendor()), worked out once.
const PrefetchTuning& prefetch_tuning();

}  // namespace thinkeys
