#pragma once
// llama2.c checkpoints (the legacy format run.c reads): seven int32 header
// fields, then f32 weights. A negative vocab_size means the classifier is
// stored separately; otherwise it is the embedding table.
#include <filesystem>

#include "io/llama2c_header.h"
#include "model/weights.h"

namespace thinkeys {

Model load_llama2c_checkpoint(const std::filesystem::path& file);

}  // namespace thinkeys
