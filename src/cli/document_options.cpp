#include "cli/document_options.h"

#include <CLI/CLI.hpp>
#include <filesystem>

#include "eval/document_slices.h"
#include "util/error.h"

namespace thinkeys::cli {

void add_document_options(CLI::App* sub, DocumentOptions& o) {
  sub->add_option("--documents", o.index,
                  "Tab-separated index of the documents in --data (header, then file name, "
                  "offset, bytes[, name] per row, e.g. gutenberg/INDEX.tsv): score each document "
                  "on its own");
  sub->add_option("--doc-tokens", o.per_document,
                  "Take this many tokens from every document (an equal share of each; without "
                  "--documents the file is one document)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--slice", o.slice,
                  "With --doc-tokens N: take tokens [slice*N, (slice+1)*N) of every document, "
                  "so slices 0, 1, 2 are disjoint")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--slices", o.slices,
                  "With --doc-tokens N: score slices 0..K-1 one after another and report each, "
                  "their mean and spread")
      ->check(CLI::PositiveNumber);
}

bool documents_requested(const DocumentOptions& o) {
  return !o.index.empty() || o.per_document > 0 || o.slice > 0 || o.slices > 0;
}

void check_document_options(const DocumentOptions& o, int64_t max_tokens) {
  if (o.per_document == 0 && (o.slice != 0 || o.slices != 0))
    throw Error("--slice and --slices need --doc-tokens N (a slice is N tokens of each document)");
  if (o.slice != 0 && o.slices != 0)
    throw Error("give either --slice I (one slice) or --slices K (slices 0..K-1), not both");
  if (documents_requested(o) && max_tokens > 0)
    throw Error(
        "--max-tokens takes a prefix of the file; with --documents/--doc-tokens it does not "
        "apply");
}

std::vector<int> slice_indices(const DocumentOptions& o) {
  if (o.slices <= 0) return {o.slice};
  std::vector<int> out;
  for (int s = 0; s < o.slices; ++s) out.push_back(s);
  return out;
}

TokenizedDocuments tokenize_documents(const Model& model, const ModelTokenizer& mt,
                                      const std::string& text, const std::string& data_path,
                                      const DocumentOptions& o, int bos_mode) {
  TokenizedDocuments out;
  out.bos = bos_prefix(model, mt, text.empty(), bos_mode);
  if (o.index.empty()) {
    out.names.push_back(std::filesystem::path(data_path).filename().string());
    out.bodies.push_back(mt.conventions.encode(*mt.tokenizer, text, false));
    return out;
  }
  const auto spans =
      read_document_index(o.index, std::filesystem::path(data_path).filename().string(),
                          static_cast<int64_t>(text.size()));
  for (const auto& d : spans) {
    out.names.push_back(d.name);
    out.bodies.push_back(mt.conventions.encode(
        *mt.tokenizer,
        text.substr(static_cast<std::size_t>(d.offset), static_cast<std::size_t>(d.bytes)), false));
  }
  return out;
}

std::vector<std::vector<int32_t>> slice_sequences(const TokenizedDocuments& docs,
                                                  const DocumentOptions& o, int slice) {
  std::vector<std::vector<int32_t>> out;
  for (const auto& s : document_slices(docs.bodies, docs.names, o.per_document, slice)) {
    std::vector<int32_t> seq = docs.bos;
    seq.insert(seq.end(), s.begin(), s.end());
    out.push_back(std::move(seq));
  }
  return out;
}

}  // namespace thinkeys::cli
