#pragma once
// Runs one coroutine to its end on a fresh io_context (one thread: the caller's) and returns its result;
// an exception it throws is rethrown here.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace granary::testing {

template <class T>
T runAwaitable(boost::asio::awaitable<T> a) {
  boost::asio::io_context ioc;
  auto f = boost::asio::co_spawn(ioc, std::move(a), boost::asio::use_future);
  ioc.run();
  return f.get();
}

}  // namespace granary::testing
