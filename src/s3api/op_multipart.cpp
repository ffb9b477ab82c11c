// Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy, CompleteMultipartUpload,
// AbortMultipartUpload, ListParts. The backend's uploads are relayed (their parts noted for Complete's
// checks); uploads created in a write-back bucket live in the spool (proxy_writeback_multipart.cpp).

#include <boost/beast/http/field.hpp>

#include "s3api/exchange.h"

namespace granary::s3api {

namespace bhttp = boost::beast::http;

http::Awaitable<void> ProxyHandler::opMultipart(Exchange& x, Call& c) {
  if (writesBack(x) && x.op == S3Op::CreateMultipartUpload && co_await createSpoolUpload(x)) co_return;
  if (c.copySource && opts_.buckets->lookup(c.copySource->bucket).backend != x.policy->backend)
    co_return co_await copyAcrossBackends(x, *c.copySource);
  if (writesBack(x) && x.op == S3Op::CompleteMultipartUpload) co_await supersedePending(x, x.routed.key);
  Outbound o{requestFor(x, c)};
  if (!co_await attachBody(x, c, o)) co_return;
  if (const auto* id = findParam(x.routed.query, "uploadId");
      id && o.verified && x.op == S3Op::CompleteMultipartUpload)
    if (auto bad = opts_.multipart->checkComplete(*id, o.ur.bufferedBody)) co_return co_await sendError(x, *bad);
  const AnswerHook hook = &ProxyHandler::afterMultipart;  // (named: GCC 12 coroutines)
  co_await relayUpstream(x, c, o, hook);
}

http::Awaitable<void> ProxyHandler::opSpoolUpload(Exchange& x, Call& c) {
  co_await spoolMultipart(x, c.auth, c.body.payloadLength, std::move(c.body.checks), c.copySource);
}

http::Awaitable<bool> ProxyHandler::afterMultipart(Exchange& x, Call& c, Outbound&, upstream::UpstreamResponse* resp) {
  const auto* id = findParam(x.routed.query, "uploadId");
  if (!resp || !id) co_return false;
  // The parts of uploads made through Granary, for CompleteMultipartUpload's checks.
  const unsigned answered = resp->header().result_int();
  const auto* part = findParam(x.routed.query, "partNumber");
  if (x.op == S3Op::UploadPart && answered == 200 && part && c.body.payloadLength)
    opts_.multipart->partUploaded(*id, static_cast<std::uint32_t>(parseLength(*part).value_or(0)),
                                  std::string(resp->header()[bhttp::field::etag]), *c.body.payloadLength);
  else if (x.op == S3Op::UploadPartCopy || x.op == S3Op::CompleteMultipartUpload ||
           x.op == S3Op::AbortMultipartUpload)
    opts_.multipart->forget(*id);
  co_return false;
}

}  // namespace granary::s3api
