#include "train/rank_launcher.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <thread>

#include "train/data_parallel.h"
#include "util/error.h"

extern char** environ;

namespace thinkeys {
namespace {

std::vector<std::string> without_nproc(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--nproc") {
      ++i;
      continue;
    }
    if (args[i].rfind("--nproc=", 0) == 0) continue;
    out.push_back(args[i]);
  }
  return out;
}

}  // namespace

// Asks the kernel for a free loopback port. Another process could take it
// before rank 0 binds it; the store then fails with a clear error.
int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error("cannot create a socket to find a free port");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw Error("cannot find a free loopback port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t end = all.find('\0', pos);
    if (end == std::string::npos) end = all.size();
    args.push_back(all.substr(pos, end - pos));
    pos = end + 1;
  }
  return args;
}

void launch_ranks(int nproc, std::vector<std::string> args) {
  if (nproc < 1) throw Error("--nproc must be at least 1");
  args = without_nproc(args);
  if (args.empty()) throw Error("cannot relaunch: empty command line");
  args[0] = "/proc/self/exe";
  const bool has_threads = std::find(args.begin(), args.end(), "--threads") != args.end();
  if (!has_threads) {
    int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    args.insert(args.begin() + 1, {"--threads", std::to_string(std::max(1, cores / nproc))});
  }
  const int port = free_loopback_port();
  std::vector<pid_t> pids;
  for (int r = 0; r < nproc; ++r) {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string kv = *e;
      for (const char* k : {"RANK=", "WORLD_SIZE=", "MASTER_ADDR=", "MASTER_PORT=", "LOCAL_RANK="})
        if (kv.rfind(k, 0) == 0) kv.clear();
      if (!kv.empty()) env.push_back(kv);
    }
    env.push_back("RANK=" + std::to_string(r));
    env.push_back("LOCAL_RANK=" + std::to_string(r));
    env.push_back("WORLD_SIZE=" + std::to_string(nproc));
    env.push_back("MASTER_ADDR=127.0.0.1");
    env.push_back("MASTER_PORT=" + std::to_string(port));
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = 0;
    if (::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data()) != 0) {
      for (pid_t p : pids) ::kill(p, SIGTERM);
      throw Error("cannot start rank " + std::to_string(r));
    }
    pids.push_back(pid);
  }
  // Reap ranks in the order they finish: when one fails, the others would
  // otherwise wait for it until their collective timeout.
  int failed = -1, failed_status = 0;
  for (int left = nproc; left > 0; --left) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) break;
    auto it = std::find(pids.begin(), pids.end(), pid);
    if (it == pids.end()) {
      ++left;
      continue;
    }
    const int r = static_cast<int>(it - pids.begin());
    *it = -1;
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) && failed < 0) {
      failed = r;
      failed_status = status;
      for (pid_t o : pids)
        if (o > 0) ::kill(o, SIGTERM);
    }
  }
  if (failed >= 0)
    throw Error("rank " + std::to_string(failed) + " of " + std::to_string(nproc) + " failed (" +
                (WIFEXITED(failed_status)
                     ? "exit status " + std::to_string(WEXITSTATUS(failed_status))
                     : "signal " + std::to_string(WTERMSIG(failed_status))) +
                ")");
}

bool launch_ranks_if_asked(int nproc) {
  if (nproc < 1) throw Error("--nproc must be at least 1");
  if (nproc == 1 || data_parallel_options_from_env().world_size > 1) return false;
  if (!data_parallel_available())
    throw Error("this thinkeys was built without Gloo (libgloo-dev), so --nproc is unavailable");
  launch_ranks(nproc, own_command_line());
  return true;
}

}  // namespace thinkeys
