// The processes of a training run: MPI's world (`mpirun -np N zebra train ...`), or this process alone. Library
// code takes a Communicator instead of calling MPI, so that a single process needs no MPI at all; every
// collective below adds in rank order, so that a result has the same bits on every rank and from run to run.
//
// Errors: a failed MPI call throws Error naming the call. A rank that throws out of training must end the whole
// job (the others would wait for it forever): the CLI calls abort_job() with the message, and mpirun then ends
// every rank, naming the one that aborted. A rank killed outright is noticed by mpirun itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace zebra {

// MPI_Init on construction (when the process was started by mpirun, or `force`), MPI_Finalize at the end of
// the scope. One per process, in main().
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv, bool force = false);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  bool active() const { return active_; }

 private:
  bool active_ = false;
};

// Whether the environment says this process is one rank of an MPI job (OMPI_COMM_WORLD_SIZE, PMI_SIZE,
// PMIX_RANK).
bool launched_by_mpi();

class Communicator {
 public:
  // This process alone (rank 0 of 1); no MPI call is ever made.
  Communicator();
  ~Communicator();
  Communicator(Communicator&&) noexcept;
  Communicator& operator=(Communicator&&) noexcept;
  // The world of an active MpiSession.
  static Communicator world();

  int rank() const { return rank_; }
  int size() const { return size_; }
  // Ranks on this machine (sharing its memory), this one included.
  int local_size() const { return local_size_; }
  bool distributed() const { return size_ > 1; }

  // Non-blocking point to point, completed by wait() or wait_all(); buffers must stay valid until then. Messages
  // between two ranks with one tag arrive in the order they were sent. Long messages are cut into pieces under
  // MPI's int counts; a Ticket names the pieces of one call.
  struct Ticket {
    std::size_t first = 0, last = 0;
  };
  Ticket isend(const void* data, std::size_t bytes, int to, int tag);
  Ticket irecv(void* data, std::size_t bytes, int from, int tag);
  void wait(const Ticket& t);
  void wait_all();

  void barrier();
  // values[i] = the sum over ranks of values[i], added in rank order.
  void sum(double* values, std::size_t n);
  void sum(std::int64_t* values, std::size_t n);
  // Every rank gets rank 0's bytes.
  void broadcast(void* data, std::size_t bytes);
  // Whether any rank passed true.
  bool any(bool flag);

  // Bytes this process has handed to isend since construction (for the traffic counts of context parallelism).
  std::int64_t bytes_sent() const { return bytes_sent_; }
  // Seconds this process has spent blocked in MPI (waits and collectives) since construction: the communication
  // time that computing did not hide.
  double wait_seconds() const { return wait_seconds_; }

  // Ends every rank of the job with exit status `code` after printing `message` (MPI_Abort); a single process
  // just exits.
  [[noreturn]] void abort_job(const std::string& message, int code) const;

 private:
  int rank_ = 0;
  int size_ = 1;
  int local_size_ = 1;
  bool mpi_ = false;
  std::int64_t bytes_sent_ = 0;
  double wait_seconds_ = 0.0;
  struct Pending;  // the MPI requests not yet waited for (defined with mpi.h in the source)
  std::unique_ptr<Pending> pending_;
};

}  // namespace zebra
