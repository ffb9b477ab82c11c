#pragma once
// What Granary saw of the multipart uploads created through it: each part's ETag and size, so that a
// CompleteMultipartUpload naming a part that was never uploaded (InvalidPart) or a part under 5 MiB
// that is not the last (EntityTooSmall) is refused as S3 would, whatever the backend checks. Uploads
// Granary did not see from their creation (another instance, a restart, a server-side part copy) are
// not judged: the backend's answer stands. Shared by every I/O thread.

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>
#include <unordered_map>

#include "s3api/errors.h"

namespace granary::s3api {

/// A part as Complete judges it.
struct KnownPart {
  std::string etag;  // without quotes
  std::uint64_t size = 0;
};
inline constexpr std::uint64_t kMinPartSize = 5ull << 20;

/// S3's verdict on completing `uploadId` with the `listed` parts (number, ETag as sent), given the parts
/// the upload has: InvalidPart for a part it lacks or whose ETag differs, EntityTooSmall for a part
/// under 5 MiB that is not the last.
std::optional<S3Failure> judgeComplete(const std::string& uploadId,
                                       const std::vector<std::pair<std::uint32_t, std::string>>& listed,
                                       const std::map<std::uint32_t, KnownPart>& parts);

/// An ETag without its quotes.
std::string unquoteEtag(std::string_view e);

class MultipartTracker {
 public:
  explicit MultipartTracker(std::size_t maxUploads = 100'000) : max_(maxUploads) {}

  void created(const std::string& uploadId);
  void partUploaded(const std::string& uploadId, std::uint32_t partNumber, std::string etag, std::uint64_t size);
  /// A part Granary cannot describe (a server-side copy): the upload is no longer judged.
  void forget(const std::string& uploadId);
  /// The error S3 gives for completing `uploadId` with this CompleteMultipartUpload body, if Granary
  /// knows every part of it; nullopt otherwise (fine, or not Granary's to judge).
  std::optional<S3Failure> checkComplete(const std::string& uploadId, std::string_view body) const;

 private:
  mutable std::mutex mu_;
  std::size_t max_;
  std::unordered_map<std::string, std::map<std::uint32_t, KnownPart>> uploads_;
  std::deque<std::string> order_;  // creation order, to bound memory
};

}  // namespace granary::s3api
