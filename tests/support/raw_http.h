#pragma once
// Blocking helpers for tests that talk raw HTTP to a server on loopback (receive timeouts keep a broken
// server from hanging the test), and a scripted backend for fault injection the real origin cannot do.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <thread>

namespace granary::testing {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;

class RawClient {
 public:
  explicit RawClient(unsigned short port, int timeoutMs = 5000);
  void send(std::string_view bytes);
  /// Reads one response; nullopt when the connection closed (or timed out) first.
  std::optional<bhttp::response<bhttp::string_body>> read(bool head = false);
  /// True when the server closed the connection (read returns EOF) within the timeout.
  bool closedByPeer();
  std::string readRaw(std::size_t n);

 private:
  asio::io_context ioc_;
  asio::ip::tcp::socket sock_;
  boost::beast::flat_buffer buf_;
};

/// A one-thread backend on 127.0.0.1:0 that answers each request through `script` (called with the
/// request and its index over the server's life). The script may ask to reset or close the connection.
class ScriptedBackend {
 public:
  enum class After { KeepAlive, Close, ResetBeforeReply, ResetMidBody, Stall };
  struct Reply {
    bhttp::response<bhttp::string_body> res;
    After after = After::KeepAlive;
  };
  using Script = std::function<Reply(const bhttp::request<bhttp::string_body>&, int index)>;

  explicit ScriptedBackend(Script script);
  ~ScriptedBackend();
  unsigned short port() const { return port_; }
  int requests() const { return requests_.load(); }
  int connections() const { return connections_.load(); }

 private:
  void serve();
  asio::io_context ioc_;
  asio::ip::tcp::acceptor acceptor_;
  Script script_;
  unsigned short port_ = 0;
  std::atomic<int> requests_{0};
  std::atomic<int> connections_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace granary::testing
