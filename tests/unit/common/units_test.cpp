#include <catch2/catch.hpp>

#include "common/units.h"

using namespace granary;
using namespace std::chrono_literals;

TEST_CASE("sizes in human units", "[unit][units]") {
  CHECK(parseSize("4096") == 4096u);
  CHECK(parseSize("64KiB") == 65536u);
  CHECK(parseSize("500GiB") == 500ull << 30);
  CHECK(parseSize("1MB") == 1'000'000u);
  CHECK(parseSize("8 MiB") == 8u << 20);
  CHECK_FALSE(parseSize("MiB"));
  CHECK_FALSE(parseSize("12 parsecs"));
  CHECK_FALSE(parseSize("99999999999999999999"));
  CHECK(formatSize(8u << 20) == "8MiB");
}

TEST_CASE("durations in human units", "[unit][units]") {
  CHECK(parseDuration("250ms") == 250ms);
  CHECK(parseDuration("60s") == 60s);
  CHECK(parseDuration("15m") == 15min);
  CHECK(parseDuration("2h") == 2h);
  CHECK(parseDuration("30") == 30s);
  CHECK(parseDuration("forever") == std::chrono::milliseconds::max());
  CHECK_FALSE(parseDuration("soon"));
  CHECK(formatDuration(1500ms) == "1500ms");
  CHECK(formatDuration(std::chrono::milliseconds::max()) == "forever");
}
