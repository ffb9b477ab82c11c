#include <catch2/catch.hpp>

#include "s3api/routing.h"

using namespace granary::s3api;

TEST_CASE("path-style addressing", "[unit][routing]") {
  auto r = route("/bucket/dir/a%20b+c%25d?list-type=2", "127.0.0.1:9000", "");
  REQUIRE(r);
  CHECK(r->bucket == "bucket");
  CHECK(r->key == "dir/a b+c%d");
  CHECK_FALSE(r->virtualHosted);
  CHECK(r->query.size() == 1);

  auto svc = route("/", "localhost", "s3.local");
  REQUIRE(svc);
  CHECK(svc->bucket.empty());
  CHECK(svc->key.empty());

  auto b = route("/bucket", "h", "");
  REQUIRE(b);
  CHECK(b->bucket == "bucket");
  CHECK(b->key.empty());
  CHECK(route("/bucket/", "h", "")->key.empty());
}

TEST_CASE("keys keep '//', '..', unicode and leading slashes", "[unit][routing]") {
  CHECK(route("/b/a//b", "h", "")->key == "a//b");
  CHECK(route("/b//lead", "h", "")->key == "/lead");
  CHECK(route("/b/../x/./y", "h", "")->key == "../x/./y");
  CHECK(route("/b/%C3%BC", "h", "")->key == "ü");
  CHECK(route("/b/a/%2Fb", "h", "")->key == "a//b");
}

TEST_CASE("virtual-hosted addressing under --domain", "[unit][routing]") {
  auto r = route("/dir/key.txt?x=1", "my.bucket.s3.local:9000", "s3.local");
  REQUIRE(r);
  CHECK(r->virtualHosted);
  CHECK(r->bucket == "my.bucket");
  CHECK(r->key == "dir/key.txt");

  auto upper = route("/k", "Bucket1.S3.Local", "s3.local");
  REQUIRE(upper);
  CHECK(upper->bucket == "Bucket1");

  // The bare domain, another host, or no domain configured: path style.
  CHECK_FALSE(route("/b/k", "s3.local:9000", "s3.local")->virtualHosted);
  CHECK_FALSE(route("/b/k", "xs3.local", "s3.local")->virtualHosted);
  CHECK_FALSE(route("/b/k", "b.s3.local", "")->virtualHosted);
  CHECK(route("/", "bkt.s3.local", "s3.local")->bucket == "bkt");
}

TEST_CASE("unroutable targets", "[unit][routing]") {
  CHECK_FALSE(route("bucket/key", "h", ""));
  CHECK_FALSE(route("/b/%zz", "h", ""));
  CHECK_FALSE(route("/b/k?x=%", "h", ""));
  CHECK_FALSE(route("", "h", ""));
}

TEST_CASE("hostWithoutPort", "[unit][routing]") {
  CHECK(hostWithoutPort("a.b:9000") == "a.b");
  CHECK(hostWithoutPort("a.b") == "a.b");
  CHECK(hostWithoutPort("[::1]:9000") == "[::1]");
  CHECK(hostWithoutPort("[::1]") == "[::1]");
}

TEST_CASE("absolute-form request targets (RFC 9112 section 3.2.2)", "[unit][routing]") {
  bool ok = true;
  auto t = splitAbsoluteForm("http://127.0.0.1:9000/bucket/key?x=1", ok);
  REQUIRE(t);
  CHECK(ok);
  CHECK(t->authority == "127.0.0.1:9000");
  CHECK(t->originForm == "/bucket/key?x=1");
  CHECK(splitAbsoluteForm("HTTPS://h", ok)->originForm == "/");
  CHECK(splitAbsoluteForm("http://h?list-type=2", ok)->originForm == "/?list-type=2");
  CHECK_FALSE(splitAbsoluteForm("/bucket/key", ok));
  CHECK(ok);
  CHECK_FALSE(splitAbsoluteForm("http:///path", ok));
  CHECK_FALSE(ok);
  CHECK_FALSE(splitAbsoluteForm("http://user@h/b/k", ok));
  CHECK_FALSE(ok);
  CHECK_FALSE(splitAbsoluteForm("ftp://h/b", ok));
  CHECK(ok);  // not absolute form at all: routed (and refused) as an origin-form target
}
