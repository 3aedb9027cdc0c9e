#pragma once
// Whole-file reads for the tokenizer loaders, with errors that name the file.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

#include "util/error.h"

namespace thinkeys::detail {

// `what` describes the file's role, e.g. "GPT-2 merges file".
inline std::string read_file_bytes(const std::filesystem::path& path, std::string_view what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw Error(std::string(what) + " '" + path.string() + "' " +
                (std::filesystem::exists(path, ec) ? "is not a regular file" : "does not exist"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error("cannot open " + std::string(what) + " '" + path.string() +
                "': " + std::strerror(errno));
  }
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error("error reading " + std::string(what) + " '" + path.string() + "'");
  return bytes;
}

}  // namespace thinkeys::detail
