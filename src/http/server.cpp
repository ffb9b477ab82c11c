#include "http/server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "http/shard.h"

namespace granary::http {

namespace {
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

std::string describe(const asio::ip::tcp::endpoint& ep) {
  const auto a = ep.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
}
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

void Server::listen() {
  if (listener_) return;
  // One listening socket, without SO_REUSEPORT: a second process (of any user) that tries to bind the
  // same address fails instead of silently taking a share of the connections. Each I/O thread accepts
  // on its own descriptor of that socket (dup), so a connection still stays on the thread that took it.
  auto a = std::make_unique<asio::ip::tcp::acceptor>(listenerCtx_);
  error_code ec;
  a->open(opts_.listen.protocol(), ec);
  if (!ec) a->set_option(asio::socket_base::reuse_address(true), ec);  // TIME_WAIT only; never shares a listener
  if (!ec) a->bind(opts_.listen, ec);
  if (!ec) a->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    const bool taken = ec == asio::error::address_in_use;
    throw std::runtime_error("cannot listen on " + describe(opts_.listen) + ": " + ec.message() +
                             (taken ? " (another process is listening there)" : ""));
  }
  bound_ = a->local_endpoint();
  listener_ = std::move(a);
}

void Server::bind() {
  listen();
  for (unsigned i = 0; i < opts_.threads; ++i) {
    auto shard = std::make_unique<Shard>(opts_, i);
    shard->acceptor = std::make_unique<asio::ip::tcp::acceptor>(shard->ioc);
    const int fd = ::dup(listener_->native_handle());
    if (fd < 0) throw std::runtime_error("cannot listen on " + describe(bound_) + ": dup: " + std::strerror(errno));
    shard->acceptor->assign(bound_.protocol(), fd);
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
  error_code ec;
  if (listener_) listener_->close(ec);  // the threads' descriptors close as each shard stops accepting
  for (auto& s : shards_) asio::post(s->ioc, [shard = s.get()] { shard->beginShutdown(); });
}

std::size_t Server::openConnections() const {
  std::size_t n = 0;
  for (const auto& s : shards_) n += s->open.load();
  return n;
}

}  // namespace granary::http
