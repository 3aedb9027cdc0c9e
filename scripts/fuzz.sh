#!/usr/bin/env bash
# Runs every libFuzzer target (fuzz/fuzz.cmake) from the clang sanitizer build.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   campaign: SECONDS per target (default 300),
#       new inputs kept in build-fuzz/fuzz-campaign/<target>, one process on one
#       core at nice 10; prints executions, edges and crashes per target and
#       writes them to build-fuzz/fuzz-campaign/summary.tsv (robustness.md quotes it).
#   scripts/fuzz.sh --smoke SECONDS          CI smoke (scripts/test.sh): every target for
#       SECONDS on the committed corpus and regressions plus new inputs in a scratch
#       directory; fails on any crash, leak, timeout or sanitizer report.
# The build must exist (cmake --preset fuzz && cmake --build --preset fuzz --target fuzzers).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

smoke=0
if [[ ${1:-} == --smoke ]]; then
  smoke=1
  shift
fi
seconds=${1:-300}
shift || true
bin=$root/build-fuzz/fuzz
targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in "$bin"/fuzz_*; do
    [[ -x $f && $f != *_replay ]] && targets+=("$(basename "$f" | sed 's/^fuzz_//')")
  done
fi
((${#targets[@]})) || { echo "fuzz: no fuzz targets in $bin (build the fuzz preset first)" >&2; exit 1; }

# Leaks are on: libFuzzer checks every input that allocates more than it frees.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

if ((smoke)); then
  work=$(mktemp -d "${TMPDIR:-/tmp}/thinkeys-fuzz-smoke.XXXXXX")
  trap 'rm -rf "$work"' EXIT
else
  work=$root/build-fuzz/fuzz-campaign
  mkdir -p "$work"
  printf 'target\tseconds\texecutions\texec_per_s\tedges\tfeatures\tcorpus\tcrashes\n' >"$work/summary.tsv"
fi

failed=()
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 -print_final_stats=1
        -artifact_prefix="$work/$t/crash-" "$work/$t" "fuzz/corpus/$t")
  [[ -d fuzz/regressions/$t ]] && args+=("fuzz/regressions/$t")
  [[ -f fuzz/dict/$t.dict ]] && args=(-dict="fuzz/dict/$t.dict" "${args[@]}")
  log=$work/$t.log
  rc=0
  if ((smoke)); then
    "$bin/fuzz_$t" "${args[@]}" >"$log" 2>&1 || rc=$?
  else
    nice -n 10 "$bin/fuzz_$t" "${args[@]}" >"$log" 2>&1 || rc=$?
  fi
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo 0)
  line=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -1 || true)
  edges=$(grep -o 'cov: [0-9]*' <<<"$line" | grep -o '[0-9]*' || echo 0)
  feats=$(grep -o 'ft: [0-9]*' <<<"$line" | grep -o '[0-9]*' || echo 0)
  corp=$(grep -o 'corp: [0-9]*' <<<"$line" | grep -o '[0-9]*' || echo 0)
  crashes=$(find "$work/$t" -maxdepth 1 -name 'crash-*' -o -maxdepth 1 -name 'leak-*' -o -maxdepth 1 -name 'timeout-*' -o -maxdepth 1 -name 'oom-*' | wc -l)
  printf 'fuzz %-20s rc %d  %10s execs  %6s edges  %4s crashes\n' "$t" "$rc" "$execs" "$edges" "$crashes"
  if ((rc != 0)); then
    failed+=("$t")
    grep -E 'ERROR|SUMMARY|runtime error|deadly|Test unit written' "$log" | head -8 >&2 || true
  fi
  if ((!smoke)); then
    rate=$((execs / (seconds > 0 ? seconds : 1)))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$seconds" "$execs" "$rate" "$edges" "$feats" "$corp" "$crashes" >>"$work/summary.tsv"
  fi
done

if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (logs and crashing inputs in $work)" >&2
  ((smoke)) && trap - EXIT  # keep the evidence
  exit 1
fi
echo "fuzz: ${#targets[@]} targets clean"
