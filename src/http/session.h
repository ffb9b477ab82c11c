#pragma once
// Internal to src/http: one HTTP/1.1 connection's request loop (see session.cpp), written over any stream
// with Beast's tcp_stream interface (async_read_some, async_write_some, expires_after), so that tests and
// fuzzers can drive exactly the production loop from memory. Production instantiates it once, with
// beast::tcp_stream, in session.cpp.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/handler.h"
#include "http/refusal.h"
#include "http/server.h"
#include "http/session_writer.h"

namespace granary::http::detail {

using Parser = bhttp::request_parser<bhttp::buffer_body>;

template <class Stream>
class SessionBodyReader final : public BodyReader {
 public:
  SessionBodyReader(Stream& stream, beast::flat_buffer& buffer, Parser& parser,
                    const ServerOptions& opts)
      : stream_(stream), buffer_(buffer), parser_(parser), opts_(opts) {
    expectContinue_ = beast::iequals(parser_.get()[bhttp::field::expect], "100-continue");
    // A Content-Length body is read straight from the socket into the caller's buffer (large reads, no
    // copy through the parser), never past its end, so pipelined requests behind it stay in `buffer`.
    // Chunked bodies go through the parser.
    if (!parser_.is_done() && parser_.content_length()) {
      direct_ = true;
      remaining_ = *parser_.content_length();
    }
  }

  Awaitable<boost::system::result<std::size_t>> read(asio::mutable_buffer buf) override {
    if (done() || buf.size() == 0) co_return std::size_t{0};
    if (auto ec = co_await sendContinue()) co_return ec;
    if (direct_) co_return co_await readDirect(buf);
    for (;;) {
      parser_.get().body().data = buf.data();
      parser_.get().body().size = buf.size();
      stream_.expires_after(opts_.readTimeout);
      auto [ec, n] = co_await bhttp::async_read(stream_, buffer_, parser_, kTuple);
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec) co_return ec;
      std::size_t got = buf.size() - parser_.get().body().size;
      if (got > 0 || parser_.is_done()) co_return got;
    }
  }

  std::optional<std::uint64_t> contentLength() const override {
    auto cl = parser_.content_length();
    if (cl) return *cl;
    if (parser_.chunked()) return std::nullopt;
    return std::uint64_t{0};
  }
  bool done() const override { return direct_ ? remaining_ == 0 : parser_.is_done(); }
  bool continueSent() const { return !expectContinue_; }

  /// The interim 100 Continue, once, if the client asked for it.
  Awaitable<boost::system::error_code> sendContinue() {
    if (!expectContinue_) co_return boost::system::error_code{};
    expectContinue_ = false;
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    stream_.expires_after(opts_.writeTimeout);
    auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(kContinue), kTuple);
    co_return ec;
  }

 private:
  Awaitable<boost::system::result<std::size_t>> readDirect(asio::mutable_buffer buf) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), remaining_));
    std::size_t got = 0;
    if (buffer_.size() > 0) {  // body bytes that arrived with the header
      got = asio::buffer_copy(asio::buffer(buf.data(), want), buffer_.data());
      buffer_.consume(got);
    } else {
      stream_.expires_after(opts_.readTimeout);
      auto [ec, n] = co_await stream_.async_read_some(asio::buffer(buf.data(), want), kTuple);
      if (ec == asio::error::eof) ec = bhttp::error::partial_message;  // closed before the declared length
      if (ec) co_return ec;
      got = n;
    }
    remaining_ -= got;
    co_return got;
  }

  Stream& stream_;
  beast::flat_buffer& buffer_;
  Parser& parser_;
  const ServerOptions& opts_;
  bool expectContinue_ = false;
  bool direct_ = false;
  std::uint64_t remaining_ = 0;
};

/// Reads and discards a small unread request body so the connection can serve the next request.
/// @return false when the connection must close instead: the body is too large, the client waits for a
///         100 Continue it never got (it will not send the body), or reading failed.
template <class Stream>
Awaitable<bool> drainUnread(SessionBodyReader<Stream>& body, std::size_t limit) {
  if (!body.continueSent()) co_return false;
  std::vector<char> scratch(64 * 1024);
  std::size_t drained = 0;
  while (!body.done() && drained <= limit) {
    auto r = co_await body.read(asio::buffer(scratch));
    if (!r) co_return false;
    drained += *r;
  }
  co_return body.done();
}

/// Reads the whole header section into `buffer` first, raw (bounded by the buffer, within one read
/// timeout): Beast would quietly repair obsolete line folding, which a proxy in front may read differently.
/// @return false when the connection must close (any refusal already answered).
template <class Stream>
Awaitable<bool> readHeaderSection(Stream& stream, beast::flat_buffer& buffer, RequestHandler& handler,
                                  const ServerOptions& opts) {
  stream.expires_after(opts.readTimeout);
  std::optional<std::size_t> end;
  std::size_t scanned = 0;  // bytes already searched for the section's end (each byte is looked at once)
  while (!(end = headerSectionEnd(buffer, scanned))) {
    scanned = buffer.size() > 3 ? buffer.size() - 3 : 0;
    const std::size_t room = std::min<std::size_t>(16 * 1024, buffer.max_size() - buffer.size());
    if (buffer.size() >= opts.headerLimit + opts.headerLineLimit || room == 0) break;  // line and fields
    auto [rec, got] = co_await stream.async_read_some(buffer.prepare(room), kTuple);
    if (rec) {
      const error_code why =  // (named: GCC 12 coroutines)
          rec == asio::error::eof && buffer.size() > 0 ? error_code(bhttp::error::partial_message) : rec;
      co_await answerReadError(stream, handler, opts, why);
      co_return false;
    }
    buffer.commit(got);
  }
  if (!end) {  // never handed to Beast, whose limits count the request line and the fields apart
    co_await sendProtocolError(stream, handler, opts, ProtocolError::HeaderTooLarge,
                               "Your request header section exceeds the maximum allowed size.");
    co_return false;
  }
  if (hasObsoleteFolding(buffer, *end)) {
    co_await sendProtocolError(stream, handler, opts, ProtocolError::BadRequest,
                               "Obsolete line folding (a header line that starts with a space or tab) is not "
                               "accepted.");
    co_return false;
  }
  co_return true;
}

/// Serves requests on one connection until it must close (the caller then closes the stream).
/// `idle` is set while waiting for the next request (safe to close at shutdown); `stopping` is read
/// between requests (graceful shutdown began).
template <class Stream>
Awaitable<void> serveConnection(Stream& stream, RequestHandler& handler, const ServerOptions& opts,
                                RequestContext& ctx, std::uint64_t id, bool& idle, const bool& stopping) {
  beast::flat_buffer buffer(opts.headerLimit + opts.readAheadLimit);
  std::string headerBuf;  // each response's header, rendered (SessionWriter)
  for (;;) {
    idle = true;
    if (stopping) break;
    if (buffer.size() == 0) {
      stream.expires_after(opts.idleTimeout);
      auto [ec, n] = co_await stream.async_read_some(buffer.prepare(16 * 1024), kTuple);
      if (ec) break;  // closed, idle timeout, or shutdown
      buffer.commit(n);
    }
    idle = false;

    if (!co_await readHeaderSection(stream, buffer, handler, opts)) break;

    Parser parser;
    parser.header_limit(static_cast<std::uint32_t>(opts.headerLimit));
    parser.body_limit(boost::none);  // bodies stream; the handler enforces object-size limits
    // The whole header section is in `buffer` (readHeaderSection): parsed in place, no read operation.
    error_code ec;
    buffer.consume(parser.put(buffer.data(), ec));
    if (ec == bhttp::error::need_more) {
      auto [rec, n] = co_await bhttp::async_read_header(stream, buffer, parser, kTuple);
      ec = rec;
    }
    if (ec) {
      co_await answerReadError(stream, handler, opts, ec);
      break;
    }
    const RequestHeader& req = parser.get().base();
    auto bad = checkHeaderLimits(req, opts);
    if (!bad) bad = checkFraming(req);
    if (!bad) bad = checkHost(req);
    if (bad) {  // the connection closes: what follows on it cannot be framed
      co_await sendProtocolError(stream, handler, opts, bad->error, bad->message);
      break;
    }
    if (req.version() != 11 && req.version() != 10) {
      co_await sendProtocolError(stream, handler, opts, ProtocolError::VersionNotSupported,
                                 "Only HTTP/1.0 and HTTP/1.1 are supported.");
      break;
    }

    SessionBodyReader<Stream> body(stream, buffer, parser, opts);
    // "Expect: 100-continue" on a request without a body: nothing to wait for, so the 100 goes out at
    // once. (Answering such a request with only a final status leaves botocore's connection expecting
    // that status line again on its next request: it reads the next response's status as a header.)
    // If that write fails the client is gone and the request never reaches the handler (nor its count).
    if (body.done() && !body.continueSent() && co_await body.sendContinue()) break;
    ++ctx.requestOnConnection;
    SessionWriter<Stream> writer(stream, opts, req.method() == bhttp::verb::head, parser.keep_alive() && !stopping,
                                 stopping, headerBuf);
    try {
      co_await handler.handle(req, ctx, body, writer);
    } catch (const std::exception& e) {
      spdlog::error("handler threw on connection {}: {}", id, e.what());
    }
    if (!writer.finished()) break;  // the handler gave up mid-response: the client sees a cut body
    if (!writer.keepAlive() || stopping) break;
    if (!body.done() && !co_await drainUnread(body, opts.drainLimit)) break;
  }
}

}  // namespace granary::http::detail
