#include "zebra/train/communicator.hpp"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "zebra/util/error.hpp"

namespace zebra {

namespace {

// Adds the wall time of its scope to a counter.
class Blocked {
 public:
  explicit Blocked(double& total) : total_(total), start_(std::chrono::steady_clock::now()) {}
  ~Blocked() { total_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }
  Blocked(const Blocked&) = delete;
  Blocked& operator=(const Blocked&) = delete;

 private:
  double& total_;
  std::chrono::steady_clock::time_point start_;
};

// Largest piece of one message: MPI counts are int.
constexpr std::size_t kMaxPiece = std::size_t{1} << 30;

void check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  fail("MPI: ", call, " failed: ", std::string(text, static_cast<std::size_t>(len)));
}

}  // namespace

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

MpiSession::MpiSession(int* argc, char*** argv, bool force) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized != 0 || !(force || launched_by_mpi())) return;
  // Only the main thread calls MPI (OpenMP teams never do).
  int provided = 0;
  check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  active_ = true;
}

MpiSession::~MpiSession() {
  if (active_) MPI_Finalize();
}

struct Communicator::Pending {
  std::vector<MPI_Request> requests;
};

Communicator::Communicator() : pending_(std::make_unique<Pending>()) {}
Communicator::~Communicator() = default;
Communicator::Communicator(Communicator&&) noexcept = default;
Communicator& Communicator::operator=(Communicator&&) noexcept = default;

Communicator Communicator::world() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  Communicator c;
  if (initialized == 0) return c;
  c.mpi_ = true;
  check(MPI_Comm_rank(MPI_COMM_WORLD, &c.rank_), "MPI_Comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &c.size_), "MPI_Comm_size");
  MPI_Comm node = MPI_COMM_NULL;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c.rank_, MPI_INFO_NULL, &node),
        "MPI_Comm_split_type");
  check(MPI_Comm_size(node, &c.local_size_), "MPI_Comm_size");
  MPI_Comm_free(&node);
  return c;
}

// Posts a message of `bytes` as pieces of at most kMaxPiece, at least one, so that an empty message still pairs
// with its receive; `post` is MPI_Isend or MPI_Irecv over (piece, count).
template <typename Post>
Communicator::Ticket post_pieces(std::vector<MPI_Request>& requests, std::size_t bytes, const char* call, Post post) {
  const std::size_t first = requests.size();
  std::size_t off = 0;
  do {
    const int n = static_cast<int>(std::min(kMaxPiece, bytes - off));
    MPI_Request r{};
    check(post(off, n, &r), call);
    requests.push_back(r);
    off += static_cast<std::size_t>(n);
  } while (off < bytes);
  return Communicator::Ticket{first, requests.size()};
}

Communicator::Ticket Communicator::isend(const void* data, std::size_t bytes, int to, int tag) {
  ZEBRA_CHECK(mpi_ && to >= 0 && to < size_ && to != rank_, "Communicator::isend: no rank ", to, " to send to");
  const char* p = static_cast<const char*>(data);
  bytes_sent_ += static_cast<std::int64_t>(bytes);
  return post_pieces(pending_->requests, bytes, "MPI_Isend", [&](std::size_t off, int n, MPI_Request* r) {
    return MPI_Isend(p + off, n, MPI_BYTE, to, tag, MPI_COMM_WORLD, r);
  });
}

Communicator::Ticket Communicator::irecv(void* data, std::size_t bytes, int from, int tag) {
  ZEBRA_CHECK(mpi_ && from >= 0 && from < size_ && from != rank_, "Communicator::irecv: no rank ", from,
              " to receive from");
  char* p = static_cast<char*>(data);
  return post_pieces(pending_->requests, bytes, "MPI_Irecv", [&](std::size_t off, int n, MPI_Request* r) {
    return MPI_Irecv(p + off, n, MPI_BYTE, from, tag, MPI_COMM_WORLD, r);
  });
}

void Communicator::wait(const Ticket& t) {
  const Blocked blocked(wait_seconds_);
  std::vector<MPI_Request>& r = pending_->requests;
  ZEBRA_CHECK(t.first <= t.last && t.last <= r.size(), "Communicator::wait: no such request");
  if (t.first == t.last) return;
  // Completed requests become MPI_REQUEST_NULL, which wait_all passes over.
  check(MPI_Waitall(static_cast<int>(t.last - t.first), r.data() + t.first, MPI_STATUSES_IGNORE), "MPI_Waitall");
  // Tickets index this list: it is emptied only when nothing in it is pending any more.
  if (std::all_of(r.begin(), r.end(), [](MPI_Request q) { return q == MPI_REQUEST_NULL; })) r.clear();
}

void Communicator::wait_all() {
  const Blocked blocked(wait_seconds_);
  std::vector<MPI_Request>& r = pending_->requests;
  if (r.empty()) return;
  const int rc = MPI_Waitall(static_cast<int>(r.size()), r.data(), MPI_STATUSES_IGNORE);
  r.clear();
  check(rc, "MPI_Waitall");
}

void Communicator::barrier() {
  const Blocked blocked(wait_seconds_);
  if (mpi_) check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
}

void Communicator::sum(double* values, std::size_t n) {
  if (size_ == 1 || n == 0) return;
  const Blocked blocked(wait_seconds_);
  std::vector<double> all(n * static_cast<std::size_t>(size_));
  check(MPI_Allgather(values, static_cast<int>(n), MPI_DOUBLE, all.data(), static_cast<int>(n), MPI_DOUBLE,
                      MPI_COMM_WORLD),
        "MPI_Allgather");
  for (std::size_t i = 0; i < n; ++i) {
    double s = 0.0;
    for (int r = 0; r < size_; ++r) s += all[static_cast<std::size_t>(r) * n + i];
    values[i] = s;
  }
}

void Communicator::sum(std::int64_t* values, std::size_t n) {
  if (size_ == 1 || n == 0) return;
  const Blocked blocked(wait_seconds_);
  std::vector<std::int64_t> all(n * static_cast<std::size_t>(size_));
  check(MPI_Allgather(values, static_cast<int>(n), MPI_INT64_T, all.data(), static_cast<int>(n), MPI_INT64_T,
                      MPI_COMM_WORLD),
        "MPI_Allgather");
  for (std::size_t i = 0; i < n; ++i) {
    std::int64_t s = 0;
    for (int r = 0; r < size_; ++r) s += all[static_cast<std::size_t>(r) * n + i];
    values[i] = s;
  }
}

void Communicator::broadcast(void* data, std::size_t bytes) {
  if (size_ == 1) return;
  const Blocked blocked(wait_seconds_);
  char* p = static_cast<char*>(data);
  for (std::size_t off = 0; off < bytes; off += kMaxPiece) {
    const int n = static_cast<int>(std::min(kMaxPiece, bytes - off));
    check(MPI_Bcast(p + off, n, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
  }
}

bool Communicator::any(bool flag) {
  std::int64_t v = flag ? 1 : 0;
  sum(&v, 1);
  return v > 0;
}

void Communicator::abort_job(const std::string& message, int code) const {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
  if (mpi_ && size_ > 1) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

}  // namespace zebra
