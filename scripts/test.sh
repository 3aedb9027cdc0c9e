#!/usr/bin/env bash
# The whole test suite: setup, Release build + all tests (including replays of
# the fuzz corpora and regressions), then one clang sanitizer build that runs
# the bad-input tests under AddressSanitizer + UBSan + LeakSanitizer and a
# bounded run of every fuzz target.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
jobs=${JOBS:-$(nproc)}

echo "== release build"
scripts/build.sh
echo "== tests"
ctest --test-dir build -j "$jobs" --output-on-failure

# One sanitizer build (the `asan` preset: clang 16, ASan + UBSan, libFuzzer
# coverage) serves both the bad-input tests and the fuzz targets. clang reads
# Debian's libtorch headers against GCC 11's libstdc++ headers
# (cmake/clang_torch_headers.cmake explains why). Leak detection is on for both.
echo "== sanitizer build (clang, ASan + UBSan + libFuzzer): CLI, bad-input and parser tests, fuzz targets"
start=$SECONDS
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs" --target thinkeys test_bad_input test_tokenizer fuzzers
echo "sanitizer build: $((SECONDS - start)) s"
start=$SECONDS
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan -L 'test_bad_input|test_tokenizer' -j "$jobs" --output-on-failure
echo "sanitizer tests: $((SECONDS - start)) s"

echo "== fuzz smoke: every target ${FUZZ_SECONDS:-20} s on the committed corpus plus new inputs"
start=$SECONDS
scripts/fuzz.sh --smoke "${FUZZ_SECONDS:-20}"
echo "fuzz smoke: $((SECONDS - start)) s"
