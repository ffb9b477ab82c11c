#include <catch2/catch.hpp>

#include <boost/asio/error.hpp>

#include "upstream/errors.h"
#include "upstream/retry.h"

using namespace granary::upstream;

TEST_CASE("backoff is full jitter under an exponential ceiling", "[unit][retry]") {
  RetryPolicy p;
  p.base = std::chrono::milliseconds(50);
  p.cap = std::chrono::milliseconds(1000);
  std::mt19937_64 rng(42);
  for (int attempt = 1; attempt <= 8; ++attempt) {
    const std::int64_t ceiling = std::min<std::int64_t>(50LL << (attempt - 1), 1000);
    std::int64_t maxSeen = 0;
    for (int i = 0; i < 500; ++i) {
      auto d = p.backoff(attempt, rng).count();
      REQUIRE(d >= 0);
      REQUIRE(d <= ceiling);
      maxSeen = std::max(maxSeen, d);
    }
    CHECK(maxSeen > ceiling / 2);  // it does spread out up to the ceiling
  }
}

TEST_CASE("which statuses and errors are retried", "[unit][retry]") {
  for (unsigned s : {500u, 502u, 503u, 504u}) CHECK(RetryPolicy::retriableStatus(s));
  for (unsigned s : {200u, 206u, 304u, 400u, 403u, 404u, 416u, 501u}) CHECK_FALSE(RetryPolicy::retriableStatus(s));
  CHECK(RetryPolicy::retriableError(boost::asio::error::connection_refused));
  CHECK(RetryPolicy::retriableError(boost::asio::error::connection_reset));
  CHECK(RetryPolicy::retriableError(make_error_code(Error::ConnectTimeout)));
  CHECK_FALSE(RetryPolicy::retriableError(make_error_code(Error::BodySourceFailed)));
  CHECK_FALSE(RetryPolicy::retriableError(boost::asio::error::operation_aborted));
}
