#include "s3api/verified_body.h"

#include "upstream/errors.h"

namespace granary::s3api {

S3Result<BodyChecks> bodyChecksFor(const sigv4::HeaderList& headers, bool objectData, bool trailerAllowed) {
  BodyChecks c;
  const std::string* trailer = nullptr;
  for (const auto& [name, value] : headers) {
    if (name == "content-md5") {
      if (!isBase64Of(value, 16)) return S3Failure{S3Error::InvalidDigest, {}, {{"Content-MD5", value}}};
      c.contentMd5 = value;
    } else if (name == "x-amz-trailer") {
      trailer = &value;
    } else if (auto alg = checksumFromHeader(name); alg && objectData) {
      if (c.checksum)
        return S3Failure{S3Error::InvalidRequest,
                         "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.", {}};
      const std::size_t bytes = *alg == ChecksumAlgorithm::Crc64Nvme ? 8
                                : (*alg == ChecksumAlgorithm::Crc32 || *alg == ChecksumAlgorithm::Crc32c) ? 4
                                : *alg == ChecksumAlgorithm::Sha1 ? 20 : 32;
      if (!isBase64Of(value, bytes))
        return S3Failure{S3Error::InvalidRequest, "Value for " + name + " header is invalid.", {}};
      c.checksum = alg;
      c.checksumHeader = name;
      c.expected = value;
    }
  }
  if (trailer && objectData) {
    std::string name = *trailer;
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    const auto alg = checksumFromHeader(name);
    if (!alg || !trailerAllowed)
      return S3Failure{S3Error::InvalidRequest, "x-amz-trailer '" + *trailer + "' is not supported with this request.", {}};
    if (c.checksum)
      return S3Failure{S3Error::InvalidRequest,
                       "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.", {}};
    c.checksum = alg;
    c.checksumHeader = std::move(name);
  }
  return c;
}

S3Result<void> checkEmptyBody(const BodyChecks& checks) {
  if (checks.contentMd5 && Checksum(ChecksumAlgorithm::Md5).finishBase64() != *checks.contentMd5)
    return S3Failure{S3Error::BadDigest, {}, {}};
  if (checks.checksum && checks.expected && Checksum(*checks.checksum).finishBase64() != *checks.expected)
    return S3Failure{S3Error::BadDigest,
                     "The " + std::string(checksumName(*checks.checksum)) + " you specified did not match the calculated checksum.",
                     {}};
  return {};
}

VerifiedBody::VerifiedBody(http::BodyReader& client, const VerifiedAuth& auth,
                           std::optional<std::uint64_t> declaredLength, BodyChecks checks)
    : client_(client),
      mode_(auth.payload),
      expectedHash_(auth.payloadHash),
      declared_(declaredLength),
      checks_(std::move(checks)) {
  if (checks_.contentMd5) md5_.emplace(ChecksumAlgorithm::Md5);
  if (checks_.checksum) checksum_.emplace(*checks_.checksum);
  if (mode_ == PayloadMode::StreamingSigned || mode_ == PayloadMode::StreamingSignedTrailer ||
      mode_ == PayloadMode::StreamingUnsignedTrailer) {
    AwsChunkedDecoder::Options o;
    o.signedChunks = mode_ != PayloadMode::StreamingUnsignedTrailer;
    o.trailer = mode_ != PayloadMode::StreamingSigned;
    o.signedTrailer = mode_ == PayloadMode::StreamingSignedTrailer;
    o.signingKey = auth.signingKey;
    o.scope = auth.scope;
    o.amzDate = auth.amzDate;
    o.seedSignature = auth.seedSignature;
    chunked_.emplace(std::move(o));
    raw_.resize(64 * 1024);
  }
}

boost::system::error_code VerifiedBody::refuse(S3Error e, std::string message) {
  if (!failure_) failure_ = S3Failure{e, std::move(message), {}};
  return make_error_code(upstream::Error::BodySourceFailed);
}

upstream::Awaitable<boost::system::result<std::size_t>> VerifiedBody::read(upstream::asio::mutable_buffer buf) {
  char* out = static_cast<char*>(buf.data());
  if (buf.size() < 2) co_return refuse(S3Error::InternalError, "body buffer too small");
  for (;;) {
    if (ended_) {
      if (!hasPending_) co_return std::size_t{0};
      out[0] = pending_;
      hasPending_ = false;
      co_return std::size_t{1};
    }
    std::size_t pos = 0;
    if (hasPending_) {
      out[0] = pending_;
      hasPending_ = false;
      pos = 1;
    }
    auto r = co_await readSome(out + pos, buf.size() - pos);
    if (!r) co_return r.error();
    if (*r == 0) {  // the whole body arrived and every check passed
      ended_ = true;
      co_return pos;
    }
    const std::size_t total = pos + *r;
    pending_ = out[total - 1];
    hasPending_ = true;
    if (total > 1) co_return total - 1;
  }
}

void VerifiedBody::digestPayload(const char* p, std::size_t n) {
  if (md5_) md5_->update(p, n);
  if (checksum_) checksum_->update(p, n);
}

bool VerifiedBody::checksMatch() {
  if (md5_ && md5_->finishBase64() != *checks_.contentMd5) {
    refuse(S3Error::BadDigest);
    return false;
  }
  if (!checksum_) return true;
  std::optional<std::string> expected = checks_.expected;
  if (!expected && chunked_) {
    for (const auto& [name, value] : chunked_->trailers())
      if (name == checks_.checksumHeader) expected = value;
    if (!expected) {
      refuse(S3Error::InvalidRequest, "x-amz-trailer names " + checks_.checksumHeader + " but the trailer did not carry it.");
      return false;
    }
  }
  if (!expected || checksum_->finishBase64() != *expected) {
    refuse(S3Error::BadDigest, "The " + std::string(checksumName(checksum_->algorithm())) +
                                   " you specified did not match the calculated checksum.");
    return false;
  }
  if (!checks_.expected) trailerChecksum_ = std::pair{checks_.checksumHeader, *expected};
  return true;
}

upstream::Awaitable<boost::system::result<std::size_t>> VerifiedBody::readSome(char* out, std::size_t cap) {
  if (chunked_) co_return co_await readChunked(out, cap);
  auto r = co_await client_.read(upstream::asio::buffer(out, cap));
  if (!r) co_return refuse(S3Error::IncompleteBody, "The client stopped sending the body: " + r.error().message());
  started_ = true;
  clientBytes_ += *r;
  if (*r > 0) {
    payloadBytes_ += *r;
    if (mode_ == PayloadMode::Sha256) digest_.update(out, *r);
    digestPayload(out, *r);
    if (declared_ && payloadBytes_ > *declared_) co_return refuse(S3Error::IncompleteBody, "The body is longer than declared.");
    co_return *r;
  }
  if (declared_ && payloadBytes_ != *declared_) co_return refuse(S3Error::IncompleteBody);
  if (mode_ == PayloadMode::Sha256 && digest_.finishHex() != expectedHash_)
    co_return refuse(S3Error::XAmzContentSHA256Mismatch);
  if (!checksMatch()) co_return make_error_code(upstream::Error::BodySourceFailed);
  co_return std::size_t{0};
}

upstream::Awaitable<boost::system::result<std::size_t>> VerifiedBody::readChunked(char* out, std::size_t cap) {
  for (;;) {
    if (rawPos_ < rawLen_) {
      auto step = chunked_->decode(raw_.data() + rawPos_, rawLen_ - rawPos_, out, cap);
      rawPos_ += step.consumed;
      payloadBytes_ += step.produced;
      digestPayload(out, step.produced);
      switch (chunked_->state()) {
        case AwsChunkedDecoder::State::Malformed:
          co_return refuse(S3Error::IncompleteBody, "Malformed aws-chunked body: " + chunked_->error());
        case AwsChunkedDecoder::State::MalformedTrailer:
          co_return refuse(S3Error::MalformedTrailerError, {});
        case AwsChunkedDecoder::State::BadSignature:
          co_return refuse(S3Error::SignatureDoesNotMatch,
                           "The request signature we calculated does not match the signature you provided: " +
                               chunked_->error());
        default: break;
      }
      if (declared_ && payloadBytes_ > *declared_)
        co_return refuse(S3Error::IncompleteBody, "The decoded body is longer than x-amz-decoded-content-length.");
      if (step.produced > 0) co_return step.produced;
    }
    if (chunked_->state() == AwsChunkedDecoder::State::Done) {
      // Nothing may follow the encoding's end: bytes that no one checks never pass as part of a body.
      while (rawPos_ == rawLen_ && !clientDone_) {
        auto r = co_await client_.read(upstream::asio::buffer(raw_));
        if (!r) co_return refuse(S3Error::IncompleteBody, "The client stopped sending the body: " + r.error().message());
        clientBytes_ += *r;
        rawPos_ = 0;
        rawLen_ = *r;
        if (*r == 0) clientDone_ = true;
      }
      if (rawPos_ < rawLen_) co_return refuse(S3Error::IncompleteBody, "Data follows the end of the aws-chunked body.");
      if (declared_ && payloadBytes_ != *declared_)
        co_return refuse(S3Error::IncompleteBody, "The decoded body is shorter than x-amz-decoded-content-length.");
      if (!checksMatch()) co_return make_error_code(upstream::Error::BodySourceFailed);
      co_return std::size_t{0};
    }
    if (clientDone_) co_return refuse(S3Error::IncompleteBody, "The aws-chunked body ended early.");
    auto r = co_await client_.read(upstream::asio::buffer(raw_));
    if (!r) co_return refuse(S3Error::IncompleteBody, "The client stopped sending the body: " + r.error().message());
    started_ = true;
    clientBytes_ += *r;
    rawPos_ = 0;
    rawLen_ = *r;
    if (*r == 0) clientDone_ = true;
  }
}

}  // namespace granary::s3api
