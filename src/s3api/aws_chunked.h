#pragma once
// Incremental decoder of the aws-chunked content encoding (SigV4 streaming uploads):
//   <hex-size>[;chunk-signature=<sig>]\r\n<data>\r\n ... 0[;chunk-signature=<sig>]\r\n[trailers]\r\n
// Chunk signatures chain from the seed signature; a trailer may carry x-amz-checksum-* and
// x-amz-trailer-signature. Pure: bytes in, bytes out, no I/O.

#include <cstdint>
#include <optional>
#include <string>

#include "common/crypto.h"
#include "common/sigv4.h"

namespace granary::s3api {

class AwsChunkedDecoder {
 public:
  /// Malformed: the chunk framing; MalformedTrailer: the trailer section (a bad field, or more than
  /// kMaxTrailerBytes / kMaxTrailerFields of it).
  enum class State { Ok, Done, Malformed, MalformedTrailer, BadSignature };
  static constexpr std::size_t kMaxLine = 4096;            // a chunk header or one trailer field
  static constexpr std::size_t kMaxTrailerBytes = 16 * 1024;  // the whole trailer section
  static constexpr std::size_t kMaxTrailerFields = 32;

  struct Options {
    bool signedChunks = true;  // chunk headers carry chunk-signature
    bool trailer = false;      // trailing headers may follow the last chunk
    bool signedTrailer = false;
    Sha256Digest signingKey{};
    std::string scope;
    std::string amzDate;
    std::string seedSignature;
  };

  explicit AwsChunkedDecoder(Options opts);

  struct Step {
    std::size_t consumed = 0;  // input bytes used
    std::size_t produced = 0;  // payload bytes written to `out`
  };

  /// Decodes as much as fits. Stops at the end of input, when `out` is full, or on Done/error.
  /// Chunk data is written out before its signature is checked at the chunk's end: callers must
  /// not let the payload count as complete until state() is Done.
  Step decode(const char* in, std::size_t inLen, char* out, std::size_t outCap);

  State state() const { return state_; }
  const std::string& error() const { return error_; }
  /// Trailer headers (lower-case name -> value), e.g. x-amz-checksum-crc32.
  const sigv4::HeaderList& trailers() const { return trailers_; }
  std::uint64_t decodedBytes() const { return decoded_; }

 private:
  enum class Phase { Header, Data, DataEnd, Trailer, Finished };
  bool onHeaderLine();
  bool onTrailerLine();
  bool finishChunk();
  void setError(State s, std::string msg);

  Options opts_;
  State state_ = State::Ok;
  Phase phase_ = Phase::Header;
  std::string line_;
  std::string error_;
  std::uint64_t remaining_ = 0;
  std::uint64_t chunkSize_ = 0;
  std::string chunkSignature_;
  std::string previousSignature_;
  Digest chunkDigest_;
  bool lastChunk_ = false;
  std::string trailerCanonical_;
  std::string trailerSignature_;
  sigv4::HeaderList trailers_;
  std::uint64_t decoded_ = 0;
  std::size_t trailerBytes_ = 0;
  std::size_t trailerFields_ = 0;
};

}  // namespace granary::s3api
