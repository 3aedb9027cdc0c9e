#!/usr/bin/env bash
# Configures and builds thinkeys (Release by default) into build/ or $BUILD_DIR.
#   scripts/build.sh                       everything (the CLI, tests, benchmarks)
#   scripts/build.sh --target thinkeys     only the named targets (repeatable)
#   scripts/build.sh -DFOO=ON              other arguments go to the configure step
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
jobs=${JOBS:-$(nproc)}
# --target names what to build, so it belongs to `cmake --build`; handing it to
# the configure step makes cmake fail on an unknown option.
configure=()
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --target | -t)
      [ $# -ge 2 ] || { echo "build.sh: $1 needs a target name" >&2; exit 2; }
      targets+=(--target "$2")
      shift 2
      ;;
    --target=*) targets+=(--target "${1#--target=}"); shift ;;
    *) configure+=("$1"); shift ;;
  esac
done
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" ${configure[@]+"${configure[@]}"} >/dev/null
cmake --build "$build" -j "$jobs" ${targets[@]+"${targets[@]}"}
