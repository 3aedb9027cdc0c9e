#include "train/data_parallel.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cstdlib>

#include "util/error.h"

#ifdef THINKEYS_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace thinkeys {
namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0 || x > 1 << 20)
    throw Error(std::string("environment variable ") + name + "='" + v + "' is not a valid number");
  return static_cast<int>(x);
}

at::Tensor flatten(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> flat;
  for (const auto& t : tensors) flat.push_back(t.reshape({-1}));
  return at::cat(flat);
}

void unflatten(const at::Tensor& flat, const std::vector<at::Tensor>& tensors) {
  int64_t off = 0;
  for (const auto& t : tensors) {
    t.copy_(flat.narrow(0, off, t.numel()).view(t.sizes()));
    off += t.numel();
  }
}

}  // namespace

DataParallelOptions data_parallel_options_from_env() {
  DataParallelOptions o;
  o.world_size = env_int("WORLD_SIZE", 1);
  o.rank = env_int("RANK", 0);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) o.master_addr = a;
  o.master_port = env_int("MASTER_PORT", 29500);
  if (o.world_size < 1) throw Error("WORLD_SIZE must be at least 1");
  if (o.rank >= o.world_size)
    throw Error("RANK (" + std::to_string(o.rank) + ") must be below WORLD_SIZE (" +
                std::to_string(o.world_size) + ")");
  if (o.master_port <= 0 || o.master_port > 65535) throw Error("MASTER_PORT out of range");
  return o;
}

#ifdef THINKEYS_HAVE_GLOO

bool data_parallel_available() { return true; }

struct DataParallel::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

DataParallel::DataParallel(const DataParallelOptions& o) : options_(o), impl_(new Impl) {
  if (o.world_size < 1 || o.rank < 0 || o.rank >= o.world_size)
    throw Error("data parallel: rank " + std::to_string(o.rank) + " outside world of " +
                std::to_string(o.world_size));
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(o.master_port);
    so.isServer = o.rank == 0;
    so.numWorkers = static_cast<size_t>(o.world_size);
    so.timeout = std::chrono::seconds(o.timeout_seconds);
    impl_->store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
    auto go = c10d::ProcessGroupGloo::Options::create(std::chrono::seconds(o.timeout_seconds));
    go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(o.master_addr));
    go->threads = 1;
    impl_->group =
        c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, o.rank, o.world_size, go);
  } catch (const std::exception& e) {
    std::string what = e.what();
    throw Error("data parallel rendezvous at " + o.master_addr + ":" +
                std::to_string(o.master_port) + " failed (rank " + std::to_string(o.rank) + " of " +
                std::to_string(o.world_size) + "): " + what.substr(0, what.find('\n')));
  }
}

DataParallel::~DataParallel() = default;

void DataParallel::average(const std::vector<at::Tensor>& tensors) {
  if (tensors.empty() || options_.world_size == 1) return;
  std::vector<at::Tensor> buf{flatten(tensors)};
  impl_->group->allreduce(buf)->wait();
  unflatten(buf[0].div_(options_.world_size), tensors);
}

void DataParallel::broadcast(const std::vector<at::Tensor>& tensors, int root) {
  if (tensors.empty() || options_.world_size == 1) return;
  std::vector<at::Tensor> buf{flatten(tensors)};
  c10d::BroadcastOptions bo;
  bo.rootRank = root;
  impl_->group->broadcast(buf, bo)->wait();
  unflatten(buf[0], tensors);
}

void DataParallel::barrier() {
  if (options_.world_size > 1) impl_->group->barrier()->wait();
}

#else

bool data_parallel_available() { return false; }

struct DataParallel::Impl {};

DataParallel::DataParallel(const DataParallelOptions& o) : options_(o) {
  if (o.world_size > 1)
    throw Error(
        "this thinkeys was built without Gloo (libgloo-dev was missing at configure "
        "time), so data-parallel training is unavailable");
}
DataParallel::~DataParallel() = default;
void DataParallel::average(const std::vector<at::Tensor>&) {}
void DataParallel::broadcast(const std::vector<at::Tensor>&, int) {}
void DataParallel::barrier() {}

#endif

}  // namespace thinkeys
