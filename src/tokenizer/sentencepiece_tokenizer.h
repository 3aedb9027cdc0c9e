#pragma once
// SentencePiece models (tokenizer.model), e.g. Llama-1/2, through libsentencepiece.
#include <filesystem>
#include <memory>

#include "tokenizer/tokenizer.h"

namespace thinkeys {

std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& model_file);

}  // namespace thinkeys
