#!/usr/bin/env bash
# The whole test suite: setup, Release build + all tests (including replays of
# the fuzz corpora and regressions), then the bad-input tests again under
# AddressSanitizer + UBSan and a bounded run of every fuzz target.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
jobs=${JOBS:-$(nproc)}

echo "== release build"
scripts/build.sh
echo "== tests"
ctest --test-dir build -j "$jobs" --output-on-failure

# One clang build with ASan + UBSan serves both the bad-input tests and the
# libFuzzer targets (fuzz/fuzz.cmake); only what they need is built.
echo "== sanitizer build (clang, ASan + UBSan + libFuzzer): bad-input and parser tests, fuzz targets"
start=$SECONDS
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs" --target thinkeys test_bad_input test_tokenizer fuzzers
echo "sanitizer build: $((SECONDS - start)) s"
# detect_leaks=0 here: these tests run the CLI, and libtorch/OpenBLAS keep
# thread pools and per-thread buffers alive at exit, which LeakSanitizer reports
# as leaks that are not ours. The fuzz targets below run with leak detection on.
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan -L 'test_bad_input|test_tokenizer' -j "$jobs" --output-on-failure

echo "== fuzz smoke: every target ${FUZZ_SECONDS:-20} s on the committed corpus plus new inputs"
start=$SECONDS
scripts/fuzz.sh --smoke "${FUZZ_SECONDS:-20}"
echo "fuzz smoke: $((SECONDS - start)) s"
