#include "s3api/aws_chunked.h"

#include "s3api/request_checks.h"

#include <algorithm>
#include <cstring>

namespace granary::s3api {
namespace {
constexpr std::uint64_t kMaxChunk = 5ull << 30;

/// A trailer field name: an HTTP token of the characters x-amz-* names use.
bool isFieldName(std::string_view n) {
  return !n.empty() && std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

}  // namespace

AwsChunkedDecoder::AwsChunkedDecoder(Options opts)
    : opts_(std::move(opts)), previousSignature_(opts_.seedSignature) {}

void AwsChunkedDecoder::setError(State s, std::string msg) {
  state_ = s;
  error_ = std::move(msg);
}

bool AwsChunkedDecoder::onHeaderLine() {
  // "<hex>[;chunk-signature=<64 hex>]"
  std::string_view l = line_;
  auto semi = l.find(';');
  std::string_view hex = l.substr(0, semi);
  if (hex.empty() || hex.size() > 16) return setError(State::Malformed, "bad chunk size"), false;
  std::uint64_t size = 0;
  for (char c : hex) {
    int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
    if (v < 0) return setError(State::Malformed, "bad chunk size"), false;
    size = size * 16 + static_cast<std::uint64_t>(v);
  }
  if (size > kMaxChunk) return setError(State::Malformed, "chunk too large"), false;
  chunkSignature_.clear();
  if (semi != std::string_view::npos) {
    std::string_view ext = l.substr(semi + 1);
    constexpr std::string_view kSig = "chunk-signature=";
    if (ext.substr(0, kSig.size()) != kSig) return setError(State::Malformed, "bad chunk extension"), false;
    chunkSignature_ = std::string(ext.substr(kSig.size()));
  }
  if (opts_.signedChunks && chunkSignature_.size() != 64)
    return setError(State::BadSignature, "missing chunk signature"), false;
  chunkSize_ = remaining_ = size;
  lastChunk_ = size == 0;
  if (lastChunk_) {
    if (!finishChunk()) return false;
    phase_ = opts_.trailer ? Phase::Trailer : Phase::DataEnd;
  } else {
    phase_ = Phase::Data;
  }
  return true;
}

bool AwsChunkedDecoder::finishChunk() {
  if (!opts_.signedChunks) return true;
  std::string hash = chunkSize_ == 0 ? std::string(kEmptySha256Hex) : chunkDigest_.finishHex();
  std::string sts = sigv4::chunkStringToSign(opts_.amzDate, opts_.scope, previousSignature_, hash);
  std::string expected = sigv4::signatureHex(opts_.signingKey, sts);
  if (!constantTimeEquals(expected, chunkSignature_))
    return setError(State::BadSignature, "chunk signature does not match"), false;
  previousSignature_ = chunkSignature_;
  return true;
}

bool AwsChunkedDecoder::onTrailerLine() {
  if (line_.empty()) {  // end of trailers
    if (opts_.signedTrailer) {
      if (trailerSignature_.empty()) return setError(State::BadSignature, "missing trailer signature"), false;
      std::string sts = sigv4::trailerStringToSign(opts_.amzDate, opts_.scope, previousSignature_,
                                                   sha256Hex(trailerCanonical_));
      if (!constantTimeEquals(sigv4::signatureHex(opts_.signingKey, sts), trailerSignature_))
        return setError(State::BadSignature, "trailer signature does not match"), false;
    }
    phase_ = Phase::Finished;
    state_ = State::Done;
    return true;
  }
  trailerBytes_ += line_.size() + 2;
  if (++trailerFields_ > kMaxTrailerFields || trailerBytes_ > kMaxTrailerBytes)
    return setError(State::MalformedTrailer, "the trailer is too large"), false;
  auto colon = line_.find(':');
  if (colon == std::string::npos || !isFieldName(std::string_view(line_).substr(0, colon)) ||
      !isSafeHeaderValue(std::string_view(line_).substr(colon + 1)))  // (a CR, LF or NUL could split a header)
    return setError(State::MalformedTrailer, "bad trailer field"), false;
  std::string name = line_.substr(0, colon);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string value = sigv4::canonicalHeaderValue(std::string_view(line_).substr(colon + 1));
  if (name == "x-amz-trailer-signature") {
    trailerSignature_ = value;
  } else {
    trailerCanonical_ += name + ":" + value + "\n";
    trailers_.emplace_back(std::move(name), std::move(value));
  }
  return true;
}

AwsChunkedDecoder::Step AwsChunkedDecoder::decode(const char* in, std::size_t inLen, char* out, std::size_t outCap) {
  Step s;
  while (state_ == State::Ok && s.consumed < inLen) {
    if (phase_ == Phase::Data) {
      if (s.produced == outCap) break;
      std::size_t n = std::min<std::uint64_t>({remaining_, inLen - s.consumed, outCap - s.produced});
      std::memcpy(out + s.produced, in + s.consumed, n);
      if (opts_.signedChunks) chunkDigest_.update(in + s.consumed, n);
      s.consumed += n;
      s.produced += n;
      remaining_ -= n;
      decoded_ += n;
      if (remaining_ == 0) phase_ = Phase::DataEnd;
      continue;
    }
    // Line-oriented phases: Header, DataEnd (the CRLF after data), Trailer.
    char c = in[s.consumed++];
    if (c != '\n') {
      if (line_.size() >= kMaxLine)
        return setError(phase_ == Phase::Trailer ? State::MalformedTrailer : State::Malformed, "line too long"), s;
      line_.push_back(c);
      continue;
    }
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    bool ok = true;
    switch (phase_) {
      case Phase::Header: ok = onHeaderLine(); break;
      case Phase::DataEnd:
        if (!line_.empty()) {
          setError(State::Malformed, "chunk data longer than its size");
          ok = false;
        } else if (lastChunk_) {
          phase_ = Phase::Finished;
          state_ = State::Done;
        } else {
          ok = finishChunk();
          phase_ = Phase::Header;
        }
        break;
      case Phase::Trailer: ok = onTrailerLine(); break;
      default: break;
    }
    line_.clear();
    if (!ok) return s;
  }
  return s;
}

}  // namespace granary::s3api
