#!/usr/bin/env bash
# Recipe 2 (docs/experiments.md): positional embeddings — RoPE, ALiBi, learned, none — in the Zebra layout
# (group size 4, window 128), trained at SEQ_LEN and evaluated up to 8x longer. Environment: see
# recipes/lib/common.sh. The RoPE model is recipe 1's zebra-L4 (trained here when missing).
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
prepare_data
w=128
train zebra-L4 "$(make_config zebra-L4 4 "$w" rope)"
train pos-alibi "$(make_config pos-alibi 4 "$w" alibi)"
train pos-learned "$(make_config pos-learned 4 "$w" learned)"
train pos-none "$(make_config pos-none 4 "$w" none)"
wait_all
evaluate_ppl exp2 "zebra-L4 pos-alibi pos-learned pos-none" 1 2 4 8
