#include <catch2/catch.hpp>

#include <string>

#include "s3api/result.h"

using namespace granary::s3api;

TEST_CASE("S3Result carries a value or the S3 error to answer with", "[s3api][result]") {
  S3Result<std::string> good = std::string("abc");
  REQUIRE(good.ok());
  CHECK(*good == "abc");
  CHECK(good->size() == 3);

  S3Result<std::string> bad = S3Failure{S3Error::InvalidRange, "past the end", {{"ActualObjectSize", "3"}}};
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().error == S3Error::InvalidRange);
  CHECK(bad.error().message == "past the end");
  REQUIRE(bad.error().extra.size() == 1);

  S3Result<int> code = S3Error::NoSuchKey;
  REQUIRE_FALSE(code);
  CHECK(code.error().error == S3Error::NoSuchKey);
  CHECK(code.error().message.empty());
}

TEST_CASE("S3Result<void> is success or an error", "[s3api][result]") {
  S3Result<void> fine;
  CHECK(fine.ok());
  S3Result<void> refused = S3Error::AccessDenied;
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().error == S3Error::AccessDenied);
}
