#pragma once
// The client's request body on its way upstream, checked as it streams: the SHA-256 the client signed,
// each aws-chunked chunk signature, and the declared length. The last byte is held back until every
// check has passed, so a body that fails a check never reaches the backend complete (the backend then
// stores nothing).

#include <optional>
#include <variant>
#include <vector>

#include "common/checksum.h"
#include "http/handler.h"
#include "s3api/auth.h"
#include "s3api/aws_chunked.h"
#include "s3api/errors.h"
#include "s3api/result.h"
#include "upstream/upstream.h"

namespace granary::s3api {

/// The integrity checks a request asks for on its payload: Content-MD5, and one flexible checksum
/// (x-amz-checksum-* in the headers, or named by x-amz-trailer and sent in the aws-chunked trailer).
struct BodyChecks {
  std::optional<std::string> contentMd5;  // base64
  std::optional<ChecksumAlgorithm> checksum;
  std::string checksumHeader;  // "x-amz-checksum-crc32"...
  std::optional<std::string> expected;  // the header's value; nullopt = in the trailer
  bool any() const { return contentMd5 || checksum; }
};

/// The checks a request's headers ask for. @param objectData whether the body is object data
/// (PutObject, UploadPart): flexible checksums describe object data, Content-MD5 any body.
/// @return the checks, or the error for malformed ones (InvalidDigest, InvalidRequest).
S3Result<BodyChecks> bodyChecksFor(const sigv4::HeaderList& headers, bool objectData, bool trailerAllowed);

/// The checks of a request without a body, against the empty payload (BadDigest, or success).
S3Result<void> checkEmptyBody(const BodyChecks& checks);

class VerifiedBody final : public upstream::BodySource {
 public:
  /// @param declaredLength the payload length (decoded length for aws-chunked); nullopt = unknown.
  VerifiedBody(http::BodyReader& client, const VerifiedAuth& auth, std::optional<std::uint64_t> declaredLength,
               BodyChecks checks = {});

  upstream::Awaitable<boost::system::result<std::size_t>> read(upstream::asio::mutable_buffer buf) override;
  bool started() const override { return started_; }

  /// Why the body was refused (set once read() has returned an error).
  const std::optional<S3Failure>& failure() const { return failure_; }
  /// aws-chunked trailers (x-amz-checksum-*), once the body is done. Only the checksum x-amz-trailer
  /// named is verified: see verifiedTrailerChecksum().
  const sigv4::HeaderList* trailers() const { return chunked_ ? &chunked_->trailers() : nullptr; }
  /// The trailer's checksum field (name, value) that x-amz-trailer announced, once the body is done and it
  /// matched the payload; nullopt otherwise.
  const std::optional<std::pair<std::string, std::string>>& verifiedTrailerChecksum() const { return trailerChecksum_; }
  std::uint64_t clientBytes() const { return clientBytes_; }

 private:
  upstream::Awaitable<boost::system::result<std::size_t>> readSome(char* out, std::size_t cap);
  upstream::Awaitable<boost::system::result<std::size_t>> readChunked(char* out, std::size_t cap);
  void digestPayload(const char* p, std::size_t n);
  /// At the end of the payload: Content-MD5 and the checksum; false (and failure_ set) on a mismatch.
  bool checksMatch();
  boost::system::error_code refuse(S3Error e, std::string message = {});

  http::BodyReader& client_;
  PayloadMode mode_;
  std::string expectedHash_;
  std::optional<std::uint64_t> declared_;
  Digest digest_;
  BodyChecks checks_;
  std::optional<Checksum> md5_;
  std::optional<Checksum> checksum_;
  std::optional<AwsChunkedDecoder> chunked_;
  std::vector<char> raw_;
  std::size_t rawPos_ = 0;
  std::size_t rawLen_ = 0;
  bool clientDone_ = false;
  std::uint64_t payloadBytes_ = 0;
  std::uint64_t clientBytes_ = 0;
  bool started_ = false;
  bool ended_ = false;
  bool hasPending_ = false;
  char pending_ = 0;
  std::optional<S3Failure> failure_;
  std::optional<std::pair<std::string, std::string>> trailerChecksum_;
};

/// Passes another body source through and keeps a copy of every byte (write-through PUTs: the bytes
/// fill the cache once the backend has acknowledged them). Stops copying past `limit`.
class CapturingBody final : public upstream::BodySource {
 public:
  CapturingBody(upstream::BodySource& inner, std::string& copy, std::size_t limit)
      : inner_(inner), copy_(copy), limit_(limit) {}
  upstream::Awaitable<boost::system::result<std::size_t>> read(upstream::asio::mutable_buffer buf) override {
    auto r = co_await inner_.read(buf);
    if (r && *r > 0) {
      if (copy_.size() + *r <= limit_) copy_.append(static_cast<const char*>(buf.data()), *r);
      else overflowed_ = true;
    }
    co_return r;
  }
  bool started() const override { return inner_.started(); }
  bool complete() const { return !overflowed_; }

 private:
  upstream::BodySource& inner_;
  std::string& copy_;
  std::size_t limit_;
  bool overflowed_ = false;
};

}  // namespace granary::s3api
