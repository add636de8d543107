#!/usr/bin/env bash
# Recipe 1 (docs/experiments.md): attention layouts at equal training compute — full attention, local-only,
# and Zebra with group size 2, 4 and 8 (window 128) — trained at SEQ_LEN and evaluated on held-out text at
# 1x, 2x and 4x that length. Environment: see recipes/lib/common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
prepare_data
w=128
train full "$(make_config full 1 "$w" rope)"
train local "$(make_config local 1 "$w" rope local-only)"
train zebra-L2 "$(make_config zebra-L2 2 "$w" rope)"
train zebra-L4 "$(make_config zebra-L4 4 "$w" rope)"
train zebra-L8 "$(make_config zebra-L8 8 "$w" rope)"
wait_all
evaluate_ppl exp1 "full local zebra-L2 zebra-L4 zebra-L8" 1 2 4
