#pragma once
// When and how long to wait before retrying a backend request (the model: Seastar's retry_strategy).

#include <chrono>
#include <cstdint>
#include <random>

#include <boost/system/error_code.hpp>

namespace granary::upstream {

struct RetryPolicy {
  int maxAttempts = 4;  // first try included
  std::chrono::milliseconds base{50};
  std::chrono::milliseconds cap{2000};

  /// Full-jitter exponential backoff: uniform in [0, min(cap, base * 2^(attempt-1))].
  /// @param attempt the number of attempts made so far (1 after the first failure).
  std::chrono::milliseconds backoff(int attempt, std::mt19937_64& rng) const;

  /// Statuses S3 asks clients to retry: 500, 502, 503 (SlowDown), 504.
  static bool retriableStatus(unsigned status);
  /// Connection-level failures worth another connection: refused, reset, broken pipe, EOF, timeouts.
  static bool retriableError(const boost::system::error_code& ec);
};

}  // namespace granary::upstream
