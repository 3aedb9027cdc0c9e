#include "util/shared_data.h"

#include <cstdlib>

namespace fs = std::filesystem;

namespace thinkeys {

std::optional<fs::path> find_shared_dir() {
  if (const char* env = std::getenv("THINKEYS_SHARED"); env != nullptr && *env != '\0') {
    if (fs::is_directory(env)) return fs::path(env);
    return std::nullopt;
  }
  std::error_code ec;
  fs::path dir = fs::current_path(ec);
  for (int depth = 0; depth < 5 && !dir.empty(); ++depth) {
    fs::path candidate = dir.parent_path() / "shared";
    if (fs::is_directory(candidate / "models") || fs::is_directory(candidate / "data"))
      return candidate;
    if (dir == dir.parent_path()) break;
    dir = dir.parent_path();
  }
  return std::nullopt;
}

}  // namespace thinkeys
