#include "plan/byte_size.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>

#include "util/error.h"

namespace thinkeys {
namespace {

[[noreturn]] void bad_size(const std::string& text, const std::string& why) {
  throw Error("memory size '" + text + "': " + why +
              " (expected a number with a unit, e.g. 24GiB, 80GB, 512MiB, or devices x size, "
              "e.g. 8x80GB)");
}

double unit_bytes(const std::string& unit, const std::string& text) {
  std::string u;
  for (char ch : unit) u += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (u.empty() || u == "b") return 1;
  static const struct {
    const char* name;
    double bytes;
  } kUnits[] = {{"k", 1e3},     {"kb", 1e3},       {"m", 1e6},           {"mb", 1e6},
                {"g", 1e9},     {"gb", 1e9},       {"t", 1e12},          {"tb", 1e12},
                {"kib", 1024.}, {"mib", 1048576.}, {"gib", 1073741824.}, {"tib", 1099511627776.}};
  for (const auto& k : kUnits)
    if (u == k.name) return k.bytes;
  bad_size(text, "unknown unit '" + unit + "'");
}

}  // namespace

MemorySize parse_memory_size(const std::string& text) {
  MemorySize out;
  std::string rest = text;
  const auto x = rest.find_first_of("xX*");
  if (x != std::string::npos) {
    const std::string n = rest.substr(0, x);
    if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos)
      bad_size(text, "the device count before 'x' must be a whole number");
    if (n.size() > 5) bad_size(text, "implausible device count");
    out.devices = std::stoi(n);
    if (out.devices <= 0) bad_size(text, "the device count must be positive");
    rest = rest.substr(x + 1);
  }
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(rest, &used);
  } catch (const std::exception&) {
    bad_size(text, "no number");
  }
  if (!std::isfinite(value) || value <= 0) bad_size(text, "the size must be positive");
  std::string unit = rest.substr(used);
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  const double bytes = value * unit_bytes(unit, text) * out.devices;
  if (bytes >= static_cast<double>(std::numeric_limits<std::size_t>::max() / 2))
    bad_size(text, "too large");
  if (bytes < 1) bad_size(text, "smaller than one byte");
  out.bytes = static_cast<std::size_t>(std::llround(bytes));
  return out;
}

std::string format_bytes(double bytes, bool decimal) {
  static const char* kDecimal[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  static const char* kBinary[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  const double step = decimal ? 1000.0 : 1024.0;
  int i = 0;
  double v = bytes;
  while (std::fabs(v) >= step && i < 5) {
    v /= step;
    ++i;
  }
  char buf[48];
  if (i == 0)
    std::snprintf(buf, sizeof buf, "%.0f B", v);
  else
    std::snprintf(buf, sizeof buf,
                  std::fabs(v) >= 100  ? "%.0f %s"
                  : std::fabs(v) >= 10 ? "%.1f %s"
                                       : "%.2f %s",
                  v, decimal ? kDecimal[i] : kBinary[i]);
  return buf;
}

}  // namespace thinkeys
