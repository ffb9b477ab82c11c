#include "cache/fill.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace granary::cache {

namespace asio = boost::asio;

void Fill::advance(std::size_t n) {
  ready_.fetch_add(n, std::memory_order_release);
  wake();
}

void Fill::finish(bool ok) {
  state_.store(ok ? State::Done : State::Failed, std::memory_order_release);
  wake();
}

void Fill::wake() {
  std::vector<Waiter> waiters;
  {
    std::lock_guard lk(m_);
    waiters.swap(waiters_);
  }
  // Each waiter's timer belongs to its own thread's io_context: cancel it there.
  for (auto& w : waiters) asio::post(w.executor, [t = std::move(w.timer)] { t->cancel(); });
}

asio::awaitable<void> Fill::waitPast(std::size_t pos, std::chrono::milliseconds timeout) {
  auto ex = co_await asio::this_coro::executor;
  auto timer = std::make_shared<asio::steady_timer>(ex);
  timer->expires_after(timeout);
  {
    std::lock_guard lk(m_);
    if (ready() > pos || state() != State::Downloading) co_return;
    waiters_.push_back({ex, timer});
  }
  co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<std::size_t> Fill::readyPast(std::size_t pos, std::chrono::milliseconds timeout) {
  for (;;) {
    const std::size_t ready = this->ready();
    if (ready > pos) co_return ready;
    if (state() != State::Downloading) co_return pos;
    co_await waitPast(pos, timeout);
    if (this->ready() == ready && state() == State::Downloading) co_return pos;  // no progress: give up
  }
}

FillPtr FillTable::find(const std::string& key) const {
  const Stripe& s = stripeOf(key);
  std::lock_guard lk(s.m);
  auto it = s.fills.find(key);
  return it == s.fills.end() ? nullptr : it->second;
}

void FillTable::release(const std::string& key, const Fill* fill) {
  Stripe& s = stripeOf(key);
  std::lock_guard lk(s.m);
  auto it = s.fills.find(key);
  if (it != s.fills.end() && it->second.get() == fill) {
    s.fills.erase(it);
    size_.fetch_sub(1, std::memory_order_relaxed);
  }
}

}  // namespace granary::cache
