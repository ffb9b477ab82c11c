#pragma once
// A change counter that coroutines on any thread can wait on, instead of polling: whoever changes the
// state a waiter cares about calls notify(); each waiter's timer lives on the waiter's own executor and is
// woken there (the pattern of cache::Fill::waitPast). A waiter reads generation() before it looks at the
// state, so a change between its look and its wait is never missed.
//
// Executors must run their handlers one at a time (an io_context with one thread, or a strand): the
// wake-up is posted to the waiter's executor and touches its timer there.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace granary::s3api {

class StateSignal {
 public:
  using Clock = std::chrono::steady_clock;

  /// How many times notify() was called so far.
  std::uint64_t generation() const {
    std::lock_guard lk(m_);
    return generation_;
  }

  /// The state changed: every waiter wakes (on its own executor) and looks again.
  void notify() {
    std::vector<Waiter> woken;
    {
      std::lock_guard lk(m_);
      ++generation_;
      woken.swap(waiters_);
    }
    // expires_at (not cancel): a wake-up that arrives before the wait began still ends it at once.
    for (auto& w : woken)
      boost::asio::post(w.executor, [t = std::move(w.timer)] { t->expires_at(Clock::time_point::min()); });
  }

  /// Returns once the generation moved past `seen` (at once if it already has) or `deadline` passed.
  boost::asio::awaitable<void> wait(std::uint64_t seen, Clock::time_point deadline) {
    auto ex = co_await boost::asio::this_coro::executor;
    auto timer = std::make_shared<boost::asio::steady_timer>(ex);
    timer->expires_at(deadline);
    {
      std::lock_guard lk(m_);
      if (generation_ != seen) co_return;
      waiters_.push_back({ex, timer});
    }
    co_await timer->async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    std::lock_guard lk(m_);  // a wait that timed out leaves no entry behind
    std::erase_if(waiters_, [&](const Waiter& w) { return w.timer == timer; });
  }

  /// Waits until `ready()` holds (asked now and after every notify()) or `deadline` passes.
  /// @return ready()'s last answer.
  template <class Ready>
  boost::asio::awaitable<bool> waitUntil(Ready ready, Clock::time_point deadline) {
    for (;;) {
      const std::uint64_t seen = generation();
      if (ready()) co_return true;
      if (Clock::now() >= deadline) co_return false;
      co_await wait(seen, deadline);
    }
  }

 private:
  struct Waiter {
    boost::asio::any_io_executor executor;
    std::shared_ptr<boost::asio::steady_timer> timer;
  };
  mutable std::mutex m_;
  std::uint64_t generation_ = 0;
  std::vector<Waiter> waiters_;
};

}  // namespace granary::s3api
