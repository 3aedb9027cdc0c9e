#!/usr/bin/env bash
# Training throughput and model FLOP utilization of `thinkeys train`, two
# builds interleaved in one run (docs/results/training.md):
#   scripts/bench_training.sh BEFORE_BIN AFTER_BIN [OUT] [STEPS] [ROUNDS]
# Every round: the f32 GEMM rate (AFTER_BIN bench --gemm, 1 and 2 BLAS
# threads), then the three reference shapes (Llama-style, 4 layers, width 256,
# 8 heads x 32, context 256, batch 8: MHA, GQA with 2 KV heads, thin keys d/4
# with 1/sqrt(8) scores) trained STEPS steps by each build, once in one
# process (BLAS on both cores, the default) and once as two data-parallel
# ranks of 4 sequences (--nproc 2: the same 8 sequences per step, one core
# each). Tokens/s is the steady state from the step-1 log line to the last.
# Prints one TSV row per run to OUT/runs.tsv.
set -euo pipefail
before=$1 after=$2 out=${3:-bench-training} steps=${4:-30} rounds=${5:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${THINKEYS_SHARED:-$root/../shared}
mkdir -p "$out"
tsv=$out/runs.tsv
echo -e "round\tbuild\tmodel\tmode\tparams\ttokens_per_s\tlosses" >"$tsv"
common=(--arch llama --dim 256 --layers 4 --heads 8 --head-dim 32 --ctx 256 --steps "$steps"
        --warmup 5 --lr 1e-3 --seed 42 --data "$shared/data/gutenberg"
        --tokenizer "$shared/models/stories260K/tok512.bin" --eval-every 0 --eval-batches 1
        --checkpoint-every 0 --log-every 1 --json)
declare -A shape=([mha]="" [gqa]="--kv-heads 2" [thin4]="--d-select 64 --query-pre-attn-scalar 8")
declare -A mode=([blas2]="--batch 8" [nproc2]="--nproc 2 --batch 4")
for r in $(seq 1 "$rounds"); do
  for t in 1 2; do
    "$after" --threads "$t" bench --gemm --repeats 7 --json >"$out/gemm-r$r-t$t.json"
  done
  for m in mha gqa thin4; do
    for md in blas2 nproc2; do
      for b in before after; do
        bin=$before; [ "$b" = after ] && bin=$after
        dir=$out/r$r-$b-$m-$md
        rm -rf "$dir"
        # shellcheck disable=SC2086
        "$bin" train "${common[@]}" ${shape[$m]} ${mode[$md]} -o "$dir" >"$dir.json" 2>"$dir.err" ||
          { echo "run $dir failed" >&2; cat "$dir.err" >&2; exit 1; }
        /usr/bin/python3 - "$dir" "$r" "$b" "$m" "$md" >>"$tsv" <<'PY'
import json, sys
d, r, b, m, md = sys.argv[1:]
rows = [json.loads(l) for l in open(d + "/train_log.jsonl") if '"elapsed_s"' in l]
first, last = rows[0], rows[-1]
tps = (last["tokens"] - first["tokens"]) / (last["elapsed_s"] - first["elapsed_s"])
params = json.load(open(d + ".json"))["parameters"] if d else 0
print("\t".join([r, b, m, md, str(params), f"{tps:.1f}", ",".join(f"{x['loss']:.6f}" for x in rows[:5])]))
PY
        tail -1 "$tsv"
      done
    done
  done
done
