// Fuzz target: the HTTP/1.1 server's connection loop (src/http/session.h, the code Shard::session runs),
// over an in-memory stream instead of a socket: the input is what a client sends, delivered in reads
// split at points the input chooses; a small handler reads the body through BodyReader and answers
// through ResponseWriter.
//
// Input: u8 flags, u8 handler read size, u8 max read slice, u8 slice seed, u8 write-failure point, then
// the client's bytes (one or more requests, pipelined).
//   flags & 1: small server limits (header 2 KiB, line 512 B, 16 fields, drain 4 KiB)
//   flags & 2: the client stalls at the end (a timeout) instead of closing
//   flags & 4: the handler reads only part of the body; & 8: none of it (the server drains it)
//   flags & 16: chunked responses; & 32: a 204 answer; & 64: the handler gives up mid-response on its
//   second request; & 128: the client stops taking bytes after (write-failure point * 16) bytes.
// Properties: the session ends; a read never returns more than asked or past Content-Length, and a
// finished body has exactly Content-Length bytes; what the server wrote parses as a sequence of
// well-framed responses, one per request handled (each after at most one 100 Continue), plus at most
// one refusal, cut short only where a handler gave up or the client stopped reading.

// Boost's assertions report through boost::assertion_failed below (and stay on in release replays).
#define BOOST_ENABLE_ASSERT_HANDLER 1

#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "http/session.h"

using namespace granary::http;
using granary::fuzz::Input;
using granary::fuzz::Rng;
namespace bhttp = boost::beast::http;

#include "http/beast_assert.h"  // lets exactly Beast's known-false n >= 5 through (boostorg/beast#2861)

namespace {

/// A client connection in memory, with beast::tcp_stream's interface as the session uses it.
class FakeStream {
 public:
  using executor_type = asio::any_io_executor;

  FakeStream(executor_type ex, std::string_view in, std::size_t maxSlice, std::uint64_t seed, bool stallAtEnd,
             std::size_t writeLimit)
      : ex_(std::move(ex)), in_(in), rng_(seed), maxSlice_(maxSlice), stallAtEnd_(stallAtEnd), writeLimit_(writeLimit) {}

  executor_type get_executor() const { return ex_; }
  void expires_after(std::chrono::steady_clock::duration) {}

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& bufs, Token&& token) {
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& b) {
          error_code ec;
          std::size_t n = 0;
          if (asio::buffer_size(b) == 0) {
          } else if (pos_ < in_.size()) {
            const std::size_t want = std::min(rng_.upTo(maxSlice_), in_.size() - pos_);
            n = asio::buffer_copy(b, asio::buffer(in_.data() + pos_, want));
            pos_ += n;
          } else {
            // The client closed its side, or (a stall) the read timeout of tcp_stream fired.
            ec = stallAtEnd_ ? error_code(beast::error::timeout) : error_code(asio::error::eof);
          }
          auto ex = asio::get_associated_executor(handler, ex_);
          asio::post(ex, asio::append(std::move(handler), ec, n));
        },
        token, bufs);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& bufs, Token&& token) {
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& b) {
          error_code ec;
          std::size_t n = 0;
          if (out_.size() >= writeLimit_ && asio::buffer_size(b) > 0) {
            ec = asio::error::broken_pipe;  // the client went away
          } else {
            for (auto it = asio::buffer_sequence_begin(b); it != asio::buffer_sequence_end(b); ++it) {
              asio::const_buffer cb = *it;
              const std::size_t take = std::min(cb.size(), writeLimit_ - out_.size());
              out_.append(static_cast<const char*>(cb.data()), take);
              n += take;
              if (take < cb.size()) break;
            }
          }
          auto ex = asio::get_associated_executor(handler, ex_);
          asio::post(ex, asio::append(std::move(handler), ec, n));
        },
        token, bufs);
  }

  const std::string& written() const { return out_; }

 private:
  executor_type ex_;
  std::string_view in_;
  std::size_t pos_ = 0;
  Rng rng_;
  std::size_t maxSlice_;
  bool stallAtEnd_;
  std::size_t writeLimit_;
  std::string out_;
};

struct Handled {
  bool head = false;
  bool finished = false;
};

class FuzzHandler final : public RequestHandler {
 public:
  FuzzHandler(std::uint8_t flags, std::size_t readSize) : flags_(flags), readSize_(readSize) {}

  Awaitable<void> handle(const RequestHeader& req, const RequestContext& ctx, BodyReader& body,
                         ResponseWriter& out) override {
    handled.push_back({req.method() == bhttp::verb::head, false});
    FUZZ_CHECK(ctx.requestOnConnection == handled.size(), "requests are numbered");
    const auto declared = body.contentLength();
    std::vector<char> buf(readSize_);
    std::uint64_t total = 0;
    const std::uint64_t budget = (flags_ & 8) ? 0 : (flags_ & 4) ? readSize_ + 3 : ~std::uint64_t{0};
    bool ended = false;
    while (total < budget) {
      auto r = co_await body.read(asio::buffer(buf));
      if (!r) co_return;  // the client is gone (or sent a bad chunk): no answer
      FUZZ_CHECK(*r <= buf.size(), "a read returned more than asked");
      if (*r == 0) {
        ended = true;
        break;
      }
      total += *r;
      if (declared) FUZZ_CHECK(total <= *declared, "a read went past Content-Length");
    }
    if (ended) {
      FUZZ_CHECK(body.done(), "the body ended before it was done");
      if (declared) FUZZ_CHECK(total == *declared, "a finished body is not Content-Length bytes long");
    }
    const std::string text = std::to_string(total) + " bytes\n";
    ResponseHeader h;
    h.result((flags_ & 32) ? Status::no_content : Status::ok);
    if (flags_ & 16) h.set(bhttp::field::transfer_encoding, "chunked");
    else if (!(flags_ & 32)) h.set(bhttp::field::content_length, std::to_string(text.size()));
    if (co_await out.writeHeader(std::move(h))) co_return;
    if ((flags_ & 64) && handled.size() == 2) co_return;  // gives up mid-response
    if (co_await out.writeBody(asio::buffer(text))) co_return;
    if (co_await out.finish()) co_return;
    handled.back().finished = true;
  }

  std::string protocolError(ResponseHeader& res, ProtocolError error, std::string_view) override {
    res.set(bhttp::field::content_type, "application/xml");
    return "<Error><Code>" + std::string(name(error)) + "</Code></Error>";
  }

  std::vector<Handled> handled;

 private:
  std::uint8_t flags_;
  std::size_t readSize_;
};

/// Checks the bytes the server wrote: responses, in order, each well framed.
void checkResponses(const std::string& wire, const std::vector<Handled>& handled, bool mayBeCut) {
  std::size_t pos = 0, finals = 0;
  bool continued = false;
  while (pos < wire.size()) {
    bhttp::response_parser<bhttp::string_body> p;
    p.eager(true);
    // A HEAD response has headers only; a refusal after the handled requests is a plain response.
    if (finals < handled.size() && handled[finals].head) p.skip(true);
    error_code ec;
    std::size_t used = 0;
    while (!p.is_done() && pos + used < wire.size()) {
      const std::size_t n = p.put(asio::buffer(wire.data() + pos + used, wire.size() - pos - used), ec);
      if (ec == bhttp::error::need_more) {
        ec = {};
        break;
      }
      FUZZ_CHECK(!ec, "the server wrote a malformed response: " + ec.message() + "\n" + wire);
      if (n == 0) break;
      used += n;
    }
    if (!p.is_done()) {
      // A cut response (no more bytes to parse): only at the very end, and only when allowed.
      FUZZ_CHECK(mayBeCut || (finals < handled.size() && !handled[finals].finished),
                 "a response was cut short:\n" + wire);
      return;
    }
    pos += used;
    const unsigned status = p.get().result_int();
    if (status == 100) {
      FUZZ_CHECK(!continued, "two 100 Continue for one request");
      continued = true;
      continue;
    }
    FUZZ_CHECK(status >= 200, "an interim response other than 100");
    continued = false;
    ++finals;
  }
  // Every request the handler finished was answered; beyond them, at most one refusal.
  std::size_t finished = 0;
  for (const auto& h : handled) finished += h.finished;
  FUZZ_CHECK(finals >= finished || mayBeCut, "a finished response is missing");
  FUZZ_CHECK(finals <= handled.size() + 1, "more responses than requests");
}

// (A named coroutine, not a lambda: GCC 12 emits a coroutine lambda in an extern "C" function twice.)
Awaitable<void> serve(FakeStream& stream, RequestHandler& handler, const ServerOptions& opts, RequestContext& ctx,
                      bool& idle, const bool& stopping, bool& ended) {
  co_await detail::serveConnection(stream, handler, opts, ctx, 1, idle, stopping);
  ended = true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 256 * 1024) return 0;
  Input in(data, size);
  const std::uint8_t flags = in.u8();
  const std::size_t readSize = 1 + in.u8() * 7;
  const std::uint8_t sliceSel = in.u8();
  const std::size_t maxSlice = sliceSel == 0 ? 1 << 20 : sliceSel;
  const std::uint8_t seed = in.u8();
  const std::uint8_t writeFail = in.u8();
  const std::string_view client = in.rest();

  ServerOptions opts;
  if (flags & 1) {
    opts.headerLimit = 2048;
    opts.headerLineLimit = 512;
    opts.headerCountLimit = 16;
    // (The read buffer, headerLimit + readAheadLimit, must take a 16 KiB read on top of a header
    // section short of headerLimit: the session prepares 16 KiB reads.)
    opts.readAheadLimit = 20 * 1024;
    opts.drainLimit = 4096;
  }
  const std::size_t writeLimit = (flags & 128) ? std::size_t{writeFail} * 16 : ~std::size_t{0} >> 1;

  asio::io_context ioc;
  FakeStream stream(ioc.get_executor(), client, maxSlice, seed, flags & 2, writeLimit);
  FuzzHandler handler(flags, readSize);
  RequestContext ctx;
  ctx.connectionId = 1;
  bool idle = true, stopping = false, ended = false;
  // (Not asio::detached, as Shard does: an exception escaping the session would vanish there.)
  asio::co_spawn(ioc, serve(stream, handler, opts, ctx, idle, stopping, ended), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  ioc.run();
  FUZZ_CHECK(ended, "the session did not end");
  FUZZ_CHECK(ctx.requestOnConnection == handler.handled.size());
  FUZZ_TRACE("http_session: %zu requests handled; wrote:\n%s\n", handler.handled.size(), stream.written().c_str());
  checkResponses(stream.written(), handler.handled, flags & 128);
  return 0;
}
