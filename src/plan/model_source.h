#pragma once
// The architecture to plan for, from whatever the user has before
// downloading weights: a Hugging Face directory, its bare config.json (or
// any file in the directory), or a llama2.c checkpoint (its header alone).
#include <filesystem>
#include <string>

#include "model/model_config.h"

namespace thinkeys {

struct PlanModel {
  ModelConfig config;
  std::string source;  // what was read, for the report
};

// The same parsing and validation as the loaders (io/hf_config.h,
// io/llama2c_header.h); throws their Error on a bad or missing file.
PlanModel read_plan_model(const std::filesystem::path& path);

}  // namespace thinkeys
