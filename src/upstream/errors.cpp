#include "upstream/errors.h"

namespace granary::upstream {
namespace {
class Category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "granary.upstream"; }
  std::string message(int ev) const override {
    switch (static_cast<Error>(ev)) {
      case Error::Ok: return "ok";
      case Error::ConnectTimeout: return "timed out connecting to the backend";
      case Error::ResponseTimeout: return "timed out waiting for the backend";
      case Error::PoolExhausted: return "no backend connection became free in time";
      case Error::BodySourceFailed: return "the request body failed while streaming";
      case Error::ShuttingDown: return "shutting down";
    }
    return "unknown upstream error";
  }
};
}  // namespace

const boost::system::error_category& errorCategory() {
  static const Category c;
  return c;
}

}  // namespace granary::upstream
