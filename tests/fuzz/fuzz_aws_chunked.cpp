// Fuzz target: the aws-chunked decoder (src/s3api/aws_chunked.h) and the verified request body built on
// it (src/s3api/verified_body.h), which is what stands between a client's upload and the backend.
//
// Input: u8 mode, u8 max slice, u8 max output, u32 seed, u8 damage, then
//   mode & 4 == 0: the body bytes as the client sends them;
//   mode & 4 != 0: a description of a body (chunk lengths and data, trailer or not) that the target
//     encodes itself, with correct chunk and trailer signatures (and checksum) from the same signing
//     key, then damages (cut or flipped byte) when `damage` says so.
// mode & 3 picks the payload: signed chunks, signed chunks + signed trailer, unsigned chunks + trailer,
// or (3) a plain body (hex SHA-256 or UNSIGNED-PAYLOAD, for VerifiedBody).
// Properties:
//   - the decoder gives the same payload, trailers, state and error however the input is sliced and
//     whatever its output capacity, and always makes progress;
//   - an undamaged encoded body decodes to exactly what was encoded;
//   - VerifiedBody (over a fake client body reader, slices and buffer sizes chosen by the input) ends
//     successfully only for a body that decodes completely with every check passing, delivers a prefix of
//     the payload, and on failure has delivered fewer bytes than declared (the last byte held back).

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "common/checksum.h"
#include "common/crypto.h"
#include "common/sigv4.h"
#include "fuzz_common.h"
#include "s3api/auth.h"
#include "s3api/aws_chunked.h"
#include "s3api/verified_body.h"

using namespace granary;
using namespace granary::s3api;
using granary::fuzz::Input;
using granary::fuzz::Rng;
namespace asio = boost::asio;

namespace {

constexpr std::string_view kAmzDate = "20240501T120000Z";
constexpr std::string_view kSeed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";

struct Signing {
  Sha256Digest key = sigv4::signingKey("fuzz-secret", "20240501", "us-east-1", "s3");
  std::string scope = sigv4::credentialScope("20240501", "us-east-1", "s3");
};
const Signing& signing() {
  static const Signing s;
  return s;
}

std::string hex(std::uint64_t v) {
  static constexpr char d[] = "0123456789abcdef";
  std::string out;
  do out.insert(out.begin(), d[v & 15]), v >>= 4;
  while (v);
  return out;
}

struct Encoded {
  std::string wire;
  std::string payload;
  sigv4::HeaderList trailers;
};

/// A body as an SDK encodes it, from the input's description.
Encoded encode(Input& in, bool signedChunks, bool trailer, bool signedTrailer) {
  const auto& s = signing();
  Encoded e;
  std::string prev(kSeed);
  auto sign = [&](std::string_view data) {
    const std::string sig = sigv4::signatureHex(
        s.key, sigv4::chunkStringToSign(kAmzDate, s.scope, prev, data.empty() ? kEmptySha256Hex : sha256Hex(data)));
    prev = sig;
    return sig;
  };
  const unsigned chunks = in.u8() % 6;
  for (unsigned i = 0; i <= chunks; ++i) {
    const bool last = i == chunks;
    std::string data;
    if (!last) {
      const std::size_t len = 1 + in.u8() % 200;
      data = std::string(in.bytes(len));
      if (data.empty()) data = "x";
    }
    e.wire += hex(data.size());
    if (signedChunks) e.wire += ";chunk-signature=" + sign(data);
    e.wire += "\r\n" + data;
    if (!last) e.wire += "\r\n";
    e.payload += data;
  }
  if (!trailer) {
    e.wire += "\r\n";
    return e;
  }
  Checksum crc(ChecksumAlgorithm::Crc32);
  crc.update(e.payload);
  const std::string value = in.flag() ? crc.finishBase64() : "AAAAAA==";
  std::string canonical = "x-amz-checksum-crc32:" + value + "\n";
  e.wire += "x-amz-checksum-crc32:" + value + "\r\n";
  e.trailers.emplace_back("x-amz-checksum-crc32", value);
  if (signedTrailer) {
    const std::string sig = sigv4::signatureHex(
        s.key, sigv4::trailerStringToSign(kAmzDate, s.scope, prev, sha256Hex(canonical)));
    e.wire += "x-amz-trailer-signature:" + sig + "\r\n";
  }
  e.wire += "\r\n";
  return e;
}

AwsChunkedDecoder::Options decoderOptions(PayloadMode m) {
  AwsChunkedDecoder::Options o;
  o.signedChunks = m != PayloadMode::StreamingUnsignedTrailer;
  o.trailer = m != PayloadMode::StreamingSigned;
  o.signedTrailer = m == PayloadMode::StreamingSignedTrailer;
  o.signingKey = signing().key;
  o.scope = signing().scope;
  o.amzDate = std::string(kAmzDate);
  o.seedSignature = std::string(kSeed);
  return o;
}

struct Decoded {
  AwsChunkedDecoder::State state;
  std::string payload;
  sigv4::HeaderList trailers;
  std::uint64_t decodedBytes;
  std::string error;
  bool operator==(const Decoded&) const = default;
};

Decoded decodeSliced(PayloadMode m, std::string_view wire, std::size_t maxSlice, std::size_t maxOut, Rng rng) {
  AwsChunkedDecoder d(decoderOptions(m));
  std::string out(std::max<std::size_t>(maxOut, 1), '\0');
  Decoded r;
  std::size_t pos = 0;
  while (pos < wire.size() && d.state() == AwsChunkedDecoder::State::Ok) {
    const std::size_t len = std::min(rng.upTo(maxSlice), wire.size() - pos);
    std::size_t used = 0;
    while (used < len && d.state() == AwsChunkedDecoder::State::Ok) {
      const std::size_t cap = rng.upTo(maxOut);
      const auto step = d.decode(wire.data() + pos + used, len - used, out.data(), cap);
      FUZZ_CHECK(step.consumed <= len - used && step.produced <= cap);
      FUZZ_CHECK(step.consumed > 0 || step.produced > 0 || d.state() != AwsChunkedDecoder::State::Ok,
                 "no progress");
      r.payload.append(out.data(), step.produced);
      used += step.consumed;
    }
    pos += used;
  }
  r.state = d.state();
  r.trailers = d.trailers();
  r.decodedBytes = d.decodedBytes();
  r.error = d.error();
  FUZZ_CHECK(r.decodedBytes == r.payload.size());
  return r;
}

/// The client's body as the HTTP server hands it over: slices, then the end (or a disconnect).
class FakeClientBody final : public http::BodyReader {
 public:
  FakeClientBody(std::string_view data, Rng rng, std::size_t maxSlice, bool failAtEnd)
      : data_(data), rng_(rng), maxSlice_(maxSlice), failAtEnd_(failAtEnd) {}
  http::Awaitable<boost::system::result<std::size_t>> read(asio::mutable_buffer buf) override {
    if (buf.size() == 0) co_return std::size_t{0};
    if (pos_ == data_.size()) {
      if (failAtEnd_) co_return boost::system::error_code(asio::error::connection_reset);
      co_return std::size_t{0};
    }
    const std::size_t n = std::min({buf.size(), rng_.upTo(maxSlice_), data_.size() - pos_});
    std::memcpy(buf.data(), data_.data() + pos_, n);
    pos_ += n;
    co_return n;
  }
  std::optional<std::uint64_t> contentLength() const override { return data_.size(); }
  bool done() const override { return pos_ == data_.size(); }

 private:
  std::string_view data_;
  Rng rng_;
  std::size_t maxSlice_;
  bool failAtEnd_;
  std::size_t pos_ = 0;
};

struct BodyOutcome {
  bool ok = false;
  std::string delivered;
};

asio::awaitable<BodyOutcome> readAll(VerifiedBody& body, Rng rng, std::size_t maxBuf) {
  BodyOutcome o;
  std::vector<char> buf(maxBuf + 2);
  for (int guard = 0; guard < 1'000'000; ++guard) {
    const std::size_t cap = 2 + rng.upTo(maxBuf) - 1;
    auto r = co_await body.read(asio::buffer(buf.data(), cap));
    if (!r) co_return o;
    FUZZ_CHECK(*r <= cap);
    if (*r == 0) {
      o.ok = true;
      co_return o;
    }
    o.delivered.append(buf.data(), *r);
  }
  FUZZ_CHECK(false, "VerifiedBody never ended");
  co_return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) return 0;
  Input in(data, size);
  const std::uint8_t mode = in.u8();
  const std::size_t maxSlice = 1 + in.u8();
  const std::size_t maxOut = 1 + in.u8();
  const std::uint32_t seed = in.u32();
  const std::uint8_t damage = in.u8();
  static constexpr PayloadMode kModes[] = {PayloadMode::StreamingSigned, PayloadMode::StreamingSignedTrailer,
                                           PayloadMode::StreamingUnsignedTrailer, PayloadMode::Sha256};
  PayloadMode pm = kModes[mode & 3];
  if (pm == PayloadMode::Sha256 && (mode & 8)) pm = PayloadMode::Unsigned;
  const bool chunked = pm != PayloadMode::Sha256 && pm != PayloadMode::Unsigned;

  std::optional<Encoded> enc;
  std::string wire;
  if ((mode & 4) && chunked) {
    const auto o = decoderOptions(pm);
    enc = encode(in, o.signedChunks, o.trailer, o.signedTrailer);
    wire = enc->wire;
    if ((damage & 3) == 1 && !wire.empty()) wire.resize(seed % wire.size());
    if ((damage & 3) == 2 && !wire.empty()) wire[seed % wire.size()] ^= static_cast<char>(1 + (damage >> 2));
  } else {
    wire = std::string(in.rest());
  }
  const bool damaged = (damage & 3) == 1 || (damage & 3) == 2;

  std::optional<Decoded> reference;
  if (chunked) {
    reference = decodeSliced(pm, wire, std::max<std::size_t>(wire.size(), 1), std::max<std::size_t>(wire.size(), 1),
                             Rng(0));
    const Decoded sliced = decodeSliced(pm, wire, maxSlice, maxOut, Rng(seed));
    FUZZ_CHECK(sliced == *reference, "slicing changed the decoding: " + reference->error + " / " + sliced.error);
    if (enc && !damaged) {
      FUZZ_CHECK(reference->state == AwsChunkedDecoder::State::Done, "an encoded body did not decode: " + reference->error);
      FUZZ_CHECK(reference->payload == enc->payload);
      FUZZ_CHECK(reference->trailers == enc->trailers);
    }
  }

  // VerifiedBody over the same bytes, as the proxy streams an upload to the backend.
  VerifiedAuth auth;
  auth.payload = pm;
  auth.signingKey = signing().key;
  auth.scope = signing().scope;
  auth.amzDate = std::string(kAmzDate);
  auth.seedSignature = std::string(kSeed);
  const std::string wireHash = sha256Hex(wire);
  if (pm == PayloadMode::Sha256) auth.payloadHash = (damage & 4) ? std::string(kEmptySha256Hex) : wireHash;
  std::optional<std::uint64_t> declared;
  const std::uint64_t naturalLength = chunked ? (enc ? enc->payload.size() : reference->payload.size()) : wire.size();
  if (!(damage & 8)) declared = (damage & 16) ? naturalLength + (seed % 3) - 1 : naturalLength;
  sigv4::HeaderList headers;
  if (mode & 16) {
    Checksum md5(ChecksumAlgorithm::Md5);
    md5.update(chunked ? (enc ? enc->payload : reference->payload) : wire);
    headers.emplace_back("content-md5", (damage & 32) ? std::string("1B2M2Y8AsgTpgAmY7PhCfg==") : md5.finishBase64());
  }
  if ((mode & 32) && pm != PayloadMode::StreamingSigned && chunked) headers.emplace_back("x-amz-trailer", "x-amz-checksum-crc32");
  const bool trailerAllowed = pm == PayloadMode::StreamingSignedTrailer || pm == PayloadMode::StreamingUnsignedTrailer;
  auto checks = bodyChecksFor(headers, true, trailerAllowed);
  if (!checks) return 0;

  FakeClientBody client(wire, Rng(seed ^ 0x5555), maxSlice, (damage & 64) != 0);
  VerifiedBody body(client, auth, declared, std::move(*checks));
  BodyOutcome outcome;
  {
    asio::io_context ioc;
    asio::co_spawn(ioc, readAll(body, Rng(seed ^ 0xaaaa), maxOut), [&](std::exception_ptr e, BodyOutcome o) {
      if (e) std::rethrow_exception(e);
      outcome = std::move(o);
    });
    ioc.run();
  }
  FUZZ_TRACE("aws_chunked: decoder %s, body %s (%zu bytes delivered) %s\n",
             chunked ? (reference->state == AwsChunkedDecoder::State::Done ? "done" : reference->error.c_str()) : "-",
             outcome.ok ? "complete" : "refused", outcome.delivered.size(),
             body.failure() ? body.failure()->message.c_str() : "");
  const std::string& payload = chunked ? reference->payload : wire;
  FUZZ_CHECK(outcome.delivered.size() <= payload.size() &&
                 payload.compare(0, outcome.delivered.size(), outcome.delivered) == 0,
             "VerifiedBody delivered bytes that are not the payload's prefix");
  if (outcome.ok) {
    FUZZ_CHECK(outcome.delivered == payload, "a complete body is the whole payload");
    FUZZ_CHECK(!(damage & 64), "a client that disconnected cannot complete a body");
    if (chunked) FUZZ_CHECK(reference->state == AwsChunkedDecoder::State::Done, "completed a body that did not decode");
    if (declared) FUZZ_CHECK(payload.size() == *declared, "completed a body of another length than declared");
    if (pm == PayloadMode::Sha256) FUZZ_CHECK(auth.payloadHash == wireHash, "completed a body whose SHA-256 differs");
    FUZZ_CHECK(!body.failure().has_value());
  } else {
    FUZZ_CHECK(body.failure().has_value() || (damage & 64), "a refused body names its error");
    if (declared) FUZZ_CHECK(outcome.delivered.size() < *declared || *declared == 0,
                             "a refused body reached the backend whole (" + std::to_string(outcome.delivered.size()) +
                                 " of " + std::to_string(*declared) + " bytes)");
  }
  return 0;
}
