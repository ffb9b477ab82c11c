// Fuzz target: the XML request bodies Granary reads (src/s3api/request_xml.h): checkRequestXml for every
// operation with a checked body (and a few without), isXmlBodyOp, completeParts and deleteObjectsKeys.
// Properties (the header's contracts): a CompleteMultipartUpload body that checks out yields its parts,
// numbered 1..10000 in ascending order, each with an ETag; a DeleteObjects body that checks out names 1 to
// 1000 keys (empty ones not listed); the same body checked twice gives the same answer.
//
// Input: u8 (ignored: every operation is tried on each body), then the body. corpus/request_xml/ holds
// S3's documented request bodies and hostile variants (DOCTYPE, entities, CDATA, comments, encodings).

#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.h"
#include "s3api/request_xml.h"

using namespace granary::s3api;

namespace {
/// Every operation (the XML body ones, and the others, which have no body Granary checks).
std::vector<S3Op> allOps() {
  std::vector<S3Op> ops;
  for (std::size_t i = 0; i < kS3OpCount; ++i) ops.push_back(static_cast<S3Op>(i));
  return ops;
}
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > kMaxRequestXml + 1) return 0;
  granary::fuzz::Input in(data, size);
  in.u8();
  const std::string body(in.rest());  // (a copy: pugixml must not read past the end of the input)

  static const std::vector<S3Op> ops = allOps();
  for (const S3Op op : ops) {
    (void)isXmlBodyOp(op);
    const auto a = checkRequestXml(op, body);
    const auto b = checkRequestXml(op, body);
    FUZZ_CHECK(a.has_value() == b.has_value(), std::string(opName(op)));
    if (a) FUZZ_CHECK(a->error == b->error && a->message == b->message, std::string(opName(op)));
  }

  const auto parts = completeParts(body);
  if (!checkRequestXml(S3Op::CompleteMultipartUpload, body)) {
    FUZZ_CHECK(!parts.empty(), "an accepted CompleteMultipartUpload names parts");
    std::uint32_t previous = 0;
    for (const auto& [n, etag] : parts) {
      FUZZ_CHECK(n >= 1 && n <= 10000, std::to_string(n));
      FUZZ_CHECK(n > previous, "ascending part numbers");
      FUZZ_CHECK(!etag.empty(), "every part has an ETag");
      previous = n;
    }
  }

  const auto keys = deleteObjectsKeys(body);
  if (!checkRequestXml(S3Op::DeleteObjects, body)) {
    // (An empty <Key></Key> is a key the backend refuses: nothing to invalidate, so not listed.)
    FUZZ_CHECK(keys.size() <= 1000, "an accepted DeleteObjects names at most 1000 keys: " + std::to_string(keys.size()));
  }
  return 0;
}
