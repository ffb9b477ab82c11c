// `granary admin ...`: the command line of the admin API. Talks HTTP to a running Granary's admin
// endpoint (--admin URL, --token T; or the config file's admin_listen and admin_token). A separate
// process, so blocking I/O is fine here.

#include <CLI/CLI.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <iostream>
#include <thread>

#include "common/crypto.h"
#include "common/units.h"
#include "common/log_escape.h"
#include "common/sigv4.h"
#include "common/uri.h"
#include "admin/admin_cli.h"
#include "config.h"

namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
namespace json = boost::json;
using granary::logSafe;

std::atomic<bool> interrupted{false};

struct AdminTarget {
  std::string host, port, token;
  std::string accessKey, secretKey;  // a client key allowed the admin API: requests are SigV4-signed
};

struct Reply {
  unsigned status = 0;
  std::string body;
};

/// One request to the admin endpoint. Throws std::runtime_error when it cannot be reached.
Reply call(const AdminTarget& t, bhttp::verb method, const std::string& target, std::string body = {}) {
  asio::io_context ioc;
  asio::ip::tcp::resolver resolver(ioc);
  asio::ip::tcp::socket socket(ioc);
  boost::system::error_code ec;
  auto results = resolver.resolve(t.host, t.port, ec);
  if (!ec) asio::connect(socket, results, ec);
  if (ec) throw std::runtime_error("cannot reach the admin endpoint " + t.host + ":" + t.port + ": " + ec.message());
  bhttp::request<bhttp::string_body> req{method, target, 11};
  req.set(bhttp::field::host, t.host + ":" + t.port);
  req.set(bhttp::field::user_agent, "granary-admin");
  if (!t.accessKey.empty()) {
    const auto [path, rawQuery] = granary::splitTarget(target);
    const auto query = granary::parseQuery(rawQuery).value_or(granary::QueryParams{});
    granary::sigv4::HeaderList headers{{"host", t.host + ":" + t.port}};
    granary::sigv4::RequestSigner signer({t.accessKey, t.secretKey, ""}, "us-east-1");
    signer.sign(bhttp::to_string(method), path, query, headers,
                body.empty() ? std::string(granary::kEmptySha256Hex) : granary::sha256Hex(body),
                std::chrono::system_clock::now());
    for (const auto& [name, value] : headers)
      if (name != "host") req.set(name, value);
  } else if (!t.token.empty()) {
    req.set(bhttp::field::authorization, "Bearer " + t.token);
  }
  req.body() = std::move(body);
  req.prepare_payload();
  bhttp::write(socket, req, ec);
  boost::beast::flat_buffer buf;
  bhttp::response<bhttp::string_body> res;
  if (!ec) bhttp::read(socket, buf, res, ec);
  if (ec) throw std::runtime_error("admin endpoint " + t.host + ":" + t.port + ": " + ec.message());
  return {res.result_int(), std::move(res.body())};
}

std::string enc(std::string_view s) { return boost::urls::encode(s, boost::urls::unreserved_chars); }

/// "s3://bucket/prefix" -> bucket, prefix.
std::pair<std::string, std::string> parseS3Url(const std::string& url) {
  if (!url.starts_with("s3://") || url.size() == 5 || url[5] == '/')
    throw CLI::ValidationError("s3://bucket[/prefix] expected, got '" + url + "'");
  const auto rest = url.substr(5);
  const auto slash = rest.find('/');
  if (slash == std::string::npos) return {rest, ""};
  return {rest.substr(0, slash), rest.substr(slash + 1)};
}

json::object parseObject(const Reply& r) {
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  if (ec || !v.is_object()) {
    std::string what = r.body.substr(0, 300);
    while (!what.empty() && what.back() == '\n') what.pop_back();
    throw std::runtime_error("admin endpoint answered " + std::to_string(r.status) + ": " + logSafe(what));
  }
  auto o = std::move(v.as_object());
  if (r.status >= 400) {
    const auto* e = o.if_contains("error");
    throw std::runtime_error("admin endpoint answered " + std::to_string(r.status) + ": " +
                             logSafe(e && e->is_string() ? std::string(e->as_string()) : r.body));
  }
  return o;
}

std::uint64_t u64(const json::object& o, const char* k) {
  const auto* v = o.if_contains(k);
  if (!v) return 0;
  if (v->is_uint64()) return v->as_uint64();
  if (v->is_int64()) return static_cast<std::uint64_t>(std::max<std::int64_t>(0, v->as_int64()));
  if (v->is_double()) return static_cast<std::uint64_t>(std::max(0.0, v->as_double()));
  return 0;
}
double dbl(const json::object& o, const char* k) {
  const auto* v = o.if_contains(k);
  if (!v) return 0;
  if (v->is_double()) return v->as_double();
  if (v->is_uint64()) return static_cast<double>(v->as_uint64());
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  return 0;
}
/// A string field for the terminal: keys and error texts come from clients and backends, so control
/// bytes are escaped (an object key must not drive the operator's terminal).
std::string str(const json::object& o, const char* k) {
  const auto* v = o.if_contains(k);
  return v && v->is_string() ? logSafe(v->as_string()) : std::string();
}

std::string human(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

std::string seconds(double s) {
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, static_cast<int>(s) / 60 % 60);
  return buf;
}

void progressLine(const json::object& j) {
  const std::uint64_t total = u64(j, "objects_total"), done = u64(j, "objects_done");
  const std::uint64_t btotal = u64(j, "bytes_total"), bdone = u64(j, "bytes_done");
  const int width = 24;
  const double frac = btotal ? static_cast<double>(bdone) / static_cast<double>(btotal) : total ? static_cast<double>(done) / static_cast<double>(total) : 0;
  const int filled = static_cast<int>(frac * width);
  std::string bar = std::string(static_cast<std::size_t>(std::clamp(filled, 0, width)), '#') +
                    std::string(static_cast<std::size_t>(width - std::clamp(filled, 0, width)), '.');
  std::string line = "\r[" + bar + "] " + std::to_string(done) + "/" + std::to_string(total) + " objects  " +
                     human(bdone) + "/" + human(btotal) + "  " + human(static_cast<std::uint64_t>(dbl(j, "rate_bytes_per_second"))) + "/s";
  if (j.contains("eta_seconds")) line += "  ETA " + seconds(dbl(j, "eta_seconds"));
  if (str(j, "state") == "listing") line = "\rlisting... " + std::to_string(total) + " objects, " + human(btotal);
  std::fprintf(stderr, "%-100s", line.c_str());
  std::fflush(stderr);
}

int load(const AdminTarget& t, const std::string& url, unsigned concurrency, const std::string& rate, bool verify,
         bool progress, bool detach, bool asJson) {
  const auto [bucket, prefix] = parseS3Url(url);
  std::string target = "/admin/load?bucket=" + enc(bucket) + "&prefix=" + enc(prefix) +
                       "&concurrency=" + std::to_string(concurrency);
  if (!rate.empty()) target += "&rate=" + enc(rate);
  if (verify) target += "&verify=true";
  auto job = parseObject(call(t, bhttp::verb::post, target));
  const std::string id = str(job, "id");
  if (detach) {
    std::cout << id << "\n";
    return 0;
  }
  std::signal(SIGINT, [](int) { interrupted = true; });
  std::signal(SIGTERM, [](int) { interrupted = true; });
  while (true) {
    const std::string state = str(job, "state");
    if (state == "done" || state == "failed" || state == "cancelled") break;
    if (interrupted) {
      job = parseObject(call(t, bhttp::verb::delete_, "/admin/jobs/" + enc(id)));
      if (progress) std::fprintf(stderr, "\ninterrupted: job %s cancelled; run the same command again to resume\n", id.c_str());
      interrupted = false;
      continue;  // wait for the objects in flight
    }
    if (progress) progressLine(job);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    job = parseObject(call(t, bhttp::verb::get, "/admin/jobs/" + enc(id)));
  }
  if (progress) {
    progressLine(job);
    std::fputc('\n', stderr);
  }
  if (asJson) {
    std::cout << json::serialize(job) << "\n";
  } else {
    std::cout << "load " << id << " of s3://" << bucket << "/" << prefix << ": " << str(job, "state") << "\n"
              << "  objects: " << u64(job, "objects_total") << " listed, " << u64(job, "objects_loaded") << " loaded, "
              << u64(job, "objects_skipped") << " already cached, " << u64(job, "objects_failed") << " failed\n"
              << "  bytes:   " << human(u64(job, "bytes_loaded")) << " loaded, " << human(u64(job, "bytes_skipped"))
              << " already cached, in " << seconds(dbl(job, "elapsed_seconds")) << " ("
              << human(static_cast<std::uint64_t>(dbl(job, "rate_bytes_per_second"))) << "/s)\n";
    if (verify)
      std::cout << "  verify:  " << u64(job, "objects_verified") << " verified, " << u64(job, "objects_verify_failed")
                << " failed (dropped from the cache)\n";
    if (!str(job, "error").empty()) std::cout << "  error:   " << str(job, "error") << "\n";
    if (const auto* errs = job.if_contains("errors"); errs && errs->is_array())
      for (const auto& e : errs->as_array())
        if (e.is_object()) std::cout << "  failed:  " << str(e.as_object(), "key") << ": " << str(e.as_object(), "error") << "\n";
  }
  const bool ok = str(job, "state") == "done" && u64(job, "objects_failed") == 0 && u64(job, "objects_verify_failed") == 0;
  return ok ? 0 : 1;
}

struct PrefetchArgs {
  std::string orderFile, window = "256MiB", idle = "30";
  unsigned concurrency = 8;
};

CLI::App* addPrefetch(CLI::App& app, PrefetchArgs& a, std::string& url) {
  auto* cmd = app.add_subcommand(
      "prefetch",
      "Fetch s3://bucket[/prefix] into the cache ahead of the clients' reads, in the order they will read it; "
      "prints the job's id and returns (follow it with GET /admin/jobs/ID)");
  cmd->add_option("url", url, "s3://bucket[/prefix]")->required();
  cmd->add_option("--order", a.orderFile,
                  "File of the keys in the order the loader reads them, one a line (default: the prefix's listing order)");
  cmd->add_option("--window", a.window, "Bytes fetched ahead of the reader (default 256MiB)");
  cmd->add_option("--concurrency", a.concurrency, "Objects fetched at once (default 8)")->check(CLI::Range(1u, 256u));
  cmd->add_option("--idle", a.idle, "Stop after this long without a client read, e.g. 30 (seconds) or 500ms (default 30)");
  return cmd;
}

/// `granary admin prefetch`: starts the job (the order file is the request's body), prints its id.
int prefetch(const AdminTarget& t, const std::string& url, const PrefetchArgs& a, bool asJson) {
  const std::string& orderFile = a.orderFile;
  const auto [bucket, prefix] = parseS3Url(url);
  std::string keys;
  if (!orderFile.empty()) {
    std::ifstream in(orderFile, std::ios::binary);
    if (!in) throw std::runtime_error("--order: cannot read " + orderFile);
    keys.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (keys.find_first_not_of("\r\n") == std::string::npos)
      throw std::runtime_error("--order: " + orderFile + " lists no key");
  }
  std::string target = "/admin/prefetch?bucket=" + enc(bucket) + "&prefix=" + enc(prefix) +
                       "&concurrency=" + std::to_string(a.concurrency);
  if (!a.window.empty()) target += "&window=" + enc(a.window);
  if (!a.idle.empty()) target += "&idle=" + enc(a.idle);
  auto job = parseObject(call(t, bhttp::verb::post, target, std::move(keys)));
  if (asJson) std::cout << json::serialize(job) << "\n";
  else std::cout << str(job, "id") << "\n";
  return 0;
}

int invalidate(const AdminTarget& t, const std::string& url, bool asPrefix, bool asJson) {
  const auto [bucket, key] = parseS3Url(url);
  auto r = parseObject(call(t, bhttp::verb::post, "/admin/invalidate?bucket=" + enc(bucket) + "&key=" + enc(key) +
                                                      (asPrefix ? "&prefix=true" : "")));
  if (asJson) std::cout << json::serialize(r) << "\n";
  else
    std::cout << "invalidated s3://" << bucket << "/" << key << ": " << u64(r, "objects_invalidated")
              << " cached objects dropped (" << human(u64(r, "bytes_invalidated")) << "), "
              << u64(r, "objects_listed") << " objects listed at the backend\n"
              << (str(r, "listing_error").empty() ? "" : "  listing failed: " + str(r, "listing_error") + "\n");
  return 0;
}

int stats(const AdminTarget& t, bool asJson) {
  auto s = parseObject(call(t, bhttp::verb::get, "/admin/stats"));
  if (asJson) {
    std::cout << json::serialize(s) << "\n";
    return 0;
  }
  std::printf("%-28s %s / %s\n", "disk cache used / capacity", human(u64(s, "disk_used_bytes")).c_str(),
              human(u64(s, "disk_capacity_bytes")).c_str());
  if (const auto* dirs = s.if_contains("dirs"); dirs && dirs->is_array())
    for (const auto& d : dirs->as_array())
      if (d.is_object())
        std::printf("  %-26s %s / %s%s\n", str(d.as_object(), "path").c_str(), human(u64(d.as_object(), "used_bytes")).c_str(),
                    human(u64(d.as_object(), "capacity_bytes")).c_str(),
                    d.as_object().at("up").as_bool() ? "" : "  OUT OF SERVICE");
  if (s.contains("ram_capacity_bytes"))
    std::printf("%-28s %s / %s\n", "RAM tier used / capacity", human(u64(s, "ram_used_bytes")).c_str(),
                human(u64(s, "ram_capacity_bytes")).c_str());
  const std::uint64_t h = u64(s, "requests_hit"), m = u64(s, "requests_miss"), p = u64(s, "requests_partial");
  std::printf("%-28s %.1f%%  (%llu hits, %llu misses, %llu partial)\n", "request hit ratio", 100 * dbl(s, "request_hit_ratio"),
              static_cast<unsigned long long>(h), static_cast<unsigned long long>(m), static_cast<unsigned long long>(p));
  std::printf("%-28s %.1f%%  (RAM %s, disk %s, backend %s)\n", "byte hit ratio", 100 * dbl(s, "byte_hit_ratio"),
              human(u64(s, "bytes_from_ram")).c_str(), human(u64(s, "bytes_from_disk")).c_str(),
              human(u64(s, "bytes_from_backend")).c_str());
  std::printf("%-28s %llu\n", "disk evictions", static_cast<unsigned long long>(u64(s, "disk_evictions")));
  if (const auto* top = s.if_contains("top_buckets"); top && top->is_array() && !top->as_array().empty()) {
    std::printf("\n%-30s %10s %12s %9s\n", "top buckets (by bytes sent)", "requests", "sent", "hit ratio");
    for (const auto& b : top->as_array())
      if (b.is_object())
        std::printf("%-30s %10llu %12s %8.1f%%\n", str(b.as_object(), "bucket").c_str(),
                    static_cast<unsigned long long>(u64(b.as_object(), "requests")), human(u64(b.as_object(), "bytes_out")).c_str(),
                    100 * dbl(b.as_object(), "hit_ratio"));
  }
  return 0;
}

int ls(const AdminTarget& t, const std::string& url, std::uint64_t max, bool asJson) {
  const auto [bucket, prefix] = parseS3Url(url);
  auto r = parseObject(call(t, bhttp::verb::get, "/admin/ls?bucket=" + enc(bucket) + "&prefix=" + enc(prefix) +
                                                     "&max=" + std::to_string(max)));
  if (asJson) {
    std::cout << json::serialize(r) << "\n";
    return 0;
  }
  if (!str(r, "error").empty()) throw std::runtime_error("listing s3://" + bucket + "/" + prefix + ": " + str(r, "error"));
  std::printf("%-9s %12s %12s  %s\n", "STATE", "SIZE", "CACHED", "KEY");
  if (const auto* objs = r.if_contains("objects"); objs && objs->is_array())
    for (const auto& o : objs->as_array())
      if (o.is_object())
        std::printf("%-9s %12s %12s  %s\n", str(o.as_object(), "state").c_str(), human(u64(o.as_object(), "size")).c_str(),
                    human(u64(o.as_object(), "cached_bytes")).c_str(), str(o.as_object(), "key").c_str());
  std::printf("%llu objects, %s; cached: %s (%llu whole, %llu partly)%s\n",
              static_cast<unsigned long long>(u64(r, "total_objects")), human(u64(r, "total_bytes")).c_str(),
              human(u64(r, "cached_bytes")).c_str(), static_cast<unsigned long long>(u64(r, "objects_full")),
              static_cast<unsigned long long>(u64(r, "objects_partial")),
              r.contains("truncated") && r.at("truncated").as_bool() ? " (truncated: raise --max)" : "");
  return 0;
}

/// `granary admin cluster`: the members as the node sees them, one line each.
int cluster(const AdminTarget& t, bool asJson) {
  auto r = parseObject(call(t, bhttp::verb::get, "/admin/cluster"));
  if (asJson) {
    std::cout << json::serialize(r) << "\n";
    return 0;
  }
  if (r.contains("enabled") && r.at("enabled").is_bool() && !r.at("enabled").as_bool()) {
    std::cout << "no [cluster] configured\n";
    return 0;
  }
  const bool current = r.contains("current") && r.at("current").is_bool() && r.at("current").as_bool();
  std::string view = current ? "current" : "LAST SEEN";
  if (str(r, "source") == "etcd") {
    view += ", etcd revision " + std::to_string(u64(r, "revision"));
    if (r.contains("last_update_age_s") && dbl(r, "last_update_age_s") >= 0 && !current)
      view += ", " + seconds(dbl(r, "last_update_age_s")) + " ago";
    if (r.contains("etcd_reachable") && r.at("etcd_reachable").is_bool() && !r.at("etcd_reachable").as_bool())
      view += ", etcd unreachable";
    if (u64(r, "lease_renew_failures")) view += ", " + std::to_string(u64(r, "lease_renew_failures")) + " lease renewal failures";
  }
  std::printf("cluster %s (%s membership: %s)\n", str(r, "cluster").c_str(), str(r, "source").c_str(), view.c_str());
  std::printf("%-2s%-20s %-22s %-9s %6s %9s %10s %12s %12s %12s\n", "", "ID", "ADDRESS", "STATE", "WEIGHT", "AGE",
              "CHUNKS", "BYTES", "PEER OUT", "PEER IN");
  if (const auto* ms = r.if_contains("members"); ms && ms->is_array())
    for (const auto& v : ms->as_array()) {
      if (!v.is_object()) continue;
      const auto& m = v.as_object();
      const bool self = m.contains("self") && m.at("self").is_bool() && m.at("self").as_bool();
      std::printf("%-2s%-20s %-22s %-9s %6.2f %9s %10llu %12s %12s %12s\n", self ? "*" : "", str(m, "id").c_str(),
                  str(m, "address").c_str(), str(m, "state").c_str(), dbl(m, "weight"),
                  u64(m, "since") ? seconds(dbl(m, "age_s")).c_str() : "-", static_cast<unsigned long long>(u64(m, "chunks")),
                  human(u64(m, "bytes")).c_str(), human(u64(m, "peer_bytes_served")).c_str(),
                  human(u64(m, "peer_bytes_fetched")).c_str());
    }
  return 0;
}

int drain(const AdminTarget& t, bool asJson) {
  auto r = parseObject(call(t, bhttp::verb::post, "/admin/cluster/drain"));
  if (asJson) std::cout << json::serialize(r) << "\n";
  else std::cout << "node " << str(r, "id") << " is " << str(r, "state") << ": it keeps serving and owns nothing\n";
  return 0;
}

/// Where the admin endpoint is and how to authenticate: flags first, then the environment, then the
/// config file. Throws std::runtime_error naming what is missing.
AdminTarget resolveTarget(const std::string& configFile, std::string adminUrl, std::string token, std::string accessKey,
                          std::string secretKey) {
  granary::Config cfg;
  if (!configFile.empty()) granary::loadConfigFile(configFile, cfg);
  if (token.empty())
    if (const char* env = std::getenv("GRANARY_ADMIN_TOKEN")) token = env;
  if (token.empty()) token = cfg.adminToken;
  if (adminUrl.empty()) {
    if (cfg.adminListen.empty()) throw std::runtime_error("no admin endpoint: pass --admin URL (admin_listen is \"\")");
    adminUrl = "http://" + cfg.adminListen;
  }
  auto u = boost::urls::parse_absolute_uri(adminUrl);
  if (!u || u->scheme() != "http" || u->host().empty())
    throw std::runtime_error("--admin: http://HOST:PORT expected, got '" + adminUrl + "'");
  if (accessKey.empty())
    if (const char* env = std::getenv("GRANARY_ACCESS_KEY")) accessKey = env;
  if (secretKey.empty())
    if (const char* env = std::getenv("GRANARY_SECRET_KEY")) secretKey = env;
  if (!accessKey.empty() && secretKey.empty()) throw std::runtime_error("--access-key needs --secret-key");
  AdminTarget t{std::string(u->host_address()), u->has_port() ? std::string(u->port()) : "80", token, accessKey,
                secretKey};
  if (t.host.size() > 2 && t.host.front() == '[') t.host = t.host.substr(1, t.host.size() - 2);
  if (t.host == "0.0.0.0") t.host = "127.0.0.1";
  return t;
}

}  // namespace

namespace granary::admin {

int adminMain(int argc, char** argv) {
  CLI::App app{"Operate a running Granary through its admin endpoint (admin_listen)", "granary admin"};
  app.require_subcommand(1);
  app.fallthrough();  // --admin, --token, --json also after the subcommand
  std::string adminUrl, token, configFile;
  bool asJson = false;
  app.add_option("--admin", adminUrl, "Admin endpoint, e.g. http://127.0.0.1:9001 (default: the config's admin_listen)");
  app.add_option("--token", token, "Admin token (default: $GRANARY_ADMIN_TOKEN, then the config's admin_token)");
  app.add_option("--config", configFile, "Granary's TOML configuration, for admin_listen and admin_token");
  std::string accessKey, secretKey;
  app.add_option("--access-key", accessKey,
                 "Sign with this client key instead of the token (its policy needs admin = true; default: "
                 "$GRANARY_ACCESS_KEY)");
  app.add_option("--secret-key", secretKey, "The client key's secret (default: $GRANARY_SECRET_KEY)");
  app.add_flag("--json", asJson, "Print the API's JSON instead of a table");

  std::string url, rate;
  unsigned concurrency = 8;
  bool verify = false, noProgress = false, detach = false;
  std::uint64_t max = 1000;
  auto* loadCmd = app.add_subcommand("load", "Fetch every object under s3://bucket/prefix into the cache (skips what is cached and current)");
  loadCmd->add_option("url", url, "s3://bucket/prefix")->required();
  loadCmd->add_option("--concurrency", concurrency, "Objects fetched at once (default 8)")->check(CLI::Range(1u, 256u));
  loadCmd->add_option("--rate", rate, "Bandwidth cap in bytes per second, e.g. 200MiB (default: none)");
  loadCmd->add_flag("--verify", verify, "Re-read every object from the cache and check its bytes (MD5 against a single-part ETag)");
  loadCmd->add_flag("--no-progress", noProgress, "No progress bar (it is shown only on a terminal anyway)");
  loadCmd->add_flag("--detach", detach, "Start the job, print its id and return");
  PrefetchArgs pf;
  auto* prefetchCmd = addPrefetch(app, pf, url);
  auto* invCmd = app.add_subcommand("invalidate", "Drop s3://bucket/key from the cache; a name no object has is a prefix: every object under it");
  invCmd->add_option("url", url, "s3://bucket/key-or-prefix")->required();
  bool asPrefix = false;
  invCmd->add_flag("--prefix", asPrefix, "Treat the key as a prefix even when an object has that exact name");
  auto* statsCmd = app.add_subcommand("stats", "Capacity, use, hit ratio and top buckets");
  auto* lsCmd = app.add_subcommand("ls", "Objects under s3://bucket/prefix and how much of each is cached");
  lsCmd->add_option("url", url, "s3://bucket/prefix")->required();
  lsCmd->add_option("--max", max, "List at most this many objects (default 1000)");
  auto* healthCmd = app.add_subcommand("health", "Exit 0 if /healthz answers (container health checks)");
  auto* readyCmd = app.add_subcommand("ready", "Print /readyz; exit 0 if ready");
  auto* clusterCmd = app.add_subcommand("cluster", "The cluster's members as this node sees them (id, address, state, weight, age, cache, peer traffic)");
  auto* drainCmd = app.add_subcommand("drain", "Make this node draining: it keeps serving its clients and owns no chunks (before maintenance)");
  CLI11_PARSE(app, argc, argv);

  try {
    const AdminTarget t = resolveTarget(configFile, adminUrl, token, accessKey, secretKey);

    if (*loadCmd) return load(t, url, concurrency, rate, verify, !noProgress && !asJson && isatty(2), detach, asJson);
    if (*prefetchCmd) return prefetch(t, url, pf, asJson);
    if (*invCmd) return invalidate(t, url, asPrefix, asJson);
    if (*statsCmd) return stats(t, asJson);
    if (*lsCmd) return ls(t, url, max, asJson);
    if (*clusterCmd) return cluster(t, asJson);
    if (*drainCmd) return drain(t, asJson);
    if (*healthCmd || *readyCmd) {
      auto r = call(t, boost::beast::http::verb::get, *healthCmd ? "/healthz" : "/readyz");
      std::string body = r.body;
      const bool newline = !body.empty() && body.back() == '\n';
      if (newline) body.pop_back();
      std::cout << logSafe(body) << (newline ? "\n" : "");
      return r.status == 200 ? 0 : 1;
    }
  } catch (const CLI::ValidationError& e) {
    std::cerr << "granary admin: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "granary admin: " << e.what() << "\n";
    return 2;
  }
  return 2;
}

}  // namespace granary::admin
