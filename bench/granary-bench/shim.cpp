// The latency shim (granary-bench shim): makes a loopback origin cost what S3 costs. This kernel has no
// netem qdisc, so it is done in user space: a TCP proxy that holds the first byte of each response until
// `latency` after its request began, and paces each connection, each way, to `rate` bytes per second.
// A request is data from the client after the previous response began (HTTP/1.1 keep-alive, no
// pipelining: what S3 clients and proxies send).
// SIGUSR1 prints what it relayed so far ("shim: requests=N bytes_to_clients=M"): the benchmarks' count of
// what reached the origin.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <csignal>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>

#include "bench.h"

namespace granary::bench {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// What went through, for SIGUSR1 (one thread: plain counters).
std::uint64_t gRequests = 0, gBytesToClients = 0;

struct Conn {
  explicit Conn(tcp::socket c) : client(std::move(c)), server(client.get_executor()) {}
  tcp::socket client, server;
  enum class State { Idle, Requesting, Responding } state = State::Idle;
  Clock::time_point requestAt;
  std::chrono::microseconds latency{0};
  std::uint64_t rate = 0;
  void close() {
    boost::system::error_code ec;
    client.close(ec);
    server.close(ec);
  }
};

struct Pacer {
  std::uint64_t rate;
  Clock::time_point next = Clock::now();
  /// When `n` bytes may go: a virtual clock that never banks credit while idle.
  Clock::time_point reserve(std::size_t n) {
    const auto now = Clock::now();
    if (next < now) next = now;
    const auto at = next;
    if (rate) next += std::chrono::nanoseconds(static_cast<std::int64_t>(n * 1e9 / static_cast<double>(rate)));
    return at;
  }
};

asio::awaitable<void> pump(std::shared_ptr<Conn> c, bool toServer) {
  tcp::socket& from = toServer ? c->client : c->server;
  tcp::socket& to = toServer ? c->server : c->client;
  asio::steady_timer timer(from.get_executor());
  Pacer pacer{c->rate};
  std::vector<char> buf(64 * 1024);
  for (;;) {
    auto [ec, n] = co_await from.async_read_some(asio::buffer(buf), kTuple);
    if (ec) break;
    if (toServer && c->state != Conn::State::Requesting) {
      c->state = Conn::State::Requesting;
      c->requestAt = Clock::now();
      ++gRequests;
    }
    if (!toServer && c->state == Conn::State::Requesting) {
      c->state = Conn::State::Responding;
      timer.expires_at(c->requestAt + c->latency);  // the first byte waits what S3's first byte waits
      co_await timer.async_wait(kTuple);
    }
    const auto at = pacer.reserve(n);
    if (at > Clock::now()) {
      timer.expires_at(at);
      co_await timer.async_wait(kTuple);
    }
    auto [wec, written] = co_await asio::async_write(to, asio::buffer(buf.data(), n), kTuple);
    if (!toServer) gBytesToClients += written;
    if (wec) break;
  }
  c->close();
}

asio::awaitable<void> serve(std::shared_ptr<Conn> c, tcp::endpoint target) {
  auto [ec] = co_await c->server.async_connect(target, kTuple);
  if (ec) {
    c->close();
    co_return;
  }
  c->client.set_option(tcp::no_delay(true));
  c->server.set_option(tcp::no_delay(true));
  asio::co_spawn(c->client.get_executor(), pump(c, true), asio::detached);
  asio::co_spawn(c->client.get_executor(), pump(c, false), asio::detached);
}

asio::awaitable<void> acceptLoop(tcp::acceptor& acc, tcp::endpoint target, std::chrono::microseconds latency,
                                 std::uint64_t rate) {
  for (;;) {
    auto [ec, sock] = co_await acc.async_accept(kTuple);
    if (ec) continue;
    auto c = std::make_shared<Conn>(std::move(sock));
    c->latency = latency;
    c->rate = rate;
    asio::co_spawn(acc.get_executor(), serve(c, target), asio::detached);
  }
}

std::optional<tcp::endpoint> parseHostPort(const std::string& s) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  std::string host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(host, ec);
  if (ec) return std::nullopt;
  return tcp::endpoint(addr, static_cast<unsigned short>(std::stoul(s.substr(colon + 1))));
}

}  // namespace

int runShim(const std::string& listen, const std::string& target, std::chrono::microseconds latency,
            std::uint64_t rate) {
  const auto l = parseHostPort(listen);
  const auto t = parseHostPort(target);
  if (!l || !t) {
    std::cerr << "granary-bench shim: --listen and --target are IP:PORT\n";
    return 2;
  }
  if (!l->address().is_loopback()) {
    std::cerr << "granary-bench shim: listens on loopback only\n";
    return 2;
  }
  asio::io_context ioc(1);
  tcp::acceptor acc(ioc, *l);
  std::cout << "shim listening on " << acc.local_endpoint().address().to_string() << ":" << acc.local_endpoint().port()
            << " -> " << target << " (first byte +" << latency.count() << " us, " << rate << " B/s per connection)"
            << std::endl;
  asio::co_spawn(ioc, acceptLoop(acc, *t, latency, rate), asio::detached);
  asio::signal_set usr1(ioc, SIGUSR1);
  std::function<void()> report = [&] {
    usr1.async_wait([&](boost::system::error_code ec, int) {
      if (ec) return;
      std::cout << "shim: requests=" << gRequests << " bytes_to_clients=" << gBytesToClients << std::endl;
      report();
    });
  };
  report();
  ioc.run();
  return 0;
}

}  // namespace granary::bench
