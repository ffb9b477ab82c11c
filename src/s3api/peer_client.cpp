#include "s3api/peer_client.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <charconv>
#include <limits>

#include "cluster/peer_auth.h"
#include "upstream/errors.h"

namespace granary::s3api {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using boost::system::error_code;

namespace {

/// "ADDR:PORT" or "[V6]:PORT" as an endpoint; nullopt when malformed.
std::optional<upstream::Endpoint> peerEndpoint(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  const char* b = address.data() + colon + 1;
  const char* e = address.data() + address.size();
  const auto [end, ec] = std::from_chars(b, e, port);
  if (ec != std::errc{} || end != e || port == 0 || port > 65535) return std::nullopt;
  upstream::Endpoint ep;
  ep.host = std::move(host);
  ep.port = static_cast<std::uint16_t>(port);
  return ep;
}

/// The wall clock (the peer protocol's dates; never a test's fake clock).
std::int64_t wallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

PeerAnswer::PeerAnswer(upstream::ConnectionPool& pool, upstream::ConnectionPtr conn,
                       std::chrono::milliseconds readTimeout)
    : pool_(pool), conn_(std::move(conn)), readTimeout_(readTimeout) {
  parser_.body_limit(std::numeric_limits<std::uint64_t>::max());
}

PeerAnswer::~PeerAnswer() { giveBack(false); }

void PeerAnswer::giveBack(bool reusable) {
  if (!conn_) return;
  conn_->tcp().expires_never();
  pool_.release(std::move(conn_), reusable);
}

asio::awaitable<error_code> PeerAnswer::readHeader() {
  auto& s = std::get<upstream::Connection::Plain>(conn_->stream);
  s.expires_after(readTimeout_);
  auto [ec, n] = co_await bhttp::async_read_header(s, conn_->buffer, parser_, asio::as_tuple(asio::use_awaitable));
  (void)n;
  if (ec) giveBack(false);
  co_return ec;
}

asio::awaitable<boost::system::result<std::size_t>> PeerAnswer::read(asio::mutable_buffer buf) {
  if (parser_.is_done() || !conn_) {
    if (parser_.is_done()) giveBack(parser_.keep_alive());
    co_return std::size_t{0};
  }
  auto& s = std::get<upstream::Connection::Plain>(conn_->stream);
  auto& body = parser_.get().body();
  body.data = buf.data();
  body.size = buf.size();
  s.expires_after(readTimeout_);
  auto [ec, n] = co_await bhttp::async_read_some(s, conn_->buffer, parser_, asio::as_tuple(asio::use_awaitable));
  (void)n;
  if (ec == bhttp::error::need_buffer) ec = {};
  const std::size_t got = buf.size() - body.size;
  if (ec) {
    giveBack(false);
    co_return ec;
  }
  if (parser_.is_done()) giveBack(parser_.keep_alive());
  if (got == 0 && !parser_.is_done()) co_return co_await read(buf);  // header bytes only: read on
  co_return got;
}

PeerClient::PeerClient(asio::any_io_executor ex, ClusterOptions opts) : ex_(std::move(ex)), opts_(std::move(opts)) {}

PeerClient::~PeerClient() = default;

void PeerClient::shutdown() {
  for (auto& [addr, pool] : pools_) pool->shutdown();
}

upstream::ConnectionPool* PeerClient::poolFor(const std::string& address) {
  auto it = pools_.find(address);
  if (it != pools_.end()) return it->second.get();
  const auto ep = peerEndpoint(address);
  if (!ep) return nullptr;
  upstream::PoolOptions po;
  po.connectTimeout = opts_.connectTimeout;
  po.maxConnections = 64;
  po.idleTimeout = std::chrono::seconds(20);  // the peer port keeps idle connections for its idle_timeout
  auto pool = std::make_unique<upstream::ConnectionPool>(ex_, *ep, nullptr, po);
  return pools_.emplace(address, std::move(pool)).first->second.get();
}

asio::awaitable<boost::system::result<PeerAnswerPtr>> PeerClient::send(const std::string& address, bhttp::verb method,
                                                                      std::string target) {
  upstream::ConnectionPool* pool = poolFor(address);
  if (!pool) co_return error_code(asio::error::invalid_argument);
  // A kept-alive connection the peer closed meanwhile fails before any answer: that one attempt goes
  // again on a new connection (a new connection that fails is the peer's answer: no retry).
  for (int attempt = 0;; ++attempt) {
    auto conn = co_await pool->acquire();
    if (!conn) co_return conn.error();
    const bool reused = (*conn)->uses > 0;
    bhttp::request<bhttp::empty_body> req{method, target, 11};
    req.set(bhttp::field::host, address);
    for (auto& [name, value] : cluster::signPeerRequest(opts_.secret, opts_.nodeId, bhttp::to_string(method), target,
                                                        wallMillis()))
      req.set(name, value);
    req.keep_alive(true);
    req.prepare_payload();
    auto answer = std::make_unique<PeerAnswer>(*pool, std::move(*conn), opts_.readTimeout);
    auto& s = std::get<upstream::Connection::Plain>(answer->connection().stream);
    s.expires_after(opts_.readTimeout);
    auto [ec, n] = co_await bhttp::async_write(s, req, asio::as_tuple(asio::use_awaitable));
    (void)n;
    if (!ec) ec = co_await answer->readHeader();
    if (!ec) co_return std::move(answer);
    if (!reused || attempt > 0) co_return ec;  // (the answer's destructor closes the connection)
  }
}

}  // namespace granary::s3api
