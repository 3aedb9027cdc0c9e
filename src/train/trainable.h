#pragma once
// Turning a runtime Model into a trainable one and back.
//
// The runtime keeps fused copies (wqkv, w_gate_up) and makes wq/wk/wv views
// into them. Training must own the canonical tensors instead: autograd needs
// leaves, and the QK scope must be able to freeze W_V while training W_Q/W_K.
// So prepare_for_training() gives every canonical tensor its own storage,
// drops the fused copies (they would go stale) and marks the chosen tensors as
// requiring gradients. training_forward() reads only canonical tensors.
// inference_model() makes a detached, fused, runtime-ready copy for saving or
// running through forward()/the CLI.
#include <string>
#include <vector>

#include "model/weights.h"
#include "train/train_config.h"

namespace thinkeys {

struct NamedParameter {
  std::string name;  // canonical name, e.g. "layers.3.wq", "tok_emb"
  at::Tensor tensor;
  bool trainable = false;
};

// Unfuses `model` in place and returns every weight tensor (in a fixed order;
// a tied head appears once, as tok_emb). Tensors in `scope` get
// requires_grad; the rest are frozen.
std::vector<NamedParameter> prepare_for_training(Model& model, TrainScope scope);

// Only the trainable tensors of a list.
std::vector<at::Tensor> trainable_tensors(const std::vector<NamedParameter>& params);

// A detached deep copy with fused tensors rebuilt, for forward() and saving.
Model inference_model(const Model& trained);

}  // namespace thinkeys
