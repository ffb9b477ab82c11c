#pragma once
// A small etcd v3 client over etcd's HTTP/JSON gateway (grpc-gateway: POST /v3/<service>/<method> with
// a JSON body, int64 fields as strings, bytes as base64). Boost.Beast on the caller's executor: it runs
// on Membership's own io_context thread, never on Granary's I/O threads. Each unary call is one short
// connection (a few calls per lease TTL); a watch holds one streaming connection until it ends or
// cancelWatch() closes it. Endpoints are tried in order, starting with the last one that answered.
//
// Errors travel as values (EtcdResult::error, "" = success); nothing here throws into a coroutine's caller.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace granary::cluster {

template <class T>
struct EtcdResult {
  std::string error;  // "" = success; else why (connect, HTTP status, etcd's message)
  T value{};
  bool ok() const { return error.empty(); }
};

struct KeyValue {
  std::string key, value;
  std::int64_t lease = 0;
  std::uint64_t modRevision = 0;
};

struct RangeResult {
  std::uint64_t revision = 0;  // the store's revision the listing was read at
  std::vector<KeyValue> kvs;
};

struct WatchEvent {
  bool put = true;  // false: DELETE (kv.key set, value empty)
  KeyValue kv;
};

/// One message of a watch stream.
struct WatchBatch {
  bool created = false;
  bool canceled = false;               // the server ended the watch (compaction, or an error)
  std::uint64_t compactRevision = 0;   // set with canceled: the start revision was compacted away
  std::uint64_t revision = 0;          // header revision
  std::string cancelReason;
  std::vector<WatchEvent> events;
};

class EtcdClient {
 public:
  /// @param urls "http://HOST:PORT" of the gateway(s); @param timeout of each unary call, connect included.
  EtcdClient(boost::asio::any_io_executor ex, std::vector<std::string> urls, std::chrono::milliseconds timeout);
  ~EtcdClient();

  /// A new lease; value: its id.
  boost::asio::awaitable<EtcdResult<std::int64_t>> grant(std::int64_t ttlSeconds);
  /// Renews a lease once; value: the TTL it has again, 0 when etcd no longer knows it (expired, revoked).
  boost::asio::awaitable<EtcdResult<std::int64_t>> keepAlive(std::int64_t lease);
  boost::asio::awaitable<EtcdResult<bool>> revoke(std::int64_t lease);
  /// Puts key = value attached to `lease` (0: none). An unknown lease is an error ("lease not found").
  boost::asio::awaitable<EtcdResult<bool>> put(std::string key, std::string value, std::int64_t lease);
  /// Every key under `prefix`, read at one revision (a consistent snapshot).
  boost::asio::awaitable<EtcdResult<RangeResult>> rangePrefix(std::string prefix);
  /// Watches `prefix` from `startRevision`, calling `onBatch` for each message until the stream ends or
  /// fails (returned: why), `onBatch` returns false, or cancelWatch() is called.
  boost::asio::awaitable<std::string> watchPrefix(std::string prefix, std::uint64_t startRevision,
                                                  std::function<bool(const WatchBatch&)> onBatch);
  /// Closes the open watch connection (call on the client's executor); watchPrefix then returns.
  void cancelWatch();

 private:
  struct Target;
  boost::asio::awaitable<EtcdResult<boost::json::value>> call(std::string path, std::string body);
  boost::asio::awaitable<EtcdResult<boost::json::value>> callOne(std::size_t index, std::string path, std::string body);

  boost::asio::any_io_executor ex_;
  std::vector<Target> targets_;
  std::size_t preferred_ = 0;
  std::chrono::milliseconds timeout_;
  struct WatchState;
  std::shared_ptr<WatchState> watch_;
};

// Pure helpers (tested on their own).
std::string base64Encode(std::string_view in);
/// False for text that is not base64.
bool base64Decode(std::string_view in, std::string& out);
/// The end of the key range holding every key that starts with `prefix` (etcd's range_end).
std::string prefixEnd(std::string_view prefix);
/// An int64 field as etcd's gateway writes it (a string, or a number); `dflt` when absent or malformed.
std::int64_t jsonInt(const boost::json::value& v, std::string_view field, std::int64_t dflt = 0);
/// A "kv" object of a range or watch answer; false when malformed.
bool parseKeyValue(const boost::json::value& v, KeyValue& out);
/// One line of a watch stream ({"result":{...}} or {"error":...}); false with `error` when malformed
/// or an error.
bool parseWatchMessage(std::string_view line, WatchBatch& out, std::string& error);

}  // namespace granary::cluster
