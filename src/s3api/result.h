#pragma once
// One shape for the outcome of a step on the data path: its value, or the S3 error the client is answered
// with (no mix of optional, out-parameters and bools).

#include <optional>
#include <utility>
#include <variant>

#include "s3api/errors.h"

namespace granary::s3api {

template <class T>
class [[nodiscard]] S3Result {
 public:
  S3Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  S3Result(S3Failure failure) : v_(std::in_place_index<1>, std::move(failure)) {}  // NOLINT
  S3Result(S3Error error) : v_(std::in_place_index<1>, S3Failure{error, {}, {}}) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const S3Failure& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, S3Failure> v_;
};

/// A step with nothing to return: success, or the error.
template <>
class [[nodiscard]] S3Result<void> {
 public:
  S3Result() = default;
  S3Result(S3Failure failure) : failure_(std::move(failure)) {}  // NOLINT
  S3Result(S3Error error) : failure_(S3Failure{error, {}, {}}) {}  // NOLINT
  bool ok() const { return !failure_; }
  explicit operator bool() const { return ok(); }
  const S3Failure& error() const { return *failure_; }

 private:
  std::optional<S3Failure> failure_;
};

}  // namespace granary::s3api
