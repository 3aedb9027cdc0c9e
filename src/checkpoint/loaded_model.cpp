#include "checkpoint/loaded_model.h"

#include <utility>

#include "checkpoint/model_loader.h"
#include "model/weight_format.h"
#include "model/weights.h"

namespace thinkeys {

LoadedModel::LoadedModel(std::shared_ptr<const Model> model)
    : model_(std::move(model)), config_(&model_->config) {}

int64_t LoadedModel::parameter_count() const { return model_->parameter_count(); }
int64_t LoadedModel::weight_bytes() const { return model_->weight_bytes(); }
int64_t LoadedModel::resident_bytes() const { return model_->resident_bytes(); }
WeightFormat LoadedModel::weight_format() const { return current_weight_format(*model_); }

LoadedModel load_model_handle(const std::filesystem::path& path,
                              std::optional<WeightFormat> weights) {
  return LoadedModel(std::make_shared<const Model>(load_model(path, weights)));
}

}  // namespace thinkeys
