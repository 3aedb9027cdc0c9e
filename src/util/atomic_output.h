#pragma once
// Outputs appear whole or not at all: everything is written to a temporary
// sibling and renamed into place only after it is complete.
#include <filesystem>
#include <functional>
#include <string_view>

namespace thinkeys {

// Writes a file through `write(tmp_path)`, fsyncs it, then renames it over `path`.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(const std::filesystem::path&)>& write);
void write_text_atomically(const std::filesystem::path& path, std::string_view text);

// Fills a fresh temporary directory through `fill(tmp_dir)`, then moves it to
// `dir`. An existing `dir` is replaced only if it looks like a thinkeys/HF model
// directory (has config.json) or is empty; otherwise this refuses, so a typo in
// -o cannot destroy unrelated data.
void write_directory_atomically(const std::filesystem::path& dir,
                                const std::function<void(const std::filesystem::path&)>& fill);

}  // namespace thinkeys
