#pragma once
// Error codes of the upstream module (one category, Beast-style).

#include <boost/system/error_code.hpp>

namespace granary::upstream {

enum class Error {
  Ok = 0,
  ConnectTimeout = 1,   // the backend did not accept a connection in time
  ResponseTimeout,      // the backend stopped sending
  PoolExhausted,        // every pooled connection stayed busy past the connect timeout
  BodySourceFailed,     // the body source reported an error (the client side; see its own status)
  ShuttingDown,
};

const boost::system::error_category& errorCategory();
inline boost::system::error_code make_error_code(Error e) { return {static_cast<int>(e), errorCategory()}; }

}  // namespace granary::upstream

template <>
struct boost::system::is_error_code_enum<granary::upstream::Error> : std::true_type {};
