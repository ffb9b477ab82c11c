#include "common/units.h"

#include <cctype>
#include <cstdio>
#include <limits>
#include <utility>

namespace granary {
namespace {
/// Splits "123unit" into number and unit; nullopt on no digits or overflow.
std::optional<std::pair<std::uint64_t, std::string>> split(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  std::size_t i = 0;
  std::uint64_t v = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    std::uint64_t d = static_cast<std::uint64_t>(s[i] - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return std::nullopt;
    v = v * 10 + d;
    ++i;
  }
  if (i == 0) return std::nullopt;
  std::string unit;
  for (std::size_t j = i; j < s.size(); ++j) {
    if (s[j] == ' ') continue;
    unit.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(s[j]))));
  }
  return std::make_pair(v, unit);
}
}  // namespace

std::optional<std::uint64_t> parseSize(std::string_view s) {
  auto p = split(s);
  if (!p) return std::nullopt;
  auto [v, unit] = *p;
  std::uint64_t mul = 0;
  if (unit.empty() || unit == "b") mul = 1;
  else if (unit == "kib" || unit == "k") mul = 1ull << 10;
  else if (unit == "mib" || unit == "m") mul = 1ull << 20;
  else if (unit == "gib" || unit == "g") mul = 1ull << 30;
  else if (unit == "tib" || unit == "t") mul = 1ull << 40;
  else if (unit == "kb") mul = 1000ull;
  else if (unit == "mb") mul = 1000ull * 1000;
  else if (unit == "gb") mul = 1000ull * 1000 * 1000;
  else if (unit == "tb") mul = 1000ull * 1000 * 1000 * 1000;
  else return std::nullopt;
  if (v != 0 && mul > std::numeric_limits<std::uint64_t>::max() / v) return std::nullopt;
  return v * mul;
}

std::optional<std::chrono::milliseconds> parseDuration(std::string_view s) {
  if (s == "forever") return std::chrono::milliseconds::max();
  auto p = split(s);
  if (!p) return std::nullopt;
  auto [v, unit] = *p;
  std::uint64_t ms = 0;
  if (unit == "ms") ms = 1;
  else if (unit.empty() || unit == "s") ms = 1000;
  else if (unit == "m" || unit == "min") ms = 60'000;
  else if (unit == "h") ms = 3'600'000;
  else if (unit == "d") ms = 86'400'000;
  else return std::nullopt;
  if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / ms / 2) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::int64_t>(v * ms));
}

std::string formatDuration(std::chrono::milliseconds d) {
  if (d == std::chrono::milliseconds::max()) return "forever";
  auto ms = d.count();
  if (ms % 1000 != 0) return std::to_string(ms) + "ms";
  return std::to_string(ms / 1000) + "s";
}

std::string formatSize(std::uint64_t b) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  std::uint64_t v = b;
  while (u < 4 && v >= 1024 && v % 1024 == 0) {
    v /= 1024;
    ++u;
  }
  return std::to_string(v) + kUnits[u];
}

}  // namespace granary
