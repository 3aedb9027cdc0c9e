#include "plan/model_source.h"

#include "io/hf_config.h"
#include "io/llama2c_header.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace thinkeys {

namespace {

PlanModel from_hf_config(const fs::path& config) {
  PlanModel m;
  m.config = read_hf_config(config, &m.unsupported);
  m.source = config.string();
  return m;
}

}  // namespace

PlanModel read_plan_model(const fs::path& path) {
  if (!fs::exists(path)) throw Error("model or config not found: " + path.string());
  if (fs::is_directory(path)) return from_hf_config(path / "config.json");
  const std::string name = path.filename().string();
  if (path.extension() == ".safetensors" || name.ends_with(".index.json")) {
    const fs::path config =
        (path.parent_path().empty() ? fs::path(".") : path.parent_path()) / "config.json";
    return from_hf_config(config);
  }
  if (path.extension() == ".json") return from_hf_config(path);
  if (path.extension() == ".bin") {
    if (!looks_like_llama2c_checkpoint(path))
      throw Error(path.string() +
                  ": not a llama2.c checkpoint (PyTorch .bin files are not supported)");
    return {read_llama2c_header(path).config, path.string() + " (llama2.c header)", {}};
  }
  throw Error(path.string() +
              ": unrecognised model format (expected a Hugging Face directory, a config.json, or "
              "a llama2.c .bin file)");
}

}  // namespace thinkeys
