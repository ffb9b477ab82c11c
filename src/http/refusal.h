#pragma once
// Internal to src/http: why the server refuses a request on its own, before any handler sees it (header
// limits, ambiguous body framing, Host, obsolete line folding), and how it answers the refusal: the
// handler renders the http::ProtocolError in its own protocol. Used by the session loop (session.h).

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "http/handler.h"
#include "http/server.h"

namespace granary::http::detail {

namespace bhttp = beast::http;
inline constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

/// Answers a request the server refuses on its own, then the caller closes the connection.
template <class Stream>
Awaitable<void> sendProtocolError(Stream& stream, RequestHandler& handler, const ServerOptions& opts,
                                  ProtocolError error, std::string_view message) {
  bhttp::response<bhttp::string_body> res{statusOf(error), 11};
  res.body() = handler.protocolError(res.base(), error, message);
  res.keep_alive(false);
  res.prepare_payload();
  stream.expires_after(opts.writeTimeout);
  co_await bhttp::async_write(stream, res, kTuple);
}

/// Why the server refuses a request header on its own: the kind of error and its message.
struct Refusal {
  ProtocolError error;
  std::string_view message;
};

/// Checks the request line and each header line against the per-line limit, their sum against the total
/// (Beast's own header_limit is lenient when a header arrives in pieces), and the number of fields.
inline std::optional<Refusal> checkHeaderLimits(const RequestHeader& h, const ServerOptions& opts) {
  std::size_t total = h.method_string().size() + h.target().size() + 12;
  if (total > opts.headerLineLimit)
    return Refusal{ProtocolError::RequestLineTooLong, "The request line is longer than 8 KiB."};
  std::size_t count = 0;
  for (const auto& f : h) {
    const std::size_t line = f.name_string().size() + f.value().size() + 4;
    if (line > opts.headerLineLimit)
      return Refusal{ProtocolError::HeaderTooLarge, "A request header line is longer than 8 KiB."};
    total += line;
    ++count;
  }
  if (total > opts.headerLimit)
    return Refusal{ProtocolError::HeaderTooLarge, "The request header section is larger than 64 KiB."};
  if (count > opts.headerCountLimit)
    return Refusal{ProtocolError::HeaderTooLarge, "The request has more header fields than allowed."};
  return std::nullopt;
}

inline std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// The body's framing must be unambiguous (RFC 9112 section 6): a Transfer-Encoding is accepted only as
/// exactly "chunked", once, with no Content-Length beside it and never on HTTP/1.0. Anything else
/// ("identity", "xchunked", "chunked, identity", "chunked;x", "gzip, chunked") would let Granary and a
/// proxy in front of it disagree on where the body ends, and the rest of the body become a request.
inline std::optional<Refusal> checkFraming(const RequestHeader& h) {
  namespace bhttp = beast::http;
  std::size_t codings = 0, chunked = 0;
  bool lastChunked = false, seen = false;
  for (const auto& f : h) {
    if (f.name() != bhttp::field::transfer_encoding) continue;
    seen = true;
    std::string_view v = f.value();
    while (true) {
      const auto comma = v.find(',');
      const std::string_view token = trimOws(v.substr(0, comma));
      if (!token.empty()) {  // empty list elements are allowed and ignored
        ++codings;
        lastChunked = beast::iequals(token, "chunked");
        if (lastChunked) ++chunked;
      }
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  if (!seen) return std::nullopt;
  if (h.version() < 11)
    return Refusal{ProtocolError::BadRequest, "Transfer-Encoding is not allowed in an HTTP/1.0 request."};
  if (h.count(bhttp::field::content_length) > 0)
    return Refusal{ProtocolError::BadRequest, "A request may not carry both Transfer-Encoding and Content-Length."};
  if (codings == 0 || !lastChunked || chunked != 1)
    return Refusal{ProtocolError::BadRequest, "Transfer-Encoding must be exactly 'chunked'."};
  if (codings > 1)
    return Refusal{ProtocolError::NotImplemented, "Transfer codings other than 'chunked' are not implemented."};
  return std::nullopt;
}

/// Answers a request header that could not be read, unless the client simply went away.
template <class Stream>
Awaitable<void> answerReadError(Stream& stream, RequestHandler& handler, const ServerOptions& opts,
                                error_code ec) {
  if (ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == beast::error::timeout || ec == asio::error::operation_aborted)
    co_return;
  if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow)
    co_await sendProtocolError(stream, handler, opts, ProtocolError::HeaderTooLarge,
                               "Your request header section exceeds the maximum allowed size.");
  else {
    const std::string message = "Malformed HTTP request: " + ec.message();  // (named: GCC 12 coroutines)
    co_await sendProtocolError(stream, handler, opts, ProtocolError::BadRequest, message);
  }
}

/// RFC 9112 section 3.2: an HTTP/1.1 request carries exactly one Host header (an HTTP/1.0 one at most
/// one); two could be read one way here and another way by a proxy in front.
inline std::optional<Refusal> checkHost(const RequestHeader& h) {
  const auto hosts = h.count(beast::http::field::host);
  if (hosts > 1) return Refusal{ProtocolError::BadRequest, "A request may carry one Host header."};
  if (hosts == 0 && h.version() >= 11)
    return Refusal{ProtocolError::BadRequest, "An HTTP/1.1 request must carry a Host header."};
  return std::nullopt;
}

/// Where the header section in `buffer` ends (just past its empty line), or nullopt when it has not
/// arrived whole; the search starts at `from` (what an earlier call searched, less 3 bytes). Bare LF line
/// ends count too (Beast refuses them later with a clear error).
inline std::optional<std::size_t> headerSectionEnd(const beast::flat_buffer& buffer, std::size_t from = 0) {
  const std::string_view data(static_cast<const char*>(buffer.data().data()), buffer.size());
  // The first line feed followed by an empty line ("\n\r\n" or "\n\n"), from `from` on.
  for (auto at = data.find('\n', from); at != std::string_view::npos; at = data.find('\n', at + 1)) {
    if (at + 1 < data.size() && data[at + 1] == '\n') return at + 2;
    if (at + 2 < data.size() && data[at + 1] == '\r' && data[at + 2] == '\n') return at + 3;
  }
  return std::nullopt;
}

/// A line of the header section that starts with a space or tab: obsolete line folding (RFC 9112 section
/// 5.2), which Granary refuses rather than repair.
inline bool hasObsoleteFolding(const beast::flat_buffer& buffer, std::size_t end) {
  const std::string_view data(static_cast<const char*>(buffer.data().data()), end);
  for (std::size_t at = data.find('\n'); at != std::string_view::npos && at + 1 < data.size(); at = data.find('\n', at + 1))
    if (data[at + 1] == ' ' || data[at + 1] == '\t') return true;
  return false;
}

}  // namespace granary::http::detail
