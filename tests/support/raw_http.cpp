#include "support/raw_http.h"

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <sys/socket.h>

namespace granary::testing {

namespace {
void setTimeout(asio::ip::tcp::socket& s, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}
}  // namespace

RawClient::RawClient(unsigned short port, int timeoutMs) : sock_(ioc_) {
  sock_.connect({asio::ip::make_address("127.0.0.1"), port});
  setTimeout(sock_, timeoutMs);
}

void RawClient::send(std::string_view bytes) { asio::write(sock_, asio::buffer(bytes)); }

std::optional<bhttp::response<bhttp::string_body>> RawClient::read(bool head) {
  bhttp::response_parser<bhttp::string_body> p;
  p.body_limit(1ull << 32);
  p.skip(head);
  boost::system::error_code ec;
  bhttp::read(sock_, buf_, p, ec);
  if (ec) return std::nullopt;
  return p.release();
}

bool RawClient::closedByPeer() {
  char c;
  boost::system::error_code ec;
  if (buf_.size() > 0) return false;
  sock_.read_some(asio::buffer(&c, 1), ec);
  return ec == asio::error::eof || ec == asio::error::connection_reset;
}

std::string RawClient::readRaw(std::size_t n) {
  std::string out(n, '\0');
  std::size_t have = std::min(n, buf_.size());
  asio::buffer_copy(asio::buffer(out.data(), have), buf_.data());
  buf_.consume(have);
  boost::system::error_code ec;
  if (have < n) asio::read(sock_, asio::buffer(out.data() + have, n - have), ec);
  return out;
}

ScriptedBackend::ScriptedBackend(Script script) : acceptor_(ioc_), script_(std::move(script)) {
  asio::ip::tcp::endpoint ep{asio::ip::make_address("127.0.0.1"), 0};
  acceptor_.open(ep.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(ep);
  acceptor_.listen();
  port_ = acceptor_.local_endpoint().port();
  thread_ = std::thread([this] { serve(); });
}

ScriptedBackend::~ScriptedBackend() {
  stop_ = true;
  boost::system::error_code ec;
  // Wake the blocking accept with a throwaway connection.
  asio::ip::tcp::socket s(ioc_);
  s.connect(acceptor_.local_endpoint(), ec);
  thread_.join();
}

void ScriptedBackend::serve() {
  while (!stop_) {
    asio::ip::tcp::socket sock(ioc_);
    boost::system::error_code ec;
    acceptor_.accept(sock, ec);
    if (ec || stop_) return;
    ++connections_;
    setTimeout(sock, 3000);
    boost::beast::flat_buffer buf;
    for (;;) {
      bhttp::request<bhttp::string_body> req;
      bhttp::read(sock, buf, req, ec);
      if (ec) break;
      Reply r = script_(req, requests_++);
      if (r.after == After::ResetBeforeReply) {
        sock.set_option(asio::socket_base::linger(true, 0));
        sock.close(ec);
        break;
      }
      if (r.after == After::Stall) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1500));
        sock.close(ec);
        break;
      }
      r.res.version(11);
      r.res.prepare_payload();
      if (r.after == After::ResetMidBody) {
        bhttp::response_serializer<bhttp::string_body> sr{r.res};
        bhttp::write_header(sock, sr, ec);
        asio::write(sock, asio::buffer(r.res.body().data(), r.res.body().size() / 2), ec);
        sock.set_option(asio::socket_base::linger(true, 0));
        sock.close(ec);
        break;
      }
      r.res.keep_alive(r.after == After::KeepAlive);
      bhttp::write(sock, r.res, ec);
      if (ec || r.after == After::Close) {
        sock.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
        sock.close(ec);
        break;
      }
    }
  }
}

}  // namespace granary::testing
