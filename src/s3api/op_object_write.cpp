// Object writes: PutObject (spooled in a write-back bucket, filling the cache after a write-through),
// CopyObject (across backends through Granary), PostObject, DeleteObject and DeleteObjects.

#include <boost/beast/http/field.hpp>

#include "s3api/exchange.h"
#include "s3api/request_xml.h"

namespace granary::s3api {

namespace bhttp = boost::beast::http;

http::Awaitable<void> ProxyHandler::opObjectWrite(Exchange& x, Call& c) {
  if (c.copySource && opts_.buckets->lookup(c.copySource->bucket).backend != x.policy->backend)
    co_return co_await copyAcrossBackends(x, *c.copySource);
  if (writesBack(x)) {
    const bool versioned = findParam(x.routed.query, "versionId") != nullptr;
    if (x.op == S3Op::PutObject) {
      if (co_await putWriteBack(x, c.auth, c.body.payloadLength, c.body.checks)) co_return;
      co_await supersedePending(x, x.routed.key);  // not spooled: written through, after what is pending
    } else if (x.op == S3Op::DeleteObject && !versioned) {
      co_return co_await deleteWriteBack(x);
    } else if (x.op == S3Op::CopyObject || x.op == S3Op::DeleteObject) {
      co_await supersedePending(x, x.routed.key);
    }
  }
  Outbound o{requestFor(x, c)};
  if (!co_await attachBody(x, c, o)) co_return;
  if (x.op == S3Op::DeleteObjects && o.verified) {
    if (x.client && x.client->policy) {
      // Every key the backend would act on must be the key's to delete (S3 would answer per key; one
      // refused key refuses the request, so nothing is half-deleted on a guess).
      for (const auto& [key, versionId] : deleteObjectsKeys(o.ur.bufferedBody))
        if (!x.client->policy->allowsObject(versionId.empty() ? "s3:DeleteObject" : "s3:DeleteObjectVersion",
                                            x.routed.bucket, key))
          co_return co_await deny(x, "a key of DeleteObjects by its policy");
    }
    if (writesBack(x))  // what is pending for those keys must not land later
      for (const auto& [key, versionId] : deleteObjectsKeys(o.ur.bufferedBody)) co_await supersedePending(x, key);
  }
  const AnswerHook hook = &ProxyHandler::afterObjectWrite;  // (named: GCC 12 coroutines)
  co_await relayUpstream(x, c, o, hook);
}

http::Awaitable<bool> ProxyHandler::afterObjectWrite(Exchange& x, Call& c, Outbound& o, upstream::UpstreamResponse* resp) {
  // Write-through: the bytes the backend took fill the cache (when it took all of them).
  if (resp && o.fillOnWrite && resp->header().result_int() == 200 &&
      o.written.size() == c.body.payloadLength.value_or(0) && (!o.capture || o.capture->complete()))
    startFillAfterWrite(x, std::string(resp->header()[bhttp::field::etag]), std::move(o.written));
  co_return false;
}

}  // namespace granary::s3api
