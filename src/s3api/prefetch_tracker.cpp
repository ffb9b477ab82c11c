#include "s3api/prefetch_tracker.h"

#include <algorithm>

namespace granary::s3api {
namespace {

std::int64_t nanosOf(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

PrefetchOrder::PrefetchOrder(std::string bucket, std::vector<std::string> keys)
    : bucket_(std::move(bucket)), keys_(std::move(keys)), lastReadNs_(nanosOf(std::chrono::steady_clock::now())) {
  index_.reserve(keys_.size());
  for (std::size_t i = 0; i < keys_.size(); ++i) index_.emplace(keys_[i], static_cast<std::uint32_t>(i));
}

std::int64_t PrefetchOrder::indexOf(std::string_view key) const {
  auto it = index_.find(key);
  return it == index_.end() ? -1 : static_cast<std::int64_t>(it->second);
}

bool PrefetchOrder::noteRead(std::string_view key, std::chrono::steady_clock::time_point now) {
  const std::int64_t i = indexOf(key);
  if (i < 0) return false;
  lastReadNs_.store(nanosOf(now), std::memory_order_relaxed);
  std::int64_t seen = reader_.load(std::memory_order_relaxed);
  while (seen < i && !reader_.compare_exchange_weak(seen, i, std::memory_order_relaxed)) {
  }
  return true;
}

std::chrono::steady_clock::time_point PrefetchOrder::lastRead() const {
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(lastReadNs_.load(std::memory_order_relaxed)));
}

void PrefetchTracker::add(std::shared_ptr<PrefetchOrder> order) {
  std::lock_guard lk(m_);
  auto next = std::make_shared<OrderList>(*orders_);
  next->push_back(std::move(order));
  active_.store(next->size(), std::memory_order_relaxed);
  orders_ = std::move(next);
}

void PrefetchTracker::remove(const PrefetchOrder* order) {
  std::lock_guard lk(m_);
  auto next = std::make_shared<OrderList>(*orders_);
  std::erase_if(*next, [&](const auto& o) { return o.get() == order; });
  active_.store(next->size(), std::memory_order_relaxed);
  orders_ = std::move(next);
}

void PrefetchTracker::noteReadSlow(std::string_view bucket, std::string_view key) {
  std::shared_ptr<const OrderList> orders;
  {
    std::lock_guard lk(m_);
    orders = orders_;
  }
  const auto now = std::chrono::steady_clock::now();
  for (const auto& o : *orders)
    if (o->bucket() == bucket) o->noteRead(key, now);
}

}  // namespace granary::s3api
