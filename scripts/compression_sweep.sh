#!/usr/bin/env bash
# Reproduces the stories260K rows of docs/results/compression.md:
# {svd, kqsvd} x {post, latent, pairs} x key ratio {1/2, 1/4, 1/8}, per-head and
# per-layer sharing, and the queries-only row. Calibration: first 200 KB of the
# TinyStories head; evaluation: its last 30 KB (disjoint), ctx 256, stride 256.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tk=$root/build/thinkeys
shared=${THINKEYS_SHARED:-$root/../shared}
M=$shared/models/stories260K/stories260K.bin
data=$shared/data/tinystories/tinystories_val_head.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c 200000 "$data" >"$work/calib.txt"
tail -c 30000 "$data" >"$work/test.txt"
ctx=${CTX:-256}
stride=${STRIDE:-256}

row() {  # label, compress args...
  local label=$1
  shift
  "$tk" compress "$M" -o "$work/m" --calib "$work/calib.txt" --calib-tokens 40000 --calib-ctx "$ctx" "$@" --json >"$work/c.json"
  "$tk" eval "$work/m" --data "$work/test.txt" --ctx "$ctx" --stride "$stride" --reference "$M" --json >"$work/e.json"
  python3 - "$label" "$work/c.json" "$work/e.json" "$("$tk" info "$work/m" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["kv_bytes_per_token"])')" <<'PY'
import json, sys
label, c, e, kvb = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3])), int(sys.argv[4])
print(f"| {label} | {c['ranks'][0]} | {e['perplexity']:.4f} | {e['kl_mean']:.4f} | {100*e['top1_agreement']:.1f}% | {c['kv_bytes_per_token_f16_after']} | {kvb} |")
PY
}

"$tk" eval "$M" --data "$work/test.txt" --ctx "$ctx" --stride "$stride" --json >"$work/base.json"
python3 -c "import json; j=json.load(open('$work/base.json')); print(f\"original perplexity {j['perplexity']:.4f} ({j['tokens_scored']} tokens, ctx $ctx, stride $stride)\")"
echo
echo "| variant | rank/key head | PPL | KL(orig‖comp) | top-1 agree | KV B/token (f16) | KV B/token (runtime f32, allocated) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for ratio in 0.5 0.25 0.125; do
  for method in svd kqsvd; do
    for rope in post latent pairs; do
      if [ "$rope" = pairs ] && [ "$ratio" = 0.125 ]; then continue; fi  # r=1 cannot hold a plane
      row "$method $rope r=$ratio" --method "$method" --rope "$rope" --key-ratio "$ratio"
    done
    for rope in post latent; do
      row "$method $rope r=$ratio share=layer" --method "$method" --rope "$rope" --key-ratio "$ratio" --share layer
    done
  done
  row "queries-only svd r=$ratio" --method svd --target queries --key-ratio "$ratio"
done
