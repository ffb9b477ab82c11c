#include "cluster/etcd_client.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <array>

namespace granary::cluster {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace {
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxAnswer = 16u << 20;  // a listing of a big fleet fits many times over
constexpr std::size_t kMaxWatchLine = 16u << 20;
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string errorOf(const json::value& v) {
  if (!v.is_object()) return "malformed answer";
  const auto& o = v.as_object();
  for (const char* f : {"message", "error"})
    if (auto* m = o.if_contains(f); m && m->is_string()) return std::string(m->as_string());
  return "";
}
}  // namespace

struct EtcdClient::Target {
  std::string host, port, url;
};

struct EtcdClient::WatchState {
  explicit WatchState(asio::any_io_executor ex) : stream(std::move(ex)) {}
  beast::tcp_stream stream;
  bool cancelled = false;
};

std::string base64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const std::uint32_t n = (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8) | std::uint8_t(in[i + 2]);
    for (int s : {18, 12, 6, 0}) out += kAlphabet[(n >> s) & 63];
  }
  if (i + 1 == in.size()) {
    const std::uint32_t n = std::uint8_t(in[i]) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const std::uint32_t n = (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8);
    for (int s : {18, 12, 6}) out += kAlphabet[(n >> s) & 63];
    out += '=';
  }
  return out;
}

bool base64Decode(std::string_view in, std::string& out) {
  std::array<int, 256> map{};
  map.fill(-1);
  for (int i = 0; i < 64; ++i) map[std::uint8_t(kAlphabet[i])] = i;
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return false;
  out.clear();
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = map[std::uint8_t(c)];
    if (v < 0) return false;
    acc = (acc << 6) | std::uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xff);
    }
  }
  return true;
}

std::string prefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (std::uint8_t(end.back()) < 0xff) {
      end.back() = char(std::uint8_t(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

std::int64_t jsonInt(const json::value& v, std::string_view field, std::int64_t dflt) {
  if (!v.is_object()) return dflt;
  const auto* f = v.as_object().if_contains(field);
  if (!f) return dflt;
  if (f->is_int64()) return f->as_int64();
  if (f->is_uint64()) return static_cast<std::int64_t>(f->as_uint64());
  if (f->is_string()) {
    try {
      return std::stoll(std::string(f->as_string()));
    } catch (const std::exception&) {
      return dflt;
    }
  }
  return dflt;
}

bool parseKeyValue(const json::value& v, KeyValue& out) {
  if (!v.is_object()) return false;
  const auto& o = v.as_object();
  const auto* k = o.if_contains("key");
  if (!k || !k->is_string() || !base64Decode(k->as_string(), out.key)) return false;
  out.value.clear();
  if (const auto* val = o.if_contains("value")) {
    if (!val->is_string() || !base64Decode(val->as_string(), out.value)) return false;
  }
  out.lease = jsonInt(v, "lease");
  out.modRevision = static_cast<std::uint64_t>(jsonInt(v, "mod_revision"));
  return true;
}

bool parseWatchMessage(std::string_view line, WatchBatch& out, std::string& error) {
  json::error_code ec;
  const json::value v = json::parse(line, ec);
  if (ec || !v.is_object()) {
    error = "malformed watch message";
    return false;
  }
  const auto* result = v.as_object().if_contains("result");
  if (!result || !result->is_object()) {
    error = errorOf(v);
    if (error.empty()) error = "watch message without a result";
    return false;
  }
  const auto& r = result->as_object();
  out = WatchBatch{};
  out.created = r.contains("created") && r.at("created").is_bool() && r.at("created").as_bool();
  out.canceled = r.contains("canceled") && r.at("canceled").is_bool() && r.at("canceled").as_bool();
  out.compactRevision = static_cast<std::uint64_t>(jsonInt(*result, "compact_revision"));
  if (const auto* h = r.if_contains("header")) out.revision = static_cast<std::uint64_t>(jsonInt(*h, "revision"));
  if (const auto* c = r.if_contains("cancel_reason"); c && c->is_string()) out.cancelReason = c->as_string();
  if (const auto* evs = r.if_contains("events"); evs && evs->is_array()) {
    for (const auto& e : evs->as_array()) {
      WatchEvent we;
      if (!e.is_object() || !e.as_object().contains("kv") || !parseKeyValue(e.as_object().at("kv"), we.kv)) {
        error = "malformed watch event";
        return false;
      }
      const auto* t = e.as_object().if_contains("type");
      we.put = !(t && t->is_string() && t->as_string() == "DELETE");
      out.events.push_back(std::move(we));
    }
  }
  return true;
}

EtcdClient::EtcdClient(asio::any_io_executor ex, std::vector<std::string> urls, std::chrono::milliseconds timeout)
    : ex_(std::move(ex)), timeout_(timeout) {
  for (auto& u : urls) {
    std::string_view s = u;
    if (s.starts_with("http://")) s.remove_prefix(7);
    if (auto slash = s.find('/'); slash != std::string_view::npos) s = s.substr(0, slash);
    Target t;
    t.url = u;
    const auto colon = s.rfind(':');
    if (colon == std::string_view::npos || (s.starts_with('[') && s.back() == ']')) {
      t.host = std::string(s);
      t.port = "2379";
    } else {
      t.host = std::string(s.substr(0, colon));
      t.port = std::string(s.substr(colon + 1));
    }
    if (t.host.size() > 2 && t.host.front() == '[' && t.host.back() == ']') t.host = t.host.substr(1, t.host.size() - 2);
    targets_.push_back(std::move(t));
  }
}

EtcdClient::~EtcdClient() = default;

asio::awaitable<EtcdResult<json::value>> EtcdClient::callOne(std::size_t index, std::string path, std::string body) {
  const Target& t = targets_[index];
  EtcdResult<json::value> r;
  tcp::resolver resolver(ex_);
  auto [rec, results] = co_await resolver.async_resolve(t.host, t.port, kTuple);
  if (rec) {
    r.error = "resolve " + t.host + ": " + rec.message();
    co_return r;
  }
  beast::tcp_stream stream(ex_);
  stream.expires_after(timeout_);
  auto [cec, ep] = co_await stream.async_connect(results, kTuple);
  if (cec) {
    r.error = "connect " + t.url + ": " + cec.message();
    co_return r;
  }
  bhttp::request<bhttp::string_body> req{bhttp::verb::post, path, 11};
  req.set(bhttp::field::host, t.host + ":" + t.port);
  req.set(bhttp::field::content_type, "application/json");
  req.set(bhttp::field::connection, "close");
  req.body() = std::move(body);
  req.prepare_payload();
  auto [wec, wn] = co_await bhttp::async_write(stream, req, kTuple);
  beast::flat_buffer buf;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(kMaxAnswer);
  if (!wec) {
    auto [ec, n] = co_await bhttp::async_read(stream, buf, parser, kTuple);
    if (ec) r.error = "read " + t.url + path + ": " + ec.message();
  } else {
    r.error = "write " + t.url + path + ": " + wec.message();
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  if (!r.ok()) co_return r;
  json::error_code jec;
  r.value = json::parse(parser.get().body(), jec);
  const auto status = parser.get().result_int();
  if (jec && status == 200) {
    r.error = "malformed answer from " + t.url + path;
  } else if (status != 200 || (r.value.is_object() && r.value.as_object().contains("error"))) {
    r.error = "etcd " + std::to_string(status) + ": " + (jec ? std::string("(no message)") : errorOf(r.value));
  } else if (r.value.is_object() && r.value.as_object().contains("result")) {
    json::value inner = r.value.as_object().at("result");  // a streaming method's single answer
    r.value = std::move(inner);
  }
  co_return r;
}

/// One call, over the endpoints in turn while they cannot be reached; etcd's own refusals are final.
asio::awaitable<EtcdResult<json::value>> EtcdClient::call(std::string path, std::string body) {
  EtcdResult<json::value> r;
  r.error = "no etcd endpoint";
  for (std::size_t i = 0; i < targets_.size(); ++i) {
    const std::size_t at = (preferred_ + i) % targets_.size();
    r = co_await callOne(at, path, body);
    if (r.ok() || r.error.starts_with("etcd ")) {
      preferred_ = at;
      co_return r;
    }
  }
  co_return r;
}

asio::awaitable<EtcdResult<std::int64_t>> EtcdClient::grant(std::int64_t ttlSeconds) {
  json::object b;
  b["TTL"] = ttlSeconds;
  std::string path = "/v3/lease/grant", body = json::serialize(b);
  auto r = co_await call(path, body);
  EtcdResult<std::int64_t> out{std::move(r.error), 0};
  if (out.ok()) {
    out.value = jsonInt(r.value, "ID");
    if (out.value == 0) out.error = "lease grant without an ID";
  }
  co_return out;
}

asio::awaitable<EtcdResult<std::int64_t>> EtcdClient::keepAlive(std::int64_t lease) {
  json::object b;
  b["ID"] = std::to_string(lease);
  std::string path = "/v3/lease/keepalive", body = json::serialize(b);
  auto r = co_await call(path, body);
  EtcdResult<std::int64_t> out{std::move(r.error), 0};
  if (out.ok()) out.value = jsonInt(r.value, "TTL");
  co_return out;
}

asio::awaitable<EtcdResult<bool>> EtcdClient::revoke(std::int64_t lease) {
  json::object b;
  b["ID"] = std::to_string(lease);
  std::string path = "/v3/lease/revoke", body = json::serialize(b);
  auto r = co_await call(path, body);
  co_return EtcdResult<bool>{std::move(r.error), true};
}

asio::awaitable<EtcdResult<bool>> EtcdClient::put(std::string key, std::string value, std::int64_t lease) {
  json::object b;
  b["key"] = base64Encode(key);
  b["value"] = base64Encode(value);
  if (lease != 0) b["lease"] = std::to_string(lease);
  std::string path = "/v3/kv/put", body = json::serialize(b);
  auto r = co_await call(path, body);
  co_return EtcdResult<bool>{std::move(r.error), true};
}

asio::awaitable<EtcdResult<RangeResult>> EtcdClient::rangePrefix(std::string prefix) {
  json::object b;
  b["key"] = base64Encode(prefix);
  b["range_end"] = base64Encode(prefixEnd(prefix));
  std::string path = "/v3/kv/range", body = json::serialize(b);
  auto r = co_await call(path, body);
  EtcdResult<RangeResult> out{std::move(r.error), {}};
  if (!out.ok()) co_return out;
  if (!r.value.is_object()) {  // (as_object() would throw, out of the membership thread: it would stop)
    out.error = "range answer not a JSON object";
    co_return out;
  }
  if (const auto* h = r.value.as_object().if_contains("header"))
    out.value.revision = static_cast<std::uint64_t>(jsonInt(*h, "revision"));
  if (out.value.revision == 0) out.error = "range answer without a revision";
  if (const auto* kvs = r.value.as_object().if_contains("kvs"); kvs && kvs->is_array()) {
    for (const auto& kv : kvs->as_array()) {
      KeyValue k;
      if (parseKeyValue(kv, k)) out.value.kvs.push_back(std::move(k));
    }
  }
  co_return out;
}

void EtcdClient::cancelWatch() {
  if (!watch_) return;
  watch_->cancelled = true;
  beast::error_code ignored;
  watch_->stream.socket().cancel(ignored);
  watch_->stream.socket().close(ignored);
}

asio::awaitable<std::string> EtcdClient::watchPrefix(std::string prefix, std::uint64_t startRevision,
                                                     std::function<bool(const WatchBatch&)> onBatch) {
  if (targets_.empty()) co_return "no etcd endpoint";
  const Target& t = targets_[preferred_ % targets_.size()];
  auto state = std::make_shared<WatchState>(ex_);
  watch_ = state;
  tcp::resolver resolver(ex_);
  auto [rec, results] = co_await resolver.async_resolve(t.host, t.port, kTuple);
  if (rec) co_return "resolve " + t.host + ": " + rec.message();
  state->stream.expires_after(timeout_);
  auto [cec, ep] = co_await state->stream.async_connect(results, kTuple);
  if (cec || state->cancelled) {
    preferred_ = (preferred_ + 1) % targets_.size();  // the next watch tries the next endpoint
    co_return "connect " + t.url + ": " + cec.message();
  }
  json::object create{{"key", base64Encode(prefix)}, {"range_end", base64Encode(prefixEnd(prefix))},
                      {"start_revision", std::to_string(startRevision)}};
  json::object b;
  b["create_request"] = std::move(create);
  bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/v3/watch", 11};
  req.set(bhttp::field::host, t.host + ":" + t.port);
  req.set(bhttp::field::content_type, "application/json");
  req.body() = json::serialize(b);
  req.prepare_payload();
  auto [wec, wn] = co_await bhttp::async_write(state->stream, req, kTuple);
  if (wec) co_return "write " + t.url + "/v3/watch: " + wec.message();
  state->stream.expires_never();

  std::string pending, why;
  bool stop = false;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(boost::none);
  auto onChunk = [&](std::uint64_t, std::string_view data, beast::error_code&) -> std::size_t {
    pending.append(data);
    for (auto nl = pending.find('\n'); nl != std::string::npos && !stop; nl = pending.find('\n')) {
      const std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
      WatchBatch batch;
      if (!parseWatchMessage(line, batch, why) || !onBatch(batch)) stop = true;
    }
    if (pending.size() > kMaxWatchLine) {
      why = "watch message too long";
      stop = true;
    }
    return data.size();
  };
  parser.on_chunk_body(onChunk);
  beast::flat_buffer buf;
  auto [hec, hn] = co_await bhttp::async_read_header(state->stream, buf, parser, kTuple);
  if (hec) co_return "read " + t.url + "/v3/watch: " + hec.message();
  if (parser.get().result_int() != 200) co_return "etcd " + std::to_string(parser.get().result_int()) + " to a watch";
  // Only a chunked body reaches onChunk: any other would be kept whole (no limit) and its events never seen.
  if (!parser.chunked()) co_return "a watch answer that is not chunked";
  while (!stop && !parser.is_done()) {
    auto [ec, n] = co_await bhttp::async_read_some(state->stream, buf, parser, kTuple);
    if (state->cancelled) co_return "cancelled";
    if (ec) co_return "watch stream: " + ec.message();
  }
  beast::error_code ignored;
  state->stream.socket().close(ignored);
  co_return why.empty() ? std::string("watch stream ended") : why;
}

}  // namespace granary::cluster
