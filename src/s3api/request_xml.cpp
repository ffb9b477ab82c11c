#include "s3api/request_xml.h"

#include <pugixml.hpp>

#include <charconv>
#include <string>

namespace granary::s3api {
namespace {

S3Failure malformed(std::string why = {}) {
  return {S3Error::MalformedXML,
          why.empty() ? std::string{} : "The XML you provided was not well-formed or did not validate against our "
                                        "published schema: " + why,
          {}};
}

std::optional<S3Failure> checkComplete(const pugi::xml_node& root) {
  if (std::string_view(root.name()) != "CompleteMultipartUpload") return malformed("the root is not CompleteMultipartUpload");
  long previous = 0;
  bool any = false;
  for (const auto& part : root.children()) {
    if (std::string_view(part.name()) != "Part") continue;
    any = true;
    const std::string_view num = part.child_value("PartNumber");
    long n = 0;
    const auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
    if (num.empty() || ec != std::errc{} || end != num.data() + num.size() || n < 1 || n > 10000)
      return malformed("PartNumber must be a number from 1 to 10000");
    if (std::string_view(part.child_value("ETag")).empty()) return malformed("every Part needs an ETag");
    if (n <= previous) return S3Failure{S3Error::InvalidPartOrder, {}, {}};
    previous = n;
  }
  if (!any) return malformed("no Part elements");
  return std::nullopt;
}

std::optional<S3Failure> checkDelete(const pugi::xml_node& root) {
  if (std::string_view(root.name()) != "Delete") return malformed("the root is not Delete");
  std::size_t keys = 0;
  for (const auto& obj : root.children("Object")) {
    if (!obj.child("Key")) return malformed("every Object needs a Key");
    ++keys;
  }
  if (keys == 0 || keys > 1000) return malformed("a Delete request names 1 to 1000 objects");
  return std::nullopt;
}

}  // namespace

std::optional<S3Failure> checkRequestXml(std::string_view op, std::string_view body) {
  const bool complete = op == "CompleteMultipartUpload";
  if (!complete && op != "DeleteObjects") return std::nullopt;
  pugi::xml_document doc;
  if (!doc.load_buffer(body.data(), body.size())) return malformed();
  const pugi::xml_node root = doc.document_element();
  return complete ? checkComplete(root) : checkDelete(root);
}

std::vector<std::pair<std::uint32_t, std::string>> completeParts(std::string_view body) {
  std::vector<std::pair<std::uint32_t, std::string>> parts;
  pugi::xml_document doc;
  if (!doc.load_buffer(body.data(), body.size())) return parts;
  for (const auto& p : doc.document_element().children("Part")) {
    const std::string_view num = p.child_value("PartNumber");
    std::uint32_t n = 0;
    std::from_chars(num.data(), num.data() + num.size(), n);
    parts.emplace_back(n, p.child_value("ETag"));
  }
  return parts;
}

std::vector<std::pair<std::string, std::string>> deleteObjectsKeys(std::string_view body) {
  std::vector<std::pair<std::string, std::string>> keys;
  pugi::xml_document doc;
  if (!doc.load_buffer(body.data(), body.size())) return keys;
  for (const auto& obj : doc.document_element().children("Object"))
    if (const char* k = obj.child_value("Key"); *k) keys.emplace_back(k, obj.child_value("VersionId"));
  return keys;
}

}  // namespace granary::s3api
