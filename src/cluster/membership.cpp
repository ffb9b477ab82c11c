#include "cluster/membership.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "cluster/etcd_client.h"
#include "cluster/membership_record.h"
#include "common/log_escape.h"

namespace granary::cluster {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr milliseconds kMaxBackoff{2'000};

bool sameNumbers(const MemberNumbers& a, const MemberNumbers& b) {
  return a.chunks == b.chunks && a.bytes == b.bytes && a.peerBytesServed == b.peerBytesServed &&
         a.peerBytesFetched == b.peerBytesFetched;
}
}  // namespace

std::int64_t wallMs() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// Everything that lives on the membership thread. Fields below `client` are touched only there.
struct Membership::Loop {
  explicit Loop(Membership& m)
      : owner(m), client(ioc.get_executor(), m.opts_.etcd, m.opts_.callTimeout), wake(ioc), retry(ioc) {}

  Membership& owner;
  asio::io_context ioc{1};
  EtcdClient client;
  asio::steady_timer wake;   // the registration loop's sleep; cancelled to republish at once
  asio::steady_timer retry;  // the view loop's back-off
  MemberState state = MemberState::Joining;
  std::int64_t lease = 0, registeredMs = 0;
  bool republish = false, stopping = false, reachable = true;
  Clock::time_point nextRenew{}, numbersAt{};
  MemberNumbers numbers;
  std::map<std::string, Member> view;  // by id: the records etcd holds

  asio::awaitable<void> registerLoop();
  asio::awaitable<void> viewLoop();
  asio::awaitable<bool> registerOnce();
  asio::awaitable<void> renewOnce();
  asio::awaitable<void> sleep(asio::steady_timer& t, milliseconds d);
  Member selfRecord() const;
  void apply(const KeyValue& kv, bool put);
  void publish(std::uint64_t revision, bool current);
  void contact(bool ok, const std::string& error);
};

Member Membership::Loop::selfRecord() const {
  Member m;
  m.id = owner.opts_.nodeId;
  m.address = owner.opts_.address;
  m.weight = owner.opts_.weight;
  m.state = state;
  m.leaseId = lease;
  m.registeredMs = registeredMs;
  m.chunks = numbers.chunks;
  m.bytes = numbers.bytes;
  m.peerBytesServed = numbers.peerBytesServed;
  m.peerBytesFetched = numbers.peerBytesFetched;
  return m;
}

asio::awaitable<void> Membership::Loop::sleep(asio::steady_timer& t, milliseconds d) {
  t.expires_after(d);
  co_await t.async_wait(kTuple);
}

/// Notes whether etcd answered; logs only the transitions (a long outage is one line each way).
void Membership::Loop::contact(bool ok, const std::string& error) {
  if (ok && !reachable) spdlog::info("cluster: etcd reachable again");
  if (!ok && reachable) spdlog::warn("cluster: etcd unreachable ({}); serving with the last membership seen", logSafe(error));
  reachable = ok;
  std::lock_guard lock(owner.mu_);
  auto& s = owner.synced_.status;
  s.etcdReachable = ok;
  if (ok) s.lastContactMs = wallMs();
  else s.lastError = error;
}

/// A new lease and this node's record on it.
asio::awaitable<bool> Membership::Loop::registerOnce() {
  const auto ttl = std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(owner.opts_.leaseTtl).count());
  auto g = co_await client.grant(ttl);
  contact(g.ok() || g.error.starts_with("etcd "), g.error);
  if (!g.ok()) co_return false;
  lease = g.value;
  registeredMs = wallMs();
  republish = true;
  nextRenew = Clock::now() + owner.opts_.leaseTtl / 3;
  {
    std::lock_guard lock(owner.mu_);
    owner.synced_.status.leaseId = lease;
    owner.synced_.status.registeredMs = registeredMs;
    ++owner.synced_.status.registrations;
  }
  spdlog::info("cluster: registered as '{}' ({}) in cluster '{}' with lease {:x} ({}s)", logSafe(owner.opts_.nodeId),
               logSafe(owner.opts_.address), logSafe(owner.opts_.cluster), lease, ttl);
  co_return true;
}

/// One renewal: a lease etcd no longer knows is dropped (registered again next turn); a failure is counted
/// and the watch is broken so that the view relists once etcd answers again.
asio::awaitable<void> Membership::Loop::renewOnce() {
  nextRenew = Clock::now() + owner.opts_.leaseTtl / 3;
  auto k = co_await client.keepAlive(lease);
  contact(k.ok(), k.error);
  if (!k.ok()) {
    {
      std::lock_guard lock(owner.mu_);
      ++owner.synced_.status.leaseRenewFailures;
    }
    client.cancelWatch();
  } else if (k.value <= 0) {
    spdlog::warn("cluster: lease {:x} expired; registering again", lease);
    lease = 0;
  }
}

asio::awaitable<void> Membership::Loop::registerLoop() {
  milliseconds backoff{250};
  while (!stopping) {
    if (lease == 0 && !(co_await registerOnce())) {
      co_await sleep(wake, backoff);
      backoff = std::min(backoff * 2, kMaxBackoff);
      continue;
    }
    if (owner.opts_.numbers && Clock::now() >= numbersAt) {
      const MemberNumbers n = owner.opts_.numbers();
      if (!sameNumbers(n, numbers)) republish = true;
      numbers = n;
      numbersAt = Clock::now() + owner.opts_.numbersInterval;
    }
    if (republish && !stopping) {
      // Cleared before the put: a change made while it is in flight (the watch showing this node its
      // own record: active) asks for another one.
      republish = false;
      const std::string key = memberKey(owner.opts_.cluster, owner.opts_.nodeId), value = recordJson(selfRecord());
      auto p = co_await client.put(key, value, lease);
      contact(p.ok() || p.error.starts_with("etcd "), p.error);
      if (!p.ok()) republish = true;
      if (p.ok()) {
        backoff = milliseconds{250};
      } else if (p.error.find("lease not found") != std::string::npos) {
        lease = 0;  // expired while etcd was away: a new one, then the record again
        continue;
      } else {
        co_await sleep(wake, backoff);
        backoff = std::min(backoff * 2, kMaxBackoff);
        continue;
      }
    }
    if (Clock::now() < nextRenew && !republish) {
      const auto left = std::chrono::duration_cast<milliseconds>(nextRenew - Clock::now());
      co_await sleep(wake, left);
    }
    if (!stopping && lease != 0 && Clock::now() >= nextRenew) co_await renewOnce();
  }
}

void Membership::Loop::apply(const KeyValue& kv, bool put) {
  const std::string prefix = membersPrefix(owner.opts_.cluster);
  if (!kv.key.starts_with(prefix)) return;
  const std::string id = kv.key.substr(prefix.size());
  if (!put) {
    view.erase(id);
    return;
  }
  Member m;
  std::string error;
  if (!parseRecord(kv.value, id, m, error)) {
    spdlog::warn("cluster: ignoring the record under '{}': {}", logSafe(kv.key), error);
    view.erase(id);
    return;
  }
  m.leaseId = kv.lease;
  m.modRevision = kv.modRevision;
  view[id] = std::move(m);
}

/// Publishes the view; a Joining node that sees its own record becomes Active (and says so in etcd).
void Membership::Loop::publish(std::uint64_t revision, bool current) {
  const auto self = view.find(owner.opts_.nodeId);
  if (state == MemberState::Joining && self != view.end() && lease != 0 && self->second.leaseId == lease) {
    state = MemberState::Active;
    republish = true;
    wake.cancel();
    spdlog::info("cluster: '{}' sees itself among {} member(s): active", logSafe(owner.opts_.nodeId), view.size());
  }
  std::vector<Member> seen;
  seen.reserve(view.size());
  for (const auto& [id, m] : view) seen.push_back(m);
  std::lock_guard lock(owner.mu_);
  auto& s = owner.synced_;
  const std::size_t before = s.seen.size();
  s.seen = std::move(seen);
  s.haveView = true;
  s.revision = revision;
  s.status.revision = revision;
  s.status.current = current;
  s.status.everListed = true;
  s.status.selfState = state;
  s.status.lastUpdateMs = wallMs();
  if (before != s.seen.size()) spdlog::info("cluster: {} member(s) at revision {}", s.seen.size(), revision);
  owner.publishLocked();
}

asio::awaitable<void> Membership::Loop::viewLoop() {
  const std::string prefix = membersPrefix(owner.opts_.cluster);
  milliseconds backoff{250};
  while (!stopping) {
    auto r = co_await client.rangePrefix(prefix);
    contact(r.ok(), r.error);
    if (!r.ok()) {
      co_await sleep(retry, backoff);
      backoff = std::min(backoff * 2, kMaxBackoff);
      continue;
    }
    view.clear();
    for (const auto& kv : r.value.kvs) apply(kv, true);
    {
      std::lock_guard lock(owner.mu_);
      ++owner.synced_.status.relists;
    }
    publish(r.value.revision, true);
    std::string why;
    std::function<bool(const WatchBatch&)> onBatch = [&](const WatchBatch& b) {
      if (b.canceled) {
        why = b.compactRevision ? "compacted at revision " + std::to_string(b.compactRevision) : "cancelled: " + b.cancelReason;
        return false;
      }
      for (const auto& e : b.events) apply(e.kv, e.put);
      if (!b.events.empty()) publish(b.revision, true);
      return true;
    };
    const std::uint64_t from = r.value.revision + 1;
    const std::string ended = co_await client.watchPrefix(prefix, from, onBatch);
    if (stopping) break;
    {
      std::lock_guard lock(owner.mu_);
      owner.synced_.status.current = false;
    }
    spdlog::info("cluster: watch ended ({}); listing again", logSafe(why.empty() ? ended : why));
    milliseconds pause = backoff;
    if (!why.empty()) pause = milliseconds{0};
    co_await sleep(retry, pause);
    backoff = why.empty() ? std::min(backoff * 2, kMaxBackoff) : milliseconds{250};
  }
}

Membership::Membership(MembershipOptions opts) : opts_(std::move(opts)), loop_(std::make_unique<Loop>(*this)) {
  std::lock_guard lock(mu_);
  publishLocked();
}

Membership::~Membership() { stop(); }

/// The published set: etcd's view, with this node as it knows itself (its state takes effect here at once,
/// and it stays in its own view while etcd has not shown or has lost its record).
void Membership::publishLocked() {
  std::vector<Member> members = synced_.seen;
  Member self = loop_->selfRecord();  // the loop thread's fields: read under mu_ only as a hint
  self.state = synced_.status.selfState;
  auto it = std::find_if(members.begin(), members.end(), [&](const Member& m) { return m.id == opts_.nodeId; });
  if (it != members.end()) {
    it->state = self.state;
    it->address = opts_.address;
    it->weight = opts_.weight;
  } else {
    members.push_back(std::move(self));
  }
  synced_.set = std::make_shared<const MemberSet>(std::move(members), opts_.nodeId, synced_.revision);
}

void Membership::start() {
  if (started_.exchange(true)) return;
  asio::co_spawn(loop_->ioc, loop_->registerLoop(), asio::detached);
  asio::co_spawn(loop_->ioc, loop_->viewLoop(), asio::detached);
  thread_ = std::thread([this] {
    try {
      loop_->ioc.run();
    } catch (const std::exception& e) {
      spdlog::error("cluster: membership thread stopped: {}", e.what());
    }
  });
}

void Membership::stop() {
  if (!started_ || stopped_.exchange(true)) return;
  Loop* l = loop_.get();
  asio::co_spawn(l->ioc, [l]() -> asio::awaitable<void> {
    l->stopping = true;
    l->wake.cancel();
    l->retry.cancel();
    l->client.cancelWatch();
    if (l->lease != 0) {
      auto r = co_await l->client.revoke(l->lease);
      if (r.ok()) spdlog::info("cluster: lease {:x} revoked; left the cluster", l->lease);
      else spdlog::warn("cluster: could not revoke lease {:x} ({}); the record goes when it expires", l->lease, logSafe(r.error));
    }
  }, [l](std::exception_ptr) { l->ioc.stop(); });
  if (thread_.joinable()) thread_.join();
}

void Membership::drain() {
  asio::post(loop_->ioc, [l = loop_.get()] {
    if (l->state == MemberState::Draining) return;
    l->state = MemberState::Draining;
    l->republish = true;
    l->wake.cancel();
    spdlog::info("cluster: '{}' draining: it keeps serving and owns nothing", logSafe(l->owner.opts_.nodeId));
    std::lock_guard lock(l->owner.mu_);
    l->owner.synced_.status.selfState = MemberState::Draining;
    l->owner.publishLocked();
  });
}

MemberSetPtr Membership::current() const {
  std::lock_guard lock(mu_);
  return synced_.set;
}

MembershipStatus Membership::status() const {
  std::lock_guard lock(mu_);
  MembershipStatus s = synced_.status;
  if (s.current) s.lastUpdateMs = wallMs();  // an open watch on a fresh listing: confirmed as of now
  return s;
}

}  // namespace granary::cluster
