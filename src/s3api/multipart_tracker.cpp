#include "s3api/multipart_tracker.h"

#include <pugixml.hpp>

#include <charconv>

namespace granary::s3api {
namespace {
std::string unquote(std::string_view e) {
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  return std::string(e);
}
}  // namespace

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
  if (it != uploads_.end()) it->second[partNumber] = Part{unquote(etag), size};
}

void MultipartTracker::forget(const std::string& uploadId) {
  std::lock_guard lk(mu_);
  uploads_.erase(uploadId);  // (its order_ entry goes when it reaches the front)
}

std::optional<S3Failure> MultipartTracker::checkComplete(const std::string& uploadId, std::string_view body) const {
  pugi::xml_document doc;
  if (!doc.load_buffer(body.data(), body.size())) return std::nullopt;  // checkRequestXml reports that
  std::lock_guard lk(mu_);
  const auto it = uploads_.find(uploadId);
  if (it == uploads_.end()) return std::nullopt;
  const auto& parts = it->second;
  std::vector<const Part*> listed;
  for (const auto& p : doc.document_element().children("Part")) {
    const std::string_view num = p.child_value("PartNumber");
    std::uint32_t n = 0;
    std::from_chars(num.data(), num.data() + num.size(), n);
    const auto found = parts.find(n);
    if (found == parts.end() || found->second.etag != unquote(p.child_value("ETag")))
      return S3Failure{S3Error::InvalidPart, {}, {{"PartNumber", std::string(num)}, {"UploadId", uploadId}}};
    listed.push_back(&found->second);
  }
  for (std::size_t i = 0; i + 1 < listed.size(); ++i)
    if (listed[i]->size < kMinPartSize)
      return S3Failure{S3Error::EntityTooSmall, {},
                       {{"ProposedSize", std::to_string(listed[i]->size)}, {"MinSizeAllowed", std::to_string(kMinPartSize)}}};
  return std::nullopt;
}

}  // namespace granary::s3api
