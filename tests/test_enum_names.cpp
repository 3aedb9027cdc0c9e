// The enum name tables: every value prints as the name users type, parsing
// that name gives the value back, and an unknown name gets one message that
// lists the accepted names (written out here by hand).
#include <gtest/gtest.h>

#include <string>

#include "compress/compressor.h"
#include "config/model_config.h"
#include "format/cache_dtype.h"
#include "model/weight_format.h"
#include "util/enum_names.h"
#include "util/error.h"

namespace thinkeys {
namespace {

std::string error_of(auto&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(EnumNames, ChoicesListPrintedNamesOnly) {
  enum class Color { Red, Green, Blue };
  constexpr EnumName<Color> table[] = {
      {Color::Red, "red"}, {Color::Green, "green"}, {Color::Blue, "blue"}, {Color::Red, "rouge"}};
  EXPECT_EQ(enum_choices<Color>(table), "red, green or blue");
  EXPECT_EQ(parse_enum<Color>(table, "rouge", "colour"), Color::Red);
  EXPECT_STREQ(enum_name<Color>(table, Color::Red), "red");
  EXPECT_EQ(error_of([&] { parse_enum<Color>(table, "mauve", "colour"); }),
            "unknown colour 'mauve' (expected red, green or blue)");
  constexpr EnumName<Color> two[] = {{Color::Red, "red"}, {Color::Blue, "blue"}};
  EXPECT_EQ(enum_choices<Color>(two), "red or blue");
}

TEST(EnumNames, ProjectEnumsRoundTrip) {
  for (const char* n : {"f32", "f16", "bf16", "int8", "int4"})
    EXPECT_STREQ(to_string(parse_cache_dtype(n)), n);
  for (const char* n : {"f32", "bf16", "f16", "int8", "int4"})
    EXPECT_STREQ(weight_format_name(parse_weight_format(n)), n);
  EXPECT_EQ(parse_weight_format("bfloat16"), WeightFormat::BF16);
  EXPECT_EQ(parse_weight_format("float32"), WeightFormat::F32);
  for (const char* n : {"full", "post", "latent", "pairs"})
    EXPECT_STREQ(to_string(parse_rope_mode(n)), n);
  for (const char* n : {"head_dim", "key_width"}) EXPECT_STREQ(to_string(parse_rope_table(n)), n);
  for (const char* n : {"svd", "kqsvd", "keypca"})
    EXPECT_STREQ(to_string(parse_compress_method(n)), n);
  for (const char* n : {"keys", "queries"}) EXPECT_STREQ(to_string(parse_compress_target(n)), n);
}

TEST(EnumNames, ProjectErrorsListTheAcceptedNames) {
  EXPECT_EQ(error_of([] { parse_cache_dtype("fp8"); }),
            "unknown cache dtype 'fp8' (expected f32, f16, bf16, int8 or int4)");
  EXPECT_EQ(error_of([] { parse_weight_format("q4"); }),
            "unknown weight format 'q4' (expected f32, bf16, f16, int8 or int4)");
  EXPECT_EQ(error_of([] { parse_compress_method("pca"); }),
            "unknown method 'pca' (expected svd, kqsvd or keypca)");
}

}  // namespace
}  // namespace thinkeys
