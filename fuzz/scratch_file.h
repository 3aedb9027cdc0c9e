#pragma once
// The loaders read files; libFuzzer hands over bytes. A per-process scratch
// directory (on tmpfs when /dev/shm exists) bridges the two, so the targets
// exercise the same entry points users reach, including the file handling.
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>

namespace thinkeys::fuzz {

// Created on first use, removed when the process exits normally.
const std::filesystem::path& scratch_dir();

// Writes `bytes` to scratch_dir()/name (replacing it) and returns the path.
std::filesystem::path write_scratch(std::string_view name, std::span<const uint8_t> bytes);

}  // namespace thinkeys::fuzz
