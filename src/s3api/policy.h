#pragma once
// Who may do what: a client key's access policy, a reduced S3 bucket policy. A key's policy is a list of
// Allow statements, each a set of actions ("s3:GetObject", "s3:List*", "s3:*") and resources
// ("arn:aws:s3:::datasets/team-a/*", "arn:aws:s3:::datasets", "*"). There is no Deny and no Condition:
// what no statement allows is denied. `*` and `?` are wildcards in both (actions compare without case,
// as IAM's do; resources with case). A key without a policy may do everything (Granary's behaviour
// before policies existed). Pure: no I/O.
//
// Which action each request needs (requiredActions in policy.cpp) follows IAM's names: GetObject for
// GET/HEAD of an object (GetObjectVersion with a versionId), ListBucket for listings (per key they show),
// PutObject for writes and multipart parts, DeleteObject per key of DeleteObjects, and GetObject on the
// source of a copy.

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/uri.h"
#include "s3api/operation.h"

namespace granary::s3api {

struct PolicyStatement {
  std::vector<std::string> actions;    // as written: "s3:GetObject", "s3:Get*", "*"
  std::vector<std::string> resources;  // as written: "arn:aws:s3:::bucket/prefix*", "*"
};

struct PolicyError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// Glob match with `*` (any run, '/' included) and `?` (one byte).
bool globMatch(std::string_view pattern, std::string_view s);
/// Whether some string that starts with `prefix` matches `pattern`.
bool globMayMatchUnder(std::string_view pattern, std::string_view prefix);
/// Whether every string that starts with `prefix` matches `pattern` (conservative: false when unsure).
bool globMatchesAllUnder(std::string_view pattern, std::string_view prefix);

/// Whether a key has a "." or ".." path segment ("a/../b"), which a path-normalising server would resolve.
bool hasDotSegment(std::string_view key);

class AccessPolicy {
 public:
  /// Throws PolicyError naming the first action or resource it cannot read.
  AccessPolicy(const std::vector<PolicyStatement>& statements, bool admin);

  /// May use Granary's admin API (with its own signature), within what it may read.
  bool admin() const { return admin_; }
  /// `action` on object `key` of `bucket` ("arn:aws:s3:::bucket/key"). A key with a dot segment needs
  /// `action` on the whole bucket.
  bool allowsObject(std::string_view action, std::string_view bucket, std::string_view key) const;
  /// `action` on the bucket itself ("arn:aws:s3:::bucket").
  bool allowsBucket(std::string_view action, std::string_view bucket) const;
  /// `action` on every object whose key starts with `prefix` (a whole bucket: prefix "").
  bool allowsAllUnder(std::string_view action, std::string_view bucket, std::string_view prefix) const;
  /// `action` on at least one possible object whose key starts with `prefix`.
  bool allowsSomeUnder(std::string_view action, std::string_view bucket, std::string_view prefix) const;
  /// Any statement names the bucket or objects in it (ListBuckets shows it; HeadBucket answers).
  bool touchesBucket(std::string_view bucket) const;

 private:
  struct Rule {
    std::vector<std::string> actions;    // lower case
    std::vector<std::string> resources;  // after "arn:aws:s3:::"
  };
  template <class Pred>
  bool any(std::string_view action, Pred pred) const;

  std::vector<Rule> rules_;
  bool admin_ = false;
};
using PolicyPtr = std::shared_ptr<const AccessPolicy>;

/// What one request needs: an action on a bucket, on one object, or (listings) on the keys it shows.
struct AccessNeed {
  // AllKeys: every key of the bucket (a browser form upload, whose key Granary cannot see).
  enum class On { Bucket, Object, Listing, AnyInBucket, AllKeys, Nothing } on = On::Nothing;
  std::string action;  // "s3:GetObject"...
  std::string key;     // On::Object
};

/// The IAM action a request of operation `op` needs (On::Nothing: ListBuckets, whose answer is filtered
/// instead; DeleteObjects, whose keys come with its body). An operation Granary does not know needs
/// "s3:Unknown:<op>", which only a wildcard action grants.
AccessNeed requiredAccess(S3Op op, std::string_view key, const QueryParams& query);

/// Whether `policy` (null: every access) grants `need` on `bucket`.
bool allows(const AccessPolicy* policy, const AccessNeed& need, std::string_view bucket);

/// The listing action of a listing operation ("s3:ListBucket"...), or "" for other operations.
std::string_view listingAction(S3Op op);

}  // namespace granary::s3api
