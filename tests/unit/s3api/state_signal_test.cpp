// StateSignal: a wait returns at once when the state changed since it was read, wakes on notify() from
// another thread (on the waiter's own executor), and ends at its deadline otherwise.

#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <thread>

#include "s3api/state_signal.h"
#include "support/run_awaitable.h"

using granary::s3api::StateSignal;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

template <class T>
T run(asio::awaitable<T> a) {
  return granary::testing::runAwaitable(std::move(a));
}

}  // namespace

TEST_CASE("state signal: a change since the generation was read ends the wait at once", "[s3api]") {
  StateSignal s;
  const auto seen = s.generation();
  s.notify();
  const auto t0 = StateSignal::Clock::now();
  run(s.wait(seen, StateSignal::Clock::now() + 10s));
  CHECK(StateSignal::Clock::now() - t0 < 1s);
  CHECK(s.generation() == seen + 1);
}

TEST_CASE("state signal: a wait ends at its deadline when nothing changes", "[s3api]") {
  StateSignal s;
  const auto t0 = StateSignal::Clock::now();
  CHECK_FALSE(run(s.waitUntil([] { return false; }, StateSignal::Clock::now() + 30ms)));
  CHECK(StateSignal::Clock::now() - t0 >= 30ms);
}

TEST_CASE("state signal: notify() from another thread wakes the waiter on its own executor", "[s3api]") {
  StateSignal s;
  std::atomic<bool> ready{false};
  std::thread other([&] {
    std::this_thread::sleep_for(20ms);
    s.notify();  // a change that does not satisfy the waiter: it looks again and goes on waiting
    std::this_thread::sleep_for(20ms);
    ready = true;
    s.notify();
  });
  const auto t0 = StateSignal::Clock::now();
  CHECK(run(s.waitUntil([&] { return ready.load(); }, StateSignal::Clock::now() + 10s)));
  other.join();
  CHECK(StateSignal::Clock::now() - t0 < 5s);
}
