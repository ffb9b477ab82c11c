// ProxyHandler's admin operations: what CacheAdmin (preload, ls, invalidate) runs on an I/O thread.
// Reads go through handle() itself, as an internal request, so a preload fills the cache exactly as a
// client's GET would (coalescing, read-ahead, admission, metadata) and shows in the access log.

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/uri.h"
#include "s3api/exchange.h"

namespace granary::s3api {
namespace {

namespace bhttp = boost::beast::http;

class EmptyBody final : public http::BodyReader {
 public:
  http::Awaitable<boost::system::result<std::size_t>> read(boost::asio::mutable_buffer) override {
    co_return std::size_t{0};
  }
  std::optional<std::uint64_t> contentLength() const override { return 0; }
  bool done() const override { return true; }
};

/// Takes a response in: status, a few headers, the body counted (and hashed), paced by a RateLimiter.
class SinkWriter final : public http::ResponseWriter {
 public:
  SinkWriter(bool md5, std::shared_ptr<RateLimiter> limit)
      : md5_(md5 ? std::make_unique<Digest>(Digest::Kind::Md5) : nullptr), limit_(std::move(limit)) {}

  http::Awaitable<http::error_code> writeHeader(http::ResponseHeader header) override {
    headerSent_ = true;
    result.status = header.result_int();
    result.cacheStatus = std::string(header["x-granary-cache"]);
    result.etag = std::string(header[bhttp::field::etag]);
    co_return http::error_code{};
  }
  http::Awaitable<http::error_code> writeBody(boost::asio::const_buffer data) override {
    if (result.status >= 300) {
      errorBody_.append(static_cast<const char*>(data.data()), std::min<std::size_t>(data.size(), 4096));
      co_return http::error_code{};
    }
    result.bytes += data.size();
    if (md5_) md5_->update(data.data(), data.size());
    if (limit_) {
      const auto wait = limit_->reserve(data.size());
      if (wait.count() > 0) {
        boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, wait);
        co_await t.async_wait(boost::asio::use_awaitable);
      }
    }
    co_return http::error_code{};
  }
  http::Awaitable<http::error_code> finish() override {
    finished_ = true;
    co_return http::error_code{};
  }
  bool headerSent() const override { return headerSent_; }
  bool finished() const override { return finished_; }
  void closeAfterResponse() override {}

  ProxyHandler::ReadResult take() {
    if (md5_ && result.status < 300) result.md5Hex = md5_->finishHex();
    if (result.status >= 300) {
      pugi::xml_document doc;
      if (doc.load_string(errorBody_.c_str())) result.error = doc.child("Error").child_value("Code");
      if (result.error.empty()) result.error = "HTTP " + std::to_string(result.status);
    } else if (!finished_) {
      result.error = "the read stopped early";
    }
    return std::move(result);
  }

  ProxyHandler::ReadResult result;

 private:
  std::unique_ptr<Digest> md5_;
  std::shared_ptr<RateLimiter> limit_;
  std::string errorBody_;
  bool headerSent_ = false, finished_ = false;
};

}  // namespace

std::chrono::nanoseconds RateLimiter::reserve(std::uint64_t bytes) {
  if (rate_ == 0) return {};
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lk(m_);
  if (next_ < now) next_ = now;
  const auto wait = next_ - now;
  next_ += std::chrono::nanoseconds(static_cast<std::int64_t>(static_cast<double>(bytes) * 1e9 / static_cast<double>(rate_)));
  return std::chrono::duration_cast<std::chrono::nanoseconds>(wait);
}

std::string ProxyHandler::adminMetaKey(const std::string& bucket, const std::string& key, std::string& backendId,
                                       std::string& backendBucket) const {
  const BucketMap& buckets = *opts_.buckets;
  backendId = buckets.backendId(buckets.lookup(bucket).backend);
  backendBucket = std::string(buckets.backendBucket(bucket));
  return metaKeyOf(backendId, backendBucket, key, {});
}

http::Awaitable<ProxyHandler::ListPage> ProxyHandler::adminList(std::string bucket, std::string prefix,
                                                                 std::string token) {
  ListPage page;
  const BucketMap& buckets = *opts_.buckets;
  upstream::UpstreamRequest ur;
  ur.method = bhttp::verb::get;
  ur.bucket = std::string(buckets.backendBucket(bucket));
  ur.query = {{"list-type", "2"}, {"max-keys", "1000"}};
  if (!prefix.empty()) ur.query.emplace_back("prefix", prefix);
  if (!token.empty()) ur.query.emplace_back("continuation-token", token);
  auto resp = co_await upstreams_.at(buckets.lookup(bucket).backend)->send(ur);
  if (!resp) {
    page.error = "backend: " + resp.error().message();
    co_return page;
  }
  pugi::xml_document doc;
  const unsigned status = (*resp)->header().result_int();
  if (!co_await readXml(**resp, 64 << 20, doc)) {
    page.error = "backend answered " + std::to_string(status) + " without a readable listing";
    co_return page;
  }
  if (status != 200) {
    page.error = doc.child("Error").child_value("Code");
    if (page.error.empty()) page.error = "backend answered " + std::to_string(status);
    co_return page;
  }
  const auto root = doc.child("ListBucketResult");
  for (auto c : root.children("Contents")) {
    ListedObject o;
    o.key = c.child_value("Key");
    o.size = std::strtoull(c.child_value("Size"), nullptr, 10);
    o.etag = c.child_value("ETag");
    if (!o.key.empty()) page.objects.push_back(std::move(o));
  }
  if (std::string_view(root.child_value("IsTruncated")) == "true") page.nextToken = root.child_value("NextContinuationToken");
  co_return page;
}

http::Awaitable<ProxyHandler::CachedExtent> ProxyHandler::adminCached(std::string bucket, std::string key) {
  CachedExtent e;
  if (!cache_) co_return e;
  std::string backendId, backendBucket;
  const std::string metaKey = adminMetaKey(bucket, key, backendId, backendBucket);
  auto meta = co_await cache_->lookupMeta(metaKey);
  if (!meta) co_return e;
  cache::ChunkCache& c = cache_->cache();
  const std::uint64_t C = c.chunkSize();
  e.known = true;
  e.size = meta->size;
  e.etag = meta->etag;
  e.chunks = static_cast<std::uint32_t>((meta->size + C - 1) / C);
  for (std::uint32_t i = 0; i < e.chunks; ++i) {
    if (c.couldExist(cache::hashBytes(chunkKeyOf(backendId, backendBucket, key, meta->etag, meta->size, {}, i)))) {
      ++e.cachedChunks;
      e.cachedBytes += std::min<std::uint64_t>(C, meta->size - std::uint64_t{i} * C);
    }
  }
  co_return e;
}

http::Awaitable<ProxyHandler::CachedExtent> ProxyHandler::adminInvalidate(std::string bucket, std::string key) {
  CachedExtent e = co_await adminCached(bucket, key);
  if (!cache_) co_return e;
  std::string backendId, backendBucket;
  const std::string metaKey = adminMetaKey(bucket, key, backendId, backendBucket);
  cache::ChunkCache& c = cache_->cache();
  c.invalidateMeta(metaKey);  // first: no reader finds the chunks through it any more
  for (std::uint32_t i = 0; i < e.chunks; ++i)
    c.forgetChunk(cache::hashBytes(chunkKeyOf(backendId, backendBucket, key, e.etag, e.size, {}, i)));
  co_return e;
}

http::Awaitable<ProxyHandler::ReadResult> ProxyHandler::adminRead(std::string bucket, std::string key, bool md5,
                                                                  std::shared_ptr<RateLimiter> limit) {
  http::RequestHeader req;
  req.method(bhttp::verb::get);
  req.version(11);
  req.target("/" + uriEncode(bucket, true) + "/" + uriEncode(key, false));
  req.set(bhttp::field::host, "granary-admin.invalid");
  http::RequestContext ctx;
  ctx.internal = true;
  EmptyBody body;
  SinkWriter out(md5, std::move(limit));
  co_await handle(req, ctx, body, out);
  co_return out.take();
}

}  // namespace granary::s3api
