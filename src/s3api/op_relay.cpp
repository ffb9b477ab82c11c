// Bucket-level operations (HeadBucket, CreateBucket, DeleteBucket, GetBucketLocation, ?versioning and the
// other subresources), object tagging and ACLs, and operations Granary does not know: relayed as they are
// (their XML answers checked, renamed buckets' names rewritten).

#include "s3api/exchange.h"

namespace granary::s3api {

http::Awaitable<void> ProxyHandler::opRelay(Exchange& x, Call& c) { co_await relayAsIs(x, c); }

}  // namespace granary::s3api
