#include "s3api/verified_body.h"

#include "upstream/errors.h"

namespace granary::s3api {

VerifiedBody::VerifiedBody(http::BodyReader& client, const VerifiedAuth& auth,
                           std::optional<std::uint64_t> declaredLength)
    : client_(client), mode_(auth.payload), expectedHash_(auth.payloadHash), declared_(declaredLength) {
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

upstream::Awaitable<boost::system::result<std::size_t>> VerifiedBody::readSome(char* out, std::size_t cap) {
  if (chunked_) co_return co_await readChunked(out, cap);
  auto r = co_await client_.read(upstream::asio::buffer(out, cap));
  if (!r) co_return refuse(S3Error::IncompleteBody, "The client stopped sending the body: " + r.error().message());
  started_ = true;
  clientBytes_ += *r;
  if (*r > 0) {
    payloadBytes_ += *r;
    if (mode_ == PayloadMode::Sha256) digest_.update(out, *r);
    if (declared_ && payloadBytes_ > *declared_) co_return refuse(S3Error::IncompleteBody, "The body is longer than declared.");
    co_return *r;
  }
  if (declared_ && payloadBytes_ != *declared_) co_return refuse(S3Error::IncompleteBody);
  if (mode_ == PayloadMode::Sha256 && digest_.finishHex() != expectedHash_)
    co_return refuse(S3Error::XAmzContentSHA256Mismatch);
  co_return std::size_t{0};
}

upstream::Awaitable<boost::system::result<std::size_t>> VerifiedBody::readChunked(char* out, std::size_t cap) {
  for (;;) {
    if (rawPos_ < rawLen_) {
      auto step = chunked_->decode(raw_.data() + rawPos_, rawLen_ - rawPos_, out, cap);
      rawPos_ += step.consumed;
      payloadBytes_ += step.produced;
      switch (chunked_->state()) {
        case AwsChunkedDecoder::State::Malformed:
          co_return refuse(S3Error::IncompleteBody, "Malformed aws-chunked body: " + chunked_->error());
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
      if (declared_ && payloadBytes_ != *declared_)
        co_return refuse(S3Error::IncompleteBody, "The decoded body is shorter than x-amz-decoded-content-length.");
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
