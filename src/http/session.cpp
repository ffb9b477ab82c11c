// One HTTP/1.1 connection: read a request header, hand it to the handler with a streaming body reader and
// response writer, then loop for keep-alive. Pipelined requests wait in the read buffer, whose size is
// bounded (ServerOptions::readAheadLimit), so a client cannot queue unbounded work.

// Boost's assertions in this unit (Beast's request parser is instantiated here) report through
// boost::assertion_failed (http/beast_assert.h), in builds that keep assertions (Debug, the ASan tree).
#define BOOST_ENABLE_ASSERT_DEBUG_HANDLER 1

#include "http/session.h"
#include "http/shard.h"

#include "http/beast_assert.h"  // (the one unit of granary that includes it)

namespace granary::http {

Awaitable<void> Shard::session(asio::ip::tcp::socket socket, std::uint64_t id) {
  error_code ignored;
  RequestContext ctx;
  ctx.remote = socket.remote_endpoint(ignored);
  ctx.connectionId = id;
  beast::tcp_stream stream(std::move(socket));
  SessionState state{&stream, true};
  sessions_.insert(&state);
  ++open;
  struct Leave {
    Shard* shard;
    SessionState* state;
    ~Leave() {
      shard->sessions_.erase(state);
      --shard->open;
      if (shard->stopping_ && shard->sessions_.empty()) shard->lastSessionEnded();
    }
  } leave{this, &state};

  co_await detail::serveConnection(stream, *handler, opts_, ctx, id, state.idle, stopping_);
  error_code ec;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  stream.socket().close(ec);
}

}  // namespace granary::http
