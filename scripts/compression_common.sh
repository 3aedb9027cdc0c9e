# Sourced by the compression sweeps (compression_sweep.sh, keys_vs_queries.sh),
# which set up alike: the thinkeys binary (THINKEYS_BIN), the shared data, the
# model (MODEL, default stories260K), a scratch directory `work` removed on
# exit, the calibration text `$work/calib.txt` (the first 200 KB of CALIB,
# default the TinyStories validation head `tiny`) and `uses_rope` (1 when the
# model rotates keys, so its compressions take --rope).
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tk=${THINKEYS_BIN:-$root/build/thinkeys}
shared=${THINKEYS_SHARED:-$root/../shared}
M=${MODEL:-$shared/models/stories260K/stories260K.bin}
tiny=$shared/data/tinystories/tinystories_val_head.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c 200000 "${CALIB:-$tiny}" >"$work/calib.txt"
uses_rope=$("$tk" info "$M" --json | python3 -c "import json,sys; print(int(json.load(sys.stdin)['positions'] == 'RoPE'))")
