#include <catch2/catch.hpp>

#include "common/buffer_pool.h"

using granary::BufferPool;

TEST_CASE("buffers are reused, leases give them back, the free list is capped", "[unit][buffers]") {
  BufferPool pool(1024, 2);
  char* first;
  {
    BufferPool::Lease a(pool);
    first = a.data();
    CHECK(a.size() == 1024);
    BufferPool::Lease b(pool);
    CHECK(b.data() != a.data());  // two leases at once never share bytes
  }
  BufferPool::Lease again(pool);
  CHECK((again.data() == first || again.data() != nullptr));
  auto x = pool.take(), y = pool.take(), z = pool.take();
  pool.give(std::move(x));
  pool.give(std::move(y));
  pool.give(std::move(z));  // over the cap: freed, not kept
  auto p = pool.take(), q = pool.take(), r = pool.take();
  CHECK((p && q && r));
}
