#pragma once
// Held-out text made of several documents (e.g. Gutenberg's test.txt, 14 books
// concatenated): which byte ranges are which document, and an equal share of
// tokens from every document so that no single book decides a reported figure.
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace thinkeys {

struct DocumentSpan {
  std::string name;
  int64_t offset = 0;  // bytes into the data file
  int64_t bytes = 0;
};

// The rows of a tab-separated index (a header line, then `file offset bytes
// [name]`, as gutenberg/INDEX.tsv) whose first column is `file_name`. Throws
// Error when no row names the file, a row is malformed, or a range leaves the
// file's `file_size` bytes or overlaps the previous one.
std::vector<DocumentSpan> read_document_index(const std::filesystem::path& index,
                                              const std::string& file_name, int64_t file_size);

// Tokens [slice * per_document, (slice + 1) * per_document) of every document,
// so slices 0, 1, 2 are disjoint and each takes the same number of tokens from
// every document. per_document 0 takes every document whole (slice must be 0).
// Throws Error naming the first document too short for the request.
std::vector<std::span<const int32_t>> document_slices(
    const std::vector<std::vector<int32_t>>& documents, const std::vector<std::string>& names,
    int64_t per_document, int slice);

// Mean and spread of one figure over K slices: sd is the sample standard
// deviation (n - 1 in the denominator; 0 for a single value).
struct Spread {
  int n = 0;
  double mean = 0, sd = 0, min = 0, max = 0;
};
Spread spread_of(std::span<const double> values);

}  // namespace thinkeys
