// MultipartTracker: Complete judged only for uploads seen from their creation, as S3 would judge it.

#include <catch2/catch.hpp>

#include "s3api/multipart_tracker.h"

using namespace granary::s3api;

namespace {
std::string complete(std::initializer_list<std::pair<int, const char*>> parts) {
  std::string x = "<CompleteMultipartUpload>";
  for (const auto& [n, e] : parts)
    x += "<Part><PartNumber>" + std::to_string(n) + "</PartNumber><ETag>" + e + "</ETag></Part>";
  return x + "</CompleteMultipartUpload>";
}
std::string code(const std::optional<S3Failure>& f) { return f ? std::string(errorInfo(f->error).code) : "ok"; }
}  // namespace

TEST_CASE("multipart tracker: InvalidPart, EntityTooSmall, and uploads it did not see", "[s3api]") {
  MultipartTracker t(2);
  const auto big = kMinPartSize;
  t.created("u1");
  t.partUploaded("u1", 1, "\"aaa\"", big);
  t.partUploaded("u1", 2, "\"bbb\"", 10);
  CHECK(code(t.checkComplete("u1", complete({{1, "\"aaa\""}, {2, "\"bbb\""}}))) == "ok");
  CHECK(code(t.checkComplete("u1", complete({{1, "aaa"}, {2, "bbb"}}))) == "ok");  // quotes optional
  CHECK(code(t.checkComplete("u1", complete({{1, "\"zzz\""}, {2, "\"bbb\""}}))) == "InvalidPart");
  CHECK(code(t.checkComplete("u1", complete({{1, "\"aaa\""}, {3, "\"ccc\""}}))) == "InvalidPart");
  t.partUploaded("u1", 1, "\"aaa2\"", 100);  // re-uploaded smaller
  CHECK(code(t.checkComplete("u1", complete({{1, "\"aaa2\""}, {2, "\"bbb\""}}))) == "EntityTooSmall");
  CHECK(code(t.checkComplete("u1", complete({{2, "\"bbb\""}}))) == "ok");  // the last part may be small
  CHECK(code(t.checkComplete("never-seen", complete({{1, "\"x\""}}))) == "ok");  // the backend's to judge
  t.forget("u1");
  CHECK(code(t.checkComplete("u1", complete({{1, "\"zzz\""}}))) == "ok");
  t.created("u2");
  t.created("u3");
  t.created("u4");  // past the bound: the oldest is no longer judged
  t.partUploaded("u2", 1, "\"a\"", 1);
  CHECK(code(t.checkComplete("u2", complete({{1, "\"wrong\""}}))) == "ok");
  CHECK(code(t.checkComplete("u4", complete({{1, "\"wrong\""}}))) == "InvalidPart");
}
