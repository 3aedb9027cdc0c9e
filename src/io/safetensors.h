#pragma once
// Safetensors: 8-byte little-endian header length, JSON header, raw tensor bytes.
// The reader memory-maps the file and bound-checks every offset and shape
// before handing out a view; nothing is trusted from the header.
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "util/mapped_file.h"

namespace thinkeys {

enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, Bool, Unknown };

const char* dtype_name(DType d);  // safetensors spelling, e.g. "BF16"
int dtype_size(DType d);          // bytes per element, 0 for Unknown

struct TensorView {
  std::string name;
  DType dtype = DType::Unknown;
  std::vector<int64_t> shape;
  std::span<const std::byte> bytes;
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_.path(); }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws Error naming the file when the tensor is absent.
  const TensorView& at(const std::string& name) const;
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  MappedFile file_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::span<const std::byte> bytes;
};

// Writes atomically (temporary file + rename).
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace thinkeys
