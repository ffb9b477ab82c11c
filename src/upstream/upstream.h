#pragma once
// What the S3 front end sees of a backend: send a request, get a streaming response. The concrete
// client (HttpUpstream) re-signs with the backend's credentials, pools connections and retries.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/sigv4.h"
#include "common/uri.h"

namespace granary::upstream {

namespace asio = boost::asio;
namespace beast = boost::beast;
template <class T>
using Awaitable = asio::awaitable<T>;
using ResponseHeader = beast::http::response_header<>;

/// A request body that streams from somewhere else (the client, usually). Pull-based.
class BodySource {
 public:
  virtual ~BodySource() = default;
  /// @return bytes read, 0 at the end; an error aborts the upstream request (the backend never
  ///         receives a complete body).
  virtual Awaitable<boost::system::result<std::size_t>> read(asio::mutable_buffer buf) = 0;
  /// True once any byte has been pulled: from then on the request cannot be retried.
  virtual bool started() const = 0;
};

struct UpstreamRequest {
  beast::http::verb method = beast::http::verb::get;
  std::string bucket;  // backend bucket; empty for service-level calls (ListBuckets)
  std::string key;     // decoded object key; may be empty
  QueryParams query;   // decoded
  sigv4::HeaderList headers;  // lower-case names; host, date, auth are added when signing
  /// Body size; nullopt = unknown (sent chunked).
  std::optional<std::uint64_t> contentLength = 0;
  /// Hex SHA-256 of the body, or UNSIGNED-PAYLOAD.
  std::string payloadHash = std::string(kEmptySha256Hex);
  /// Used when `source` is null: a small, replayable body (retries resend it).
  std::string bufferedBody;
  BodySource* source = nullptr;
  /// False forbids retries even before the body started.
  bool retriable = true;
  /// Credentials to sign with instead of the backend's (a tenant key's own); null = the backend's.
  std::shared_ptr<const sigv4::Credentials> credentials;
};

class UpstreamResponse {
 public:
  virtual ~UpstreamResponse() = default;
  virtual const ResponseHeader& header() const = 0;
  /// Body length when the backend declared one.
  virtual std::optional<std::uint64_t> contentLength() const = 0;
  /// @return bytes read, 0 at the end of the body; an error when the backend resets or stalls.
  virtual Awaitable<boost::system::result<std::size_t>> read(asio::mutable_buffer buf) = 0;
  virtual bool done() const = 0;
};
using UpstreamResponsePtr = std::unique_ptr<UpstreamResponse>;

class Upstream {
 public:
  virtual ~Upstream() = default;
  /// Sends `req` (re-signed) and returns once the response header has arrived. Retries connection
  /// errors and 500/502/503/504 while the body has not started streaming.
  /// @return the response, or an upstream::Error / system error when every attempt failed.
  virtual Awaitable<boost::system::result<UpstreamResponsePtr>> send(UpstreamRequest& req) = 0;
  /// Cancels timers and drops idle connections; called once at shutdown.
  virtual void shutdown() = 0;
  /// New backend credentials (SIGHUP), for the requests signed from now on. Call on the upstream's thread.
  virtual void setCredentials(sigv4::Credentials) {}
};

}  // namespace granary::upstream
