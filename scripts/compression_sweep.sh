#!/usr/bin/env bash
# The compression grid of docs/results/compression.md for one model:
# {svd, kqsvd} x {post, latent, pairs} x key ratio {1/2, 1/4, 1/8}, per-head and
# per-layer sharing, and the queries-only row. A variant the model cannot take
# (e.g. pairs at one dimension per head) is printed as refused, with the reason.
#
#   scripts/compression_sweep.sh                       # stories260K on TinyStories
#   MODEL=DIR CALIB=FILE TEST=FILE scripts/compression_sweep.sh
#
# Defaults: calibration on the first 200 KB of the TinyStories validation head,
# evaluation on its last 30 KB (disjoint), ctx 256, stride 256.
set -euo pipefail
. "$(dirname "$0")/compression_common.sh"
if [ -n "${TEST:-}" ]; then head -c 30000 "$TEST" >"$work/test.txt"; else tail -c 30000 "$tiny" >"$work/test.txt"; fi
ctx=${CTX:-256}
stride=${STRIDE:-256}
ratios=${RATIOS:-0.5 0.25 0.125}

row() {  # label, compress args...
  local label=$1
  shift
  if ! "$tk" compress "$M" -o "$work/m" --calib "$work/calib.txt" --calib-tokens 40000 \
      --calib-ctx "$ctx" "$@" --json >"$work/c.json" 2>"$work/err"; then
    echo "| $label | refused: $(tr '\n' ' ' <"$work/err") | | | | | |"
    return
  fi
  "$tk" eval "$work/m" --data "$work/test.txt" --ctx "$ctx" --stride "$stride" --reference "$M" --json >"$work/e.json"
  "$tk" info "$work/m" --json >"$work/i.json"
  python3 - "$label" "$work/c.json" "$work/e.json" "$work/i.json" <<'PY'
import json, sys
label = sys.argv[1]
c, e, i = (json.load(open(p)) for p in sys.argv[2:5])
print(f"| {label} | {c['ranks'][0]} | {e['perplexity']:.4f} | {e['kl_mean']:.4f} | "
      f"{100*e['top1_agreement']:.1f}% | {c['kv_bytes_per_token_f16_after']} | {i['kv_bytes_per_token']} |")
PY
}

"$tk" eval "$M" --data "$work/test.txt" --ctx "$ctx" --stride "$stride" --json >"$work/base.json"
python3 -c "import json; j=json.load(open('$work/base.json')); print(f\"original perplexity {j['perplexity']:.4f} ({j['tokens_scored']} tokens, ctx $ctx, stride $stride)\")"
echo
echo "| variant | rank/key head | PPL | KL(orig‖comp) | top-1 agree | KV B/token (f16) | KV B/token (runtime f32, allocated) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
# Models without RoPE (GPT-2) take no --rope: their keys compress exactly as
# they are, so the grid is method x sharing.
for ratio in $ratios; do
  if [ "$uses_rope" = 0 ]; then
    for method in svd kqsvd; do
      row "$method r=$ratio" --method "$method" --key-ratio "$ratio"
      row "$method r=$ratio share=layer" --method "$method" --key-ratio "$ratio" --share layer
    done
    row "queries-only svd r=$ratio" --method svd --target queries --key-ratio "$ratio"
    continue
  fi
  for method in svd kqsvd; do
    for rope in post latent pairs; do
      row "$method $rope r=$ratio" --method "$method" --rope "$rope" --key-ratio "$ratio"
    done
    for rope in post latent; do
      row "$method $rope r=$ratio share=layer" --method "$method" --rope "$rope" --key-ratio "$ratio" --share layer
    done
  done
  row "queries-only svd r=$ratio" --method svd --target queries --key-ratio "$ratio"
done
