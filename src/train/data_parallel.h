#pragma once
// Data-parallel training across processes on one machine: libtorch's c10d
// ProcessGroupGloo over a TCPStore rendezvous on loopback. Each rank computes
// gradients on its own slice of the batch; average() makes them identical
// everywhere before the optimizer step, so all ranks stay in lockstep.
#include <memory>
#include <string>
#include <vector>

namespace at {
class Tensor;  // by reference only: the launcher's units need no libtorch header
}  // namespace at

namespace thinkeys {

struct DataParallelOptions {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int timeout_seconds = 120;
};

// RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (torchrun's names); nullopt-like
// world_size 1 when WORLD_SIZE is unset. Throws Error on malformed values.
DataParallelOptions data_parallel_options_from_env();

// False when this build has no Gloo (libgloo-dev missing at configure time).
bool data_parallel_available();

class DataParallel {
 public:
  // Rendezvous with the other ranks (rank 0 hosts the store); blocks until all
  // have joined or the timeout passes (then throws Error).
  explicit DataParallel(const DataParallelOptions& options);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const { return options_.rank; }
  int world_size() const { return options_.world_size; }

  // In place: every tensor becomes the mean of its values over all ranks
  // (flattened into one buffer, so one collective per call).
  void average(const std::vector<at::Tensor>& tensors);
  // In place: every tensor takes rank `root`'s values.
  void broadcast(const std::vector<at::Tensor>& tensors, int root = 0);
  void barrier();

 private:
  struct Impl;
  DataParallelOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace thinkeys
