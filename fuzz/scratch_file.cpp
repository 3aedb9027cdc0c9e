#include "scratch_file.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace fs = std::filesystem;

namespace thinkeys::fuzz {
namespace {

class ScratchDir {
 public:
  ScratchDir() {
    std::error_code ec;
    fs::path base =
        fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
    path_ = base / ("thinkeys-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

}  // namespace

const fs::path& scratch_dir() {
  static ScratchDir dir;
  return dir.path();
}

fs::path write_scratch(std::string_view name, std::span<const uint8_t> bytes) {
  fs::path p = scratch_dir() / std::string(name);
  std::FILE* f = std::fopen(p.c_str(), "wb");
  if (f == nullptr) std::abort();  // the harness itself is broken, not the input
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) std::abort();
  std::fclose(f);
  return p;
}

}  // namespace thinkeys::fuzz
