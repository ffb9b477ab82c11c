#pragma once
// A per-thread pool of keep-alive connections to one backend endpoint, with a cap. Lives on one
// io_context; never touched from another thread.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <deque>
#include <list>
#include <memory>
#include <variant>

#include "upstream/endpoint.h"

namespace granary::upstream {

namespace asio = boost::asio;
namespace beast = boost::beast;

struct Connection {
  using Plain = beast::tcp_stream;
  using Tls = beast::ssl_stream<beast::tcp_stream>;

  explicit Connection(const asio::any_io_executor& ex) : stream(std::in_place_type<Plain>, ex) {}
  Connection(const asio::any_io_executor& ex, asio::ssl::context& ctx) : stream(std::in_place_type<Tls>, ex, ctx) {}

  beast::tcp_stream& tcp() {
    return std::visit([](auto& s) -> beast::tcp_stream& { return beast::get_lowest_layer(s); }, stream);
  }
  /// Non-blocking liveness probe of an idle connection: false if the peer closed it or sent bytes
  /// nobody asked for.
  bool looksAlive();
  void close();

  std::variant<Plain, Tls> stream;
  beast::flat_buffer buffer;
  std::chrono::steady_clock::time_point idleSince{};
  std::uint32_t uses = 0;
};
using ConnectionPtr = std::unique_ptr<Connection>;

struct PoolOptions {
  std::size_t maxConnections = 64;
  std::chrono::milliseconds connectTimeout{5000};
  /// Idle connections older than this are closed rather than reused (servers close idle
  /// keep-alive connections: Node after 5 s, S3 after ~20 s).
  std::chrono::milliseconds idleTimeout{4000};
};

class ConnectionPool {
 public:
  ConnectionPool(asio::any_io_executor ex, Endpoint endpoint, asio::ssl::context* tls, PoolOptions opts);
  ~ConnectionPool();

  /// A live connection: a pooled one if any, else a new one (waits while the cap is reached).
  /// @return Error::PoolExhausted, Error::ConnectTimeout, resolver, connect or TLS errors.
  asio::awaitable<boost::system::result<ConnectionPtr>> acquire();
  /// Returns a connection; `reusable` false closes it. Wakes one waiter.
  void release(ConnectionPtr conn, bool reusable);
  /// Accounts for a connection that was closed and not returned.
  void forget();
  void shutdown();

  std::size_t total() const { return total_; }
  std::size_t idle() const { return idle_.size(); }
  const Endpoint& endpoint() const { return endpoint_; }

 private:
  asio::awaitable<boost::system::result<ConnectionPtr>> connect();
  asio::awaitable<boost::system::result<asio::ip::tcp::resolver::results_type>> resolve();
  void wakeOne();

  asio::any_io_executor ex_;
  Endpoint endpoint_;
  asio::ssl::context* tls_;
  PoolOptions opts_;
  asio::ip::tcp::resolver resolver_;
  asio::ip::tcp::resolver::results_type resolved_;
  std::chrono::steady_clock::time_point resolvedAt_{};
  std::deque<ConnectionPtr> idle_;
  std::list<asio::steady_timer*> waiters_;
  std::size_t total_ = 0;
  bool shutdown_ = false;
};

}  // namespace granary::upstream
