#pragma once
// Hugging Face config.json <-> ModelConfig. Every field that changes the
// computation is either honoured or refused by name; nothing is approximated.
#include <filesystem>
#include <string>

#include "model/model_config.h"

namespace thinkeys {

ModelConfig parse_hf_config(const std::string& json_text, const std::string& origin);
ModelConfig read_hf_config(const std::filesystem::path& config_json);
std::string hf_config_json(const ModelConfig& config);

}  // namespace thinkeys
