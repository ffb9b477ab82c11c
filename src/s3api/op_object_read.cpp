// GetObject and HeadObject: a write pending in the spool, else the cache (filling what it lacks), else
// the backend.

#include "s3api/exchange.h"
#include "s3api/prefetch_tracker.h"

namespace granary::s3api {

http::Awaitable<void> ProxyHandler::opObjectRead(Exchange& x, Call& c) {
  // A client's read moves the reader of the prefetch jobs ordering this key (one relaxed load without one).
  if (opts_.prefetch && x.op == S3Op::GetObject && !x.ctx.internal) opts_.prefetch->noteRead(x.routed.bucket, x.routed.key);
  const bool versioned = findParam(x.routed.query, "versionId") != nullptr;
  if (writesBack(x) && !versioned && co_await serveWriteBack(x)) co_return;
  bool useCache = cache_ && cacheEligible(x);
  if (useCache && c.keys->hasTenants()) {
    // Cached bytes may have been fetched under another tenant's credentials: they reach this key only
    // once the backend said its own credentials may read the object.
    const BackendAccess access = co_await backendAllows(x);
    if (access == BackendAccess::Refused) co_return co_await deny(x, "by the backend (tenant credentials)");
    useCache = access == BackendAccess::Allowed;
  }
  if (useCache && co_await serveCached(x)) co_return;
  co_await relayAsIs(x, c);
}

}  // namespace granary::s3api
