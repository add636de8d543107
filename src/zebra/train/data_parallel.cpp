#include "zebra/train/data_parallel.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "zebra/util/error.hpp"

namespace zebra {

namespace {

// Tags of the messages of each collective (MPI keeps the order of messages with one tag between two ranks).
constexpr int kTagReduce = 101;
constexpr int kTagGather = 102;
constexpr int kTagRoot = 103;
constexpr int kTagNorm = 104;

// Elements exchanged per round of reduce_scatter_sum: bounds the receive scratch to (R - 1) pieces.
constexpr std::size_t kPiece = std::size_t{1} << 20;

}  // namespace

ParamRange shard_of(std::size_t n, int rank, int size) {
  ZEBRA_CHECK(size >= 1 && rank >= 0 && rank < size, "shard_of: rank ", rank, " of ", size);
  const std::size_t blocks = (n + kGradNormBlock - 1) / kGradNormBlock;
  const auto r = static_cast<std::size_t>(rank), s = static_cast<std::size_t>(size);
  // Blocks spread as evenly as they go: the first blocks % size ranks take one more.
  const std::size_t per = blocks / s, extra = blocks % s;
  const std::size_t first = r * per + std::min(r, extra), count = per + (r < extra ? 1 : 0);
  return ParamRange{std::min(n, first * kGradNormBlock), std::min(n, (first + count) * kGradNormBlock)};
}

void reduce_scatter_sum(Communicator& comm, float* data, std::size_t n) {
  const int R = comm.size(), me = comm.rank();
  if (R == 1) return;
  const ParamRange mine = shard_of(n, me, R);
  std::vector<float> scratch(static_cast<std::size_t>(R) * std::min(kPiece, std::max<std::size_t>(mine.size(), 1)));
  // Rounds over pieces of the shards: in round k every rank sends piece k of each other rank's shard to its owner
  // and receives piece k of its own shard from every other rank.
  std::size_t longest = 0;
  for (int r = 0; r < R; ++r) longest = std::max(longest, shard_of(n, r, R).size());
  for (std::size_t off = 0; off < longest; off += kPiece) {
    for (int r = 0; r < R; ++r) {
      if (r == me) continue;
      const ParamRange theirs = shard_of(n, r, R);
      if (off >= theirs.size()) continue;
      comm.isend(data + theirs.begin + off, std::min(kPiece, theirs.size() - off) * sizeof(float), r, kTagReduce);
    }
    const std::size_t len = off < mine.size() ? std::min(kPiece, mine.size() - off) : 0;
    for (int r = 0; r < R && len > 0; ++r) {
      if (r != me) comm.irecv(scratch.data() + static_cast<std::size_t>(r) * len, len * sizeof(float), r, kTagReduce);
    }
    comm.wait_all();
    if (len == 0) continue;
    float* own = data + mine.begin + off;
    // Copy rank me's part into its slot, then add slots 0, 1, ..., R-1 in order.
    std::copy(own, own + len, scratch.data() + static_cast<std::size_t>(me) * len);
#pragma omp parallel for schedule(static) if (len >= (1 << 16))
    for (std::size_t i = 0; i < len; ++i) {
      float s = scratch[i];
      for (int r = 1; r < R; ++r) s += scratch[static_cast<std::size_t>(r) * len + i];
      own[i] = s;
    }
  }
}

void all_gather(Communicator& comm, float* data, std::size_t n) {
  const int R = comm.size(), me = comm.rank();
  if (R == 1) return;
  const ParamRange mine = shard_of(n, me, R);
  for (int r = 0; r < R; ++r) {
    if (r == me) continue;
    const ParamRange theirs = shard_of(n, r, R);
    comm.isend(data + mine.begin, mine.size() * sizeof(float), r, kTagGather);
    comm.irecv(data + theirs.begin, theirs.size() * sizeof(float), r, kTagGather);
  }
  comm.wait_all();
}

void sum_gradients(Communicator& comm, float* data, std::size_t n) {
  reduce_scatter_sum(comm, data, n);
  all_gather(comm, data, n);
}

double sharded_grad_norm(Communicator& comm, const float* grads, std::size_t n) {
  const int R = comm.size(), me = comm.rank();
  const ParamRange mine = shard_of(n, me, R);
  std::vector<double> mine_blocks = grad_square_blocks(grads, mine.begin, mine.end);
  std::vector<double> blocks((n + kGradNormBlock - 1) / kGradNormBlock, 0.0);
  std::copy(mine_blocks.begin(), mine_blocks.end(),
            blocks.begin() + static_cast<std::ptrdiff_t>(mine.begin / kGradNormBlock));
  for (int r = 0; r < R; ++r) {
    if (r == me) continue;
    const ParamRange theirs = shard_of(n, r, R);
    const std::size_t first = theirs.begin / kGradNormBlock;
    const std::size_t count = (theirs.size() + kGradNormBlock - 1) / kGradNormBlock;
    comm.isend(mine_blocks.data(), mine_blocks.size() * sizeof(double), r, kTagNorm);
    comm.irecv(blocks.data() + first, count * sizeof(double), r, kTagNorm);
  }
  comm.wait_all();
  double total = 0.0;
  for (double b : blocks) total += b;
  return std::sqrt(total);
}

double distributed_update(Communicator& comm, Transformer<float>& model, Optimizer& optimizer, double lr) {
  float* g = model.grads().data();
  const std::size_t n = model.grads().size();
  const bool sharded = optimizer.range().size() != n;
  if (!sharded) {
    sum_gradients(comm, g, n);
    return optimizer.step(model.params(), model.grads(), lr);
  }
  const ParamRange mine = shard_of(n, comm.rank(), comm.size());
  ZEBRA_CHECK(optimizer.range().begin == mine.begin && optimizer.range().end == mine.end,
              "distributed_update: the optimizer's moments are not this rank's shard");
  reduce_scatter_sum(comm, g, n);
  const double norm = sharded_grad_norm(comm, g, n);
  check_gradient_norm(norm, optimizer.steps_taken() + 1);
  optimizer.update(model.params(), model.grads(), lr, clip_factor(norm, optimizer.options().grad_clip, 1.0));
  all_gather(comm, model.params().data.data(), n);
  return norm;
}

void gather_to_root(Communicator& comm, const float* shard, float* whole, std::size_t n) {
  const int R = comm.size(), me = comm.rank();
  const ParamRange mine = shard_of(n, me, R);
  if (me == 0) {
    std::copy(shard, shard + mine.size(), whole + mine.begin);
    for (int r = 1; r < R; ++r) {
      const ParamRange theirs = shard_of(n, r, R);
      comm.irecv(whole + theirs.begin, theirs.size() * sizeof(float), r, kTagRoot);
    }
  } else {
    comm.isend(shard, mine.size() * sizeof(float), 0, kTagRoot);
  }
  comm.wait_all();
}

}  // namespace zebra
