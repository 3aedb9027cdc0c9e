#pragma once
// Outputs appear whole or not at all: everything is written to a temporary
// sibling and renamed into place only after it is complete.
//
// Temporaries are named `.NAME.tmp-PID-N` beside the target. A writer that is
// killed leaves its temporary behind; the next write of the same target
// removes every such sibling whose process is gone (a live writer's is left
// alone), so leftovers do not accumulate.
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
// -o cannot destroy unrelated data. The old and new directories are exchanged
// in one step (renameat2 RENAME_EXCHANGE), so at every moment `dir` is one of
// them, whole; on filesystems without it, two renames leave a short window in
// which `dir` is missing (the old one is then in its temporary sibling).
void write_directory_atomically(const std::filesystem::path& dir,
                                const std::function<void(const std::filesystem::path&)>& fill);

// The same exchange without the model-directory check, for callers that
// decide themselves what `dir` may hold (a training run's output).
void replace_directory_atomically(const std::filesystem::path& dir,
                                  const std::function<void(const std::filesystem::path&)>& fill);

// Removes the temporaries of writers of `target` that were killed (see above).
void remove_stale_temporaries(const std::filesystem::path& target);

}  // namespace thinkeys
