#pragma once
// A loaded model that callers can hold, pass on and describe without
// libtorch's headers: the tensors stay behind the pointer. Commands that only
// decode (generate, chat, serve, info) take the model this way, so they compile
// without ATen; code that reads or changes the weights includes model/weights.h.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>

#include "config/model_config.h"
#include "model/weight_format_choice.h"

namespace thinkeys {

struct Model;  // model/weights.h

class LoadedModel {
 public:
  explicit LoadedModel(std::shared_ptr<const Model> model);

  const Model& model() const { return *model_; }
  const ModelConfig& config() const { return *config_; }
  // Model::parameter_count, weight_bytes, resident_bytes.
  int64_t parameter_count() const;
  int64_t weight_bytes() const;
  int64_t resident_bytes() const;
  // The format its matrices are held in (current_weight_format).
  WeightFormat weight_format() const;

 private:
  std::shared_ptr<const Model> model_;
  const ModelConfig* config_;  // the model's own
};

// load_model (checkpoint/model_loader.h) behind a LoadedModel.
LoadedModel load_model_handle(const std::filesystem::path& path,
                              std::optional<WeightFormat> weights = WeightFormat::F32);

}  // namespace thinkeys
