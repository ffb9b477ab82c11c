#include "common/metrics.h"

#include <cmath>
#include <cstdio>

namespace granary::metrics {

void DurationHistogram::observe(std::chrono::nanoseconds d) {
  const double s = std::chrono::duration<double>(d).count();
  std::size_t i = 0;
  while (i < kBounds.size() && s > kBounds[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sumNanos_.fetch_add(static_cast<std::uint64_t>(std::max<std::int64_t>(0, d.count())), std::memory_order_relaxed);
}

DurationHistogram::Snapshot DurationHistogram::snapshot() const {
  Snapshot s;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    s.counts[i] = counts_[i].load(std::memory_order_relaxed);
    s.count += s.counts[i];
  }
  s.sumSeconds = static_cast<double>(sumNanos_.load(std::memory_order_relaxed)) / 1e9;
  return s;
}

std::string TextWriter::escape(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void TextWriter::family(std::string_view name, std::string_view type, std::string_view help) {
  out_.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void TextWriter::labels(Labels labels, std::string_view extraName, std::string_view extraValue) {
  if (labels.size() == 0 && extraName.empty()) return;
  out_ += '{';
  bool first = true;
  auto one = [&](std::string_view k, std::string_view v) {
    if (!first) out_ += ',';
    first = false;
    out_.append(k).append("=\"").append(escape(v)).append("\"");
  };
  for (const auto& [k, v] : labels) one(k, v);
  if (!extraName.empty()) one(extraName, extraValue);
  out_ += '}';
}

void TextWriter::sample(std::string_view name, Labels l, double value) {
  out_.append(name);
  labels(l);
  char buf[64];
  if (std::isinf(value)) std::snprintf(buf, sizeof buf, " %s\n", value > 0 ? "+Inf" : "-Inf");
  else std::snprintf(buf, sizeof buf, " %.9g\n", value);
  out_ += buf;
}

void TextWriter::sample(std::string_view name, Labels l, std::uint64_t value) {
  out_.append(name);
  labels(l);
  out_.append(" ").append(std::to_string(value)).append("\n");
}

void TextWriter::histogram(std::string_view name, Labels l, const DurationHistogram::Snapshot& s) {
  const std::string bucket = std::string(name) + "_bucket";
  std::uint64_t cumulative = 0;
  char le[32];
  for (std::size_t i = 0; i < s.counts.size(); ++i) {
    cumulative += s.counts[i];
    if (i < DurationHistogram::kBounds.size()) std::snprintf(le, sizeof le, "%g", DurationHistogram::kBounds[i]);
    else std::snprintf(le, sizeof le, "+Inf");
    out_.append(bucket);
    labels(l, "le", le);
    out_.append(" ").append(std::to_string(cumulative)).append("\n");
  }
  sample(std::string(name) + "_sum", l, s.sumSeconds);
  sample(std::string(name) + "_count", l, s.count);
}

}  // namespace granary::metrics
