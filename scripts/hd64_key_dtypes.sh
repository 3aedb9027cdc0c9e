#!/usr/bin/env bash
# Thin keys composed with int8 / int4 keys on issue 22 item 7's head_dim-64 model: for the
# uncompressed model, KQ-SVD's latent caches and its QK-fine-tuned post caches, one eval per
# cache dtype (f32 dense; through the paged decode cache int8 or int4 keys with f16 values,
# and int4 keys with int8 values), each against the UNCOMPRESSED model on the same text
# (slice 0 of test.txt, no overlap), so the KL is the total cost of thinning and quantizing.
# Bytes per token are what `thinkeys info` counts for that paged cache (scales included).
#
#   bash scripts/hd64_key_dtypes.sh ROOT [OUT.tsv]
#
# ROOT is the seed-claims run root holding hd64, hd64-c-* and hd64-ft-* (made by
# scripts/seed_claims_queue.sh with SEED_CLAIMS_ITEMS="7 7grid"). Each eval's JSON goes to
# ROOT/key-dtypes/ (finished ones are skipped); the table goes to OUT (default: stdout).
set -euo pipefail
root=${1:?usage: hd64_key_dtypes.sh ROOT [OUT.tsv]}
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${THINKEYS_SHARED:-$here/../shared}
data=$shared/data/gutenberg
tk=$root/bin/thinkeys
[[ -x $tk ]] || { echo "hd64_key_dtypes.sh: $tk not found (the queue's binary copy)" >&2; exit 1; }
[[ -f $data/test.txt ]] || { echo "hd64_key_dtypes.sh: $data/test.txt not found" >&2; exit 1; }
models=(hd64
  hd64-c-kqsvd-latent-q2 hd64-c-kqsvd-latent-q4 hd64-c-kqsvd-latent-q8
  hd64-c-kqsvd-post-q2 hd64-c-kqsvd-post-q4 hd64-c-kqsvd-post-q8
  hd64-ft-kqsvd-post-q2 hd64-ft-kqsvd-post-q4 hd64-ft-kqsvd-post-q8)
dir=$root/key-dtypes
mkdir -p "$dir"
for m in "${models[@]}"; do
  [[ -f $root/$m/DONE ]] || { echo "hd64_key_dtypes.sh: $root/$m is not finished" >&2; exit 1; }
  [[ -s $dir/$m-info.json ]] || { "$tk" info "$root/$m/model" --json > "$dir/$m-info.json.tmp" &&
    mv "$dir/$m-info.json.tmp" "$dir/$m-info.json"; }
  for k in f32 int8 int4 int4-v8; do  # int4-v8: int4 keys and int8 values
    j=$dir/$m-$k.json
    [[ -s $j ]] && continue
    cache=()
    [[ $k != f32 ]] && cache=(--cache-k "${k%-v8}")
    [[ $k == *-v8 ]] && cache+=(--cache-v int8)
    "$tk" eval "$root/$m/model" --data "$data/test.txt" --documents "$data/INDEX.tsv" \
      --doc-tokens 2048 --slices 1 --ctx 256 --stride 256 --json --reference "$root/hd64/model" \
      --tokenizer "$root/hd64/tokenizer" "${cache[@]}" > "$j.tmp"
    mv "$j.tmp" "$j"
  done
done
table() {
  /usr/bin/python3 - "$dir" "${models[@]}" <<'PY'
import json, sys
d, models = sys.argv[1], sys.argv[2:]
print("# hd64 key dtypes: slice 0 of test.txt, ctx 256, stride 256; KL against the uncompressed model;"
      " bytes per token of the paged cache (values f16; int8 in the int4-v8 rows) from `thinkeys info --json`; made by scripts/hd64_key_dtypes.sh")
print("# keys f32: scored with the dense f32 cache, bytes of the f16 paged cache (f16 keys and values"
      " add KL 0.00000 on stories260K, compression.md's cache-dtype table)")
print("model\tkeys\tbytes_per_token\tperplexity\tkl\ttop1")
for m in models:
    info = json.load(open(f"{d}/{m}-info.json"))
    paged = {(p["key_dtype"], p["value_dtype"]): p["pool_bytes_per_token"] for p in info["paged_cache"]}
    for k in ("f32", "int8", "int4", "int4-v8"):
        e = json.load(open(f"{d}/{m}-{k}.json"))
        kd, vd = {"f32": ("f16", "f16"), "int4-v8": ("int4", "int8")}.get(k, (k, "f16"))
        b = paged[(kd, vd)]  # f32 keys are scored as the f16 cache's bytes
        print(f"{m}\t{k}\t{b:g}\t{e['perplexity']:.4f}\t{e['kl_mean']:.5f}\t{e['top1_agreement']:.4f}")
PY
}
if [[ $# -ge 2 ]]; then
  table > "$2.tmp"
  mv "$2.tmp" "$2"
else
  table
fi
