#pragma once
#include <filesystem>
#include <string>

namespace thinkeys {

// Whole file as bytes; clear error when missing or unreadable.
std::string read_file_bytes(const std::filesystem::path& path);

}  // namespace thinkeys
