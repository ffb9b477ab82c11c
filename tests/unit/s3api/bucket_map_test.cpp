// BucketMap: client buckets onto backends, and which names ListBuckets shows.

#include <catch2/catch.hpp>

#include "s3api/bucket_map.h"

using namespace granary::s3api;

namespace {
BucketPolicy on(std::size_t backend, std::string there = {}) {
  BucketPolicy p;
  p.backend = backend;
  p.backendBucket = std::move(there);
  return p;
}
}  // namespace

TEST_CASE("bucket map: unlisted buckets go to the default backend under their own name", "[s3api]") {
  BucketMap m({"http://a", "http://b"});
  REQUIRE(m.add("renamed", on(1, "real")));
  REQUIRE_FALSE(m.add("renamed", on(0)));  // one policy per client name
  REQUIRE_FALSE(m.add("nowhere", on(7)));  // no such backend
  CHECK(m.lookup("anything").backend == 0);
  CHECK(m.backendBucket("anything") == "anything");
  CHECK(m.lookup("renamed").backend == 1);
  CHECK(m.backendBucket("renamed") == "real");
  CHECK(m.backendId(1) == "http://b");
}

TEST_CASE("bucket map: listings show client names, hide shadowed and unreachable buckets", "[s3api]") {
  BucketMap m({"http://a", "http://b"});
  m.add("alias", on(1, "real"));
  m.add("alias2", on(1, "real"));
  m.add("taken", on(1, "other"));
  m.add("local-renamed", on(0, "backend-name"));
  CHECK(m.visibleNames(1, "real") == std::vector<std::string>{"alias", "alias2"});
  CHECK(m.visibleNames(1, "unlisted").empty());  // reachable under no client name
  CHECK(m.visibleNames(0, "plain") == std::vector<std::string>{"plain"});
  CHECK(m.visibleNames(0, "taken").empty());  // the client name "taken" routes to backend b
  CHECK(m.visibleNames(0, "backend-name") == std::vector<std::string>{"local-renamed"});
  CHECK(m.listingBackends() == std::vector<std::size_t>{0, 1});
  CHECK_FALSE(m.passThroughListing());
}

TEST_CASE("bucket map: one backend without renames lists by passing the request through", "[s3api]") {
  BucketMap m({"http://a"});
  BucketPolicy frozen;
  frozen.metadataTtl = std::chrono::milliseconds::max();
  m.add("frozen", frozen);
  CHECK(m.passThroughListing());
  CHECK(m.lookup("frozen").metadataTtl == std::chrono::milliseconds::max());
  CHECK_FALSE(m.lookup("other").metadataTtl.has_value());
  m.add("renamed", on(0, "elsewhere"));
  CHECK_FALSE(m.passThroughListing());
}
