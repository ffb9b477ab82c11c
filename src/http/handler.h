#pragma once
// The boundary between the HTTP server and whatever serves requests (Envoy's filter boundary, reduced to
// what an S3 proxy needs): a parsed request header, a pull-style body reader and a push-style response
// writer. Both stream with caller-owned buffers, so no body ever has to sit in memory whole.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace granary::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using boost::system::error_code;

template <class T>
using Awaitable = asio::awaitable<T>;
using RequestHeader = beast::http::request_header<>;
using ResponseHeader = beast::http::response_header<>;
using Status = beast::http::status;

/// Why the server refuses a request on its own, before any handler sees it. The handler renders it in
/// its own protocol (s3api maps each to an S3 error code); the server knows only the kind and its status.
enum class ProtocolError {
  BadRequest,           // malformed HTTP, ambiguous body framing, a missing or repeated Host
  RequestLineTooLong,   // the request line exceeds the per-line limit
  HeaderTooLarge,       // a header line, the header section or the number of fields exceeds its limit
  NotImplemented,       // a transfer coding other than "chunked"
  VersionNotSupported,  // neither HTTP/1.0 nor HTTP/1.1
};

/// The status a protocol error is answered with.
constexpr Status statusOf(ProtocolError e) {
  switch (e) {
    case ProtocolError::BadRequest:
    case ProtocolError::RequestLineTooLong: return Status::bad_request;
    case ProtocolError::HeaderTooLarge: return Status::request_header_fields_too_large;
    case ProtocolError::NotImplemented: return Status::not_implemented;
    case ProtocolError::VersionNotSupported: return Status::http_version_not_supported;
  }
  return Status::bad_request;
}

/// The enumerator's name, for logs and tests.
constexpr std::string_view name(ProtocolError e) {
  switch (e) {
    case ProtocolError::BadRequest: return "BadRequest";
    case ProtocolError::RequestLineTooLong: return "RequestLineTooLong";
    case ProtocolError::HeaderTooLarge: return "HeaderTooLarge";
    case ProtocolError::NotImplemented: return "NotImplemented";
    case ProtocolError::VersionNotSupported: return "VersionNotSupported";
  }
  return "BadRequest";
}

/// The request body, with any HTTP transfer coding already removed.
class BodyReader {
 public:
  virtual ~BodyReader() = default;
  /// Reads up to buf.size() bytes; sends "100 Continue" first when the client asked for it.
  /// @return bytes read, 0 at the end of the body; an error when the client stalls past the read
  ///         timeout, disconnects, or sends a malformed chunked body.
  virtual Awaitable<boost::system::result<std::size_t>> read(asio::mutable_buffer buf) = 0;
  /// The declared Content-Length; nullopt for a chunked body.
  virtual std::optional<std::uint64_t> contentLength() const = 0;
  /// True once the whole body has been read (always true for a body-less request).
  virtual bool done() const = 0;
};

/// Sends one response. Call writeHeader once, writeBody any number of times, then finish. While
/// headerSent() is false after writeHeader (the header is held back, nothing written yet), writeHeader may be
/// called again to replace it, as an error response does.
/// The header must carry Content-Length, or chunked Transfer-Encoding, unless the status or the
/// request method (HEAD) has no body. Errors mean the client is gone: stop and return.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  virtual Awaitable<error_code> writeHeader(ResponseHeader header) = 0;
  virtual Awaitable<error_code> writeBody(asio::const_buffer data) = 0;
  virtual Awaitable<error_code> finish() = 0;
  virtual bool headerSent() const = 0;
  virtual bool finished() const = 0;
  /// Asks the server to close the connection after this response (sets "Connection: close").
  virtual void closeAfterResponse() = 0;
};

/// What the server knows of the connection a request came on.
struct RequestContext {
  asio::ip::tcp::endpoint remote;
  std::uint64_t connectionId = 0;
  std::uint32_t requestOnConnection = 0;
  /// Made inside the process by an admin operation (cache preload, verify), not read from a socket:
  /// carries no signature and is trusted. The server never sets it.
  bool internal = false;
};

/// One per I/O thread; called only from that thread's io_context.
class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  /// Serves one request. Must not throw; must finish the response or leave it unfinished only when
  /// the client is gone (the server then closes the connection).
  virtual Awaitable<void> handle(const RequestHeader& req, const RequestContext& ctx, BodyReader& body,
                                 ResponseWriter& out) = 0;
  /// Renders the response for a request the server rejects before handle() (malformed HTTP, header
  /// limits): `error` is the kind (answered with statusOf(error)), `message` the detail. Returns the body
  /// and sets headers on `res`.
  virtual std::string protocolError(ResponseHeader& res, ProtocolError error, std::string_view message) = 0;
  /// Called once on the handler's thread when the server begins a graceful shutdown.
  virtual void shutdown() {}
};

}  // namespace granary::http
