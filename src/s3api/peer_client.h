#pragma once
// The client side of the peer protocol: signed HTTP/1.1 requests to other nodes' peer ports over
// keep-alive connections, one pool per peer address on each I/O thread (never shared across threads).
// Connecting is bounded by cluster.peer_connect_timeout and every read or write by
// cluster.peer_read_timeout; nothing is retried (a peer that fails is skipped for the next source).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/system/result.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "s3api/proxy_options.h"
#include "upstream/connection_pool.h"

namespace granary::s3api {

/// One answer of a peer: its status and length, then its body, read in pieces.
class PeerAnswer {
 public:
  PeerAnswer(upstream::ConnectionPool& pool, upstream::ConnectionPtr conn, std::chrono::milliseconds readTimeout);
  ~PeerAnswer();
  PeerAnswer(const PeerAnswer&) = delete;
  PeerAnswer& operator=(const PeerAnswer&) = delete;

  /// Reads the status line and header. @return an error when the peer closed or stalled.
  boost::asio::awaitable<boost::system::error_code> readHeader();
  unsigned status() const { return parser_.get().result_int(); }
  std::optional<std::uint64_t> contentLength() const {
    const auto n = parser_.content_length();
    return n ? std::optional<std::uint64_t>(*n) : std::nullopt;
  }
  /// Reads body bytes into `buf`. @return bytes read (0 at the body's end: the connection goes back to
  ///         its pool when it may be kept), or an error (the connection is closed).
  boost::asio::awaitable<boost::system::result<std::size_t>> read(boost::asio::mutable_buffer buf);
  bool done() const { return parser_.is_done(); }
  upstream::Connection& connection() { return *conn_; }

 private:
  void giveBack(bool reusable);

  upstream::ConnectionPool& pool_;
  upstream::ConnectionPtr conn_;
  std::chrono::milliseconds readTimeout_;
  boost::beast::http::response_parser<boost::beast::http::buffer_body> parser_;
};
using PeerAnswerPtr = std::unique_ptr<PeerAnswer>;

class PeerClient {
 public:
  PeerClient(boost::asio::any_io_executor ex, ClusterOptions opts);
  ~PeerClient();

  /// Sends a body-less signed request to `address` ("ADDR:PORT") for `target` ("/path?query").
  /// @return its answer with the header read, or the error that kept it from coming (no connection in
  ///         time, a reset, a stall).
  boost::asio::awaitable<boost::system::result<PeerAnswerPtr>> send(const std::string& address,
                                                                    boost::beast::http::verb method,
                                                                    std::string target);
  const ClusterOptions& options() const { return opts_; }
  void shutdown();

 private:
  upstream::ConnectionPool* poolFor(const std::string& address);

  boost::asio::any_io_executor ex_;
  ClusterOptions opts_;
  std::map<std::string, std::unique_ptr<upstream::ConnectionPool>> pools_;
};

}  // namespace granary::s3api
