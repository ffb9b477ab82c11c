#include <catch2/catch.hpp>

#include "upstream/endpoint.h"

using namespace granary::upstream;

TEST_CASE("backend endpoints", "[unit][endpoint]") {
  auto e = parseEndpoint("http://127.0.0.1:4568");
  REQUIRE(e);
  CHECK_FALSE(e->tls);
  CHECK(e->host == "127.0.0.1");
  CHECK(e->port == 4568);
  CHECK(e->hostHeader() == "127.0.0.1:4568");

  auto s = parseEndpoint("https://s3.us-east-1.amazonaws.com/");
  REQUIRE(s);
  CHECK(s->tls);
  CHECK(s->port == 443);
  CHECK(s->hostHeader() == "s3.us-east-1.amazonaws.com");

  auto v6 = parseEndpoint("http://[::1]:9000");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->hostHeader() == "[::1]:9000");

  CHECK_FALSE(parseEndpoint("ftp://x"));
  CHECK_FALSE(parseEndpoint("http://"));
  CHECK_FALSE(parseEndpoint("http://h/path"));
  CHECK_FALSE(parseEndpoint("http://user@h"));
  CHECK_FALSE(parseEndpoint("127.0.0.1:4568"));
}
