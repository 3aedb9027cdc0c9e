#!/usr/bin/env bash
# Keys versus queries, and KQ-SVD against a data-driven key-only baseline
# (docs/results/compression.md, "Keys versus queries"): the same rank-r
# truncation applied to W_K (keys; latent mode on RoPE models, so the truncation
# happens before rotation exactly as for the queries) and to W_Q (queries; cache
# unchanged), per head and per layer, at key ratios 1/2, 1/4, 1/8; beside them
# KQ-SVD and key-only PCA (`--method keypca`) at the same ranks. Every row is
# reported with `fidelity` (the KQ-SVD paper's relative score error) and
# `eval --reference` KL, each on K disjoint test slices: mean +- sample sd.
#
#   scripts/keys_vs_queries.sh                  # stories260K on TinyStories
#   MODEL=DIR CALIB=FILE TEST=FILE DOCS=INDEX.tsv DOC_TOKENS=N scripts/keys_vs_queries.sh
#   RATIOS="0.5 0.25" SHARES=layer BASELINES_AT=0.25 ...    # a smaller grid
#   BASELINES_ONLY=1 ...                                       # only the keypca and kqsvd rows
#
# Defaults: stories260K; calibration = first 200 KB of the TinyStories
# validation head, test = the rest of that file (disjoint), one document cut
# into SLICES=3 slices of DOC_TOKENS=8192 tokens; ctx 256.
set -euo pipefail
. "$(dirname "$0")/compression_common.sh"
if [ -n "${TEST:-}" ]; then
  test_file=$TEST
else
  test_file=$work/test.txt
  tail -c +200001 "$tiny" >"$test_file"
fi
slices=${SLICES:-3}
doc_tokens=${DOC_TOKENS:-8192}
ctx=${CTX:-256}
ratios=${RATIOS:-0.5 0.25 0.125}
shares=${SHARES:-head layer}
baselines_at=${BASELINES_AT:-$ratios}  # ratios that also get the keypca and kqsvd rows
tok=()
[ -n "${TOKENIZER:-}" ] && tok=(--tokenizer "$TOKENIZER")
sel=(--data "$test_file" --doc-tokens "$doc_tokens" --slices "$slices" "${tok[@]}")
[ -n "${DOCS:-}" ] && sel+=(--documents "$DOCS")
rope=()
[ "$uses_rope" = 1 ] && rope=(--rope latent)

row() {  # label, compress args...
  local label=$1
  shift
  if ! "$tk" compress "$M" -o "$work/m" --calib "$work/calib.txt" --calib-tokens 40000 \
      --calib-ctx "$ctx" "${tok[@]}" "$@" --json >"$work/c.json" 2>"$work/err"; then
    echo "| $label | refused: $(tr '\n' ' ' <"$work/err") | | | |"
    return
  fi
  "$tk" fidelity "$work/m" --reference "$M" "${sel[@]}" --ctx "$ctx" --json >"$work/f.json"
  "$tk" eval "$work/m" --reference "$M" "${sel[@]}" --ctx "$ctx" --stride "$ctx" --json >"$work/e.json"
  python3 - "$label" "$work/c.json" "$work/f.json" "$work/e.json" <<'PY'
import json, sys
label = sys.argv[1]
c, f, e = (json.load(open(p)) for p in sys.argv[2:5])
s = f["overall_over_slices"]["scores"]
o = f["overall_over_slices"]["output"]
k = e["kl_over_slices"]
p = e["perplexity_over_slices"]
print(f"| {label} | {c['ranks'][0]} | {s['mean']:.4f} ± {s['sd']:.4f} | {o['mean']:.4f} ± {o['sd']:.4f} | "
      f"{k['mean']:.4f} ± {k['sd']:.4f} | {p['mean']:.3f} ± {p['sd']:.3f} |")
PY
}

"$tk" eval "$M" "${sel[@]}" --ctx "$ctx" --stride "$ctx" --json >"$work/base.json"
python3 - "$work/base.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
p = j["perplexity_over_slices"]
print(f"original perplexity {p['mean']:.4f} ± {p['sd']:.4f} over {p['n']} slices "
      f"({j['slices'][0]['tokens_scored']} tokens scored per slice)")
PY
echo
echo "| variant | rank | fidelity: score error | fidelity: output error | KL(orig‖comp) | PPL |"
echo "|---|---:|---:|---:|---:|---:|"
for ratio in $ratios; do
  for share in $shares; do
    if [ -z "${BASELINES_ONLY:-}" ]; then
      row "keys W_K svd r=$ratio share=$share" --method svd "${rope[@]}" --key-ratio "$ratio" --share "$share"
      row "queries W_Q svd r=$ratio share=$share" --method svd --target queries --key-ratio "$ratio" --share "$share"
    fi
    case " $baselines_at " in *" $ratio "*)
      row "keys keypca r=$ratio share=$share" --method keypca "${rope[@]}" --key-ratio "$ratio" --share "$share"
      row "keys kqsvd r=$ratio share=$share" --method kqsvd "${rope[@]}" --key-ratio "$ratio" --share "$share" ;;
    esac
  done
done
