#include "upstream/http_upstream.h"
#include "common/log_escape.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include "upstream/errors.h"

namespace granary::upstream {
namespace {

namespace bhttp = beast::http;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
using ResponseParser = bhttp::response_parser<bhttp::buffer_body>;

template <class Op>
auto onStream(Connection& c, Op&& op) {
  return std::visit([&](auto& s) { return op(s); }, c.stream);
}

std::unique_ptr<asio::ssl::context> makeTlsContext(const HttpUpstreamOptions& o) {
  if (!o.endpoint.tls) return nullptr;
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  if (!o.verifyTls) {
    ctx->set_verify_mode(asio::ssl::verify_none);
    return ctx;
  }
  ctx->set_verify_mode(asio::ssl::verify_peer);
  if (!o.caFile.empty()) ctx->load_verify_file(o.caFile);  // throws with the reason at start-up
  else ctx->set_default_verify_paths();
  return ctx;
}

class HttpUpstreamResponse final : public UpstreamResponse {
 public:
  HttpUpstreamResponse(ConnectionPool& pool, ConnectionPtr conn, std::unique_ptr<ResponseParser> parser,
                       std::chrono::milliseconds readTimeout)
      : pool_(pool), conn_(std::move(conn)), parser_(std::move(parser)), readTimeout_(readTimeout) {
    // A Content-Length body (what S3 sends) is read straight from the socket into the caller's
    // buffer: large reads, no copy through the parser. Chunked bodies go through the parser.
    if (!parser_->is_done() && parser_->content_length()) {
      direct_ = true;
      remaining_ = *parser_->content_length();
    }
  }

  ~HttpUpstreamResponse() override {
    if (conn_) pool_.release(std::move(conn_), done() && parser_->keep_alive());
  }

  const ResponseHeader& header() const override { return parser_->get().base(); }
  std::optional<std::uint64_t> contentLength() const override {
    auto cl = parser_->content_length();
    if (cl) return *cl;
    return std::nullopt;
  }
  bool done() const override { return direct_ ? remaining_ == 0 : parser_->is_done(); }

  Awaitable<boost::system::result<std::size_t>> read(asio::mutable_buffer buf) override {
    if (direct_) co_return co_await readDirect(buf);
    for (;;) {
      if (parser_->is_done()) {
        if (conn_) pool_.release(std::move(conn_), parser_->keep_alive());
        co_return std::size_t{0};
      }
      if (!conn_) co_return make_error_code(asio::error::not_connected);
      parser_->get().body().data = buf.data();
      parser_->get().body().size = buf.size();
      conn_->tcp().expires_after(readTimeout_);
      auto [ec, n] = co_await onStream(*conn_, [&](auto& s) {
        return bhttp::async_read(s, conn_->buffer, *parser_, kTuple);
      });
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec) co_return fail(ec);
      std::size_t got = buf.size() - parser_->get().body().size;
      if (parser_->is_done()) pool_.release(std::move(conn_), parser_->keep_alive());
      if (got > 0 || !conn_) co_return got;
    }
  }

 private:
  boost::system::error_code fail(boost::system::error_code ec) {
    if (conn_) pool_.release(std::move(conn_), false);
    return ec == beast::error::timeout ? make_error_code(Error::ResponseTimeout) : ec;
  }

  Awaitable<boost::system::result<std::size_t>> readDirect(asio::mutable_buffer buf) {
    if (remaining_ == 0) {
      if (conn_) pool_.release(std::move(conn_), parser_->keep_alive());
      co_return std::size_t{0};
    }
    if (!conn_) co_return make_error_code(asio::error::not_connected);
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), remaining_));
    std::size_t got = 0;
    if (conn_->buffer.size() > 0) {  // body bytes that arrived with the header
      got = asio::buffer_copy(asio::buffer(buf.data(), want), conn_->buffer.data());
      conn_->buffer.consume(got);
    } else {
      conn_->tcp().expires_after(readTimeout_);
      auto [ec, n] = co_await onStream(*conn_, [&](auto& s) {
        return s.async_read_some(asio::buffer(buf.data(), want), kTuple);
      });
      if (ec == asio::error::eof) ec = bhttp::error::partial_message;  // closed before the declared length
      if (ec) co_return fail(ec);
      got = n;
    }
    remaining_ -= got;
    if (remaining_ == 0) pool_.release(std::move(conn_), parser_->keep_alive());
    co_return got;
  }

  ConnectionPool& pool_;
  ConnectionPtr conn_;
  std::unique_ptr<ResponseParser> parser_;
  std::chrono::milliseconds readTimeout_;
  bool direct_ = false;
  std::uint64_t remaining_ = 0;
};

}  // namespace

HttpUpstream::HttpUpstream(asio::any_io_executor ex, HttpUpstreamOptions opts)
    : ex_(ex),
      opts_(std::move(opts)),
      tls_(makeTlsContext(opts_)),
      pool_(ex, opts_.endpoint, tls_.get(), opts_.pool),
      signer_(opts_.credentials, opts_.region),
      rng_(std::random_device{}()),
      buffers_(opts_.bodyBufferSize, 16) {}

HttpUpstream::~HttpUpstream() = default;

void HttpUpstream::shutdown() { pool_.shutdown(); }

bool HttpUpstream::hostCompatible(std::string_view bucket, bool tls) {
  if (bucket.size() < 3 || bucket.size() > 63 || bucket.front() == '-' || bucket.back() == '-') return false;
  for (char c : bucket) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || (c == '.' && !tls);
    if (!ok) return false;
  }
  return bucket.find("..") == std::string_view::npos && bucket.front() != '.' && bucket.back() != '.';
}

std::string HttpUpstream::canonicalPath(const UpstreamRequest& req, bool bucketInHost) {
  // "/bucket/key", or "/key" with the bucket in the Host. The bucket is one path segment whatever it holds:
  // a '/' in it is encoded, never the start of a second segment.
  std::string encoded = "/";
  if (!bucketInHost && !req.bucket.empty()) {
    encoded += uriEncode(req.bucket, true);
    if (!req.key.empty()) encoded += "/";
  }
  encoded += uriEncode(req.key, false);
  return encoded;
}

std::string HttpUpstream::encodedPath(const UpstreamRequest& req, bool bucketInHost) {
  // Empty path segments ("a//b") are sent as "a/%2Fb", as the AWS SDK for Java does: S3 decodes both to the
  // same key, while routers and HTTP stacks (s3rver's among them) collapse or reject "//". The signature does
  // not cover this form but canonicalPath()'s: S3 and RGW decode the path and re-encode it, '/' unescaped.
  const std::string encoded = canonicalPath(req, bucketInHost);
  std::string out;
  out.reserve(encoded.size() + 8);
  for (char c : encoded) {
    if (c == '/' && !out.empty() && (out.back() == '/' || out.ends_with("%2F"))) out += "%2F";
    else out.push_back(c);
  }
  return out;
}

Awaitable<boost::system::error_code> HttpUpstream::writeRequest(Connection& conn, UpstreamRequest& req) {
  const bool bucketInHost =
      opts_.virtualHosted && !req.bucket.empty() && hostCompatible(req.bucket, opts_.endpoint.tls);
  const std::string path = encodedPath(req, bucketInHost);
  const std::string query = canonicalQueryString(req.query);
  sigv4::HeaderList headers = req.headers;
  headers.emplace_back("host", bucketInHost ? req.bucket + "." + opts_.endpoint.hostHeader() : opts_.endpoint.hostHeader());
  signer_.sign(bhttp::to_string(req.method), canonicalPath(req, bucketInHost), req.query, headers, req.payloadHash,
               std::chrono::system_clock::now(), req.credentials.get());

  bhttp::request<bhttp::buffer_body> r{req.method, query.empty() ? path : path + "?" + query, 11};
  for (const auto& [k, v] : headers) r.insert(k, v);
  const bool streaming = req.source != nullptr;
  const std::uint64_t length = streaming ? req.contentLength.value_or(0) : req.bufferedBody.size();
  if (streaming && !req.contentLength) r.chunked(true);
  else if (length > 0 || bhttp::verb::put == req.method || bhttp::verb::post == req.method) r.content_length(length);
  r.keep_alive(true);

  bhttp::request_serializer<bhttp::buffer_body> sr{r};
  auto& tcp = conn.tcp();
  tcp.expires_after(opts_.readTimeout);
  auto [ec, n] = co_await onStream(conn, [&](auto& s) { return bhttp::async_write_header(s, sr, kTuple); });
  if (ec) co_return ec;

  std::uint64_t sent = 0;
  std::optional<BufferPool::Lease> buffer;
  if (streaming) buffer.emplace(buffers_);
  for (;;) {
    std::size_t chunk = 0;
    if (!streaming) {
      if (sent < req.bufferedBody.size()) chunk = req.bufferedBody.size();
      r.body().data = req.bufferedBody.data();
    } else {
      auto got = co_await req.source->read(asio::buffer(buffer->data(), buffer->size()));
      if (!got) co_return make_error_code(Error::BodySourceFailed);
      chunk = *got;
      r.body().data = buffer->data();
    }
    if (req.contentLength && streaming && sent + chunk > *req.contentLength)
      co_return make_error_code(Error::BodySourceFailed);
    if (chunk == 0) {
      if (streaming && req.contentLength && sent != *req.contentLength)
        co_return make_error_code(Error::BodySourceFailed);
      r.body().data = nullptr;
      r.body().size = 0;
      r.body().more = false;
    } else {
      r.body().size = chunk;
      r.body().more = true;
    }
    tcp.expires_after(opts_.readTimeout);
    auto [wec, wn] = co_await onStream(conn, [&](auto& s) { return bhttp::async_write(s, sr, kTuple); });
    if (wec == bhttp::error::need_buffer) wec = {};
    if (wec) co_return wec;
    sent += chunk;
    if (chunk == 0) co_return boost::system::error_code{};
  }
}

namespace {

void countFailure(UpstreamStats* stats, const boost::system::error_code& ec) {
  if (!stats || ec == make_error_code(Error::BodySourceFailed) || ec == make_error_code(Error::ShuttingDown)) return;
  if (ec == make_error_code(Error::ConnectTimeout) || ec == make_error_code(Error::PoolExhausted) ||
      ec == asio::error::connection_refused || ec == asio::error::host_not_found ||
      ec == asio::error::host_not_found_try_again || ec == asio::error::network_unreachable ||
      ec == asio::error::host_unreachable)
    stats->connectErrors.fetch_add(1, std::memory_order_relaxed);
  else if (ec == make_error_code(Error::ResponseTimeout))
    stats->timeouts.fetch_add(1, std::memory_order_relaxed);
  else
    stats->networkErrors.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

Awaitable<boost::system::result<UpstreamResponsePtr>> HttpUpstream::attempt(UpstreamRequest& req, bool& mayRetry) {
  auto r = co_await attemptOnce(req, mayRetry);
  if (auto* stats = opts_.stats.get()) {
    stats->attempts.fetch_add(1, std::memory_order_relaxed);
    if (!r) countFailure(stats, r.error());
    else if ((*r)->header().result_int() >= 500) stats->serverErrors.fetch_add(1, std::memory_order_relaxed);
  }
  co_return r;
}

Awaitable<boost::system::result<UpstreamResponsePtr>> HttpUpstream::attemptOnce(UpstreamRequest& req, bool& mayRetry) {
  const auto started = std::chrono::steady_clock::now();
  auto acquired = co_await pool_.acquire();
  if (!acquired) co_return acquired.error();
  ConnectionPtr conn = std::move(*acquired);

  auto ec = co_await writeRequest(*conn, req);
  if (req.source && req.source->started()) mayRetry = false;
  if (ec) {
    pool_.release(std::move(conn), false);
    co_return ec == beast::error::timeout ? make_error_code(Error::ResponseTimeout) : ec;
  }
  auto parser = std::make_unique<ResponseParser>();
  parser->body_limit(boost::none);
  parser->header_limit(256 * 1024);
  if (req.method == bhttp::verb::head) parser->skip(true);
  conn->tcp().expires_after(opts_.readTimeout);
  auto [rec, n] = co_await onStream(*conn, [&](auto& s) {
    return bhttp::async_read_header(s, conn->buffer, *parser, kTuple);
  });
  if (rec) {
    pool_.release(std::move(conn), false);
    co_return rec == beast::error::timeout ? make_error_code(Error::ResponseTimeout) : rec;
  }
  if (opts_.stats) opts_.stats->latency.observe(std::chrono::steady_clock::now() - started);
  co_return std::make_unique<HttpUpstreamResponse>(pool_, std::move(conn), std::move(parser), opts_.readTimeout);
}

Awaitable<boost::system::result<UpstreamResponsePtr>> HttpUpstream::send(UpstreamRequest& req) {
  boost::system::result<UpstreamResponsePtr> last = make_error_code(Error::ShuttingDown);
  for (int attemptNo = 1;; ++attemptNo) {
    bool mayRetry = req.retriable;
    last = co_await attempt(req, mayRetry);
    if (req.source && req.source->started()) mayRetry = false;
    const bool canRetry = mayRetry && attemptNo < opts_.retry.maxAttempts;
    if (last) {
      const unsigned status = (*last)->header().result_int();
      if (!canRetry || !RetryPolicy::retriableStatus(status)) co_return last;
      spdlog::warn("backend answered {} to {} /{}/{}; retrying (attempt {})", status,
                   bhttp::to_string(req.method), logSafe(req.bucket), logSafe(req.key), attemptNo);
      last = UpstreamResponsePtr{};  // drops (closes) the connection of the failed attempt
    } else {
      if (!canRetry || !RetryPolicy::retriableError(last.error())) co_return last;
      spdlog::warn("backend request {} /{}/{} failed: {}; retrying (attempt {})", bhttp::to_string(req.method),
                   logSafe(req.bucket), logSafe(req.key), last.error().message(), attemptNo);
    }
    if (opts_.stats) opts_.stats->retries.fetch_add(1, std::memory_order_relaxed);
    asio::steady_timer t(ex_, opts_.retry.backoff(attemptNo, rng_));
    co_await t.async_wait(kTuple);
  }
}

}  // namespace granary::upstream
