#include "util/text_file.h"

#include <fstream>
#include <sstream>

#include "util/error.h"

namespace thinkeys {

std::string read_file_bytes(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) throw Error("file not found: " + path.string());
  if (std::filesystem::is_directory(path))
    throw Error(path.string() + " is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return std::move(ss).str();
}

}  // namespace thinkeys
