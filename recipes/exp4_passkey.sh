#!/usr/bin/env bash
# Recipe 4 (docs/experiments.md): passkey retrieval for recipe 1's full-attention and Zebra (L=4) models
# (trained here when missing) over lengths up to 4x the training length and five depths.
# Environment: see recipes/lib/common.sh; TRIALS keys per cell (default 10).
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
prepare_data
train full "$(make_config full 1 128 rope)"
train zebra-L4 "$(make_config zebra-L4 4 128 rope)"
wait_all
evaluate_passkey exp4 "full zebra-L4" "${TRIALS:-10}"
