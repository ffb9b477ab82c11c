#include "s3api/policy.h"

#include <algorithm>
#include <cctype>

namespace granary::s3api {
namespace {

constexpr std::string_view kArn = "arn:aws:s3:::";

std::string lowerCopy(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

/// The pattern positions reachable after consuming `s` (an NFA over the glob), as a bitmap of n+1 entries.
std::vector<char> reachable(std::string_view p, std::string_view s) {
  const std::size_t n = p.size();
  std::vector<char> cur(n + 1, 0), next(n + 1, 0);
  auto close = [&](std::vector<char>& v) {
    for (std::size_t i = 0; i < n; ++i)
      if (v[i] && p[i] == '*') v[i + 1] = 1;
  };
  cur[0] = 1;
  close(cur);
  for (char c : s) {
    std::fill(next.begin(), next.end(), 0);
    bool anyState = false;
    for (std::size_t i = 0; i < n; ++i) {
      if (!cur[i]) continue;
      if (p[i] == '*') next[i] = 1, anyState = true;
      else if (p[i] == '?' || p[i] == c) next[i + 1] = 1, anyState = true;
    }
    close(next);
    cur.swap(next);
    if (!anyState) break;
  }
  return cur;
}

}  // namespace

bool globMatch(std::string_view p, std::string_view s) {
  // Two cursors; on a mismatch, the last '*' absorbs one more byte (linear for the usual patterns).
  std::size_t pi = 0, si = 0, star = std::string_view::npos, mark = 0;
  while (si < s.size()) {
    if (pi < p.size() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == s[si]))) {
      ++pi, ++si;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

bool globMayMatchUnder(std::string_view p, std::string_view prefix) {
  const auto r = reachable(p, prefix);
  return std::find(r.begin(), r.end(), 1) != r.end();  // any rest of a pattern can be satisfied
}

bool globMatchesAllUnder(std::string_view p, std::string_view prefix) {
  const auto r = reachable(p, prefix);
  for (std::size_t i = 0; i < p.size(); ++i)
    if (r[i] && std::all_of(p.begin() + static_cast<std::ptrdiff_t>(i), p.end(), [](char c) { return c == '*'; }))
      return true;
  return false;
}

AccessPolicy::AccessPolicy(const std::vector<PolicyStatement>& statements, bool admin) : admin_(admin) {
  for (const auto& st : statements) {
    Rule r;
    if (st.actions.empty()) throw PolicyError("a statement names no action");
    if (st.resources.empty()) throw PolicyError("a statement names no resource");
    for (const auto& a : st.actions) {
      const std::string l = lowerCopy(a);
      if (l != "*" && (!l.starts_with("s3:") || l.size() == 3))
        throw PolicyError("action '" + a + "' is not an S3 action such as \"s3:GetObject\" or \"s3:*\"");
      r.actions.push_back(l);
    }
    for (const auto& res : st.resources) {
      if (res == "*") {
        r.resources.emplace_back("*");
        continue;
      }
      if (!res.starts_with(kArn) || res.size() == kArn.size())
        throw PolicyError("resource '" + res + "' is not an S3 ARN such as \"arn:aws:s3:::bucket/prefix*\"");
      r.resources.emplace_back(res.substr(kArn.size()));
    }
    rules_.push_back(std::move(r));
  }
}

template <class Pred>
bool AccessPolicy::any(std::string_view action, Pred pred) const {
  std::string a = lowerCopy(action);
  for (const auto& r : rules_) {
    if (!std::any_of(r.actions.begin(), r.actions.end(), [&](const std::string& p) { return globMatch(p, a); }))
      continue;
    for (const auto& res : r.resources)
      if (pred(res)) return true;
  }
  return false;
}

bool hasDotSegment(std::string_view key) {
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = std::min(key.find('/', start), key.size());
    const std::string_view seg = key.substr(start, end - start);
    if (seg == "." || seg == "..") return true;
    if (end == key.size()) return false;
    start = end + 1;
  }
}

bool AccessPolicy::allowsObject(std::string_view action, std::string_view bucket, std::string_view key) const {
  // S3 keeps "a/../b" as a literal key, but a backend or a front proxy that normalises paths would read
  // b: such a key is allowed only where every key of the bucket is.
  if (hasDotSegment(key) && !allowsAllUnder(action, bucket, "")) return false;
  std::string arn;
  arn.reserve(bucket.size() + 1 + key.size());
  arn.append(bucket).push_back('/');
  arn.append(key);
  return any(action, [&](const std::string& p) { return globMatch(p, arn); });
}

bool AccessPolicy::allowsBucket(std::string_view action, std::string_view bucket) const {
  return any(action, [&](const std::string& p) { return globMatch(p, bucket); });
}

bool AccessPolicy::allowsAllUnder(std::string_view action, std::string_view bucket, std::string_view prefix) const {
  const std::string under = std::string(bucket) + "/" + std::string(prefix);
  return any(action, [&](const std::string& p) { return globMatchesAllUnder(p, under); });
}

bool AccessPolicy::allowsSomeUnder(std::string_view action, std::string_view bucket, std::string_view prefix) const {
  const std::string under = std::string(bucket) + "/" + std::string(prefix);
  return any(action, [&](const std::string& p) { return globMayMatchUnder(p, under); });
}

bool AccessPolicy::touchesBucket(std::string_view bucket) const {
  const std::string under = std::string(bucket) + "/";
  for (const auto& r : rules_)
    for (const auto& p : r.resources)
      if (globMatch(p, bucket) || globMayMatchUnder(p, under)) return true;
  return false;
}

namespace {
bool hasParam(const QueryParams& q, std::string_view name) {
  return std::any_of(q.begin(), q.end(), [&](const auto& kv) { return kv.first == name; });
}
/// S3's bucket subresources, spelled exactly (the backend matches them with case: "?Acl" is no ACL request
/// there, but a plain listing, or a DeleteBucket).
bool bucketSubresource(std::string_view n) {
  static constexpr std::string_view kKnown[] = {
      "accelerate", "acl", "analytics", "cors", "encryption", "intelligent-tiering", "inventory", "lifecycle",
      "location", "logging", "metrics", "notification", "object-lock", "ownershipControls", "policy",
      "policyStatus", "publicAccessBlock", "replication", "requestPayment", "tagging", "versioning", "website"};
  return std::find(std::begin(kKnown), std::end(kKnown), n) != std::end(kKnown);
}
/// Parameters that ride along with a subresource or name no operation (signatures, the SDKs' x-id).
bool neutralParam(std::string_view n) {
  return n == "id" || n == "x-id" || n.starts_with("X-Amz-") || n == "AWSAccessKeyId" || n == "Signature" ||
         n == "Expires";
}
/// "s3:" + verb + the subresource's name, capitalised ("acl" -> "s3:GetBucketAcl"); an unknown action when
/// the request has no known subresource, or a parameter that is neither one nor neutral: Granary would
/// name the operation otherwise than the backend acts on it.
std::string subresourceAction(std::string_view verb, const QueryParams& q) {
  std::string_view sub;
  for (const auto& [name, value] : q) {
    if (bucketSubresource(name) && sub.empty()) sub = name;
    else if (!neutralParam(name)) return "s3:Unknown:" + std::string(verb) + "Bucket";
  }
  if (sub.empty()) return "s3:Unknown:" + std::string(verb) + "Bucket";
  std::string a = "s3:" + std::string(verb);
  a += static_cast<char>(std::toupper(static_cast<unsigned char>(sub[0])));
  a += sub.substr(1);
  return a;
}
}  // namespace

AccessNeed requiredAccess(S3Op op, std::string_view key, const QueryParams& q) {
  using On = AccessNeed::On;
  using enum S3Op;
  const bool version = hasParam(q, "versionId");
  auto object = [&](std::string action) { return AccessNeed{On::Object, std::move(action), std::string(key)}; };
  auto bucket = [](std::string action) { return AccessNeed{On::Bucket, std::move(action), {}}; };
  switch (op) {
    case ListBuckets:
    case DeleteObjects: return {};
    case GetObject:
    case HeadObject: return object(version ? "s3:GetObjectVersion" : "s3:GetObject");
    case PostObject: return AccessNeed{On::AllKeys, "s3:PutObject", {}};
    case PutObject:
    case UploadPart:
    case CreateMultipartUpload:
    case CompleteMultipartUpload:
    case CopyObject:
    case UploadPartCopy: return object("s3:PutObject");
    case DeleteObject: return object(version ? "s3:DeleteObjectVersion" : "s3:DeleteObject");
    case AbortMultipartUpload: return object("s3:AbortMultipartUpload");
    case ListParts: return object("s3:ListMultipartUploadParts");
    case GetObjectTagging: return object(version ? "s3:GetObjectVersionTagging" : "s3:GetObjectTagging");
    case PutObjectTagging: return object(version ? "s3:PutObjectVersionTagging" : "s3:PutObjectTagging");
    case DeleteObjectTagging: return object(version ? "s3:DeleteObjectVersionTagging" : "s3:DeleteObjectTagging");
    case GetObjectAcl: return object(version ? "s3:GetObjectVersionAcl" : "s3:GetObjectAcl");
    case PutObjectAcl: return object(version ? "s3:PutObjectVersionAcl" : "s3:PutObjectAcl");
    case ListObjects:
    case ListObjectsV2:
    case ListObjectVersions:
    case ListMultipartUploads: return AccessNeed{On::Listing, std::string(listingAction(op)), {}};
    case HeadBucket:
    case GetBucketLocation: return AccessNeed{On::AnyInBucket, "", {}};
    case CreateBucket: return bucket("s3:CreateBucket");
    case DeleteBucket: return bucket("s3:DeleteBucket");
    case GetBucketVersioning: return bucket("s3:GetBucketVersioning");
    case GetBucketSubresource: return bucket(subresourceAction("GetBucket", q));
    case PutBucketSubresource: return bucket(subresourceAction("PutBucket", q));
    case DeleteBucketSubresource: return bucket(subresourceAction("DeleteBucket", q));
    case Unknown: break;
  }
  // Anything else (Unknown; object operations named by parameters Granary does not know): only a wildcard.
  const std::string unknown = "s3:Unknown:" + std::string(opName(op));
  return key.empty() ? bucket(unknown) : object(unknown);
}

std::string_view listingAction(S3Op op) {
  switch (op) {
    case S3Op::ListObjects:
    case S3Op::ListObjectsV2: return "s3:ListBucket";
    case S3Op::ListObjectVersions: return "s3:ListBucketVersions";
    case S3Op::ListMultipartUploads: return "s3:ListBucketMultipartUploads";
    default: return {};
  }
}

bool allows(const AccessPolicy* policy, const AccessNeed& need, std::string_view bucket) {
  if (!policy) return true;
  using On = AccessNeed::On;
  switch (need.on) {
    case On::Nothing: return true;
    case On::Bucket: return policy->allowsBucket(need.action, bucket);
    case On::Object: return policy->allowsObject(need.action, bucket, need.key);
    case On::AnyInBucket: return policy->touchesBucket(bucket);
    case On::AllKeys: return policy->allowsAllUnder(need.action, bucket, "");
    case On::Listing:
      // A listing (whose entries are filtered by key): the bucket itself, or at least some key in it.
      return policy->allowsBucket(need.action, bucket) || policy->allowsSomeUnder(need.action, bucket, "");
  }
  return false;
}

}  // namespace granary::s3api
