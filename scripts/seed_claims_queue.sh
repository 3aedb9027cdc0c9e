#!/usr/bin/env bash
# The long runs behind issue 22's open claims, as one resumable queue, in this order:
#   item 2  thin-key gap against budget: MHA, GQA (2 KV heads), thin d/4, thin d/8 and
#           thin d/4 on GQA, two seeds each, at 1.5M tokens (the 12M-token runs: see the last line);
#   item 3  LRKV against GQA at equal KV bytes, three seeds each (rank 4 against 2 KV
#           heads: 1,024 B/token in f16; rank 12 against 4 KV heads: 2,048 B/token);
#   item 5  the paper's QK fine-tuning recipe on item 2's GQA model (seed 42): weight SVD
#           and KQ-SVD keys (post, 1/4, one key space per layer), LM loss and distillation,
#           learning rate chosen on valid.txt (250K tokens, 3 rates), then 1M tokens with
#           two data-order seeds, each with its control (the uncompressed model fine-tuned
#           identically), reported on test.txt;
#   item 4  retrieval among N in {8, 16, 32, 64}: full-width models (d_select 64) trained
#           up to 30,000 steps until they hold >= 95%, then the smallest KQ-SVD key rank
#           that keeps >= 95%, and the ascending from-scratch search over d_select 4, 8,
#           16, 32, two seeds each (`thinkeys selection --held-out`: evaluation sequences
#           excluded from training by construction);
#   item 7  a head_dim-64 model: SentencePiece BPE vocabulary of 4,096 trained on the
#           Gutenberg shards, 6 layers, width 384, 6 query heads x 64, GQA with 2 KV heads,
#           RoPE, 12.3M tokens;
#   item 7  the compression grid on it: svd and kqsvd x post, latent (one key space per
#           layer) and pairs (per head) x key ratio 1/2, 1/4, 1/8, on test.txt with KL
#           against the model; int8 and int4 thin key caches for the kqsvd post and latent
#           rows and the uncompressed model (slice 0, KL against the same model's f32
#           cache); and QK fine-tuning (distillation, 1M tokens,
#           the rate item 5 chose on valid.txt) of the post rows of both methods;
#   item 2  the same ten designs at 12.3M tokens (seed 42 after item 5, seed 7 after item 4);
#   variants  MQA (1 KV head) and MLA (latent 128, RoPE key 16) at 1.5M tokens, seeds 42
#           and 7, between the 12.3M-token thin d/4 and the rest of seed 42.
# Items 2 and 3: Llama style, 4 layers, width 256, 8 query heads of 32, context 256,
# 8 sequences per step (two data-parallel ranks of 4, which beat one process with two
# BLAS threads in training.md), AdamW lr 1e-3, 50 warm-up steps, cosine decay, the
# Gutenberg training shards with stories260K's 512-piece tokenizer (the recipe of
# scripts/train_reference_models.sh). Seeds: --seed sets both the initialisation and the
# data order, and every design is trained with the same seeds (42, 7; item 3 adds 1234),
# so the designs compared at one seed saw the same batches in the same order, and the
# spread over seeds includes both sources of variation.
#
# Each run goes to ROOT/NAME/: cmd.txt (every command, in order), one JSON per stage
# (train.json, eval_test.json, ...), model/ (checkpoint/ while it trains) and DONE once
# all of it exists. A run with DONE is skipped; an interrupted training resumes from its
# last checkpoint (every 50 steps, 25 for item 7 and every fine-tuning: a few minutes;
# fine-tuning resumes since `finetune --resume`), a finished stage is
# not repeated, so the queue can be killed at any time and started again with the same
# command. A failed stage is logged (ROOT/NAME/error.log) and the queue goes on; the
# next start retries it. Evaluation: held-out gutenberg/test.txt, an equal share of each
# of its 14 books (2,048 tokens per book and slice, 3 disjoint slices), ctx 256, stride
# 128; learning rates are chosen on the first 65,536 tokens of valid.txt.
#
#   setsid nohup nice -n 19 bash scripts/seed_claims_queue.sh [ROOT] >> ROOT/queue.log 2>&1 &
#   (default ROOT /work/runs/seed-claims; only one queue per ROOT: a second one exits)
#   THINKEYS_BIN=path/to/thinkeys to use a given binary (default: a copy of
#   build/thinkeys made at ROOT/bin/thinkeys on the first start, so rebuilding the
#   tree does not change a running experiment; delete it to take a new build).
#   SEED_CLAIMS_SMOKE=1: every budget cut to a few steps (a check of the queue itself;
#   use a scratch ROOT).
#   SEED_CLAIMS_ITEMS="4 7": run only these stages (of 2, 3, 5, 4, 7, 7grid, 12m, variants; default
#   all); a stage whose inputs are missing says so and is skipped.
#   SEED_CLAIMS_RUNS="b12M-mha-s7 b12M-gqa2-s7": of items 2, 3 and the variants, train
#   only the runs named (default all). A session's machine does not keep ROOT, so
#   reported runs must not be retrained just to reach the ones that are missing.
# Tables: /usr/bin/python3 scripts/seed_claims_tables.py ROOT.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${THINKEYS_SHARED:-$here/../shared}
root=${1:-/work/runs/seed-claims}
mkdir -p "$root/bin"
root=$(cd "$root" && pwd)
exec 9>"$root/queue.lock"
flock -n 9 || { echo "seed_claims_queue: another queue holds $root/queue.lock" >&2; exit 3; }
if pgrep -f -- "-o $root/" >/dev/null; then
  echo "seed_claims_queue: a run under $root is already going (pid $(pgrep -f -- "-o $root/" | head -1)):" \
    "another queue, started without the lock; stop it first" >&2
  exit 3
fi
if [[ -n "${THINKEYS_BIN:-}" ]]; then
  tk=$THINKEYS_BIN
else
  tk=$root/bin/thinkeys
  [[ -x $tk ]] || cp "$here/build/thinkeys" "$tk"
fi
data=$shared/data/gutenberg
tok=$shared/models/stories260K/tok512.bin
for f in "$data/test.txt" "$data/valid.txt" "$data/train-00.txt" "$data/train-01.txt" \
    "$data/INDEX.tsv" "$tok"; do
  [[ -f $f ]] || { echo "seed_claims_queue: missing $f (set THINKEYS_SHARED)" >&2; exit 2; }
done

# Budgets (steps of 8 x 256 tokens, fine-tuning tokens, selection steps).
steps_1_5m=750     # 1,536,000 tokens
steps_12m=6000     # 12,288,000 tokens
ft_sweep_tokens=250000
ft_tokens=1000000
sel_steps=30000
hd64_steps=6000    # 12,288,000 tokens
hd64_ft_tokens=1000000
valid_tokens=65536
doc_tokens=2048
hd64_data=$data    # tokenizer and training text of item 7
spm_sentences=1000000
if [[ -n "${SEED_CLAIMS_SMOKE:-}" ]]; then
  steps_1_5m=3 steps_12m=4 ft_sweep_tokens=4096 ft_tokens=6144 sel_steps=100 hd64_steps=2
  hd64_ft_tokens=4096
  valid_tokens=1024 doc_tokens=128 hd64_data=$data/valid.txt spm_sentences=20000
fi

common=(--arch llama --dim 256 --layers 4 --heads 8 --head-dim 32 --ctx 256
        --nproc 2 --batch 4 --warmup 50 --lr 1e-3 --data "$data"
        --tokenizer "$tok" --eval-every 250
        --eval-batches 16 --checkpoint-every 50 --log-every 10 --resume)
test_eval=(--data "$data/test.txt" --documents "$data/INDEX.tsv"
           --doc-tokens "$doc_tokens" --slices 3 --ctx 256 --stride 128 --json)
# Quantized key caches run every token through the paged decode path (about 170
# decode steps/s on item 7's model at nice 19), so they score slice 0 only, without
# overlap (28,672 tokens), against the same model with its f32 cache: the KL is what
# the int8 / int4 keys add.
quant_eval=(--data "$data/test.txt" --documents "$data/INDEX.tsv"
            --doc-tokens "$doc_tokens" --slices 1 --ctx 256 --stride 256 --json)
valid_eval=(--data "$data/valid.txt" --max-tokens "$valid_tokens" --ctx 256 --stride 128 --json)

log() { echo "[$(date -u +%H:%M:%S)] $*"; }

# stage DIR NAME CMD...: runs CMD once; its stdout becomes DIR/NAME.json (atomically).
# Returns non-zero (and logs to DIR/error.log) when CMD fails.
stage() {
  local dir=$1 name=$2
  shift 2
  [[ -f $dir/$name.json ]] && return 0
  mkdir -p "$dir"
  printf '%q ' "$@" >> "$dir/cmd.txt"
  echo >> "$dir/cmd.txt"
  log "$(basename "$dir"): $name"
  if "$@" > "$dir/$name.json.tmp" 2> >(tee -a "$dir/error.log" >&2); then
    mv "$dir/$name.json.tmp" "$dir/$name.json"
  else
    log "$(basename "$dir"): $name FAILED (see $dir/error.log); going on"
    return 1
  fi
}

done_mark() { touch "$1/DONE"; log "$(basename "$1"): done"; }

run() {  # run NAME STEPS SEED TRAIN-FLAGS...: one design of items 2 and 3
  local name=$1 steps=$2 seed=$3
  shift 3
  local dir=$root/$name
  [[ -f $dir/DONE ]] && return 0
  [[ -z ${SEED_CLAIMS_RUNS:-} || " $SEED_CLAIMS_RUNS " == *" $name "* ]] || return 0
  stage "$dir" train "$tk" train "${common[@]}" --steps "$steps" --seed "$seed" "$@" \
      -o "$dir/model" --json || return 0
  stage "$dir" eval_test "$tk" eval "$dir/model" "${test_eval[@]}" || return 0
  done_mark "$dir"
}

designs() {  # designs BUDGET STEPS SEED
  local b=$1 steps=$2 seed=$3
  run "b$b-mha-s$seed" "$steps" "$seed"
  run "b$b-gqa2-s$seed" "$steps" "$seed" --kv-heads 2
  run "b$b-thin4-s$seed" "$steps" "$seed" --d-select 64 --query-pre-attn-scalar 8
  run "b$b-thin8-s$seed" "$steps" "$seed" --d-select 32 --query-pre-attn-scalar 4
  run "b$b-gqa2thin4-s$seed" "$steps" "$seed" --kv-heads 2 --d-select 64 --query-pre-attn-scalar 8
}

# Item 5. The base model is item 2's GQA run at seed 42; compressed keys: 1/4 of 32
# dims per KV head, one key space per layer (compression.md: at least as good as per
# head in all 24 paired rows), `post` (the exact thin cache, the paper's setting).
ft_base=$root/b1.5M-gqa2-s42
ft_lrs=(1e-4 3e-4 1e-3)

compressed() {  # compressed METHOD: ROOT/ft-METHOD-post-q4/model
  local m=$1 dir=$root/ft-$1-post-q4
  [[ -f $dir/DONE ]] && return 0
  local calib=()
  [[ $m == kqsvd ]] && calib=(--calib "$root/ft-calib.txt" --calib-tokens 40000 --calib-ctx 256)
  stage "$dir" compress "$tk" compress "$ft_base/model" --method "$m" --rope post \
      --key-ratio 0.25 --share layer "${calib[@]}" --tokenizer "$tok" -o "$dir/model" --json || return 1
  stage "$dir" eval_valid "$tk" eval "$dir/model" "${valid_eval[@]}" --reference "$ft_base/model" \
      --tokenizer "$tok" || return 1
  stage "$dir" eval_test "$tk" eval "$dir/model" "${test_eval[@]}" --reference "$ft_base/model" \
      --tokenizer "$tok" || return 1
  done_mark "$dir"
}

# finetune NAME MODEL LOSS LR SEED TOKENS EVAL(valid|test): QK only, 8 sequences per step.
finetune() {
  local name=$1 model=$2 loss=$3 lr=$4 seed=$5 tokens=$6 ev=$7 dir=$root/$1
  [[ -f $dir/DONE ]] && return 0
  local teacher=()
  [[ $loss == kd ]] && teacher=(--teacher "$ft_base/model")
  stage "$dir" finetune "$tk" finetune "$model" --train qk --loss "$loss" "${teacher[@]}" \
      --data "$data/train-01.txt" --valid "$data/valid.txt" --epochs 1 --max-tokens "$tokens" \
      --ctx 256 --nproc 2 --batch 4 --lr "$lr" --seed "$seed" --eval-batches 16 \
      --checkpoint-every 25 --resume --tokenizer "$tok" -o "$dir/model" --json || return 1
  if [[ $ev == valid ]]; then
    stage "$dir" eval_valid "$tk" eval "$dir/model" "${valid_eval[@]}" \
        --reference "$ft_base/model" --tokenizer "$tok" || return 1
  else
    stage "$dir" eval_test "$tk" eval "$dir/model" "${test_eval[@]}" \
        --reference "$ft_base/model" --tokenizer "$tok" || return 1
  fi
  done_mark "$dir"
}

best_lr() {  # best_lr METHOD LOSS: the swept rate with the lowest valid.txt perplexity
  /usr/bin/python3 - "$root" "$1" "$2" "${ft_lrs[@]}" <<'PY'
import json, sys
root, m, loss, lrs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
ppl = {lr: json.load(open(f"{root}/ft-sweep-{m}-{loss}-lr{lr}/eval_valid.json"))["perplexity"]
       for lr in lrs}
print(min(lrs, key=lambda lr: ppl[lr]))
PY
}

finetune_recipe() {
  if [[ ! -f $ft_base/DONE ]]; then
    log "item 5 waits for $ft_base"
    return 0
  fi
  if [[ ! -f $root/ft-calib.txt ]]; then  # calibration: the first 200 KB of a training shard
    head -c 200000 "$data/train-00.txt" > "$root/ft-calib.txt.tmp"
    mv "$root/ft-calib.txt.tmp" "$root/ft-calib.txt"
  fi
  local base_dir=$root/ft-base
  if [[ ! -f $base_dir/DONE ]]; then
    stage "$base_dir" eval_valid "$tk" eval "$ft_base/model" "${valid_eval[@]}" --tokenizer "$tok" &&
      done_mark "$base_dir"
  fi
  local m loss lr seed
  for m in svd kqsvd; do
    compressed "$m" || continue
    for loss in lm kd; do
      local swept=1
      for lr in "${ft_lrs[@]}"; do
        finetune "ft-sweep-$m-$loss-lr$lr" "$root/ft-$m-post-q4/model" "$loss" "$lr" 42 \
            "$ft_sweep_tokens" valid || swept=0
      done
      [[ $swept == 1 ]] || continue
      lr=$(best_lr "$m" "$loss")
      for seed in 42 7; do
        finetune "ft-$m-$loss-s$seed" "$root/ft-$m-post-q4/model" "$loss" "$lr" "$seed" \
            "$ft_tokens" test || true
        # The control: the uncompressed model fine-tuned identically (same loss, rate,
        # data order and tokens); shared by both methods when their rates agree.
        finetune "ft-control-$loss-lr$lr-s$seed" "$ft_base/model" "$loss" "$lr" "$seed" \
            "$ft_tokens" test || true
      done
    done
  done
}

# Item 4: one (N, seed) per directory; two trained at once (one per core). Every run
# trains only on sequences outside the fixed held-out class and is evaluated only on
# held-out ones (`--held-out`: disjoint by construction, whatever N). The full-width
# runs then compress their trained keys with KQ-SVD at every rank per head and report
# the smallest that keeps >= 95% on 2,000 held-out test sequences (`--kqsvd-search`).
selection_run() {  # selection_run NAME N SEED D_SELECT-LIST [EXTRA-FLAGS...]
  local dir=$root/$1 n=$2 seed=$3 widths=$4
  shift 4
  [[ -f $dir/DONE ]] && return 0
  stage "$dir" selection "$tk" --threads 1 selection --task retrieval --n "$n" --d-select "$widths" \
      --steps "$sel_steps" --seed "$seed" --held-out "$@" --json && done_mark "$dir"
}

retrieval_capacity() {
  local n
  for n in 8 16 32 64; do
    selection_run "sel-full-n$n-s42" "$n" 42 64 --kqsvd-search --test-sequences 2000 & local a=$!
    selection_run "sel-full-n$n-s7" "$n" 7 64 --kqsvd-search --test-sequences 2000 & local b=$!
    wait "$a" || true
    wait "$b" || true
  done
  for n in 8 16 32 64; do
    selection_run "sel-thin-n$n-s42" "$n" 42 4,8,16,32 & local a=$!
    selection_run "sel-thin-n$n-s7" "$n" 7 4,8,16,32 & local b=$!
    wait "$a" || true
    wait "$b" || true
  done
}

# Item 7.
head_dim_64() {
  local dir=$root/hd64
  [[ -f $dir/DONE ]] && return 0
  stage "$dir" tokenizer "$tk" tokenizer train --data "$hd64_data" --vocab-size 4096 \
      --max-sentences "$spm_sentences" -o "$dir/tokenizer" --json || return 0
  stage "$dir" train "$tk" train --arch llama --dim 384 --layers 6 --heads 6 --kv-heads 2 \
      --head-dim 64 --ctx 256 --nproc 2 --batch 4 --steps "$hd64_steps" --warmup 100 --lr 1e-3 \
      --seed 42 --data "$hd64_data" --tokenizer "$dir/tokenizer" --eval-every 500 --eval-batches 16 \
      --checkpoint-every 25 --log-every 10 --resume -o "$dir/model" --json || return 0
  stage "$dir" eval_test "$tk" eval "$dir/model" "${test_eval[@]}" || return 0
  done_mark "$dir"
}

# Item 7's compression grid on the head_dim-64 model (ROOT/hd64-c-METHOD-ROPE-qQ: key
# ratio 1/Q). Calibration for kqsvd: the first 200 KB of train-00.txt, as for item 5.
hd64_row() {  # hd64_row METHOD ROPE Q
  local m=$1 rope=$2 q=$3 base=$root/hd64 dir=$root/hd64-c-$1-$2-q$3
  [[ -f $dir/DONE ]] && return 0
  local ratio share=() calib=()
  ratio=$(/usr/bin/python3 -c "print(1 / $q)")
  [[ $rope != pairs ]] && share=(--share layer)
  [[ $m == kqsvd ]] && calib=(--calib "$root/ft-calib.txt" --calib-tokens 40000 --calib-ctx 256)
  local ev=("${test_eval[@]}" --reference "$base/model" --tokenizer "$base/tokenizer")
  local qev=("${quant_eval[@]}" --reference "$dir/model" --tokenizer "$base/tokenizer")
  stage "$dir" compress "$tk" compress "$base/model" --method "$m" --rope "$rope" \
      --key-ratio "$ratio" "${share[@]}" "${calib[@]}" --tokenizer "$base/tokenizer" \
      -o "$dir/model" --json || return 0
  stage "$dir" eval_test "$tk" eval "$dir/model" "${ev[@]}" || return 0
  if [[ $m == kqsvd && $rope != pairs ]]; then
    stage "$dir" eval_test_k8 "$tk" eval "$dir/model" "${qev[@]}" --cache-k int8 || return 0
    stage "$dir" eval_test_k4 "$tk" eval "$dir/model" "${qev[@]}" --cache-k int4 || return 0
  fi
  done_mark "$dir"
}

hd64_finetune() {  # hd64_finetune METHOD Q LR: QK distillation of the post row
  local m=$1 q=$2 lr=$3 base=$root/hd64 dir=$root/hd64-ft-$1-post-q$2
  [[ -f $dir/DONE ]] && return 0
  [[ -f $root/hd64-c-$m-post-q$q/DONE ]] || return 0
  stage "$dir" finetune "$tk" finetune "$root/hd64-c-$m-post-q$q/model" --train qk --loss kd \
      --teacher "$base/model" --data "$data/train-01.txt" --valid "$data/valid.txt" --epochs 1 \
      --max-tokens "$hd64_ft_tokens" --ctx 256 --nproc 2 --batch 4 --lr "$lr" --seed 42 \
      --eval-batches 16 --checkpoint-every 25 --resume --tokenizer "$base/tokenizer" \
      -o "$dir/model" --json || return 0
  stage "$dir" eval_test "$tk" eval "$dir/model" "${test_eval[@]}" --reference "$base/model" \
      --tokenizer "$base/tokenizer" || return 0
  done_mark "$dir"
}

hd64_grid() {
  local base=$root/hd64
  if [[ ! -f $base/DONE ]]; then
    log "item 7 grid waits for $base"
    return 0
  fi
  if [[ ! -f $root/ft-calib.txt ]]; then
    head -c 200000 "$data/train-00.txt" > "$root/ft-calib.txt.tmp"
    mv "$root/ft-calib.txt.tmp" "$root/ft-calib.txt"
  fi
  local dir=$root/hd64-cache m rope q
  if [[ ! -f $dir/DONE ]]; then  # the uncompressed model's own int8 / int4 key caches
    local qev=("${quant_eval[@]}" --reference "$base/model" --tokenizer "$base/tokenizer")
    stage "$dir" eval_test_k8 "$tk" eval "$base/model" "${qev[@]}" --cache-k int8 &&
      stage "$dir" eval_test_k4 "$tk" eval "$base/model" "${qev[@]}" --cache-k int4 &&
      done_mark "$dir"
  fi
  for m in svd kqsvd; do
    for rope in post latent pairs; do
      for q in 2 4 8; do hd64_row "$m" "$rope" "$q"; done
    done
  done
  for m in svd kqsvd; do
    # The rate item 5 chose on valid.txt for distillation of the same method (width-256
    # model): from its sweep when this root has it, else 1e-3, which it chose for both
    # methods (docs/results/finetune.md; a root made after 5 December 11:34 lacks the sweep).
    local lr=1e-3
    if ls "$root"/ft-sweep-$m-kd-lr*/eval_valid.json >/dev/null 2>&1 &&
        [[ $(ls "$root"/ft-sweep-$m-kd-lr*/eval_valid.json | wc -l) == "${#ft_lrs[@]}" ]]; then
      lr=$(best_lr "$m" kd)
    fi
    for q in 2 4 8; do hd64_finetune "$m" "$q" "$lr"; done
  done
}

wants() {  # wants ITEM: is this stage of the queue selected (SEED_CLAIMS_ITEMS)?
  [[ -z ${SEED_CLAIMS_ITEMS:-} || " $SEED_CLAIMS_ITEMS " == *" $1 "* ]]
}

log "queue starts: $tk, root $root"
# Item 2 at 1.5M tokens, both seeds.
if wants 2; then
  for seed in 42 7; do designs 1.5M "$steps_1_5m" "$seed"; done
fi
# Item 3: GQA (2 KV heads) at 1.5M already ran for seeds 42 and 7 above.
if wants 3; then
  for seed in 42 7 1234; do run "b1.5M-lrkv4-s$seed" "$steps_1_5m" "$seed" --lrkv-rank 4; done
  run "b1.5M-gqa2-s1234" "$steps_1_5m" 1234 --kv-heads 2
  for seed in 42 7 1234; do
    run "b1.5M-lrkv12-s$seed" "$steps_1_5m" "$seed" --lrkv-rank 12
    run "b1.5M-gqa4-s$seed" "$steps_1_5m" "$seed" --kv-heads 4
  done
fi
if wants 5; then finetune_recipe; fi
# Item 2 at 12M tokens, seed 42 first: whether the thin-key penalty shrinks with training
# is the issue's central question, and one seed answers it early; seed 7 follows item 4.
if wants 12m; then run "b12M-thin4-s42" "$steps_12m" 42 --d-select 64 --query-pre-attn-scalar 8; fi
# MQA and MLA at 1.5M tokens, both seeds: variants.md's last figures that were only on
# valid.txt (the paper comparisons of items 2 and 3 do not need them, the doc's table does).
if wants variants; then
  for seed in 42 7; do
    run "b1.5M-mqa-s$seed" "$steps_1_5m" "$seed" --kv-heads 1
    run "b1.5M-mla-s$seed" "$steps_1_5m" "$seed" --mla-latent 128 --mla-rope-dim 16
  done
fi
if wants 12m; then designs 12M "$steps_12m" 42; fi
if wants 4; then retrieval_capacity; fi
if wants 12m; then designs 12M "$steps_12m" 7; fi
if wants 7; then head_dim_64; fi
if wants 7grid; then hd64_grid; fi
log "queue finished"
