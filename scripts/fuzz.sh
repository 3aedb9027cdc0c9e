#!/usr/bin/env bash
# Runs every libFuzzer target (fuzz/fuzz.cmake) from the clang sanitizer build.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   campaign: SECONDS per target (default 300),
#       new inputs kept in build-asan/fuzz-campaign/<target>, one process on one
#       core at nice 10; prints executions, edges and crashes per target and
#       writes them to build-asan/fuzz-campaign/summary.tsv (replacing those targets'
#       rows, keeping the others') and to the table between
#       the fuzz-campaign markers in docs/results/robustness.md.
#   scripts/fuzz.sh --report                 only rewrite robustness.md's campaign table
#       from the last campaign's summary.tsv.
#   scripts/fuzz.sh --smoke SECONDS          CI smoke (scripts/test.sh): every target for
#       SECONDS on the committed corpus and regressions plus new inputs in a scratch
#       directory; fails on any crash, leak, timeout or sanitizer report.
# The build must exist (cmake --preset asan && cmake --build --preset asan --target fuzzers).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

report=$root/docs/results/robustness.md
summary=$root/build-asan/fuzz-campaign/summary.tsv

# Rewrites the table between the fuzz-campaign markers of robustness.md from
# summary.tsv; "fixed" counts the committed regression inputs of each target
# (crashes found earlier, fixed, and replayed by ctest ever since).
write_report() {
  [[ -f $summary && -f $report ]] || return 0
  local table
  table=$(
    echo "| target | seconds | executions | exec/s | edges | corpus | crashes this run | fixed (regression files) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    tail -n +2 "$summary" | while IFS=$'\t' read -r t secs execs rate edges feats corp crashes; do
      fixed=$(find "fuzz/regressions/$t" -type f 2>/dev/null | wc -l)
      printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$secs" "$execs" "$rate" "$edges" "$corp" "$crashes" "$fixed"
    done
    tail -n +2 "$summary" | awk -F'\t' '{e += $3; c += $8} END {printf "| **total** | | **%d** | | | | **%d** | |\n", e, c}'
    echo
    echo "Campaign finished $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores shared with other work (load $(cut -d' ' -f1 /proc/loadavg)); one fuzzing process at nice 10."
  )
  TABLE="$table" python3 - "$report" <<'PY'
import os, re, sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
new = "<!-- fuzz-campaign:begin -->\n" + os.environ["TABLE"] + "\n<!-- fuzz-campaign:end -->"
text = re.sub(r"<!-- fuzz-campaign:begin -->.*?<!-- fuzz-campaign:end -->", lambda m: new, text, flags=re.S)
open(path, "w", encoding="utf-8").write(text)
PY
}

if [[ ${1:-} == --report ]]; then
  write_report
  exit 0
fi

smoke=0
if [[ ${1:-} == --smoke ]]; then
  smoke=1
  shift
fi
seconds=${1:-300}
shift || true
bin=$root/build-asan/fuzz
targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in "$bin"/fuzz_*; do
    [[ -x $f && $f != *_replay ]] && targets+=("$(basename "$f" | sed 's/^fuzz_//')")
  done
fi
((${#targets[@]})) || { echo "fuzz: no fuzz targets in $bin (build the asan preset first)" >&2; exit 1; }

# Leaks are on: libFuzzer checks every input that allocates more than it frees.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

if ((smoke)); then
  work=$(mktemp -d "${TMPDIR:-/tmp}/thinkeys-fuzz-smoke.XXXXXX")
  trap 'rm -rf "$work"' EXIT
else
  work=$(dirname "$summary")
  mkdir -p "$work"
  # Keep the last figures of targets not run now, so the table shows every
  # target's latest campaign.
  keep=$(mktemp)
  [[ -f $summary ]] && tail -n +2 "$summary" | awk -F'\t' -v run=" ${targets[*]} " 'index(run, " " $1 " ") == 0' >"$keep"
  printf 'target\tseconds\texecutions\texec_per_s\tedges\tfeatures\tcorpus\tcrashes\n' >"$summary"
  cat "$keep" >>"$summary"
  rm -f "$keep"
fi

failed=()
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "$work/$t.artifacts"
  touch "$work/$t.start"  # crashes of this run are the artifacts newer than this
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 -print_final_stats=1
        -artifact_prefix="$work/$t.artifacts/" "$work/$t" "fuzz/corpus/$t")
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
  crashes=$(find "$work/$t.artifacts" -type f -newer "$work/$t.start" | wc -l)
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

((smoke)) || write_report

if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (logs and crashing inputs in $work)" >&2
  ((smoke)) && trap - EXIT  # keep the evidence
  exit 1
fi
echo "fuzz: ${#targets[@]} targets clean"
