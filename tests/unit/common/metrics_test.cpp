#include <catch2/catch.hpp>

#include "common/metrics.h"

using namespace granary::metrics;
using namespace std::chrono_literals;

TEST_CASE("a duration histogram puts each observation in the first bucket whose bound it does not exceed") {
  DurationHistogram h;
  h.observe(400us);  // <= 0.0005
  h.observe(1ms);    // == 0.001: its own bucket (le is inclusive)
  h.observe(7ms);    // <= 0.01
  h.observe(20s);    // past the last bound: +Inf
  const auto s = h.snapshot();
  CHECK(s.count == 4);
  CHECK(s.counts[0] == 1);
  CHECK(s.counts[1] == 1);
  CHECK(s.counts[4] == 1);
  CHECK(s.counts.back() == 1);
  CHECK(s.sumSeconds > 20.008);
  CHECK(s.sumSeconds < 20.009);
}

TEST_CASE("the text format has HELP and TYPE, escaped labels and cumulative histogram buckets") {
  TextWriter w;
  w.family("x_total", "counter", "Things.");
  w.sample("x_total", {{"dir", "a\"b\\c\nd"}}, std::uint64_t{7});
  w.sample("y", std::uint64_t{3});
  DurationHistogram h;
  h.observe(1ms);
  h.observe(2ms);
  h.observe(30s);
  w.histogram("lat_seconds", {{"backend", "b"}}, h.snapshot());
  const std::string& t = w.str();
  CHECK(t.find("# HELP x_total Things.\n# TYPE x_total counter\n") == 0);
  CHECK(t.find("x_total{dir=\"a\\\"b\\\\c\\nd\"} 7\n") != std::string::npos);
  CHECK(t.find("\ny 3\n") != std::string::npos);
  CHECK(t.find("lat_seconds_bucket{backend=\"b\",le=\"0.0005\"} 0\n") != std::string::npos);
  CHECK(t.find("lat_seconds_bucket{backend=\"b\",le=\"0.001\"} 1\n") != std::string::npos);
  CHECK(t.find("lat_seconds_bucket{backend=\"b\",le=\"0.0025\"} 2\n") != std::string::npos);
  CHECK(t.find("lat_seconds_bucket{backend=\"b\",le=\"10\"} 2\n") != std::string::npos);
  CHECK(t.find("lat_seconds_bucket{backend=\"b\",le=\"+Inf\"} 3\n") != std::string::npos);
  CHECK(t.find("lat_seconds_count{backend=\"b\"} 3\n") != std::string::npos);
}
