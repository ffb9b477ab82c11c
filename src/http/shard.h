#pragma once
// Internal to src/http: one I/O thread's acceptor, handler and sessions.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <atomic>
#include <memory>
#include <unordered_set>

#include "http/handler.h"
#include "http/server.h"

namespace granary::http {

/// Per-connection state the shard can reach during shutdown. Lives in the session coroutine's frame.
struct SessionState {
  beast::tcp_stream* stream = nullptr;
  bool idle = true;  // waiting for the next request: safe to close at shutdown
};

class Shard {
 public:
  Shard(const ServerOptions& opts, unsigned index) : opts_(opts), index_(index) {}

  asio::io_context ioc{1};
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor;
  std::unique_ptr<RequestHandler> handler;
  std::atomic<std::size_t> open{0};

  Awaitable<void> acceptLoop();
  Awaitable<void> session(asio::ip::tcp::socket socket, std::uint64_t id);
  /// Runs on this shard's thread.
  void beginShutdown();
  /// After shutdown began and the last session ended: stop the deadline and the handler.
  void lastSessionEnded();

 private:
  const ServerOptions& opts_;
  unsigned index_;
  bool stopping_ = false;
  bool handlerStopped_ = false;
  std::uint64_t nextConnection_ = 0;
  std::unordered_set<SessionState*> sessions_;
  std::unique_ptr<asio::steady_timer> deadline_;
};

}  // namespace granary::http
