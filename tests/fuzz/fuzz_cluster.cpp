// Fuzz target: what the cluster reads from others (src/cluster/): a member's record from etcd
// (membership_record.h parseRecord), a line of etcd's watch stream (etcd_client.h parseWatchMessage), base64
// from the gateway, and a peer request's credentials (peer_auth.h PeerVerifier::verify).
//
// Input: u8 mode, then bytes.
//   mode % 4 == 0: a record (checked against key id "n1" when mode & 4). Property: a parsed record writes
//                  back (recordJson) to a record that parses to the same member.
//   mode % 4 == 1: a watch-stream line.
//   mode % 4 == 2: base64. Property: decoded bytes encode and decode to themselves.
//   mode % 4 == 3: five '\n'-separated credential fields (node, date, nonce, hop, signature) and a target,
//                  verified twice: a request is never accepted twice (replay), and only with a valid MAC.

#include <string>
#include <vector>

#include "cluster/etcd_client.h"
#include "cluster/membership_record.h"
#include "cluster/peer_auth.h"
#include "fuzz_common.h"

using namespace granary::cluster;
using granary::fuzz::Input;

namespace {

void record(std::string_view bytes, bool checkId) {
  Member m;
  std::string error;
  if (!parseRecord(bytes, checkId ? "n1" : "", m, error)) return;
  Member again;
  FUZZ_CHECK(parseRecord(recordJson(m), checkId ? "n1" : "", again, error), "a written record parses");
  FUZZ_CHECK(again.id == m.id && again.address == m.address && again.weight == m.weight && again.state == m.state,
             "a record round-trips");
}

std::vector<std::string_view> split(std::string_view s, char sep, std::size_t n) {
  std::vector<std::string_view> out;
  while (out.size() + 1 < n) {
    const auto at = s.find(sep);
    if (at == std::string_view::npos) break;
    out.push_back(s.substr(0, at));
    s.remove_prefix(at + 1);
  }
  out.push_back(s);
  while (out.size() < n) out.emplace_back();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > (1u << 20)) return 0;
  Input in(data, size);
  const std::uint8_t mode = in.u8();
  const std::string_view bytes = in.rest();
  switch (mode % 4) {
    case 0:
      record(bytes, (mode & 4) != 0);
      break;
    case 1: {
      WatchBatch batch;
      std::string error;
      (void)parseWatchMessage(bytes, batch, error);
      break;
    }
    case 2: {
      std::string out, back;
      if (!base64Decode(bytes, out)) break;
      FUZZ_CHECK(base64Decode(base64Encode(out), back) && back == out, "base64 round-trips");
      break;
    }
    default: {
      const auto f = split(bytes, '\n', 6);
      PeerVerifier v("fuzz-cluster-secret-0123456789", std::chrono::seconds(30), 64);
      const PeerCredentials c{f[0], f[1], f[2], f[3], f[4]};
      const std::int64_t now = 1'800'000'000'000;
      const PeerAuthResult first = v.verify("GET", f[5], c, now);
      if (first == PeerAuthResult::Ok)
        FUZZ_CHECK(f[4] == peerSignature("fuzz-cluster-secret-0123456789", "GET", f[5], f[0], f[1], f[2], f[3]),
                   "accepted only with the right MAC");
      FUZZ_CHECK(first != PeerAuthResult::Ok || v.verify("GET", f[5], c, now) == PeerAuthResult::Replay,
                 "an accepted request is refused the second time");
      break;
    }
  }
  return 0;
}
