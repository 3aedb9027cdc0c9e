#include "util/atomic_output.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <system_error>

#include "util/error.h"

namespace fs = std::filesystem;

namespace thinkeys {
namespace {

fs::path temp_sibling(const fs::path& target) {
  std::random_device rd;
  auto name = "." + target.filename().string() + ".tmp-" + std::to_string(rd() % 1000000);
  auto parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  return parent / name;
}

void fsync_path(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

void write_file_atomically(const fs::path& path,
                           const std::function<void(const fs::path&)>& write) {
  auto parent = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  if (!fs::is_directory(parent))
    throw Error("cannot write " + path.string() + ": directory " + parent.string() +
                " does not exist");
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
  auto parent = dir.parent_path().empty() ? fs::path(".") : dir.parent_path();
  if (!fs::is_directory(parent))
    throw Error("cannot write " + dir.string() + ": directory " + parent.string() +
                " does not exist");
  auto tmp = temp_sibling(dir);
  fs::create_directory(tmp);
  try {
    fill(tmp);
    for (auto& entry : fs::directory_iterator(tmp)) fsync_path(entry.path());
    if (fs::exists(dir)) {
      // Swap in two renames so the old directory survives until the new one is complete.
      auto old = temp_sibling(dir);
      fs::rename(dir, old);
      fs::rename(tmp, dir);
      fs::remove_all(old, ec);
    } else {
      fs::rename(tmp, dir);
    }
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace thinkeys
