#pragma once
// Waiting on a chunk fill for more bytes, robust to a wake-up without progress: cache::Fill::readyPast
// gives up as soon as one wait ends with nothing new while the fill is still Downloading. Streaming a
// fill from another thread (a peer's bytes, the peer port serving a fill) was seen to end such a wait
// early (issue 16's test_cluster_peers: "fill 0, N bytes ready" with N the reader's own position), which
// cut a client's answer short. Here the reader waits again until the fill moves, ends, or `timeout`
// passes without progress.

#include <boost/asio/awaitable.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstddef>

#include "cache/fill.h"

namespace granary::s3api {

/// ready() once past `pos`; `pos` when the fill failed or made no progress for `timeout`.
inline boost::asio::awaitable<std::size_t> readyPastPatiently(cache::FillPtr fill, std::size_t pos,
                                                              std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const std::size_t ready = co_await fill->readyPast(pos, timeout);
    if (ready > pos || fill->state() != cache::Fill::State::Downloading) co_return ready;
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) co_return pos;
    spdlog::info("cache: a fill woke its reader at byte {} without progress: waiting on", pos);
    timeout = std::chrono::duration_cast<std::chrono::milliseconds>(until - now) + std::chrono::milliseconds(1);
  }
}

}  // namespace granary::s3api
