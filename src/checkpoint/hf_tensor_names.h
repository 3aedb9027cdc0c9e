#pragma once
// The Hugging Face tensor names of each architecture family, written once:
// loading reads this table and saving writes it, so a name, a shape or a
// layout note cannot differ between the two directions.
#include <cstdint>
#include <string>
#include <vector>

#include "model/weights.h"

namespace thinkeys {

// One model tensor: a LayerWeights field of layer `layer`, or a Weights field
// when layer < 0.
struct WeightSlot {
  int layer = -1;
  at::Tensor LayerWeights::*layer_field = nullptr;
  at::Tensor Weights::*model_field = nullptr;
  int64_t rows = 0;  // rows this slot takes in a fused tensor (model layout)

  at::Tensor& in(Weights& w) const;
  const at::Tensor& in(const Weights& w) const;
};

// One tensor of a checkpoint file.
struct HfTensor {
  std::string name;            // full name, e.g. "model.layers.3.self_attn.q_proj.weight"
  std::vector<int64_t> shape;  // as stored in the file, implied by config.json
  // GPT-2's Conv1D stores [in, out]; the model holds Linear's [out, in].
  bool transposed = false;
  // Model tensors held by this one, concatenated along the model's dim 0
  // (GPT-2's c_attn is [q | k | v], with q and k narrower than v in a
  // thin-key checkpoint). One slot for every unfused tensor.
  std::vector<WeightSlot> parts;
  // May be absent from a file (a thin-key Qwen2 checkpoint may drop the key
  // bias exactly: it shifts each score row by a constant).
  bool optional = false;
};

struct HfTensorTable {
  // Prefix some exports leave off (GPT-2's "transformer."); names in
  // `tensors` carry it, and a file without it is read without it.
  std::string droppable_prefix;
  std::vector<HfTensor> tensors;
};

// Every tensor a checkpoint of this configuration holds: GPT-2 for
// model_type "gpt2", otherwise the Llama family (Llama, Mistral, Qwen2 and the
// MLA / LRKV variants trained here), with thin-key maps as the config says.
HfTensorTable hf_tensor_table(const ModelConfig& c);

}  // namespace thinkeys
