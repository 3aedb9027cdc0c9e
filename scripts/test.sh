#!/usr/bin/env bash
# The whole test suite: setup, Release build + all tests, then the bad-input
# tests again under AddressSanitizer + UBSan.
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
