#pragma once
// --documents / --doc-tokens / --slice / --slices for commands that score
// held-out text: every document of a multi-document file scored on its own,
// optionally an equal, disjoint share of tokens from each (eval/document_slices.h).
#include <cstdint>
#include <string>
#include <vector>

#include "cli/common.h"

namespace CLI {
class App;
}

namespace thinkeys::cli {

struct DocumentOptions {
  std::string index;         // empty: the whole file is one document
  int64_t per_document = 0;  // 0: every document whole
  int slice = 0;
  int slices = 0;  // > 0: run slices 0..slices-1 and report each and their spread
};

void add_document_options(CLI::App* sub, DocumentOptions& options);

// True when the options ask for anything but the file as one token stream.
bool documents_requested(const DocumentOptions& options);

// Throws Error on combinations that mean nothing: --slice/--slices without
// --doc-tokens, both --slice and --slices, or --max-tokens with any of them
// (a prefix of the file is what these replace).
void check_document_options(const DocumentOptions& options, int64_t max_tokens);

// The slice indices to run: {slice}, or 0..slices-1.
std::vector<int> slice_indices(const DocumentOptions& options);

struct TokenizedDocuments {
  std::vector<std::string> names;
  std::vector<std::vector<int32_t>> bodies;  // tokens without BOS
  std::vector<int32_t> bos;                  // what prompt_tokens would put first
};

// Tokenizes every document of `text` on its own (the index's rows for this
// file; without an index the whole file is one document).
TokenizedDocuments tokenize_documents(const Model& model, const ModelTokenizer& mt,
                                      const std::string& text, const std::string& data_path,
                                      const DocumentOptions& options, int bos_mode);

// BOS (when wanted) followed by slice `slice` of every document.
std::vector<std::vector<int32_t>> slice_sequences(const TokenizedDocuments& documents,
                                                  const DocumentOptions& options, int slice);

}  // namespace thinkeys::cli
