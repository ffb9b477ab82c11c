// Client text on its way into a log line: one request, one line, no terminal control.

#include <catch2/catch.hpp>

#include "common/log_escape.h"

using namespace granary;

TEST_CASE("logSafe: control bytes, backslash and invalid UTF-8 are escaped; UTF-8 passes", "[unit][log]") {
  CHECK(logSafe("plain/key.txt") == "plain/key.txt");
  CHECK(logSafe("x\naccess id=FAKE op=PutObject status=200") == "x\\x0aaccess id=FAKE op=PutObject status=200");
  CHECK(logSafe("a\rb\x1b[31mc\x7f") == "a\\x0db\\x1b[31mc\\x7f");
  CHECK(logSafe(std::string_view("nul\0byte", 8)) == "nul\\x00byte");
  CHECK(logSafe("back\\slash") == "back\\x5cslash");  // an escape can never be forged
  CHECK(logSafe("\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80") == "\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80");  // ü € 😀
  CHECK(logSafe("\xff\xc3") == "\\xff\\xc3");                 // invalid, truncated
  CHECK(logSafe("\xc0\xaf") == "\\xc0\\xaf");                 // overlong '/'
  CHECK(logSafe("\xed\xa0\x80") == "\\xed\\xa0\\x80");        // a surrogate
  CHECK(logSafe("\xc2\x9b") == "\\xc2\\x9b");                 // C1 CSI
  CHECK(logField("") == "-");
  CHECK(logField("a b\"c") == "a\\x20b\\x22c");
}

TEST_CASE("jsonEscape and clfField keep a line one parseable record", "[unit][log]") {
  CHECK(jsonEscape("a\"b\\c\n\x01") == "a\\\"b\\\\c\\u000a\\u0001");
  CHECK(jsonEscape("\xc3\xbc") == "\xc3\xbc");
  CHECK(jsonEscape("\xff") == "\\u00ff");
  CHECK(clfField("/b/a key\"\n\xc3\xbc") == "/b/a%20key%22%0A%C3%BC");
}
