#include "eval/document_slices.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace thinkeys {
namespace {

int64_t parse_count(const std::string& field, const std::string& what, const std::string& where) {
  std::size_t used = 0;
  long long v = -1;
  try {
    v = std::stoll(field, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != field.size() || v < 0)
    throw Error(where + ": " + what + " '" + field + "' is not a non-negative integer");
  return v;
}

}  // namespace

std::vector<DocumentSpan> read_document_index(const std::filesystem::path& index,
                                              const std::string& file_name, int64_t file_size) {
  std::ifstream in(index);
  if (!in) throw Error("cannot read document index " + index.string());
  std::string line;
  if (!std::getline(in, line)) throw Error("document index " + index.string() + " is empty");
  std::vector<DocumentSpan> docs;
  int64_t line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::vector<std::string> fields;
    std::stringstream ss(line);
    for (std::string f; std::getline(ss, f, '\t');) fields.push_back(f);
    const std::string where = index.string() + " line " + std::to_string(line_no);
    if (fields.size() < 3)
      throw Error(where + ": expected file, offset and bytes separated by tabs");
    if (fields[0] != file_name) continue;
    DocumentSpan d;
    d.offset = parse_count(fields[1], "offset", where);
    d.bytes = parse_count(fields[2], "bytes", where);
    d.name = fields.size() > 3 ? fields[3] : "document " + std::to_string(docs.size());
    if (d.bytes == 0) throw Error(where + ": document " + d.name + " is empty");
    if (d.offset + d.bytes > file_size)
      throw Error(where + ": document " + d.name + " (bytes " + std::to_string(d.offset) + "-" +
                  std::to_string(d.offset + d.bytes) + ") runs past the end of " + file_name +
                  " (" + std::to_string(file_size) + " bytes); is the index for this file?");
    if (!docs.empty() && d.offset < docs.back().offset + docs.back().bytes)
      throw Error(where + ": document " + d.name + " overlaps or precedes " + docs.back().name);
    docs.push_back(std::move(d));
  }
  if (docs.empty())
    throw Error("document index " + index.string() + " lists no documents of " + file_name);
  return docs;
}

std::vector<std::span<const int32_t>> document_slices(
    const std::vector<std::vector<int32_t>>& documents, const std::vector<std::string>& names,
    int64_t per_document, int slice) {
  if (per_document < 0) throw Error("--doc-tokens must not be negative");
  if (slice < 0) throw Error("--slice must not be negative");
  if (per_document == 0 && slice != 0)
    throw Error("--slice needs --doc-tokens (a slice is a range of that many tokens per document)");
  std::vector<std::span<const int32_t>> out;
  for (std::size_t i = 0; i < documents.size(); ++i) {
    const auto& doc = documents[i];
    if (per_document == 0) {
      out.emplace_back(doc);
      continue;
    }
    const int64_t need = (static_cast<int64_t>(slice) + 1) * per_document;
    if (static_cast<int64_t>(doc.size()) < need)
      throw Error((i < names.size() ? names[i] : "document " + std::to_string(i)) + " has " +
                  std::to_string(doc.size()) + " tokens; --doc-tokens " +
                  std::to_string(per_document) + " --slice " + std::to_string(slice) + " needs " +
                  std::to_string(need));
    out.emplace_back(std::span<const int32_t>(doc).subspan(
        static_cast<std::size_t>(slice * per_document), static_cast<std::size_t>(per_document)));
  }
  return out;
}

Spread spread_of(std::span<const double> values) {
  if (values.empty()) throw Error("spread of no values");
  Spread s;
  s.n = static_cast<int>(values.size());
  s.min = *std::min_element(values.begin(), values.end());
  s.max = *std::max_element(values.begin(), values.end());
  for (double v : values) s.mean += v;
  s.mean /= s.n;
  if (s.n > 1) {
    double ss = 0;
    for (double v : values) ss += (v - s.mean) * (v - s.mean);
    s.sd = std::sqrt(ss / (s.n - 1));
  }
  return s;
}

}  // namespace thinkeys
