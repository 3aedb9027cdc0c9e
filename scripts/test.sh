#!/usr/bin/env bash
# The whole test suite: setup, Release build + all tests (including replays of
# the fuzz corpora and regressions), the bad-input tests again under
# AddressSanitizer + UBSan, then a bounded run of every fuzz target.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
jobs=${JOBS:-$(nproc)}

echo "== release build"
scripts/build.sh
echo "== tests"
ctest --test-dir build -j "$jobs" --output-on-failure

echo "== sanitizer build (ASan + UBSan): bad-input and parser tests"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs" --target thinkeys test_bad_input test_tokenizer
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan -L 'test_bad_input|test_tokenizer' -j "$jobs" --output-on-failure

# The fuzz targets: a second, small clang build (ASan + UBSan + libFuzzer) of the
# torch-free parsers only; Debian's libtorch headers do not compile with clang
# 14 in C++20 mode, so the CLI's sanitizer build above stays gcc. Leak
# detection is on for the fuzzers (scripts/fuzz.sh).
echo "== fuzz build (clang) and smoke: every target ${FUZZ_SECONDS:-20} s on the committed corpus plus new inputs"
start=$SECONDS
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$jobs" --target fuzzers
echo "fuzz build: $((SECONDS - start)) s"
start=$SECONDS
scripts/fuzz.sh --smoke "${FUZZ_SECONDS:-20}"
echo "fuzz smoke: $((SECONDS - start)) s"
