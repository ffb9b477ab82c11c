#pragma once
// Internal to ProxyHandler (proxy_handler.cpp, proxy_cache.cpp): one request's state.

#include <cctype>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <pugixml.hpp>

#include "cache/chunk.h"
#include "cache/chunk_source.h"
#include "common/log_escape.h"
#include "common/sigv4.h"
#include "http/handler.h"
#include "s3api/object_plan.h"
#include "s3api/operation.h"
#include "s3api/proxy_handler.h"
#include "s3api/request_checks.h"
#include "s3api/routing.h"

namespace granary::s3api {

struct ProxyHandler::Exchange {
  const http::RequestHeader& req;
  const http::RequestContext& ctx;
  http::BodyReader& body;
  http::ResponseWriter& out;
  std::string requestId;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  RoutedRequest routed;
  S3Op op = S3Op::Unknown;  // resolved once (resolveOperation); its name: opName(op)
  sigv4::HeaderList headers;
  std::string accessKey;
  /// The verified key's entry (null: anonymous, or made inside Granary); its policy decides access.
  const ClientKey* client = nullptr;
  /// A listing whose entries the key's policy allows only in part: filtered by key before it is sent.
  bool filterListing = false;
  /// Listing positions the client sent as Granary's sealed tokens (parameter, token), opened for the backend.
  std::vector<std::pair<std::string, std::string>> sealedMarkers;
  unsigned status = 0;
  std::string errorCode;
  std::uint64_t bytesIn = 0;
  std::uint64_t bytesOut = 0;
  std::string_view cacheStatus = "bypass";  // x-granary-cache of a GET/HEAD answered by the backend
  // Where the bucket lives (set once routed).
  const BucketPolicy* policy = nullptr;
  upstream::Upstream* upstream = nullptr;
  std::string backendBucket;  // the bucket's name at its backend
  const std::string* backendId = nullptr;
};

/// What a request's body is, as planned before any of it is read (ProxyHandler::planBody).
struct BodyPlan {
  std::optional<std::uint64_t> payloadLength;  // once decoded (aws-chunked); nullopt: not declared
  bool hasBody = false;
  BodyChecks checks;  // Content-MD5, x-amz-checksum-*
};

/// A request the front has checked (signature, request checks, policy, body plan, copy source), as its
/// operation handler gets it.
struct ProxyHandler::Call {
  std::shared_ptr<const KeyTable> keys;  // the key table the request was verified against
  VerifiedAuth auth;
  BodyPlan body;
  std::optional<CopySource> copySource;  // CopyObject, UploadPartCopy
  /// A write-back listing: what was pending under its prefix before the backend was asked, so that an
  /// upload landing meanwhile shows in one of the two (the backend's page or this), never in neither.
  std::vector<cache::PendingPtr> pending;
};

/// The request as it goes to the backend, with the body it sends (ProxyHandler::attachBody).
struct ProxyHandler::Outbound {
  explicit Outbound(upstream::UpstreamRequest r) : ur(std::move(r)) {}
  upstream::UpstreamRequest ur;
  std::optional<VerifiedBody> verified;  // the client's body, checked as it is read (when it has one)
  bool fillOnWrite = false;              // write-through: the bytes fill the cache once the backend has them
  std::string written;                   // fillOnWrite: the bytes the backend is sent
  std::optional<CapturingBody> capture;  // fillOnWrite of a streamed body: copies it into `written`
};

using upstream::UpstreamResponsePtr;

/// A backend's response body as another request's body (copies).
class ResponseBody final : public upstream::BodySource {
 public:
  explicit ResponseBody(upstream::UpstreamResponse& r) : r_(r) {}
  upstream::Awaitable<boost::system::result<std::size_t>> read(upstream::asio::mutable_buffer buf) override {
    started_ = true;
    co_return co_await r_.read(buf);
  }
  bool started() const override { return started_; }

 private:
  upstream::UpstreamResponse& r_;
  bool started_ = false;
};

/// Removes every header `name` from `headers`.
void dropHeader(sigv4::HeaderList& headers, std::string_view name);

/// Whether the body is aws-chunked (STREAMING-*), its length the decoded one.
inline bool isStreaming(PayloadMode m) {
  return m == PayloadMode::StreamingSigned || m == PayloadMode::StreamingSignedTrailer ||
         m == PayloadMode::StreamingUnsignedTrailer;
}

/// Granary's sealed listing positions start so (op_listing.cpp seals and opens them).
inline constexpr std::string_view kSealed = "gr1.";

/// The S3 error for a backend that could not be reached or did not answer.
S3Failure upstreamFailure(const boost::system::error_code& ec);

/// Reads a (small) backend body whole; false past `limit` or on a read error.
http::Awaitable<bool> readAll(upstream::UpstreamResponse& resp, std::size_t limit, std::string& out);

/// Reads a backend's XML answer (at most `limit` bytes) into `doc`; false if longer, cut, or not XML.
http::Awaitable<bool> readXml(upstream::UpstreamResponse& resp, std::size_t limit, pugi::xml_document& doc);

/// Gives `doc` S3's XML declaration and a root element `name` in S3's namespace; returns the root.
pugi::xml_node newS3Document(pugi::xml_document& doc, const char* name);

/// The <Name>/<Bucket> children of `root` that say `from` say `to` instead (renamed buckets).
void renameBucket(pugi::xml_node root, const std::string& from, const std::string& to);

/// The cache's metadata key of an object, or of one version of it (versions are immutable: their own
/// entries).
std::string metaKeyOf(const std::string& backendId, const std::string& bucket, const std::string& key,
                      const std::string& versionId);

/// The cache key of chunk `index` of one version of an object. Its ETag and its size are both part of
/// it: bytes of another version, even one a backend reports under the same ETag with another size
/// (s3rver's non-atomic overwrite), can never be found for this one.
inline std::string chunkKeyOf(const std::string& backendId, const std::string& bucket, const std::string& key,
                              const std::string& etag, std::uint64_t size, const std::string& versionId,
                              std::uint32_t index) {
  const cache::ObjectId id{backendId, bucket, key, versionId, etag, size, 0};
  return id.chunkKey(index);
}

/// Request headers that describe the object a PUT creates (kept with a spooled write, sent on upload).
inline bool storedObjectHeader(std::string_view n) {
  return n == "content-type" || n == "content-disposition" || n == "content-language" || n == "cache-control" ||
         n == "expires" || n == "x-amz-storage-class" || n == "x-amz-tagging" || n == "x-amz-website-redirect-location" ||
         n.starts_with("x-amz-meta-") || n.starts_with("x-amz-checksum-");
}

/// ASCII lower case (header names).
inline std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');  // (std::tolower: a call per byte)
  return out;
}

/// A decimal length header (Content-Length, x-amz-decoded-content-length): digits only, at most 19.
inline std::optional<std::uint64_t> parseLength(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

}  // namespace granary::s3api
