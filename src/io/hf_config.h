#pragma once
// Hugging Face config.json <-> ModelConfig. Every field that changes the
// computation is either honoured or refused by name; nothing is approximated.
#include <filesystem>
#include <string>
#include <vector>

#include "config/model_config.h"

namespace thinkeys {

// With `unsupported`, settings the runtime does not implement but that change
// no tensor or cache shape (a rope_scaling type, an activation, Qwen2's
// per-layer windows) are listed there instead of refused: enough to plan
// memory (src/plan/), not to run the model.
ModelConfig parse_hf_config(const std::string& json_text, const std::string& origin,
                            std::vector<std::string>* unsupported = nullptr);
ModelConfig read_hf_config(const std::filesystem::path& config_json,
                           std::vector<std::string>* unsupported = nullptr);
std::string hf_config_json(const ModelConfig& config);

}  // namespace thinkeys
