#include <catch2/catch.hpp>

#include "common/uri.h"

using namespace granary;

TEST_CASE("uriEncode keeps only the unreserved set", "[unit][uri]") {
  CHECK(uriEncode("a b", false) == "a%20b");
  CHECK(uriEncode("a+b", false) == "a%2Bb");
  CHECK(uriEncode("100%", false) == "100%25");
  CHECK(uriEncode("~-_.", false) == "~-_.");
  CHECK(uriEncode("a/b", false) == "a/b");
  CHECK(uriEncode("a/b", true) == "a%2Fb");
  CHECK(uriEncode("a//b", false) == "a//b");
  CHECK(uriEncode("ü", false) == "%C3%BC");
  CHECK(uriEncode("*!'()", false) == "%2A%21%27%28%29");
  CHECK(uriEncode("=&?#", true) == "%3D%26%3F%23");
}

TEST_CASE("uriDecode leaves '+' alone and rejects broken escapes", "[unit][uri]") {
  CHECK(uriDecode("a%20b") == "a b");
  CHECK(uriDecode("a+b") == "a+b");
  CHECK(uriDecode("%7e%7E") == "~~");
  CHECK(uriDecode("%C3%BC") == "ü");
  CHECK_FALSE(uriDecode("%"));
  CHECK_FALSE(uriDecode("%2"));
  CHECK_FALSE(uriDecode("%G0"));
  CHECK_FALSE(uriDecode("abc%"));
}

TEST_CASE("parseQuery splits names and values, value-less names kept", "[unit][uri]") {
  auto q = parseQuery("list-type=2&prefix=a%20b&uploads&empty=&&x=1%2B1");
  REQUIRE(q);
  REQUIRE(q->size() == 5);
  CHECK((*q)[0] == std::pair<std::string, std::string>{"list-type", "2"});
  CHECK((*q)[1].second == "a b");
  CHECK((*q)[2] == std::pair<std::string, std::string>{"uploads", ""});
  CHECK((*q)[3] == std::pair<std::string, std::string>{"empty", ""});
  CHECK((*q)[4].second == "1+1");
  CHECK_FALSE(parseQuery("a=%zz"));
}

TEST_CASE("canonical query: encoded, sorted by name then value", "[unit][uri]") {
  QueryParams q{{"prefix", "a b/c"}, {"delimiter", "/"}, {"a", "2"}, {"a", "1"}, {"uploads", ""}};
  CHECK(canonicalQueryString(q) == "a=1&a=2&delimiter=%2F&prefix=a%20b%2Fc&uploads=");
  // Sorting is by encoded byte order: upper-case before lower-case.
  CHECK(canonicalQueryString({{"b", "1"}, {"B", "2"}, {"X-Amz-Date", "d"}}) == "B=2&X-Amz-Date=d&b=1");
}

TEST_CASE("splitTarget", "[unit][uri]") {
  CHECK(splitTarget("/b/k?x=1") == std::pair<std::string_view, std::string_view>{"/b/k", "x=1"});
  CHECK(splitTarget("/b/k") == std::pair<std::string_view, std::string_view>{"/b/k", ""});
  CHECK(splitTarget("/?") == std::pair<std::string_view, std::string_view>{"/", ""});
}
