#include "s3api/multipart_tracker.h"

#include "s3api/request_xml.h"

namespace granary::s3api {
std::string unquoteEtag(std::string_view e) {
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  return std::string(e);
}

std::optional<S3Failure> judgeComplete(const std::string& uploadId,
                                       const std::vector<std::pair<std::uint32_t, std::string>>& listed,
                                       const std::map<std::uint32_t, KnownPart>& parts) {
  std::vector<const KnownPart*> found;
  for (const auto& [n, etag] : listed) {
    const auto it = parts.find(n);
    if (it == parts.end() || it->second.etag != unquoteEtag(etag))
      return S3Failure{S3Error::InvalidPart, {}, {{"PartNumber", std::to_string(n)}, {"UploadId", uploadId}}};
    found.push_back(&it->second);
  }
  for (std::size_t i = 0; i + 1 < found.size(); ++i)
    if (found[i]->size < kMinPartSize)
      return S3Failure{S3Error::EntityTooSmall, {},
                       {{"ProposedSize", std::to_string(found[i]->size)}, {"MinSizeAllowed", std::to_string(kMinPartSize)}}};
  return std::nullopt;
}

void MultipartTracker::created(const std::string& uploadId) {
  std::lock_guard lk(mu_);
  if (!uploads_.try_emplace(uploadId).second) return;
  order_.push_back(uploadId);
  while (order_.size() > max_) {
    uploads_.erase(order_.front());
    order_.pop_front();
  }
}

void MultipartTracker::partUploaded(const std::string& uploadId, std::uint32_t partNumber, std::string etag,
                                    std::uint64_t size) {
  std::lock_guard lk(mu_);
  auto it = uploads_.find(uploadId);
  if (it != uploads_.end()) it->second[partNumber] = KnownPart{unquoteEtag(etag), size};
}

void MultipartTracker::forget(const std::string& uploadId) {
  std::lock_guard lk(mu_);
  uploads_.erase(uploadId);  // (its order_ entry goes when it reaches the front)
}

std::optional<S3Failure> MultipartTracker::checkComplete(const std::string& uploadId, std::string_view body) const {
  const auto listed = completeParts(body);
  if (listed.empty()) return std::nullopt;  // checkRequestXml reports that
  std::lock_guard lk(mu_);
  const auto it = uploads_.find(uploadId);
  if (it == uploads_.end()) return std::nullopt;
  return judgeComplete(uploadId, listed, it->second);
}

}  // namespace granary::s3api
