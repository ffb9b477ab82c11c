#pragma once
// What granary-bench records of each request and how it reports them: Warp's text report (in
// microseconds), a JSON summary, and a per-request TSV with the columns of Warp's --full output.

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

namespace granary::bench {

struct OpRecord {
  std::uint32_t thread = 0;       // the worker
  const char* op = "";            // GET, PUT, STAT, LIST, DELETE
  std::uint32_t objects = 1;      // objects the request touched (a DeleteObjects batch, a listing page)
  std::uint64_t bytes = 0;        // payload bytes moved
  std::string key;
  std::string error;              // empty = success
  std::int64_t startNs = 0;       // unix time, ns
  std::int64_t firstByteNs = 0;   // first body byte (GET), the response header otherwise
  std::int64_t endNs = 0;
  int cache = -1;                 // -1 unknown, 0 miss (or partial), 1 hit: from x-granary-cache / x-cache-status
  std::string category;           // the phase: "run", "cold", "warm", "epoch-1"...
};

/// Percentiles and moments of a sample of durations, in microseconds.
struct Distribution {
  std::size_t n = 0;
  double avg = 0, stddev = 0, min = 0, p25 = 0, p50 = 0, p75 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
  static Distribution of(std::vector<double> us);
  boost::json::object json() const;
};

/// One operation type over one phase.
struct Summary {
  std::string op, category;
  std::size_t requests = 0, errors = 0, objects = 0, hits = 0, misses = 0;
  std::uint64_t bytes = 0;
  double seconds = 0;  // first start to last end
  Distribution latency, ttfb;
  double mibPerSec() const { return seconds > 0 ? bytes / 1048576.0 / seconds : 0; }
  double objPerSec() const { return seconds > 0 ? objects / seconds : 0; }
  boost::json::object json() const;
};

/// Summaries of `records` by (category, op), in the order categories and ops first appear.
std::vector<Summary> summarize(const std::vector<OpRecord>& records);

/// Warp's text report for one summary: "Report: GET. Concurrency: N. Ran: Xs" and its lines, in µs.
void printReport(std::ostream& os, const Summary& s, std::size_t concurrency);

/// Warp's --full columns, tab-separated: idx thread op client_id n_objects bytes endpoint file error start
/// first_byte last_byte end duration_ns cat (times RFC 3339 with nanoseconds).
void writeTsv(std::ostream& os, const std::vector<OpRecord>& records, const std::string& endpoint);

}  // namespace granary::bench
