#pragma once
// The architecture to plan for, from whatever the user has before
// downloading weights: a Hugging Face directory, its bare config.json (or
// any file in the directory), or a llama2.c checkpoint (its header alone).
#include <filesystem>
#include <string>
#include <vector>

#include "config/model_config.h"

namespace thinkeys {

struct PlanModel {
  ModelConfig config;
  std::string source;  // what was read, for the report
  // Settings the runtime would refuse that change no shape (a rope_scaling
  // type, say): planned anyway, and reported.
  std::vector<std::string> unsupported;
};

// The same parsing and validation as the loaders (io/hf_config.h,
// io/llama2c_header.h), except that settings which change no tensor or
// cache shape are listed instead of refused; throws the loaders' Error on a
// bad or missing file, a missing field or an unknown architecture.
PlanModel read_plan_model(const std::filesystem::path& path);

}  // namespace thinkeys
