#pragma once
// The real backend client: Beast over TCP or TLS, SigV4 re-signing with the backend's credentials,
// path-style or virtual-hosted addressing, a per-thread connection pool and retries with jittered backoff.

#include <boost/asio/ssl/context.hpp>

#include <random>

#include "common/buffer_pool.h"
#include "common/metrics.h"
#include "common/sigv4.h"
#include "upstream/connection_pool.h"
#include "upstream/endpoint.h"
#include "upstream/retry.h"
#include "upstream/upstream.h"

namespace granary::upstream {

/// One backend's request figures, shared by the HttpUpstreams of every I/O thread (read by /metrics).
struct UpstreamStats {
  /// Each attempt: from taking a connection to the response header (time to first byte).
  metrics::DurationHistogram latency;
  std::atomic<std::uint64_t> attempts{0}, retries{0};
  /// Failed attempts by kind: no connection (refused, DNS, pool), timeout, connection lost, 5xx answer.
  std::atomic<std::uint64_t> connectErrors{0}, timeouts{0}, networkErrors{0}, serverErrors{0};
};

struct HttpUpstreamOptions {
  Endpoint endpoint;
  std::string region = "us-east-1";
  sigv4::Credentials credentials;
  std::string caFile;     // PEM bundle; empty = the system's trust store
  bool verifyTls = true;  // false only for tests against self-signed backends
  PoolOptions pool;
  std::chrono::milliseconds readTimeout{60'000};
  RetryPolicy retry;
  std::size_t bodyBufferSize = 256 * 1024;
  /// Virtual-hosted addressing (bucket.host/key), for buckets whose names allow it; else path style.
  bool virtualHosted = false;
  /// Where attempts are counted; null = not counted.
  std::shared_ptr<UpstreamStats> stats;
};

class HttpUpstream final : public Upstream {
 public:
  /// Throws at start-up when the CA file cannot be loaded.
  HttpUpstream(asio::any_io_executor ex, HttpUpstreamOptions opts);
  ~HttpUpstream() override;

  Awaitable<boost::system::result<UpstreamResponsePtr>> send(UpstreamRequest& req) override;
  void shutdown() override;

  /// New backend credentials (SIGHUP reload); applies to the next request signed.
  void setCredentials(sigv4::Credentials creds) override { signer_.setCredentials(std::move(creds)); }
  ConnectionPool& pool() { return pool_; }

  /// The wire path of a request: "/bucket/encoded/key" (empty segments as "%2F"); "/encoded/key" when
  /// the bucket goes in the host name.
  static std::string encodedPath(const UpstreamRequest& req, bool bucketInHost = false);
  /// The canonical URI the request is signed over: encodedPath() with empty segments left as "//".
  static std::string canonicalPath(const UpstreamRequest& req, bool bucketInHost = false);
  /// Whether a bucket can be addressed as a host name label (lower-case letters, digits, '-'; no dots
  /// over TLS, where they would break certificate matching).
  static bool hostCompatible(std::string_view bucket, bool tls);

 private:
  Awaitable<boost::system::result<UpstreamResponsePtr>> attempt(UpstreamRequest& req, bool& mayRetry);
  Awaitable<boost::system::result<UpstreamResponsePtr>> attemptOnce(UpstreamRequest& req, bool& mayRetry);
  Awaitable<boost::system::error_code> writeRequest(Connection& conn, UpstreamRequest& req);

  asio::any_io_executor ex_;
  HttpUpstreamOptions opts_;
  std::unique_ptr<asio::ssl::context> tls_;
  ConnectionPool pool_;
  sigv4::RequestSigner signer_;
  std::mt19937_64 rng_;
  BufferPool buffers_;  // request-body buffers: each streaming request holds its own
};

}  // namespace granary::upstream
