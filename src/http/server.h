#pragma once
// The listener: one io_context and one thread per core, each accepting on its own descriptor of one
// listening socket (no SO_REUSEPORT: a port is one process's), with its own RequestHandler and its own
// sessions (a connection stays on one thread for life). Graceful shutdown stops
// accepting, closes idle keep-alive connections, lets in-flight requests finish, and cuts what remains at
// the deadline.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "http/handler.h"

namespace granary::http {

struct ServerOptions {
  asio::ip::tcp::endpoint listen{asio::ip::make_address("127.0.0.1"), 9000};
  unsigned threads = 1;
  std::chrono::milliseconds idleTimeout{60'000};   // keep-alive wait for the next request
  std::chrono::milliseconds readTimeout{30'000};   // a started request header, or a body read, stalling
  std::chrono::milliseconds writeTimeout{60'000};  // the client not taking response bytes
  std::chrono::milliseconds shutdownTimeout{30'000};
  std::size_t headerLimit = 64 * 1024;      // total request header bytes -> 431
  std::size_t headerLineLimit = 8 * 1024;   // one header line -> 431, request line -> 400
  std::size_t headerCountLimit = 200;       // header fields -> 431
  std::size_t readAheadLimit = 128 * 1024;  // bytes buffered beyond the request being served (pipelining)
  std::size_t drainLimit = 1 << 20;         // unread request body drained to keep a connection alive
};

class Shard;

class Server {
 public:
  using HandlerFactory = std::function<std::unique_ptr<RequestHandler>(asio::io_context&, unsigned index)>;

  Server(ServerOptions opts, HandlerFactory factory);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds and listens on the address (throws std::runtime_error naming it on failure, e.g. when another
  /// process holds the port: start-up only). Idempotent. With port 0 the kernel picks the port.
  void listen();
  /// listen(), then one acceptor and one handler (from the factory) per thread.
  void bind();
  asio::ip::tcp::endpoint localEndpoint() const { return bound_; }

  /// Runs the I/O threads; returns when all have stopped after shutdown().
  void run();

  /// Begins a graceful shutdown. Thread-safe and idempotent.
  void shutdown();

  /// Connections open now, over all threads.
  std::size_t openConnections() const;

 private:
  ServerOptions opts_;
  HandlerFactory factory_;
  std::vector<std::unique_ptr<Shard>> shards_;
  asio::io_context listenerCtx_{1};  // owns the listening socket; never run
  std::unique_ptr<asio::ip::tcp::acceptor> listener_;
  asio::ip::tcp::endpoint bound_;
  std::atomic<bool> stopping_{false};
};

}  // namespace granary::http
