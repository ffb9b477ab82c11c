#pragma once
// Internal to src/http: the response writer of one request on a session (see session.h).
//
// A response with a Content-Length (or none, or a body-less one) goes out without Beast's serializer:
// the header is rendered once into a buffer kept for the connection, and held back until the first body
// bytes, so that a small response (a cache hit's header and its few KiB) leaves in one gathered write.
// Each write is tried at once without blocking (sendmsg with MSG_DONTWAIT on a socket): only what the
// socket cannot take goes through the asynchronous write with its timeout. Chunked responses keep
// Beast's serializer, which frames the chunks.
//
// The writer keeps the framing its header promised, whatever the handler does: body bytes past the
// Content-Length never reach the wire (the write fails, and the connection closes after the declared
// bytes), and a response finished short of it fails too, so the connection closes rather than letting
// the client read the next response as the rest of this body.

#include <sys/socket.h>
#include <sys/uio.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "http/handler.h"
#include "http/refusal.h"
#include "http/server.h"

namespace granary::http::detail {

namespace bhttp = beast::http;

/// The response header as HTTP/1.1 puts it on the wire (what Beast's serializer writes for it).
inline void renderHeader(const ResponseHeader& h, std::string& out) {
  out.clear();
  out.append("HTTP/1.1 ");
  const unsigned code = h.result_int();
  out.push_back(static_cast<char>('0' + code / 100 % 10));
  out.push_back(static_cast<char>('0' + code / 10 % 10));
  out.push_back(static_cast<char>('0' + code % 10));
  out.push_back(' ');
  const auto reason = h.reason();
  out.append(reason.data(), reason.size());
  out.append("\r\n");
  for (const auto& f : h) {
    const auto name = f.name_string();
    const auto value = f.value();
    out.append(name.data(), name.size()).append(": ").append(value.data(), value.size()).append("\r\n");
  }
  out.append("\r\n");
}

/// Writes what the socket takes now without blocking (streams that are not sockets: nothing).
/// @return bytes written; 0 when the socket would block or failed (the asynchronous write then tells).
template <class Stream>
std::size_t writeNow(Stream& stream, asio::const_buffer a, asio::const_buffer b) {
  if constexpr (requires { stream.socket().native_handle(); }) {
    iovec iov[2] = {{const_cast<void*>(a.data()), a.size()}, {const_cast<void*>(b.data()), b.size()}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = b.size() > 0 ? 2 : 1;
    const ssize_t n = ::sendmsg(stream.socket().native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    return n > 0 ? static_cast<std::size_t>(n) : 0;
  } else {
    return 0;
  }
}

/// asio::async_write's completion condition: all of it, each write as large as the socket takes.
inline std::size_t untilDone(const error_code& ec, std::size_t) {
  return ec ? 0 : std::numeric_limits<std::size_t>::max() / 2;
}

template <class Stream>
class SessionWriter final : public ResponseWriter {
 public:
  SessionWriter(Stream& stream, const ServerOptions& opts, bool head, bool keepAlive, const bool& stopping,
                std::string& headerBuf)
      : stream_(stream), opts_(opts), head_(head), keepAlive_(keepAlive), stopping_(stopping), headerBuf_(headerBuf) {}

  Awaitable<error_code> writeHeader(ResponseHeader header) override {
    // A header is replaced only while nothing of it went out (see headerSent()).
    if (headerSent()) co_return make_error_code(boost::system::errc::already_connected);
    res_.base() = std::move(header);
    res_.version(11);
    if (stopping_) keepAlive_ = false;  // shutdown began: this is the connection's last response
    auto s = static_cast<unsigned>(res_.result_int());
    bodyless_ = head_ || s == 204 || s == 304 || (s >= 100 && s < 200);
    headerSent_ = true;
    headerPending_ = false;
    declared_.reset();
    bodyBytes_ = 0;
    if (!res_.chunked()) {  // held back until the first body bytes (or finish)
      if (const auto cl = res_.base().find(bhttp::field::content_length); cl != res_.base().end())
        declared_ = parseLength(cl->value());
      if (bodyless_) declared_ = 0;  // (HEAD, 204, 304 and 1xx carry no body bytes whatever they declare)
      if (!declared_) keepAlive_ = false;  // a body of no stated length ends where the connection does
      res_.keep_alive(keepAlive_);
      renderHeader(res_.base(), headerBuf_);
      headerPending_ = true;
      co_return error_code{};
    }
    res_.keep_alive(keepAlive_);
    sr_.emplace(res_);
    stream_.expires_after(opts_.writeTimeout);
    auto [ec, n] = co_await bhttp::async_write_header(stream_, *sr_, kTuple);
    if (ec) failed_ = true;
    co_return ec;
  }

  Awaitable<error_code> writeBody(asio::const_buffer data) override {
    if (!headerSent_ || failed_) co_return make_error_code(boost::system::errc::not_connected);
    if (bodyless_ || data.size() == 0) co_return error_code{};
    if (!sr_) {
      if (declared_ && data.size() > *declared_ - bodyBytes_) {  // past the Content-Length: the declared part only
        framingBroken(bodyBytes_ + data.size());
        data = asio::buffer(data, *declared_ - bodyBytes_);
        bodyBytes_ = *declared_;
        auto ec = co_await writeRaw(data);
        failed_ = true;
        co_return ec ? ec : make_error_code(boost::system::errc::message_size);
      }
      bodyBytes_ += data.size();
      co_return co_await writeRaw(data);
    }
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
    if (!headerSent_ || failed_) co_return make_error_code(boost::system::errc::not_connected);
    error_code ec;
    if (!sr_) {
      ec = co_await writeRaw(asio::const_buffer());  // the header, if no body bytes took it along
      if (!ec && declared_ && bodyBytes_ != *declared_) {
        framingBroken(bodyBytes_);
        ec = make_error_code(boost::system::errc::message_size);
      }
    } else if (!bodyless_) {
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

  /// False while the header is only held back (no byte of it written): the handler may still replace it,
  /// with an error for a failure before the first body byte (a disk-tier read that fails its checksum).
  bool headerSent() const override { return headerSent_ && !headerPending_; }
  bool finished() const override { return finished_; }
  void closeAfterResponse() override {
    if (headerSent()) return;  // too late: the header went out
    keepAlive_ = false;
    if (headerPending_) {  // held back: rendered again with "Connection: close"
      res_.keep_alive(false);
      renderHeader(res_.base(), headerBuf_);
    }
  }
  bool keepAlive() const { return keepAlive_ && res_.keep_alive(); }

 private:
  /// The pending header (if any) and `data`, in one gathered write.
  Awaitable<error_code> writeRaw(asio::const_buffer data) {
    asio::const_buffer head;
    if (headerPending_) head = asio::buffer(headerBuf_);
    headerPending_ = false;
    if (head.size() == 0 && data.size() == 0) co_return error_code{};
    const std::size_t sent = writeNow(stream_, head, data);
    const std::size_t fromHead = std::min(sent, head.size());
    head += fromHead;
    data += sent - fromHead;
    if (head.size() == 0 && data.size() == 0) co_return error_code{};
    const std::array<asio::const_buffer, 2> rest{head, data};
    stream_.expires_after(opts_.writeTimeout);
    // Whatever the socket takes per write (asio::transfer_all would cut a chunk of MiBs into 64 KiB writes).
    auto [ec, n] = co_await asio::async_write(stream_, rest, untilDone, kTuple);
    if (ec) failed_ = true;
    co_return ec;
  }

  /// A handler's body broke its own Content-Length: a bug, which the connection's close contains; told
  /// once per response (status and lengths only: nothing of the client's).
  void framingBroken(std::uint64_t bodyBytes) {
    spdlog::warn("response framing: {} body bytes for a {} response whose Content-Length is {}: the connection "
                 "closes after the declared bytes",
                 bodyBytes, res_.result_int(), *declared_);
  }

  /// A Content-Length value the handler set: decimal digits that fit 64 bits, nothing else (anything else
  /// leaves the body's length unchecked, and the connection closes after it).
  static std::optional<std::uint64_t> parseLength(std::string_view v) {
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size()) return std::nullopt;
    return n;
  }

  Stream& stream_;
  const ServerOptions& opts_;
  bool head_;
  bool keepAlive_;
  const bool& stopping_;
  std::string& headerBuf_;
  bool bodyless_ = false;
  bool headerSent_ = false;
  bool headerPending_ = false;
  bool finished_ = false;
  bool failed_ = false;
  std::optional<std::uint64_t> declared_;  // the Content-Length of a response written without the serializer
  std::uint64_t bodyBytes_ = 0;            // body bytes handed to writeRaw so far
  bhttp::response<bhttp::buffer_body> res_;
  std::optional<bhttp::response_serializer<bhttp::buffer_body>> sr_;
};

}  // namespace granary::http::detail
