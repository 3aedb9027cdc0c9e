#include "io/safetensors.h"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "util/atomic_output.h"
#include "util/error.h"

using nlohmann::json;

namespace thinkeys {
namespace {

// Test hook for tests/test_output_faults.cpp: with THINKEYS_TEST_KILL_AFTER_TENSORS=N
// the process kills itself with SIGKILL once the N-th tensor (counted over all
// safetensors files it writes) is on disk, i.e. in the middle of writing an
// output, to prove the previous output survives an interrupted write.
void maybe_die_for_test(std::ofstream& out) {
  static const long limit = [] {
    const char* v = std::getenv("THINKEYS_TEST_KILL_AFTER_TENSORS");
    return v != nullptr ? std::atol(v) : 0L;
  }();
  static std::atomic<long> written{0};
  if (limit > 0 && ++written == limit) {
    out.flush();
    std::raise(SIGKILL);
  }
}

constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // the format's own limit

// Every dtype this reader knows: its name in the header and its bytes per
// element, read by parse_dtype, dtype_name and dtype_size alike.
struct DTypeInfo {
  DType dtype;
  const char* name;
  int size;
};
constexpr DTypeInfo kDTypes[] = {{DType::F32, "F32", 4},   {DType::F16, "F16", 2},
                                 {DType::BF16, "BF16", 2}, {DType::F64, "F64", 8},
                                 {DType::I64, "I64", 8},   {DType::I32, "I32", 4},
                                 {DType::I16, "I16", 2},   {DType::I8, "I8", 1},
                                 {DType::U8, "U8", 1},     {DType::Bool, "BOOL", 1}};

const DTypeInfo* dtype_info(DType d) {
  for (const auto& info : kDTypes)
    if (info.dtype == d) return &info;
  return nullptr;  // DType::Unknown
}

DType parse_dtype(const std::string& s) {
  for (const auto& info : kDTypes)
    if (s == info.name) return info.dtype;
  return DType::Unknown;
}

}  // namespace

const char* dtype_name(DType d) {
  const DTypeInfo* info = dtype_info(d);
  return info ? info->name : "unknown";
}

int dtype_size(DType d) {
  const DTypeInfo* info = dtype_info(d);
  return info ? info->size : 0;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : file_(path) {
  const std::string where = path.string();
  auto bytes = file_.bytes();
  if (bytes.size() < 8)
    throw Error(where + ": truncated safetensors file (" + std::to_string(bytes.size()) +
                " bytes, the header length alone needs 8)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[i]);
  if (header_len > kMaxHeaderBytes || header_len > bytes.size() - 8)
    throw Error(where + ": header length " + std::to_string(header_len) +
                " runs past the end of the file (" + std::to_string(bytes.size()) + " bytes)");
  std::string_view header(reinterpret_cast<const char*>(bytes.data() + 8), header_len);
  json j;
  try {
    j = json::parse(header);
  } catch (const json::exception& e) {
    throw Error(where + ": malformed safetensors header JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(where + ": safetensors header is not a JSON object");

  const std::byte* data = bytes.data() + 8 + header_len;
  const uint64_t data_size = bytes.size() - 8 - header_len;
  for (auto& item : j.items()) {
    // Named copies rather than structured bindings: the lambda below captures them.
    const std::string name = item.key();
    const json& entry = item.value();
    if (name == "__metadata__") {
      if (entry.is_object())
        for (auto& [k, v] : entry.items())
          if (v.is_string()) metadata_[k] = v.get<std::string>();
      continue;
    }
    auto bad = [&](const std::string& why) {
      return Error(where + ": tensor '" + name + "': " + why);
    };
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets"))
      throw bad("entry needs dtype, shape and data_offsets");
    const json& jd = entry.at("dtype");
    const json& js = entry.at("shape");
    const json& jo = entry.at("data_offsets");
    if (!jd.is_string() || !js.is_array() || !jo.is_array() || jo.size() != 2 ||
        !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned())
      throw bad("malformed dtype, shape or data_offsets");
    TensorView view;
    view.name = name;
    view.dtype = parse_dtype(jd.get<std::string>());
    if (view.dtype == DType::Unknown) throw bad("unknown dtype '" + jd.get<std::string>() + "'");
    uint64_t numel = 1;
    for (const json& s : js) {
      if (!s.is_number_unsigned()) throw bad("shape entries must be non-negative integers");
      uint64_t d = s.get<uint64_t>();
      if (d != 0 && numel > std::numeric_limits<uint64_t>::max() / 8 / d)
        throw bad("shape overflows");
      numel *= d;
      view.shape.push_back(static_cast<int64_t>(d));
    }
    uint64_t begin = jo[0].get<uint64_t>(), end = jo[1].get<uint64_t>();
    if (begin > end || end > data_size)
      throw bad("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                "] lie outside the " + std::to_string(data_size) +
                "-byte data section (file truncated?)");
    if (end - begin != numel * static_cast<uint64_t>(dtype_size(view.dtype)))
      throw bad("byte length " + std::to_string(end - begin) +
                " does not match its shape and dtype");
    view.bytes = std::span<const std::byte>(data + begin, end - begin);
    tensors_.emplace(name, std::move(view));
  }
}

const TensorView& SafetensorsFile::at(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error(path().string() + ": tensor '" + name + "' is missing");
  return it->second;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    uint64_t n = t.bytes.size();
    int64_t numel = 1;
    for (int64_t s : t.shape) numel *= s;
    if (static_cast<uint64_t>(numel) * dtype_size(t.dtype) != n)
      throw Error("internal: tensor '" + t.name + "' bytes do not match its shape");
    header[t.name] = {
        {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps tensor data 8-byte aligned
  write_file_atomically(path, [&](const std::filesystem::path& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    uint64_t len = text.size();
    char lenbytes[8];
    for (int i = 0; i < 8; ++i) lenbytes[i] = static_cast<char>((len >> (8 * i)) & 0xff);
    out.write(lenbytes, 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& t : tensors) {
      out.write(reinterpret_cast<const char*>(t.bytes.data()),
                static_cast<std::streamsize>(t.bytes.size()));
      maybe_die_for_test(out);
    }
    out.close();
    if (!out) throw Error("failed writing " + tmp.string() + " (disk full?)");
  });
}

}  // namespace thinkeys
