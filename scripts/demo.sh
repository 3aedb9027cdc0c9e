#!/usr/bin/env bash
# The main job: build, then run a real model end to end (greedy generation and
# perplexity) on stories260K from ../shared (or $THINKEYS_SHARED).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/build.sh --target thinkeys >/dev/null 2>&1 || scripts/build.sh
tk=build/thinkeys

shared=${THINKEYS_SHARED:-$root/../shared}
model=$shared/models/stories260K/stories260K.bin
data=$shared/data/tinystories/tinystories_val_head.txt
if [ ! -f "$model" ]; then
  cat <<TXT
thinkeys is built ($tk), but the shared models were not found at $shared.
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
echo
echo "== thinkeys eval (TinyStories validation head, ctx 512, stride 256)"
$tk eval "$model" --data "$data" --ctx 512 --stride 256
