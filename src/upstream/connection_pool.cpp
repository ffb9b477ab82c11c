#include "upstream/connection_pool.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "upstream/errors.h"

namespace granary::upstream {
namespace {
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr auto kResolveTtl = std::chrono::seconds(60);
}  // namespace

bool Connection::looksAlive() {
  auto& sock = tcp().socket();
  if (!sock.is_open()) return false;
  char c;
  ssize_t n = ::recv(sock.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return false;  // orderly close by the peer
  if (n > 0) return false;   // unsolicited bytes (or a TLS close_notify): not reusable
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

void Connection::close() {
  boost::system::error_code ec;
  tcp().socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  tcp().socket().close(ec);
}

ConnectionPool::ConnectionPool(asio::any_io_executor ex, Endpoint endpoint, asio::ssl::context* tls,
                               PoolOptions opts)
    : ex_(ex), endpoint_(std::move(endpoint)), tls_(tls), opts_(opts), resolver_(ex) {}

ConnectionPool::~ConnectionPool() { shutdown(); }

void ConnectionPool::shutdown() {
  shutdown_ = true;
  resolver_.cancel();
  for (auto& c : idle_) c->close();
  total_ -= idle_.size();
  idle_.clear();
  for (auto* w : waiters_) w->cancel();
}

asio::awaitable<boost::system::result<ConnectionPtr>> ConnectionPool::acquire() {
  const auto deadline = std::chrono::steady_clock::now() + opts_.connectTimeout;
  for (;;) {
    if (shutdown_) co_return make_error_code(Error::ShuttingDown);
    const auto now = std::chrono::steady_clock::now();
    while (!idle_.empty()) {
      ConnectionPtr c = std::move(idle_.back());  // LIFO: the warmest connection
      idle_.pop_back();
      if (now - c->idleSince < opts_.idleTimeout && c->looksAlive()) co_return c;
      c->close();
      --total_;
    }
    if (total_ < opts_.maxConnections) {
      ++total_;
      auto r = co_await connect();
      if (!r) {
        --total_;
        wakeOne();
      }
      co_return r;
    }
    if (now >= deadline) co_return make_error_code(Error::PoolExhausted);
    asio::steady_timer timer(ex_, deadline);
    waiters_.push_back(&timer);
    auto it = std::prev(waiters_.end());
    co_await timer.async_wait(kTuple);  // cancelled = a connection came back
    waiters_.erase(it);
  }
}

void ConnectionPool::wakeOne() {
  if (!waiters_.empty()) waiters_.front()->cancel();
}

void ConnectionPool::release(ConnectionPtr conn, bool reusable) {
  if (!conn) return;
  if (reusable && !shutdown_ && conn->buffer.size() == 0) {
    conn->idleSince = std::chrono::steady_clock::now();
    ++conn->uses;
    idle_.push_back(std::move(conn));
  } else {
    conn->close();
    --total_;
  }
  wakeOne();
}

void ConnectionPool::forget() {
  --total_;
  wakeOne();
}

asio::awaitable<boost::system::result<asio::ip::tcp::resolver::results_type>> ConnectionPool::resolve() {
  const auto now = std::chrono::steady_clock::now();
  if (!resolved_.empty() && now - resolvedAt_ < kResolveTtl) co_return resolved_;
  // Asio's resolver runs getaddrinfo on its own background thread: the I/O thread never blocks.
  auto [ec, results] = co_await resolver_.async_resolve(endpoint_.host, std::to_string(endpoint_.port), kTuple);
  if (ec) co_return ec;
  resolved_ = results;
  resolvedAt_ = now;
  co_return results;
}

asio::awaitable<boost::system::result<ConnectionPtr>> ConnectionPool::connect() {
  auto endpoints = co_await resolve();
  if (!endpoints) co_return endpoints.error();
  auto conn = tls_ ? std::make_unique<Connection>(ex_, *tls_) : std::make_unique<Connection>(ex_);
  auto& tcp = conn->tcp();
  tcp.expires_after(opts_.connectTimeout);
  auto [ec, ep] = co_await tcp.async_connect(*endpoints, kTuple);
  if (ec == beast::error::timeout) co_return make_error_code(Error::ConnectTimeout);
  if (ec) co_return ec;
  boost::system::error_code ignored;
  tcp.socket().set_option(asio::ip::tcp::no_delay(true), ignored);
  if (auto* tls = std::get_if<Connection::Tls>(&conn->stream)) {
    if (!SSL_set_tlsext_host_name(tls->native_handle(), endpoint_.host.c_str()))
      co_return boost::system::error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category());
    tls->set_verify_callback(asio::ssl::host_name_verification(endpoint_.host));
    auto [hec] = co_await tls->async_handshake(asio::ssl::stream_base::client, kTuple);
    if (hec) co_return hec;
  }
  tcp.expires_never();
  co_return conn;
}

}  // namespace granary::upstream
