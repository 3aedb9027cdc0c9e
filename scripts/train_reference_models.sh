#!/usr/bin/env bash
# Trains the two reference models the compression and variant results use, on the
# Gutenberg shards with the llama2.c 512-piece tokenizer of stories260K (real and
# small, so the LM head stays cheap on 2 cores):
#   OUT/gpt2-mha   GPT-2 style: LayerNorm, GELU, learned positions (no RoPE), MHA
#   OUT/llama-gqa  Llama style: RMSNorm, SwiGLU, RoPE, GQA (8 query / 2 KV heads)
# Both: 4 layers, width 256, head dim 32, context 256, 750 steps x 2,048 tokens
# (1.5M tokens), AdamW lr 1e-3 with 50 warmup steps and cosine decay, seed 42.
# About 15-20 minutes each on 2 cores. Final metrics: docs/results/variants.md.
#
#   scripts/train_reference_models.sh [OUT]        (default OUT: ./reference-models)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tk=${THINKEYS_BIN:-$root/build/thinkeys}
shared=${THINKEYS_SHARED:-$root/../shared}
out=${1:-reference-models}
common=(--dim 256 --layers 4 --heads 8 --head-dim 32 --ctx 256 --batch 8 --steps 750
        --warmup 50 --lr 1e-3 --data "$shared/data/gutenberg"
        --tokenizer "$shared/models/stories260K/tok512.bin" --eval-every 250 --eval-batches 16
        --checkpoint-every 250 --resume)
"$tk" train --arch gpt2 "${common[@]}" -o "$out/gpt2-mha"
"$tk" train --arch llama --kv-heads 2 "${common[@]}" -o "$out/llama-gqa"
