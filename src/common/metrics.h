#pragma once
// Metrics without a registry dependency: lock-free counters and fixed-bucket histograms that the hot path
// bumps with relaxed atomics, and a writer of the Prometheus text exposition format (0.0.4) that the
// admin endpoint renders them with at scrape time. (prometheus-cpp is not packaged in Debian 12; this
// is the subset of its core Granary needs: counters, gauges, histograms, escaped labels.)

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace granary::metrics {

/// A histogram of durations with fixed upper bounds (seconds). observe() is wait-free.
class DurationHistogram {
 public:
  static constexpr std::array<double, 14> kBounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1,    0.25,  0.5,    1,     2.5,  5,    10};
  void observe(std::chrono::nanoseconds d);

  struct Snapshot {
    std::array<std::uint64_t, kBounds.size() + 1> counts{};  // per bucket (not cumulative); last = +Inf
    std::uint64_t count = 0;
    double sumSeconds = 0;
  };
  Snapshot snapshot() const;

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> counts_{};
  std::atomic<std::uint64_t> sumNanos_{0};
};

using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

/// Renders the text exposition format: family() once per metric name, then its samples.
class TextWriter {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, Labels labels, double value);
  void sample(std::string_view name, Labels labels, std::uint64_t value);
  void sample(std::string_view name, std::uint64_t value) { sample(name, {}, value); }
  /// name_bucket{le=...}, name_sum, name_count (cumulative buckets, as Prometheus expects).
  void histogram(std::string_view name, Labels labels, const DurationHistogram::Snapshot& s);
  const std::string& str() const { return out_; }

  /// A label value escaped for the format (backslash, double quote, newline).
  static std::string escape(std::string_view v);

 private:
  void labels(Labels labels, std::string_view extraName = {}, std::string_view extraValue = {});
  std::string out_;
};

}  // namespace granary::metrics
