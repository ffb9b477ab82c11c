// granary-bench: a Warp-compatible S3 load generator with cache workloads, and the latency shim.
//   granary-bench get --host 127.0.0.1:9000 --access-key K --secret-key S --obj.size 4KiB --objects 1000
//                     --concurrent 64 --duration 20s [--access zipf:0.99|epoch --epochs 4] [--cold-pass]
//   granary-bench shim --listen 127.0.0.1:9100 --target 127.0.0.1:4568 --latency 20ms --rate 90MB
// See bench/README.md.

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <iostream>

#include "bench.h"
#include "common/units.h"

using namespace granary;

namespace {

/// A size or duration flag: text in, checked value out.
std::uint64_t sizeFlag(const std::string& name, const std::string& v) {
  auto s = parseSize(v);
  if (!s) throw CLI::ValidationError(name, "not a size: " + v);
  return *s;
}

std::chrono::milliseconds durationFlag(const std::string& name, const std::string& v) {
  auto d = parseDuration(v);
  if (!d) throw CLI::ValidationError(name, "not a duration: " + v);
  return *d;
}

const char* env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"granary-bench: S3 load in Warp's modes, with cache workloads; and a latency shim"};
  app.require_subcommand(1);
  bench::Options o;
  o.host = env("WARP_HOST", "127.0.0.1:9000");
  o.accessKey = env("WARP_ACCESS_KEY", "");
  o.secretKey = env("WARP_SECRET_KEY", "");
  std::string duration = "5m", autotermDur = "15s", objSize = "10MiB", rangeSize, partSize = "5MiB", minSize;

  auto addCommon = [&](CLI::App* c) {
    c->add_option("--host", o.host, "HOST:PORT of the S3 endpoint (env WARP_HOST)");
    c->add_flag("--tls", o.tls, "use HTTPS");
    c->add_flag("--insecure", o.insecure, "do not verify the TLS certificate");
    c->add_option("--access-key", o.accessKey, "access key (env WARP_ACCESS_KEY)");
    c->add_option("--secret-key", o.secretKey, "secret key (env WARP_SECRET_KEY)");
    c->add_option("--region", o.region, "SigV4 region");
    c->add_option("--bucket", o.bucket, "bucket (created if missing)");
    c->add_option("--prefix", o.prefix, "object key prefix (default: random)");
    c->add_option("--concurrent", o.concurrent, "concurrent requests");
    c->add_option("--threads", o.threads, "client threads (each with its own event loop and connections)");
    c->add_option("--duration", duration, "length of the measured run (e.g. 30s, 5m)");
    c->add_flag("--autoterm", o.autoterm, "stop once throughput is stable");
    c->add_option("--autoterm.dur", autotermDur, "shortest run before autoterm may stop it");
    c->add_option("--autoterm.pct", o.autotermPct, "autoterm: allowed variation of the last 7 seconds, %");
    c->add_option("--obj.size", objSize, "object size (e.g. 4KiB, 64MiB)");
    c->add_flag("--obj.randsize", o.randSize, "random sizes up to --obj.size (log2-distributed)");
    c->add_option("--obj.minsize", minSize, "--obj.randsize: the smallest size (granary-bench's own flag)");
    c->add_option("--objects", o.objects, "objects to prepare");
    c->add_flag("--range", o.range, "GET random byte ranges");
    c->add_option("--range-size", rangeSize, "length of --range reads (default: random)");
    c->add_flag("--noclear", o.noClear, "leave the objects in place at the end");
    c->add_flag("--list-existing", o.listExisting, "use the objects already under --prefix instead of writing new ones");
    c->add_option("--max-keys", o.maxKeys, "list: keys per page");
    c->add_option("--batch", o.batch, "delete: keys per DeleteObjects");
    c->add_option("--part.size", partSize, "multipart: part size");
    c->add_option("--parts", o.parts, "multipart: parts");
    c->add_option("--get-distrib", o.getDistrib, "mixed: share of GETs");
    c->add_option("--stat-distrib", o.statDistrib, "mixed: share of STATs");
    c->add_option("--put-distrib", o.putDistrib, "mixed: share of PUTs");
    c->add_option("--delete-distrib", o.deleteDistrib, "mixed: share of DELETEs");
    c->add_option("--access", o.access, "which objects GETs read: uniform | zipf:THETA | epoch")
        ->check([](const std::string& v) {
          return v == "uniform" || v == "epoch" || (v.starts_with("zipf:") && std::strtod(v.c_str() + 5, nullptr) > 0)
                     ? std::string()
                     : std::string("uniform, epoch or zipf:THETA (THETA > 0)");
        });
    c->add_option("--epochs", o.epochs, "--access epoch: passes over every object, each in a new random order");
    c->add_flag("--cold-pass", o.coldPass, "read every object once first, reported apart (cold), then run (warm)");
    c->add_flag("--sha256-payload", o.sha256Payload, "sign PUT bodies' SHA-256 (default UNSIGNED-PAYLOAD)");
    c->add_option("--json", o.jsonFile, "write the summary as JSON to FILE");
    c->add_option("--csv", o.csvFile, "write every request to FILE (tab-separated; Warp's --full columns)");
    c->add_option("--seed", o.seed, "random seed (0: random)");
    c->add_flag("-q,--quiet", o.quiet, "no progress on stderr");
  };
  for (const char* mode : {"get", "put", "stat", "list", "delete", "mixed", "multipart"}) {
    auto* c = app.add_subcommand(mode, std::string("Warp's ") + mode + " benchmark");
    addCommon(c);
    c->callback([&o, mode] { o.mode = mode; });
  }
  std::string listen = "127.0.0.1:0", target, latency = "20ms", rate = "0";
  auto* shim = app.add_subcommand("shim", "TCP proxy adding S3-like first-byte latency and a per-connection rate cap");
  shim->add_option("--listen", listen, "loopback IP:PORT to listen on");
  shim->add_option("--target", target, "IP:PORT of the origin")->required();
  shim->add_option("--latency", latency, "added time to the first byte of each response (e.g. 20ms)");
  shim->add_option("--rate", rate, "bytes per second per connection, each way (e.g. 90MB; 0 = unpaced)");
  CLI11_PARSE(app, argc, argv);

  try {
    if (shim->parsed()) {
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(durationFlag("--latency", latency));
      return bench::runShim(listen, target, us, sizeFlag("--rate", rate));
    }
    o.duration = durationFlag("--duration", duration);
    o.autotermDur = durationFlag("--autoterm.dur", autotermDur);
    o.objSize = sizeFlag("--obj.size", objSize);
    o.partSize = sizeFlag("--part.size", partSize);
    if (!rangeSize.empty()) o.rangeSize = sizeFlag("--range-size", rangeSize);
    if (!minSize.empty()) o.minSize = sizeFlag("--obj.minsize", minSize);
  } catch (const CLI::ValidationError& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  if (o.concurrent == 0 || o.objects == 0 || o.parts == 0 || o.batch == 0) {
    std::cerr << "granary-bench: --concurrent, --objects, --parts and --batch must be positive\n";
    return 2;
  }
  return bench::runBench(o);
}
