#include "stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <numeric>

namespace granary::bench {
namespace json = boost::json;

Distribution Distribution::of(std::vector<double> us) {
  Distribution d;
  d.n = us.size();
  if (us.empty()) return d;
  std::sort(us.begin(), us.end());
  auto at = [&](double q) {  // nearest rank
    const auto i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(us.size()))) ;
    return us[std::min(us.size() - 1, i == 0 ? 0 : i - 1)];
  };
  d.avg = std::accumulate(us.begin(), us.end(), 0.0) / static_cast<double>(us.size());
  double var = 0;
  for (double v : us) var += (v - d.avg) * (v - d.avg);
  d.stddev = std::sqrt(var / static_cast<double>(us.size()));
  d.min = us.front();
  d.max = us.back();
  d.p25 = at(0.25);
  d.p50 = at(0.50);
  d.p75 = at(0.75);
  d.p90 = at(0.90);
  d.p99 = at(0.99);
  d.p999 = at(0.999);
  return d;
}

json::object Distribution::json() const {
  return {{"n", n},     {"avg", avg}, {"stddev", stddev}, {"min", min}, {"p25", p25},   {"p50", p50},
          {"p75", p75}, {"p90", p90}, {"p99", p99},       {"p999", p999}, {"max", max}};
}

json::object Summary::json() const {
  json::object o{{"op", op},
                 {"category", category},
                 {"requests", requests},
                 {"errors", errors},
                 {"objects", objects},
                 {"bytes", bytes},
                 {"seconds", seconds},
                 {"mib_per_sec", mibPerSec()},
                 {"obj_per_sec", objPerSec()},
                 {"latency_us", latency.json()},
                 {"ttfb_us", ttfb.json()}};
  o["cache"] = json::object{{"hits", hits}, {"misses", misses},
                            {"hit_ratio", hits + misses ? static_cast<double>(hits) / static_cast<double>(hits + misses) : 0.0}};
  return o;
}

std::vector<Summary> summarize(const std::vector<OpRecord>& records) {
  std::vector<std::pair<std::string, std::string>> order;
  std::map<std::pair<std::string, std::string>, std::vector<const OpRecord*>> groups;
  for (const auto& r : records) {
    auto k = std::make_pair(r.category, std::string(r.op));
    auto [it, inserted] = groups.try_emplace(k);
    if (inserted) order.push_back(k);
    it->second.push_back(&r);
  }
  std::vector<Summary> out;
  for (const auto& k : order) {
    const auto& rs = groups[k];
    Summary s;
    s.category = k.first;
    s.op = k.second;
    std::vector<double> lat, ttfb;
    std::int64_t first = INT64_MAX, last = INT64_MIN;
    for (const auto* r : rs) {
      ++s.requests;
      first = std::min(first, r->startNs);
      last = std::max(last, r->endNs);
      if (!r->error.empty()) {
        ++s.errors;
        continue;
      }
      s.objects += r->objects;
      s.bytes += r->bytes;
      if (r->cache == 1) ++s.hits;
      if (r->cache == 0) ++s.misses;
      lat.push_back(static_cast<double>(r->endNs - r->startNs) / 1000.0);
      ttfb.push_back(static_cast<double>(r->firstByteNs - r->startNs) / 1000.0);
    }
    s.seconds = last > first ? static_cast<double>(last - first) / 1e9 : 0;
    s.latency = Distribution::of(std::move(lat));
    s.ttfb = Distribution::of(std::move(ttfb));
    out.push_back(std::move(s));
  }
  return out;
}

namespace {
std::string us(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.0fµs", v);
  return b;
}

std::string rfc3339(std::int64_t ns) {
  const std::time_t secs = static_cast<std::time_t>(ns / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char b[64];
  const std::size_t n = std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(b + n, sizeof b - n, ".%09lldZ", static_cast<long long>(ns % 1'000'000'000));
  return b;
}
}  // namespace

void printReport(std::ostream& os, const Summary& s, std::size_t concurrency) {
  char line[512];
  std::snprintf(line, sizeof line, "Report: %s%s%s. Concurrency: %zu. Ran: %.1fs\n", s.op.c_str(),
                s.category == "run" ? "" : " (", s.category == "run" ? "" : (s.category + ")").c_str(), concurrency,
                s.seconds);
  os << line;
  std::snprintf(line, sizeof line, " * Average: %.2f MiB/s, %.2f obj/s\n", s.mibPerSec(), s.objPerSec());
  os << line;
  const auto& l = s.latency;
  os << " * Reqs: Avg: " << us(l.avg) << ", 50%: " << us(l.p50) << ", 90%: " << us(l.p90) << ", 99%: " << us(l.p99)
     << ", 99.9%: " << us(l.p999) << ", Fastest: " << us(l.min) << ", Slowest: " << us(l.max)
     << ", StdDev: " << us(l.stddev) << "\n";
  const auto& t = s.ttfb;
  os << " * TTFB: Avg: " << us(t.avg) << ", Best: " << us(t.min) << ", 25th: " << us(t.p25) << ", Median: " << us(t.p50)
     << ", 75th: " << us(t.p75) << ", 90th: " << us(t.p90) << ", 99th: " << us(t.p99) << ", Worst: " << us(t.max)
     << ", StdDev: " << us(t.stddev) << "\n";
  if (s.hits + s.misses > 0) {
    std::snprintf(line, sizeof line, " * Cache: %zu hits, %zu misses, hit ratio %.1f%%\n", s.hits, s.misses,
                  100.0 * static_cast<double>(s.hits) / static_cast<double>(s.hits + s.misses));
    os << line;
  }
  os << " * Requests: " << s.requests << ", errors: " << s.errors << "\n";
}

void writeTsv(std::ostream& os, const std::vector<OpRecord>& records, const std::string& endpoint) {
  os << "idx\tthread\top\tclient_id\tn_objects\tbytes\tendpoint\tfile\terror\tstart\tfirst_byte\tlast_byte\tend\tduration_ns\tcat\n";
  std::size_t idx = 0;
  for (const auto& r : records) {
    os << idx++ << '\t' << r.thread << '\t' << r.op << "\tgranary-bench\t" << r.objects << '\t' << r.bytes << '\t'
       << endpoint << '\t' << r.key << '\t' << r.error << '\t' << rfc3339(r.startNs) << '\t' << rfc3339(r.firstByteNs)
       << '\t' << rfc3339(r.endNs) << '\t' << rfc3339(r.endNs) << '\t' << (r.endNs - r.startNs) << '\t' << r.category
       << '\n';
  }
}

}  // namespace granary::bench
