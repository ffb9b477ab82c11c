// Fuzz target: the write-back spool's journal (src/cache/writeback.h), replayed as at start-up: a
// WriteBackSpool constructed over a scratch directory holding the journal (and data files).
//
// Input: u8 mode, then
//   mode & 1 == 0 (replay): u8 data-file mask (operations 1..8 have data files), then the journal text.
//     Properties: replay never throws or crashes on any file; what it keeps has its data; the journal it
//     rewrites replays to itself.
//   mode & 1 == 1 (writer): u8 compaction threshold, u16 cut offset, then 3-byte operations (PUT,
//     DELETE, copy, multipart begin/part/complete/abort, an upload finishing) run through the spool's
//     real API; then
//     - a restart (replay of the journal as written) restores exactly the acknowledged state;
//     - the journal cut at the chosen byte (a crash mid-append) replays exactly as the journal cut at
//       the last whole record before it, and only ever to operations that were acknowledged.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cache/writeback.h"
#include "fuzz_common.h"

using namespace granary::cache;
using granary::fuzz::Input;
namespace asio = boost::asio;

namespace {

const std::string& spoolDir() {
  static const std::string d = granary::fuzz::scratchDir() + "/spool";
  return d;
}
std::string journalFile() { return spoolDir() + "/writeback.journal"; }

const std::string kBucket = "bucket";
std::string keyName(unsigned k) { return "key/" + std::to_string(k); }
std::string uploadId(unsigned k) { return "upload-" + std::to_string(k); }
constexpr unsigned kKeys = 4;

WriteBackOptions options(std::uint64_t compactAfter = 1'000'000) {
  return WriteBackOptions{spoolDir(), 1 << 20, compactAfter};
}

/// Runs a coroutine to completion on its own io_context.
template <class T>
T run(asio::awaitable<T> a) {
  asio::io_context ioc;
  T out{};
  asio::co_spawn(ioc, std::move(a), [&](std::exception_ptr e, T v) {
    if (e) std::rethrow_exception(e);
    out = std::move(v);
  });
  ioc.run();
  return out;
}

/// The observable state of a spool, as text (equal states give equal text).
std::string stateOf(WriteBackSpool& s, const std::set<std::string>& ids) {
  std::string out = "objects=" + std::to_string(s.pendingObjects()) + " uploads=" + std::to_string(s.openUploads()) +
                    " bytes=" + std::to_string(s.usedBytes()) + "\n";
  for (std::uint32_t backend = 0; backend < 2; ++backend) {
    for (const auto& p : s.list(backend, kBucket, "")) {
      out += "latest " + std::to_string(backend) + " " + p->key + " seq=" + std::to_string(p->seq) +
             (p->isDelete ? " del" : p->passThrough ? " pass" : " put") + " size=" + std::to_string(p->size) +
             " etag=" + p->etag + " parts=" + std::to_string(p->parts.size()) + "\n";
    }
  }
  for (const auto& id : ids) {
    if (auto u = s.findUpload(id)) {
      out += "upload " + id + " " + u->key;
      for (const auto& [n, p] : u->parts) out += " " + std::to_string(n) + ":" + std::to_string(p.seq);
      out += "\n";
    }
  }
  return out;
}

/// Replays the journal in the spool directory; the state and the journal it rewrote. `also` runs more
/// checks on the replayed spool (each spool costs a thread start: the fewer, the faster the target).
std::pair<std::string, std::string> replay(const std::set<std::string>& ids,
                                           const std::function<void(WriteBackSpool&)>& also = {}) {
  WriteBackSpool s(options());
  if (also) also(s);
  std::string state = stateOf(s, ids);
  // Everything pending that has data keeps its data file.
  for (std::uint32_t backend = 0; backend < 2; ++backend)
    for (const auto& p : s.list(backend, kBucket, "")) {
      if (!p->isDelete && !p->passThrough && p->parts.empty())
        FUZZ_CHECK(std::filesystem::exists(s.dataPath(p->seq)), "a pending PUT without its data");
      for (const auto& part : p->parts)
        FUZZ_CHECK(std::filesystem::exists(s.dataPath(part.seq)), "a pending multipart object without a part");
    }
  return {state, granary::fuzz::readFile(journalFile())};
}

asio::awaitable<bool> writeData(WriteBackSpool& s, std::uint64_t seq, std::size_t size) {
  const int fd = co_await s.openData(seq, true);
  if (fd < 0) co_return false;
  const std::string bytes(size, 'x');
  const bool ok = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  ::close(fd);
  co_return ok;
}

struct Acknowledged {
  std::set<std::uint64_t> seqs;  // operations and parts the spool acknowledged
  std::set<std::string> uploads;
};

asio::awaitable<bool> script(WriteBackSpool& s, Input& in, Acknowledged& ack) {
  std::int64_t ms = 1;
  while (in.remaining() >= 3) {
    const std::uint8_t op = in.u8(), arg = in.u8(), size = in.u8();
    const unsigned k = arg % kKeys;
    const std::uint32_t backend = (arg >> 2) & 1;
    switch (op % 8) {
      case 0:    // PUT
      case 1:    // DELETE
      case 2: {  // a write that went to the backend directly
        const std::uint64_t bytes = op % 8 == 0 ? size % 64 : 0;
        const auto seq = s.reserve(bytes);
        if (!seq) break;
        if (op % 8 == 0 && !co_await writeData(s, *seq, bytes)) co_return false;
        PendingWrite w;
        w.seq = *seq;
        w.isDelete = op % 8 == 1;
        w.passThrough = op % 8 == 2;
        w.backend = backend;
        w.bucket = kBucket;
        w.key = keyName(k);
        w.size = bytes;
        w.etag = "\"etag-" + std::to_string(*seq) + "\"";
        w.headers = {{"content-type", "text/plain"}, {"x-amz-meta-n", std::to_string(size)}};
        w.createdMs = ms++;
        if (co_await s.commit(std::move(w))) ack.seqs.insert(*seq);
        break;
      }
      case 3: {
        SpoolUpload u;
        u.id = uploadId(k);
        if (s.findUpload(u.id)) break;
        u.backend = backend;
        u.bucket = kBucket;
        u.key = keyName(k);
        u.headers = {{"content-type", "application/octet-stream"}};
        u.createdMs = ms++;
        if (co_await s.beginUpload(std::move(u))) ack.uploads.insert(uploadId(k));
        break;
      }
      case 4: {
        const std::uint64_t bytes = 1 + size % 32;
        const auto seq = s.reserve(bytes);
        if (!seq) break;
        if (!co_await writeData(s, *seq, bytes)) co_return false;
        SpooledPart p{1u + size % 4, *seq, bytes, "\"part-" + std::to_string(*seq) + "\"", ms++};
        if (co_await s.addPart(uploadId(k), p)) ack.seqs.insert(*seq);
        break;
      }
      case 5: {
        const auto u = s.findUpload(uploadId(k));
        if (!u || u->parts.empty()) break;
        const auto seq = s.reserve(0);
        if (!seq) break;
        PendingWrite w;
        w.seq = *seq;
        w.backend = u->backend;
        w.bucket = u->bucket;
        w.key = u->key;
        w.headers = u->headers;
        w.createdMs = ms++;
        for (const auto& [n, p] : u->parts) {
          if ((size >> (n % 8)) & 1) continue;  // Complete may leave parts out
          w.parts.push_back(p);
          w.size += p.size;
        }
        if (w.parts.empty()) w.parts.push_back(u->parts.begin()->second), w.size = w.parts[0].size;
        w.etag = "\"mpu-" + std::to_string(*seq) + "-" + std::to_string(w.parts.size()) + "\"";
        if (co_await s.completeUpload(uploadId(k), std::move(w))) ack.seqs.insert(*seq);
        break;
      }
      case 6:
        co_await s.abortUpload(uploadId(k));
        break;
      case 7: {  // the uploader: the oldest operation uploaded (or failed)
        if (auto p = s.next()) {
          if (size & 1) s.failed(p);
          else co_await s.complete(p);
        }
        break;
      }
    }
  }
  co_return true;
}

void fuzzReplay(Input& in) {
  const std::uint8_t mask = in.u8();
  granary::fuzz::writeFile(journalFile(), in.rest());
  for (unsigned seq = 1; seq <= 8; ++seq)
    if (mask & (1u << (seq - 1))) granary::fuzz::writeFile(spoolDir() + "/" + std::to_string(seq) + ".data", "data");
  granary::fuzz::writeFile(spoolDir() + "/not-a-number.data", "");
  granary::fuzz::writeFile(spoolDir() + "/99999999999999999999999.data", "");
  const std::set<std::string> ids = {uploadId(0), uploadId(1), uploadId(2), uploadId(3), "u1", "1", ""};
  const auto [state, journal] = replay(ids);
  // The rewritten journal is the state: replaying it gives the same state and the same journal.
  const auto [state2, journal2] = replay(ids);
  FUZZ_CHECK(state2 == state, "replaying the rewritten journal changed the state:\n" + state + "---\n" + state2);
  FUZZ_CHECK(journal2 == journal, "replaying the rewritten journal rewrote it differently");
}

void fuzzWriter(Input& in) {
  const std::uint8_t compact = in.u8();
  const std::uint16_t cutAt = in.u16();
  Acknowledged ack;
  std::set<std::string> ids;
  for (unsigned k = 0; k < kKeys; ++k) ids.insert(uploadId(k));
  std::string before;
  {
    WriteBackSpool s(options(compact < 128 ? 4 + compact % 16 : 1'000'000));
    FUZZ_CHECK(run(script(s, in, ack)), "writing a data file failed");
    before = stateOf(s, ids);
  }
  const std::string written = granary::fuzz::readFile(journalFile());
  std::map<std::uint64_t, std::string> dataFiles;  // (the cut journal's replays delete some)
  for (const auto& e : std::filesystem::directory_iterator(spoolDir()))
    if (e.path().extension() == ".data") dataFiles[std::stoull(e.path().filename().string())] = granary::fuzz::readFile(e.path());

  // A restart: everything acknowledged, as it was.
  const auto [after, journal] = replay(ids);
  FUZZ_CHECK(after == before, "a restart lost or changed acknowledged state:\n" + before + "---\n" + after);

  // A crash mid-append: the journal cut at any byte replays as the whole records before the cut.
  auto restore = [&](std::string_view journalText) {
    granary::fuzz::resetDir(spoolDir());
    granary::fuzz::writeFile(journalFile(), journalText);
    for (const auto& [seq, data] : dataFiles) granary::fuzz::writeFile(spoolDir() + "/" + std::to_string(seq) + ".data", data);
  };
  const std::size_t cut = written.empty() ? 0 : cutAt % (written.size() + 1);
  restore(std::string_view(written).substr(0, cut));
  const auto cutState = replay(ids, [&](WriteBackSpool& s) {  // only ever what was acknowledged
    for (std::uint32_t backend = 0; backend < 2; ++backend)
      for (const auto& p : s.list(backend, kBucket, "")) FUZZ_CHECK(ack.seqs.count(p->seq), "an operation never acknowledged");
    for (const auto& id : ids)
      if (s.findUpload(id)) FUZZ_CHECK(ack.uploads.count(id), "an upload never begun");
  });
  // The whole records before the cut (a record cut just before its newline is whole: all its JSON is there).
  const std::size_t end = cut < written.size() && written[cut] == '\n' ? cut + 1 : cut;
  const std::size_t lastWhole = std::string_view(written).substr(0, end).rfind('\n');
  restore(std::string_view(written).substr(0, lastWhole == std::string_view::npos ? 0 : lastWhole + 1));
  const auto wholeState = replay(ids);
  FUZZ_CHECK(cutState == wholeState, "a torn last record changed the replay:\n" + cutState.first + "---\n" +
                                         wholeState.first);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) return 0;
  Input in(data, size);
  granary::fuzz::resetDir(spoolDir());
  if (in.u8() & 1) fuzzWriter(in);
  else fuzzReplay(in);
  return 0;
}
