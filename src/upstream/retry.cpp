#include "upstream/retry.h"

#include <algorithm>

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

#include "upstream/errors.h"

namespace granary::upstream {

std::chrono::milliseconds RetryPolicy::backoff(int attempt, std::mt19937_64& rng) const {
  std::int64_t ceiling = base.count();
  for (int i = 1; i < attempt && ceiling < cap.count(); ++i) ceiling *= 2;
  ceiling = std::min<std::int64_t>(ceiling, cap.count());
  std::uniform_int_distribution<std::int64_t> dist(0, std::max<std::int64_t>(ceiling, 0));
  return std::chrono::milliseconds(dist(rng));
}

bool RetryPolicy::retriableStatus(unsigned status) {
  return status == 500 || status == 502 || status == 503 || status == 504;
}

bool RetryPolicy::retriableError(const boost::system::error_code& ec) {
  namespace ae = boost::asio::error;
  return ec == ae::connection_refused || ec == ae::connection_reset || ec == ae::connection_aborted ||
         ec == ae::broken_pipe || ec == ae::eof || ec == ae::timed_out || ec == ae::host_unreachable ||
         ec == ae::network_unreachable || ec == boost::beast::error::timeout ||
         ec == boost::beast::http::error::end_of_stream || ec == boost::beast::http::error::partial_message ||
         ec == Error::ConnectTimeout || ec == Error::ResponseTimeout || ec == Error::PoolExhausted;
}

}  // namespace granary::upstream
