#pragma once
// Human units in configuration: sizes ("64KiB", "500GiB", "1MB", "4096") and durations ("250ms", "60s",
// "15m", "2h", "forever").

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace granary {

/// Bytes; binary (KiB, MiB, GiB, TiB) and decimal (KB, MB, GB, TB) suffixes, or none; nullopt if malformed.
std::optional<std::uint64_t> parseSize(std::string_view s);

/// A duration; "forever" is std::chrono::milliseconds::max(); a bare number means seconds.
std::optional<std::chrono::milliseconds> parseDuration(std::string_view s);

std::string formatDuration(std::chrono::milliseconds d);
std::string formatSize(std::uint64_t bytes);

}  // namespace granary
