#include "util/atomic_output.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <system_error>

#include "util/error.h"

namespace fs = std::filesystem;

namespace thinkeys {
namespace {

// `dir/`, `dir/.` and `dir` name the same directory; the temporary sibling
// needs its last component.
fs::path normalized(const fs::path& p) {
  fs::path n = p.lexically_normal();
  if (!n.has_filename() || n.filename() == ".") n = fs::absolute(n).lexically_normal();
  while (n.has_parent_path() && !n.has_filename()) n = n.parent_path();
  return n;
}

fs::path parent_of(const fs::path& target) {
  return target.parent_path().empty() ? fs::path(".") : target.parent_path();
}

std::string temp_prefix(const fs::path& target) {
  return "." + target.filename().string() + ".tmp-";
}

fs::path temp_sibling(const fs::path& target) {
  std::random_device rd;
  return parent_of(target) /
         (temp_prefix(target) + std::to_string(::getpid()) + "-" + std::to_string(rd() % 1000000));
}

void fsync_path(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// Test hook for tests/test_output_faults.cpp: THINKEYS_TEST_KILL_AT=NAME:N
// makes the process SIGKILL itself the N-th time it reaches the named point
// of a directory replacement ("before-exchange": the new directory is
// complete beside the old; "after-exchange": the old one is in the
// temporary, not yet removed).
void kill_point_for_test(std::string_view name) {
  static const std::string at = [] {
    const char* v = std::getenv("THINKEYS_TEST_KILL_AT");
    return std::string(v ? v : "");
  }();
  static int reached = 0;
  const auto colon = at.find(':');
  if (colon == std::string::npos || std::string_view(at).substr(0, colon) != name) return;
  if (++reached == std::atoi(at.c_str() + colon + 1)) ::raise(SIGKILL);
}

// Swaps the two paths in one step; false (nothing changed) where the
// filesystem or kernel cannot.
bool exchange(const fs::path& a, const fs::path& b) {
  if (::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) == 0) return true;
  if (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP) return false;
  throw Error("cannot replace " + b.string() + " with " + a.string() + ": " + std::strerror(errno));
}

void replace_directory(const fs::path& dir_in, const std::function<void(const fs::path&)>& fill) {
  const fs::path dir = normalized(dir_in);
  const fs::path parent = parent_of(dir);
  if (!fs::is_directory(parent))
    throw Error("cannot write " + dir.string() + ": directory " + parent.string() +
                " does not exist");
  remove_stale_temporaries(dir);
  std::error_code ec;
  auto tmp = temp_sibling(dir);
  fs::create_directory(tmp);
  try {
    fill(tmp);
    for (auto& entry : fs::directory_iterator(tmp)) fsync_path(entry.path());
    fsync_path(tmp);
    kill_point_for_test("before-exchange");
    if (!fs::exists(dir)) {
      fs::rename(tmp, dir);
    } else if (exchange(tmp, dir)) {
      kill_point_for_test("after-exchange");
      fs::remove_all(tmp, ec);  // now the old directory
    } else {
      auto old = temp_sibling(dir);
      fs::rename(dir, old);
      fs::rename(tmp, dir);
      fs::remove_all(old, ec);
    }
    fsync_path(parent);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace

void remove_stale_temporaries(const fs::path& target_in) {
  const fs::path target = normalized(target_in);
  const std::string prefix = temp_prefix(target);
  std::error_code ec;
  fs::directory_iterator it(parent_of(target), ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.starts_with(prefix)) continue;
    // .NAME.tmp-PID-N: only a writer that no longer exists leaves it for good.
    const char* p = name.data() + prefix.size();
    const char* e = name.data() + name.size();
    long pid = 0;
    auto [rest, err] = std::from_chars(p, e, pid);
    if (err != std::errc() || rest == e || *rest != '-' || pid <= 0) continue;
    if (pid == ::getpid() || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    std::error_code rm;
    fs::remove_all(it->path(), rm);
  }
}

void write_file_atomically(const fs::path& path_in,
                           const std::function<void(const fs::path&)>& write) {
  const fs::path path = normalized(path_in);
  auto parent = parent_of(path);
  if (!fs::is_directory(parent))
    throw Error("cannot write " + path.string() + ": directory " + parent.string() +
                " does not exist");
  remove_stale_temporaries(path);
  auto tmp = temp_sibling(path);
  try {
    write(tmp);
    fsync_path(tmp);
    fs::rename(tmp, path);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

void write_text_atomically(const fs::path& path, std::string_view text) {
  write_file_atomically(path, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) throw Error("failed writing " + tmp.string());
  });
}

void write_directory_atomically(const fs::path& dir,
                                const std::function<void(const fs::path&)>& fill) {
  std::error_code ec;
  if (fs::exists(dir)) {
    if (!fs::is_directory(dir))
      throw Error("output " + dir.string() + " exists and is not a directory");
    bool empty = fs::is_empty(dir, ec);
    if (!empty && !fs::exists(dir / "config.json"))
      throw Error("output directory " + dir.string() +
                  " exists and is not a model directory; refusing to replace it");
  }
  replace_directory(dir, fill);
}

void replace_directory_atomically(const fs::path& dir,
                                  const std::function<void(const fs::path&)>& fill) {
  if (fs::exists(dir) && !fs::is_directory(dir))
    throw Error("output " + dir.string() + " exists and is not a directory");
  replace_directory(dir, fill);
}

}  // namespace thinkeys
