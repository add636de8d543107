// The collectives of data-parallel training over the one gradient buffer (llm.c style), written with point to
// point messages so that every sum runs in rank order: a run is bit-reproducible for a given number of ranks,
// and every rank ends a step with the same bits in its parameters.
//
// The buffer of n floats is cut into one contiguous shard per rank (shard_of), each a whole number of
// kGradNormBlock elements but the last. sum_gradients is a reduce-scatter (each rank receives every other rank's
// copy of its own shard and adds the R copies in rank order) followed, unless the optimizer is sharded, by an
// all-gather: 2 (R - 1) / R of the buffer sent per rank, as a ring all-reduce sends. With a sharded optimizer
// (ZeRO stage 1) each rank updates its shard alone and all_gather() then spreads the new parameters.
#pragma once

#include <cstddef>
#include <cstdint>

#include "zebra/model/transformer.hpp"
#include "zebra/train/communicator.hpp"
#include "zebra/train/optimizer.hpp"
#include "zebra/util/aligned_buffer.hpp"

namespace zebra {

// Rank `rank`'s shard of a buffer of n elements cut among `size` ranks (empty for ranks past the data).
ParamRange shard_of(std::size_t n, int rank, int size);

// data[n] on every rank -> data[shard_of(n, rank)] holds the sum over ranks (added in rank order); the rest of
// data is left as it was (the caller's own contribution).
void reduce_scatter_sum(Communicator& comm, float* data, std::size_t n);
// data[shard_of(n, r)] of every rank r -> data[n] whole on every rank.
void all_gather(Communicator& comm, float* data, std::size_t n);
// The gradient sum of all ranks in every rank's buffer: reduce_scatter_sum, then all_gather.
void sum_gradients(Communicator& comm, float* data, std::size_t n);

// The global gradient norm from each rank's shard of a reduced gradient buffer: the same value, bit for bit, as
// global_grad_norm over the whole summed buffer (the block sums are gathered and added in order).
double sharded_grad_norm(Communicator& comm, const float* grads, std::size_t n);

// The optimizer update of a step whose gradients are split over the ranks (each holds its micro-batches' or its
// slice's part): sums them (sum_gradients, or with a sharded optimizer reduce_scatter_sum, the shard's update and
// all_gather of the parameters), clips by the global norm and applies AdamW at `lr`. Every rank ends with the same
// parameters; returns the gradient norm before clipping. One rank: apply_step_update's arithmetic exactly.
double distributed_update(Communicator& comm, Transformer<float>& model, Optimizer& optimizer, double lr);

// Rank 0's buffer receives every rank's shard (shard_of) of a buffer of n elements; other ranks send theirs.
// `shard` holds the caller's shard; `whole` (rank 0 only) receives n elements.
void gather_to_root(Communicator& comm, const float* shard, float* whole, std::size_t n);

}  // namespace zebra
