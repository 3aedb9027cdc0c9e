#!/usr/bin/env bash
# The main job: build, then `thinkeys demo` (small models learn key-value
# retrieval with full and thin keys, the full model's keys are compressed after
# training; accuracy and real KV bytes per token; plus stories260K perplexity
# before/after key compression when ../shared or $THINKEYS_SHARED exists), then
# greedy generation with stories260K when it is there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# Only the CLI: the demo needs nothing else, and a failed build stops here
# (set -e) rather than falling back to something else.
echo "== building thinkeys"
scripts/build.sh --target thinkeys
tk=build/thinkeys

echo "== thinkeys demo (a couple of minutes on 2 cores)"
$tk demo
echo

shared=${THINKEYS_SHARED:-$root/../shared}
model=$shared/models/stories260K/stories260K.bin
if [ ! -f "$model" ]; then
  cat <<TXT
The shared models were not found at $shared, so the demo ran without stories260K.
Point THINKEYS_SHARED at the directory holding models/ and data/, or run on your own files:
  $tk info MODEL_DIR_OR_LLAMA2C_BIN
  $tk generate MODEL --prompt "Once upon a time" -n 64
  $tk eval MODEL --data TEXT_FILE --ctx 512 --stride 256
TXT
  exit 0
fi

echo "== thinkeys info"
$tk info "$model" --ctx 512
echo
echo "== thinkeys generate (greedy from BOS; matches the model card's published output)"
$tk generate "$model" -n 256
