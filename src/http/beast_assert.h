#pragma once
// boost::assertion_failed for a translation unit that routes Boost's assertions to a handler
// (BOOST_ENABLE_ASSERT_HANDLER, or BOOST_ENABLE_ASSERT_DEBUG_HANDLER to keep release builds free of
// them). Include it in exactly one translation unit of a program: the one that instantiates Beast's
// request parser (src/http/session.cpp; the http_session fuzz target).
//
// Beast before Boost 1.86 asserts n >= 5 in basic_parser::parse_chunk_header when a request's last chunk
// ("0\r\n") arrives in one read and the rest of its end in another: the assertion is wrong, the code
// after it handles the case (boostorg/beast#2861, fixed in 1.86), and release builds compile it out. A
// client's segmentation must not abort a build that keeps assertions, so that one is let through; any
// other Boost assertion aborts as assert() would.

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace boost {
void assertion_failed(char const* expr, char const* function, char const* file, long line) {
  if (std::string_view(expr) == "n >= 5" && std::string_view(file).ends_with("http/impl/basic_parser.ipp")) return;
  std::fprintf(stderr, "%s:%ld: %s: Boost assertion '%s' failed\n", file, line, function, expr);
  std::abort();
}
void assertion_failed_msg(char const* expr, char const* msg, char const* function, char const* file, long line) {
  std::fprintf(stderr, "%s:%ld: %s: Boost assertion '%s' failed: %s\n", file, line, function, expr, msg);
  std::abort();
}
}  // namespace boost
