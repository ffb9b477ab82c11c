#pragma once
// granary-bench's load: Warp's modes (get, put, stat, list, delete, mixed, multipart) with Warp's flag
// names, plus what a cache needs that Warp lacks: Zipf and epoch access, a cold pass reported apart from
// the warm run, and the hit ratio. Each client thread has its own io_context and keep-alive pool
// (Granary's own backend client, HttpUpstream, which signs with SigV4); each worker is a coroutine, so a
// thousand concurrent requests cost little CPU.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "stats.h"

namespace granary::bench {

struct Options {
  std::string mode = "get";
  std::string host = "127.0.0.1:9000";
  bool tls = false;
  bool insecure = false;
  std::string accessKey, secretKey, region = "us-east-1";
  std::string bucket = "warp-benchmark-bucket";
  std::string prefix;  // empty = a random one (Warp's)
  std::size_t concurrent = 20;
  std::size_t threads = 1;
  std::chrono::milliseconds duration{5 * 60 * 1000};
  bool autoterm = false;
  std::chrono::milliseconds autotermDur{15'000};
  double autotermPct = 7.5;
  std::uint64_t objSize = 10ull << 20;
  bool randSize = false;
  std::uint64_t minSize = 0;  // --obj.randsize: smallest size (ours; Warp's smallest is 1 byte)
  std::size_t objects = 2500;
  bool range = false;
  std::uint64_t rangeSize = 0;  // 0 = random length
  bool noClear = false;
  bool listExisting = false;
  std::size_t maxKeys = 100;
  std::size_t batch = 100;
  std::uint64_t partSize = 5ull << 20;
  std::size_t parts = 200;
  double getDistrib = 45, statDistrib = 30, putDistrib = 15, deleteDistrib = 10;
  std::string access = "uniform";  // uniform | zipf:THETA | epoch
  std::size_t epochs = 1;
  bool coldPass = false;
  bool sha256Payload = false;
  std::string jsonFile, csvFile;
  std::uint64_t seed = 0;  // 0 = random
  bool quiet = false;
};

/// Runs the benchmark; prints the report to stdout. @return the process exit status.
int runBench(const Options& o);

/// The latency shim: a TCP proxy that holds the first byte of each response for `latency` after its
/// request, and paces each connection's bytes, each way, to `rate` bytes per second (0 = unpaced).
/// Prints "shim listening on HOST:PORT" and serves until killed.
int runShim(const std::string& listen, const std::string& target, std::chrono::microseconds latency,
            std::uint64_t rate);

}  // namespace granary::bench
