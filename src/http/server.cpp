#include "http/server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <sys/socket.h>

#include "http/shard.h"

namespace granary::http {

namespace {
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
}  // namespace

Awaitable<void> Shard::acceptLoop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor->async_accept(kTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
      // EMFILE/ENFILE and friends: back off instead of spinning.
      spdlog::warn("accept failed: {}", ec.message());
      asio::steady_timer t(ioc, std::chrono::milliseconds(100));
      co_await t.async_wait(kTuple);
      continue;
    }
    error_code ignored;
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    asio::co_spawn(ioc, session(std::move(socket), (static_cast<std::uint64_t>(index_) << 48) | nextConnection_++),
                   asio::detached);
  }
}

void Shard::beginShutdown() {
  if (stopping_) return;
  stopping_ = true;
  error_code ec;
  if (acceptor) acceptor->close(ec);
  for (SessionState* s : sessions_) {
    if (s->idle) s->stream->socket().close(ec);  // wake the idle read; the session ends itself
  }
  if (sessions_.empty()) {
    lastSessionEnded();
    return;
  }
  // At the deadline, cut whatever is still in flight.
  deadline_ = std::make_unique<asio::steady_timer>(ioc, opts_.shutdownTimeout);
  deadline_->async_wait([this](error_code e) {
    if (e) return;
    error_code ignored;
    for (SessionState* s : sessions_) s->stream->socket().close(ignored);
  });
}

void Shard::lastSessionEnded() {
  // In-flight requests may still have needed the handler's backend connections until now.
  if (deadline_) deadline_->cancel();
  if (handler && !handlerStopped_) {
    handlerStopped_ = true;
    handler->shutdown();
  }
}

Server::Server(ServerOptions opts, HandlerFactory factory) : opts_(std::move(opts)), factory_(std::move(factory)) {
  if (opts_.threads == 0) opts_.threads = 1;
}

Server::~Server() = default;

void Server::bind() {
  auto endpoint = opts_.listen;
  for (unsigned i = 0; i < opts_.threads; ++i) {
    auto shard = std::make_unique<Shard>(opts_, i);
    shard->acceptor = std::make_unique<asio::ip::tcp::acceptor>(shard->ioc);
    auto& a = *shard->acceptor;
    a.open(endpoint.protocol());
    a.set_option(asio::socket_base::reuse_address(true));
    a.set_option(ReusePort(true));
    a.bind(endpoint);
    a.listen(asio::socket_base::max_listen_connections);
    if (i == 0) {
      bound_ = a.local_endpoint();
      endpoint = bound_;  // port 0: the others join the port the kernel picked
    }
    shard->handler = factory_(shard->ioc, i);
    shards_.push_back(std::move(shard));
  }
}

void Server::run() {
  std::vector<std::thread> threads;
  for (auto& s : shards_) {
    asio::co_spawn(s->ioc, s->acceptLoop(), asio::detached);
    threads.emplace_back([shard = s.get()] {
      for (;;) {
        try {
          shard->ioc.run();
          break;
        } catch (const std::exception& e) {
          spdlog::error("I/O thread caught: {}", e.what());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
}

void Server::shutdown() {
  if (stopping_.exchange(true)) return;
  for (auto& s : shards_) asio::post(s->ioc, [shard = s.get()] { shard->beginShutdown(); });
}

std::size_t Server::openConnections() const {
  std::size_t n = 0;
  for (const auto& s : shards_) n += s->open.load();
  return n;
}

}  // namespace granary::http
