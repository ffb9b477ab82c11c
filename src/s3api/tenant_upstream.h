#pragma once
// A backend as one tenant key sees it (keys with backend credentials of their own).

#include <memory>

#include "common/sigv4.h"
#include "upstream/upstream.h"

namespace granary::s3api {

/// A backend as one tenant key sees it: the same connections, every request signed with the key's own
/// credentials (unless one already names others).
class TenantUpstream final : public upstream::Upstream {
 public:
  TenantUpstream(upstream::Upstream& real, std::shared_ptr<const sigv4::Credentials> creds)
      : real_(real), creds_(std::move(creds)) {}
  upstream::Awaitable<boost::system::result<upstream::UpstreamResponsePtr>> send(upstream::UpstreamRequest& req) override {
    if (!req.credentials) req.credentials = creds_;
    return real_.send(req);
  }
  void shutdown() override {}
  void setTenantCredentials(std::shared_ptr<const sigv4::Credentials> c) { creds_ = std::move(c); }
  const sigv4::Credentials* tenantCredentials() const { return creds_.get(); }

 private:
  upstream::Upstream& real_;
  std::shared_ptr<const sigv4::Credentials> creds_;
};

}  // namespace granary::s3api
