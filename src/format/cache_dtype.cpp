#include "format/cache_dtype.h"

#include <algorithm>

#include "util/enum_names.h"
#include "util/error.h"

namespace thinkeys {

namespace {
constexpr EnumName<CacheDType> kCacheDTypes[] = {{CacheDType::F32, "f32"},
                                                 {CacheDType::F16, "f16"},
                                                 {CacheDType::BF16, "bf16"},
                                                 {CacheDType::Int8, "int8"},
                                                 {CacheDType::Int4, "int4"}};
}  // namespace

const char* to_string(CacheDType t) { return enum_name<CacheDType>(kCacheDTypes, t); }

CacheDType parse_cache_dtype(const std::string& name) {
  return parse_enum<CacheDType>(kCacheDTypes, name, "cache dtype");
}

bool is_quantized(CacheDType t) { return t == CacheDType::Int8 || t == CacheDType::Int4; }

int RowFormat::levels() const {
  return dtype == CacheDType::Int8 ? 127 : dtype == CacheDType::Int4 ? 7 : 0;
}

RowFormat make_row_format(CacheDType dtype, int width, int group, bool rotate) {
  if (width <= 0) throw Error("cache row width must be positive");
  RowFormat f;
  f.dtype = dtype;
  f.width = width;
  if (is_quantized(dtype)) {
    if (group <= 0) throw Error("quantization group size must be positive");
    f.group = std::min(group, width);
    f.rotated = rotate && width >= 2 && width <= kMaxRotatedWidth && (width & (width - 1)) == 0;
  }
  return f;
}

RowFormat leading_elements(const RowFormat& rows, int width) {
  if (is_quantized(rows.dtype))
    throw Error("a view of a row's leading elements needs float rows, not " +
                std::string(to_string(rows.dtype)));
  if (width <= 0 || width > rows.width)
    throw Error("a view of " + std::to_string(width) + " leading elements of " +
                std::to_string(rows.width) + "-wide rows");
  RowFormat view = rows;
  view.width = width;
  view.stride = rows.bytes();
  return view;
}

}  // namespace thinkeys
