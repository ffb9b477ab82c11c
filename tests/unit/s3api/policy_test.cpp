#include "s3api/policy.h"

#include <catch2/catch.hpp>

using namespace granary::s3api;
using granary::QueryParams;

namespace {
QueryParams q(std::initializer_list<std::pair<const char*, const char*>> kv) {
  QueryParams out;
  for (const auto& [k, v] : kv) out.emplace_back(k, v);
  return out;
}
AccessPolicy teamA() {
  return AccessPolicy({{{"s3:GetObject", "s3:ListBucket"}, {"arn:aws:s3:::datasets/team-a/*"}},
                       {{"s3:PutObject", "s3:DeleteObject"}, {"arn:aws:s3:::scratch/team-a/*"}}},
                      false);
}
}  // namespace

TEST_CASE("glob: '*' spans '/', '?' is one byte, everything else is literal", "[policy]") {
  CHECK(globMatch("datasets/team-a/*", "datasets/team-a/x/y.bin"));
  CHECK(globMatch("datasets/team-a/*", "datasets/team-a/"));
  CHECK_FALSE(globMatch("datasets/team-a/*", "datasets/team-a"));
  CHECK_FALSE(globMatch("datasets/team-a/*", "datasets/team-b/x"));
  CHECK(globMatch("d?ta/*.bin", "data/x/y.bin"));
  CHECK_FALSE(globMatch("d?ta/*.bin", "data/x/y.bin2"));
  CHECK(globMatch("*", ""));
  CHECK(globMatch("a*b*c", "aXXbYYc"));
  CHECK_FALSE(globMatch("a*b*c", "aXXbYY"));
  CHECK_FALSE(globMatch("abc", "ABC"));  // resources keep their case
}

TEST_CASE("glob: what may match under a prefix, and what surely does", "[policy]") {
  CHECK(globMayMatchUnder("datasets/team-a/*", "datasets/"));
  CHECK(globMayMatchUnder("datasets/team-a/*", "datasets/team-a/sub/"));
  CHECK_FALSE(globMayMatchUnder("datasets/team-a/*", "datasets/team-b"));
  CHECK(globMayMatchUnder("datasets/*/public/*", "datasets/x/"));
  CHECK(globMatchesAllUnder("datasets/team-a/*", "datasets/team-a/"));
  CHECK(globMatchesAllUnder("datasets/team-a/*", "datasets/team-a/deep/er"));
  CHECK_FALSE(globMatchesAllUnder("datasets/team-a/*", "datasets/"));
  CHECK_FALSE(globMatchesAllUnder("datasets/*/public/*", "datasets/x/"));
  CHECK(globMatchesAllUnder("datasets/*/public/*", "datasets/x/public/"));
  CHECK_FALSE(globMatchesAllUnder("datasets/team-a/x", "datasets/team-a/x"));  // x itself, not x/...
}

TEST_CASE("policy: objects by action and resource; actions compare without case", "[policy]") {
  const AccessPolicy p = teamA();
  CHECK(p.allowsObject("s3:GetObject", "datasets", "team-a/img/1.jpg"));
  CHECK(p.allowsObject("S3:getobject", "datasets", "team-a/img/1.jpg"));
  CHECK_FALSE(p.allowsObject("s3:GetObject", "datasets", "team-b/img/1.jpg"));
  CHECK_FALSE(p.allowsObject("s3:PutObject", "datasets", "team-a/img/1.jpg"));  // read-only there
  CHECK_FALSE(p.allowsObject("s3:GetObject", "scratch", "team-a/x"));           // write-only there
  CHECK(p.allowsObject("s3:PutObject", "scratch", "team-a/x"));
  CHECK_FALSE(p.allowsObject("s3:GetObject", "datasets2", "team-a/x"));
  CHECK_FALSE(p.allowsBucket("s3:ListBucket", "datasets"));  // only a prefix of it
  CHECK(p.allowsSomeUnder("s3:ListBucket", "datasets", ""));
  CHECK_FALSE(p.allowsAllUnder("s3:ListBucket", "datasets", ""));
  CHECK(p.allowsAllUnder("s3:ListBucket", "datasets", "team-a/"));
  CHECK_FALSE(p.allowsSomeUnder("s3:ListBucket", "datasets", "team-b/"));
  CHECK(p.touchesBucket("datasets"));
  CHECK(p.touchesBucket("scratch"));
  CHECK_FALSE(p.touchesBucket("private"));
  CHECK_FALSE(p.admin());
}

TEST_CASE("policy: wildcard actions, bucket ARNs, '*' resources", "[policy]") {
  const AccessPolicy p({{{"s3:Get*", "s3:List*"}, {"arn:aws:s3:::public", "arn:aws:s3:::public/*"}},
                        {{"*"}, {"arn:aws:s3:::mine*"}}},
                       true);
  CHECK(p.allowsBucket("s3:ListBucket", "public"));
  CHECK(p.allowsObject("s3:GetObjectVersion", "public", "k"));
  CHECK_FALSE(p.allowsObject("s3:PutObject", "public", "k"));
  CHECK(p.allowsObject("s3:PutObject", "mine", "k"));
  CHECK(p.allowsBucket("s3:DeleteBucket", "mine-too"));
  CHECK(p.allowsObject("s3:Unknown:Whatever", "mine", "k"));
  CHECK(p.admin());
  const AccessPolicy all({{{"s3:*"}, {"*"}}}, false);
  CHECK(all.allowsObject("s3:GetObject", "any", "thing"));
  CHECK(all.allowsBucket("s3:CreateBucket", "any"));
}

TEST_CASE("policy: mistakes are refused with the value named", "[policy]") {
  CHECK_THROWS_WITH(AccessPolicy({{{"GetObject"}, {"*"}}}, false), Catch::Contains("'GetObject'"));
  CHECK_THROWS_WITH(AccessPolicy({{{"s3:GetObject"}, {"datasets/*"}}}, false), Catch::Contains("'datasets/*'"));
  CHECK_THROWS_WITH(AccessPolicy({{{"s3:GetObject"}, {}}}, false), Catch::Contains("no resource"));
  CHECK_THROWS_WITH(AccessPolicy({{{}, {"*"}}}, false), Catch::Contains("no action"));
  CHECK_THROWS(AccessPolicy({{{"s3:"}, {"*"}}}, false));
  CHECK_THROWS(AccessPolicy({{{"s3:GetObject"}, {"arn:aws:s3:::"}}}, false));
}

TEST_CASE("requiredAccess: each operation needs IAM's action on the right resource", "[policy]") {
  using On = AccessNeed::On;
  auto need = requiredAccess(S3Op::GetObject, "k", {});
  CHECK((need.on == On::Object && need.action == "s3:GetObject" && need.key == "k"));
  CHECK(requiredAccess(S3Op::HeadObject, "k", {}).action == "s3:GetObject");
  CHECK(requiredAccess(S3Op::GetObject, "k", q({{"versionId", "v1"}})).action == "s3:GetObjectVersion");
  CHECK(requiredAccess(S3Op::GetObject, "k", q({{"partNumber", "2"}})).action == "s3:GetObject");
  CHECK(requiredAccess(S3Op::CopyObject, "k", {}).action == "s3:PutObject");
  CHECK(requiredAccess(S3Op::UploadPart, "k", q({{"uploadId", "u"}, {"partNumber", "1"}})).action == "s3:PutObject");
  CHECK(requiredAccess(S3Op::CompleteMultipartUpload, "k", q({{"uploadId", "u"}})).action == "s3:PutObject");
  CHECK(requiredAccess(S3Op::AbortMultipartUpload, "k", q({{"uploadId", "u"}})).action == "s3:AbortMultipartUpload");
  CHECK(requiredAccess(S3Op::ListParts, "k", q({{"uploadId", "u"}})).action == "s3:ListMultipartUploadParts");
  CHECK(requiredAccess(S3Op::DeleteObject, "k", q({{"versionId", "v"}})).action == "s3:DeleteObjectVersion");
  CHECK(requiredAccess(S3Op::ListObjectsV2, "", q({{"list-type", "2"}})).on == On::Listing);
  CHECK(requiredAccess(S3Op::ListObjectVersions, "", q({{"versions", ""}})).action == "s3:ListBucketVersions");
  CHECK(requiredAccess(S3Op::PutBucketSubresource, "", q({{"versioning", ""}})).action == "s3:PutBucketVersioning");
  CHECK(requiredAccess(S3Op::GetBucketSubresource, "", q({{"acl", ""}})).action == "s3:GetBucketAcl");
  CHECK(requiredAccess(S3Op::CreateBucket, "", {}).on == On::Bucket);
  CHECK(requiredAccess(S3Op::HeadBucket, "", {}).on == On::AnyInBucket);
  CHECK(requiredAccess(S3Op::Unknown, "k", {}).action == "s3:Unknown:Unknown");
  CHECK(requiredAccess(S3Op::ListBuckets, "", {}).on == On::Nothing);
}

TEST_CASE("allows: null policy is everything; a form upload needs the whole bucket", "[policy]") {
  const AccessPolicy p = teamA();
  CHECK(allows(nullptr, requiredAccess(S3Op::DeleteBucket, "", {}), "x"));
  CHECK(allows(&p, requiredAccess(S3Op::GetObject, "team-a/k", {}), "datasets"));
  CHECK_FALSE(allows(&p, requiredAccess(S3Op::GetObject, "team-b/k", {}), "datasets"));
  CHECK_FALSE(allows(&p, requiredAccess(S3Op::PutObject, "team-a/k", {}), "datasets"));
  CHECK(allows(&p, requiredAccess(S3Op::ListObjectsV2, "", q({{"list-type", "2"}})), "datasets"));
  CHECK_FALSE(allows(&p, requiredAccess(S3Op::ListObjectsV2, "", q({{"list-type", "2"}})), "scratch"));
  CHECK_FALSE(allows(&p, requiredAccess(S3Op::PostObject, "", {}), "scratch"));  // its key is in the form
  const AccessPolicy writer({{{"s3:PutObject"}, {"arn:aws:s3:::scratch/*"}}}, false);
  CHECK(allows(&writer, requiredAccess(S3Op::PostObject, "", {}), "scratch"));
  CHECK(allows(&p, requiredAccess(S3Op::HeadBucket, "", {}), "scratch"));
  CHECK_FALSE(allows(&p, requiredAccess(S3Op::HeadBucket, "", {}), "private"));
  CHECK_FALSE(allows(&p, requiredAccess(S3Op::CreateBucket, "", {}), "datasets"));
}

TEST_CASE("policy: dot segments never step out of an allowed prefix", "[policy]") {
  const AccessPolicy p = teamA();
  CHECK(hasDotSegment("team-a/../team-b/x"));
  CHECK(hasDotSegment("team-a/./x"));
  CHECK(hasDotSegment(".."));
  CHECK(hasDotSegment("team-a/x/.."));
  CHECK_FALSE(hasDotSegment("team-a/..x/y"));
  CHECK_FALSE(hasDotSegment("team-a/x.bin"));
  CHECK_FALSE(p.allowsObject("s3:GetObject", "datasets", "team-a/../team-b/secret"));
  CHECK_FALSE(p.allowsObject("s3:GetObject", "datasets", "team-a/./x"));
  CHECK(p.allowsObject("s3:GetObject", "datasets", "team-a/..x"));
  const AccessPolicy whole({{{"s3:GetObject"}, {"arn:aws:s3:::datasets/*"}}}, false);
  CHECK(whole.allowsObject("s3:GetObject", "datasets", "a/../b"));
}
