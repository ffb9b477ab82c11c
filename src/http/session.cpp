// One HTTP/1.1 connection: read a request header, hand it to the handler with a streaming body reader and
// response writer, then loop for keep-alive. Pipelined requests wait in the read buffer, whose size is
// bounded (ServerOptions::readAheadLimit), so a client cannot queue unbounded work.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include "http/shard.h"

namespace granary::http {
namespace {

namespace bhttp = beast::http;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
using Parser = bhttp::request_parser<bhttp::buffer_body>;

class SessionBodyReader final : public BodyReader {
 public:
  SessionBodyReader(beast::tcp_stream& stream, beast::flat_buffer& buffer, Parser& parser,
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

  beast::tcp_stream& stream_;
  beast::flat_buffer& buffer_;
  Parser& parser_;
  const ServerOptions& opts_;
  bool expectContinue_ = false;
  bool direct_ = false;
  std::uint64_t remaining_ = 0;
};

class SessionWriter final : public ResponseWriter {
 public:
  SessionWriter(beast::tcp_stream& stream, const ServerOptions& opts, bool head, bool keepAlive,
                const bool& stopping)
      : stream_(stream), opts_(opts), head_(head), keepAlive_(keepAlive), stopping_(stopping) {}

  Awaitable<error_code> writeHeader(ResponseHeader header) override {
    res_.base() = std::move(header);
    res_.version(11);
    if (stopping_) keepAlive_ = false;  // shutdown began: this is the connection's last response
    res_.keep_alive(keepAlive_);
    auto s = static_cast<unsigned>(res_.result_int());
    bodyless_ = head_ || s == 204 || s == 304 || (s >= 100 && s < 200);
    sr_.emplace(res_);
    headerSent_ = true;
    stream_.expires_after(opts_.writeTimeout);
    auto [ec, n] = co_await bhttp::async_write_header(stream_, *sr_, kTuple);
    if (ec) failed_ = true;
    co_return ec;
  }

  Awaitable<error_code> writeBody(asio::const_buffer data) override {
    if (!sr_ || failed_) co_return make_error_code(boost::system::errc::not_connected);
    if (bodyless_ || data.size() == 0) co_return error_code{};
    res_.body().data = const_cast<void*>(data.data());
    res_.body().size = data.size();
    res_.body().more = true;
    stream_.expires_after(opts_.writeTimeout);
    auto [ec, n] = co_await bhttp::async_write(stream_, *sr_, kTuple);
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec) failed_ = true;
    co_return ec;
  }

  Awaitable<error_code> finish() override {
    if (!sr_ || failed_) co_return make_error_code(boost::system::errc::not_connected);
    error_code ec;
    if (!bodyless_) {
      res_.body().data = nullptr;
      res_.body().size = 0;
      res_.body().more = false;
      stream_.expires_after(opts_.writeTimeout);
      auto [e, n] = co_await bhttp::async_write(stream_, *sr_, kTuple);
      ec = e;
    }
    if (ec) failed_ = true;
    else finished_ = true;
    co_return ec;
  }

  bool headerSent() const override { return headerSent_; }
  bool finished() const override { return finished_; }
  void closeAfterResponse() override {
    if (!headerSent_) keepAlive_ = false;
  }
  bool keepAlive() const { return keepAlive_ && res_.keep_alive(); }

 private:
  beast::tcp_stream& stream_;
  const ServerOptions& opts_;
  bool head_;
  bool keepAlive_;
  const bool& stopping_;
  bool bodyless_ = false;
  bool headerSent_ = false;
  bool finished_ = false;
  bool failed_ = false;
  bhttp::response<bhttp::buffer_body> res_;
  std::optional<bhttp::response_serializer<bhttp::buffer_body>> sr_;
};

/// Answers a request the server refuses on its own, then the caller closes the connection.
Awaitable<void> sendProtocolError(beast::tcp_stream& stream, RequestHandler& handler, const ServerOptions& opts,
                                  Status status, std::string_view code, std::string_view message) {
  bhttp::response<bhttp::string_body> res{status, 11};
  res.body() = handler.protocolError(res.base(), status, code, message);
  res.keep_alive(false);
  res.prepare_payload();
  stream.expires_after(opts.writeTimeout);
  co_await bhttp::async_write(stream, res, kTuple);
}

/// Checks the request line and each header line against the per-line limit, and their sum against the
/// total (Beast's own header_limit is lenient when a header arrives in pieces).
std::optional<std::pair<Status, std::string_view>> checkHeaderLimits(const RequestHeader& h, std::size_t lineLimit,
                                                                     std::size_t totalLimit) {
  std::size_t total = h.method_string().size() + h.target().size() + 12;
  if (total > lineLimit) return std::pair{Status::bad_request, "The request line is longer than 8 KiB."};
  for (const auto& f : h) {
    const std::size_t line = f.name_string().size() + f.value().size() + 4;
    if (line > lineLimit)
      return std::pair{Status::request_header_fields_too_large, "A request header line is longer than 8 KiB."};
    total += line;
  }
  if (total > totalLimit)
    return std::pair{Status::request_header_fields_too_large, "The request header section is larger than 64 KiB."};
  return std::nullopt;
}

/// Reads and discards a small unread request body so the connection can serve the next request.
/// @return false when the connection must close instead: the body is too large, the client waits for a
///         100 Continue it never got (it will not send the body), or reading failed.
Awaitable<bool> drainUnread(SessionBodyReader& body, std::size_t limit) {
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

/// Answers a request header that could not be read, unless the client simply went away.
Awaitable<void> answerReadError(beast::tcp_stream& stream, RequestHandler& handler, const ServerOptions& opts,
                                error_code ec) {
  if (ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == beast::error::timeout || ec == asio::error::operation_aborted)
    co_return;
  if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow)
    co_await sendProtocolError(stream, handler, opts, Status::request_header_fields_too_large,
                               "RequestHeaderSectionTooLarge",
                               "Your request header section exceeds the maximum allowed size.");
  else
    co_await sendProtocolError(stream, handler, opts, Status::bad_request, "BadRequest",
                               "Malformed HTTP request: " + ec.message());
}

}  // namespace

Awaitable<void> Shard::session(asio::ip::tcp::socket socket, std::uint64_t id) {
  error_code ignored;
  RequestContext ctx;
  ctx.remote = socket.remote_endpoint(ignored);
  ctx.connectionId = id;
  beast::tcp_stream stream(std::move(socket));
  SessionState state{&stream, true};
  sessions_.insert(&state);
  ++open;
  struct Leave {
    Shard* shard;
    SessionState* state;
    ~Leave() {
      shard->sessions_.erase(state);
      --shard->open;
      if (shard->stopping_ && shard->sessions_.empty()) shard->lastSessionEnded();
    }
  } leave{this, &state};

  beast::flat_buffer buffer(opts_.headerLimit + opts_.readAheadLimit);
  for (;;) {
    state.idle = true;
    if (stopping_) break;
    if (buffer.size() == 0) {
      stream.expires_after(opts_.idleTimeout);
      auto [ec, n] = co_await stream.async_read_some(buffer.prepare(16 * 1024), kTuple);
      if (ec) break;  // closed, idle timeout, or shutdown
      buffer.commit(n);
    }
    state.idle = false;

    Parser parser;
    parser.header_limit(static_cast<std::uint32_t>(opts_.headerLimit));
    parser.body_limit(boost::none);  // bodies stream; the handler enforces object-size limits
    stream.expires_after(opts_.readTimeout);
    auto [ec, n] = co_await bhttp::async_read_header(stream, buffer, parser, kTuple);
    if (ec) {
      co_await answerReadError(stream, *handler, opts_, ec);
      break;
    }
    const RequestHeader& req = parser.get().base();
    if (auto bad = checkHeaderLimits(req, opts_.headerLineLimit, opts_.headerLimit)) {
      co_await sendProtocolError(stream, *handler, opts_, bad->first,
                                 bad->first == Status::bad_request ? "InvalidURI" : "RequestHeaderSectionTooLarge",
                                 bad->second);
      break;
    }
    if (req.version() != 11 && req.version() != 10) {
      co_await sendProtocolError(stream, *handler, opts_, Status::http_version_not_supported,
                                 "HttpVersionNotSupported", "Only HTTP/1.0 and HTTP/1.1 are supported.");
      break;
    }

    ++ctx.requestOnConnection;
    SessionBodyReader body(stream, buffer, parser, opts_);
    // "Expect: 100-continue" on a request without a body: nothing to wait for, so the 100 goes out at
    // once. (Answering such a request with only a final status leaves botocore's connection expecting
    // that status line again on its next request: it reads the next response's status as a header.)
    if (body.done() && !body.continueSent() && co_await body.sendContinue()) break;
    SessionWriter writer(stream, opts_, req.method() == bhttp::verb::head, parser.keep_alive() && !stopping_,
                         stopping_);
    try {
      co_await handler->handle(req, ctx, body, writer);
    } catch (const std::exception& e) {
      spdlog::error("handler threw on connection {}: {}", id, e.what());
    }
    if (!writer.finished()) break;  // the handler gave up mid-response: the client sees a cut body
    if (!writer.keepAlive() || stopping_) break;
    if (!body.done() && !co_await drainUnread(body, opts_.drainLimit)) break;
  }
  error_code ec;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  stream.socket().close(ec);
}

}  // namespace granary::http
