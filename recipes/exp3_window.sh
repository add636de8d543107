#!/usr/bin/env bash
# Recipe 3 (docs/experiments.md): window size for group size 4 — windows 32, 64, 128 (recipe 1's zebra-L4)
# and 256 at equal training compute, evaluated at 1x, 2x and 4x the training length. Environment: see
# recipes/lib/common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
prepare_data
train win-32 "$(make_config win-32 4 32 rope)"
train win-64 "$(make_config win-64 4 64 rope)"
train zebra-L4 "$(make_config zebra-L4 4 128 rope)"
train win-256 "$(make_config win-256 4 256 rope)"
wait_all
evaluate_ppl exp3 "win-32 win-64 zebra-L4 win-256" 1 2 4
