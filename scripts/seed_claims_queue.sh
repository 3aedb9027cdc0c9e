#!/usr/bin/env bash
# The training runs behind issue 22's open claims, as one resumable queue:
#   item 2  thin-key gap against budget: MHA, GQA (2 KV heads), thin d/4, thin d/8 and
#           thin d/4 on GQA, two seeds each, at 1.5M tokens, then at 12M tokens;
#   item 3  LRKV against GQA at equal KV bytes, three seeds each (rank 4 against 2 KV
#           heads: 1,024 B/token in f16; rank 12 against 4 KV heads: 2,048 B/token).
# Every model: Llama style, 4 layers, width 256, 8 query heads of 32, context 256,
# 8 sequences per step (two data-parallel ranks of 4), AdamW lr 1e-3, 50 warm-up
# steps, cosine decay, the Gutenberg training shards with stories260K's 512-piece
# tokenizer (the recipe of scripts/train_reference_models.sh). --seed sets both the
# initialisation and the data order, so runs of one seed see the same batches in the
# same order whatever their attention design.
#
# Each run goes to ROOT/NAME/: model/ (the trained model, checkpoint/ while it
# trains), cmd.txt, train.json, eval_test.json, and DONE once all of it exists. A run
# with DONE is skipped; an interrupted one resumes from its last checkpoint (every
# 50 steps), so the queue can be stopped at any time and started again with the same
# command. Evaluation: held-out gutenberg/test.txt, an equal share of each of its 14
# books (2,048 tokens per book and slice, 3 disjoint slices), ctx 256, stride 128.
#
#   nice -n 19 scripts/seed_claims_queue.sh [ROOT]   (default /work/runs/seed-claims)
#   THINKEYS_BIN=path/to/thinkeys to use a given binary (default: a copy of
#   build/thinkeys made at ROOT/bin/thinkeys on the first start, so rebuilding the
#   tree does not change a running experiment; delete it to take a new build).
# Tables: scripts/seed_claims_tables.py ROOT.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${THINKEYS_SHARED:-$here/../shared}
root=${1:-/work/runs/seed-claims}
mkdir -p "$root/bin"
if [[ -n "${THINKEYS_BIN:-}" ]]; then
  tk=$THINKEYS_BIN
else
  tk=$root/bin/thinkeys
  [[ -x $tk ]] || cp "$here/build/thinkeys" "$tk"
fi
data=$shared/data/gutenberg
for f in "$data/test.txt" "$data/INDEX.tsv" "$shared/models/stories260K/tok512.bin"; do
  [[ -f $f ]] || { echo "seed_claims_queue: missing $f (set THINKEYS_SHARED)" >&2; exit 2; }
done

common=(--arch llama --dim 256 --layers 4 --heads 8 --head-dim 32 --ctx 256
        --nproc 2 --batch 4 --warmup 50 --lr 1e-3 --data "$data"
        --tokenizer "$shared/models/stories260K/tok512.bin" --eval-every 250
        --eval-batches 16 --checkpoint-every 50 --log-every 10 --resume)

run() {  # run NAME STEPS SEED TRAIN-FLAGS...
  local name=$1 steps=$2 seed=$3
  shift 3
  local dir=$root/$name
  [[ -f $dir/DONE ]] && return 0
  mkdir -p "$dir"
  local cmd=("$tk" train "${common[@]}" --steps "$steps" --seed "$seed" "$@" -o "$dir/model" --json)
  printf '%q ' "${cmd[@]}" > "$dir/cmd.txt"
  echo >> "$dir/cmd.txt"
  echo "[$(date -u +%H:%M:%S)] $name: training ($steps steps, seed $seed)"
  if [[ ! -f $dir/train.json ]]; then
    "${cmd[@]}" > "$dir/train.json.tmp"
    mv "$dir/train.json.tmp" "$dir/train.json"
  fi
  echo "[$(date -u +%H:%M:%S)] $name: evaluating on test.txt"
  local ev=("$tk" eval "$dir/model" --data "$data/test.txt" --documents "$data/INDEX.tsv"
            --doc-tokens 2048 --slices 3 --ctx 256 --stride 128 --json)
  printf '%q ' "${ev[@]}" >> "$dir/cmd.txt"
  echo >> "$dir/cmd.txt"
  "${ev[@]}" > "$dir/eval_test.json.tmp"
  mv "$dir/eval_test.json.tmp" "$dir/eval_test.json"
  touch "$dir/DONE"
  echo "[$(date -u +%H:%M:%S)] $name: done"
}

# 750 steps x 8 x 256 = 1,536,000 tokens; 6,000 steps = 12,288,000 tokens.
designs() {  # designs BUDGET STEPS SEED
  local b=$1 steps=$2 seed=$3
  run "b$b-mha-s$seed" "$steps" "$seed"
  run "b$b-gqa2-s$seed" "$steps" "$seed" --kv-heads 2
  run "b$b-thin4-s$seed" "$steps" "$seed" --d-select 64 --query-pre-attn-scalar 8
  run "b$b-thin8-s$seed" "$steps" "$seed" --d-select 32 --query-pre-attn-scalar 4
  run "b$b-gqa2thin4-s$seed" "$steps" "$seed" --kv-heads 2 --d-select 64 --query-pre-attn-scalar 8
}

# Item 2 at 1.5M tokens, both seeds.
for seed in 42 7; do designs 1.5M 750 "$seed"; done
# Item 3: GQA (2 KV heads) at 1.5M already ran for seeds 42 and 7 above.
for seed in 42 7 1234; do run "b1.5M-lrkv4-s$seed" 750 "$seed" --lrkv-rank 4; done
run "b1.5M-gqa2-s1234" 750 1234 --kv-heads 2
for seed in 42 7 1234; do
  run "b1.5M-lrkv12-s$seed" 750 "$seed" --lrkv-rank 12
  run "b1.5M-gqa4-s$seed" 750 "$seed" --kv-heads 4
done
# Item 2 at 12M tokens.
for seed in 42 7; do designs 12M 6000 "$seed"; done
echo "[$(date -u +%H:%M:%S)] queue finished"
