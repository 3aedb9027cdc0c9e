#pragma once
// Saving trained models so every other subcommand (info, eval, generate,
// compress) can use them: an HF directory plus the tokenizer files.
#include <filesystem>

#include "io/safetensors.h"

namespace thinkeys {

struct Model;  // model/weights.h

// Writes config.json, model.safetensors and copies of the tokenizer's files
// into `out` (created if needed). The files appear together: the new set is
// written into a temporary sibling of `out` that also receives the rest of
// `out` (logs, checkpoint/) as hard links, and the two directories are then
// exchanged in one step (util/atomic_output), so a kill leaves the previous
// model or the new one, never a mix. Refuses a non-empty `out` that holds
// neither a model nor a training run.
// `tokenizer_source` is a tokenizer file or directory (empty: none copied).
void save_trained_model(const Model& model, const std::filesystem::path& out,
                        const std::filesystem::path& tokenizer_source, DType dtype = DType::F32);

}  // namespace thinkeys
