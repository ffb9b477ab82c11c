// The listing operations (ListBuckets, ListObjects, ListObjectsV2, ListObjectVersions,
// ListMultipartUploads): relayed, merged across backends (ListBuckets), filtered by a key's policy, their
// positions sealed for keys that may not see every key; a write-back bucket's show what is pending.

#include <boost/beast/core/string.hpp>
#include <pugixml.hpp>

#include <algorithm>

#include "common/crypto.h"
#include "common/uri.h"
#include "s3api/exchange.h"
#include "s3api/policy.h"

namespace granary::s3api {
namespace {

namespace bhttp = boost::beast::http;

/// The request parameter a listing's Next* element is given back in.
std::string_view markerParamOf(std::string_view element) {
  if (element == "NextMarker" || element == "Marker") return "marker";
  if (element == "NextContinuationToken" || element == "ContinuationToken") return "continuation-token";
  if (element == "NextKeyMarker" || element == "KeyMarker") return "key-marker";
  // A hidden key's version or upload id is no business of the key either.
  if (element == "NextVersionIdMarker" || element == "VersionIdMarker") return "version-id-marker";
  if (element == "NextUploadIdMarker" || element == "UploadIdMarker") return "upload-id-marker";
  return {};
}
/// What a sealed position is bound to: the key it was given to, the kind of listing, the bucket and the
/// parameter it goes back in. Nobody else opens it, nowhere else.
std::string sealContext(std::string_view accessKey, S3Op op, std::string_view bucket,
                        std::string_view param) {
  std::string c(accessKey);
  for (const std::string_view part : {listingAction(op), bucket, param}) {
    c.push_back('\n');
    c.append(part);
  }
  return c;
}
}  // namespace

http::Awaitable<void> ProxyHandler::opListing(Exchange& x, Call& c) {
  if (x.op == S3Op::ListBuckets && !opts_.buckets->passThroughListing()) co_return co_await listBucketsMerged(x);
  if (writesBack(x) && (x.op == S3Op::ListObjectsV2 || x.op == S3Op::ListObjects)) c.pending = pendingListed(x);
  const AnswerHook hook = &ProxyHandler::afterListing;  // (named: GCC 12 coroutines)
  co_await relayAsIs(x, c, hook);
}

http::Awaitable<bool> ProxyHandler::afterListing(Exchange& x, Call& c, Outbound&, upstream::UpstreamResponse* resp) {
  if (!writesBack(x)) co_return false;
  if (!resp) {  // the backend could not be reached: the spool's uploads still are listed
    if (x.op != S3Op::ListMultipartUploads) co_return false;
    upstream::UpstreamResponse* none = nullptr;
    co_await relayUploadsWithSpool(x, none);
    co_return true;
  }
  const unsigned answered = resp->header().result_int();
  if (answered == 200 && !c.pending.empty()) {
    co_await relayListingWithPending(x, *resp, std::move(c.pending));
    co_return true;
  }
  if (x.op == S3Op::ListMultipartUploads && (answered == 200 || answered == 501)) {
    co_await relayUploadsWithSpool(x, resp);
    co_return true;
  }
  co_return false;
}

S3Result<void> ProxyHandler::openListingMarkers(Exchange& x) const {
  if (listingAction(x.op).empty()) return {};
  for (auto& [name, value] : x.routed.query) {
    if (name != "marker" && name != "continuation-token" && name != "key-marker" && name != "version-id-marker" &&
        name != "upload-id-marker")
      continue;
    if (!value.starts_with(kSealed)) continue;
    auto plain = openToken(std::string_view(value).substr(kSealed.size()),
                           sealContext(x.accessKey, x.op, x.routed.bucket, name));
    if (!plain) {
      if (x.client && x.client->policy)
        return S3Failure{S3Error::InvalidArgument, "The continuation token provided is incorrect", {{"ArgumentName", name}}};
      continue;  // a key without a policy never got one: a marker of its own that looks alike
    }
    x.sealedMarkers.emplace_back(name, value);
    value = std::move(*plain);
  }
  // The answer echoes the opened position: it goes through filterListing, which seals it again.
  if (!x.sealedMarkers.empty()) x.filterListing = true;
  return {};
}

http::Awaitable<void> ProxyHandler::listBucketsMerged(Exchange& x) {
  constexpr std::size_t kMaxListing = 16 << 20;
  const BucketMap& map = *opts_.buckets;
  std::vector<std::pair<std::string, std::string>> found;  // client name, creation date
  std::string ownerId, ownerName;
  for (const std::size_t b : map.listingBackends()) {
    upstream::UpstreamRequest r;
    r.method = bhttp::verb::get;
    auto resp = co_await upstreamFor(x, b)->send(r);
    if (!resp) co_return co_await sendError(x, upstreamFailure(resp.error()));
    if ((*resp)->header().result_int() != 200) {
      // A backend refused (credentials, say): its answer is the client's, since a listing that silently
      // lacks that backend's buckets would be wrong.
      x.upstream = upstreamFor(x, b);
      co_return co_await relay(x, **resp);
    }
    pugi::xml_document doc;
    if (!co_await readXml(**resp, kMaxListing, doc)) {
      const S3Failure bad{S3Error::InternalError, "A backend's bucket listing could not be read.", {}};
      co_return co_await sendError(x, bad);
    }
    const auto root = doc.child("ListAllMyBucketsResult");
    if (b == 0) {
      ownerId = root.child("Owner").child_value("ID");
      ownerName = root.child("Owner").child_value("DisplayName");
    }
    for (const auto& bucket : root.child("Buckets").children("Bucket"))
      for (auto& name : map.visibleNames(b, bucket.child_value("Name")))
        found.emplace_back(std::move(name), bucket.child_value("CreationDate"));
  }
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first == b.first; }),
              found.end());

  pugi::xml_document out;
  auto root = newS3Document(out, "ListAllMyBucketsResult");
  auto owner = root.append_child("Owner");
  owner.append_child("ID").text() = ownerId.c_str();
  owner.append_child("DisplayName").text() = ownerName.c_str();
  auto list = root.append_child("Buckets");
  for (const auto& [name, created] : found) {
    auto e = list.append_child("Bucket");
    e.append_child("Name").text() = name.c_str();
    e.append_child("CreationDate").text() = created.c_str();
  }
  const sigv4::HeaderList none;
  co_await sendXml(x, out, none);
}

void ProxyHandler::filterListing(const Exchange& x, pugi::xml_node root) const {
  const AccessPolicy* policy = x.client ? x.client->policy.get() : nullptr;
  if (!policy) return;
  const std::string_view name = root.name();
  if (name == "ListAllMyBucketsResult") {
    auto buckets = root.child("Buckets");
    for (auto b = buckets.child("Bucket"); b;) {
      auto next = b.next_sibling("Bucket");
      if (!policy->touchesBucket(b.child_value("Name"))) buckets.remove_child(b);
      b = next;
    }
    return;
  }
  const std::string_view action = listingAction(x.op);
  if (action.empty()) return;
  // With encoding-type=url the keys are URL-encoded in the answer, which then says so (<EncodingType>):
  // decoded before they are judged. A backend that ignores the parameter (s3rver) sends them raw, and a
  // raw "%2F" must not be read as a '/'. A key that does not decode is not shown.
  const bool encoded = std::string_view(root.child_value("EncodingType")) == "url";
  auto text = [&](pugi::xml_node n, const char* child) -> std::optional<std::string> {
    std::string v = n.child_value(child);
    if (!encoded) return v;
    return uriDecode(v);
  };
  std::string lastKey;
  std::size_t kept = 0;
  // A key that may list the whole bucket is here only to have a sealed position echoed sealed again.
  const bool wholeBucket = policy->allowsBucket(action, x.routed.bucket);
  for (auto e = root.first_child(); e && !wholeBucket;) {
    auto next = e.next_sibling();
    const std::string_view tag = e.name();
    if (tag == "Contents" || tag == "Version" || tag == "DeleteMarker" || tag == "Upload") {
      const auto key = text(e, "Key");
      if (key) lastKey = *key;
      if (key && policy->allowsObject(action, x.routed.bucket, *key)) ++kept;
      else root.remove_child(e);
    } else if (tag == "CommonPrefixes") {
      const auto prefix = text(e, "Prefix");
      if (prefix && policy->allowsSomeUnder(action, x.routed.bucket, *prefix)) ++kept;
      else root.remove_child(e);
    }
    e = next;
  }
  if (auto count = root.child("KeyCount"); count && !wholeBucket) count.text() = static_cast<unsigned long long>(kept);
  // ListObjects (v1) without a delimiter has no NextMarker: clients continue after the last key shown,
  // which filtering may have removed; S3 allows NextMarker always, so it names where the page ended.
  if (x.op == S3Op::ListObjects && std::string_view(root.child_value("IsTruncated")) == "true" &&
      !root.child("NextMarker") && !lastKey.empty()) {
    const std::string marker = encoded ? uriEncode(lastKey, true) : lastKey;
    root.insert_child_after("NextMarker", root.child("IsTruncated")).text() = marker.c_str();
  }
  // Where the next page starts names a key (RGW's continuation tokens and every marker do), maybe one the
  // key may not see: sealed, opened again when it comes back (openListingMarkers). What the request sent
  // sealed is echoed as it was sent.
  for (auto e = root.first_child(); e; e = e.next_sibling()) {
    const std::string_view tag = e.name();
    const std::string_view param = markerParamOf(tag);
    if (param.empty()) continue;
    if (!tag.starts_with("Next")) {
      for (const auto& [name, sealed] : x.sealedMarkers)
        if (name == param) e.text() = sealed.c_str();
      continue;
    }
    std::string position = e.child_value();
    if (position.empty()) continue;  // nothing to hide (S3 sends empty version and upload id markers)
    if (encoded && (tag == "NextMarker" || tag == "NextKeyMarker")) {
      if (auto decoded = uriDecode(position)) position = std::move(*decoded);  // else sealed as it is
    }
    const std::string token =
        std::string(kSealed) + sealToken(position, sealContext(x.accessKey, x.op, x.routed.bucket, param));
    e.text() = token.c_str();
  }
}

}  // namespace granary::s3api
