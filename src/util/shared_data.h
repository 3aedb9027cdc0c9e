#pragma once
// Locates the shared models and data directory (never part of the repo):
// $THINKEYS_SHARED, else ../shared relative to the working directory or any of
// its ancestors' siblings.
#include <filesystem>
#include <optional>

namespace thinkeys {

std::optional<std::filesystem::path> find_shared_dir();

}  // namespace thinkeys
