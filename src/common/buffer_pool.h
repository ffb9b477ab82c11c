#pragma once
// Fixed-size byte buffers reused across requests on one thread (not thread-safe: one pool per thread).
// Each request streaming a body holds its own buffer while its coroutine is suspended.

#include <cstddef>
#include <memory>
#include <vector>

namespace granary {

class BufferPool {
 public:
  using Buffer = std::unique_ptr<char[]>;

  BufferPool(std::size_t bufferSize, std::size_t maxFree) : size_(bufferSize), maxFree_(maxFree) {}

  std::size_t bufferSize() const { return size_; }

  Buffer take() {
    if (free_.empty()) return std::make_unique<char[]>(size_);
    Buffer b = std::move(free_.back());
    free_.pop_back();
    return b;
  }

  void give(Buffer b) {
    if (b && free_.size() < maxFree_) free_.push_back(std::move(b));
  }

  /// Holds a buffer for one scope and gives it back at the end.
  class Lease {
   public:
    explicit Lease(BufferPool& pool) : pool_(pool), buf_(pool.take()) {}
    ~Lease() { pool_.give(std::move(buf_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    char* data() const { return buf_.get(); }
    std::size_t size() const { return pool_.size_; }

   private:
    BufferPool& pool_;
    Buffer buf_;
  };

 private:
  std::size_t size_;
  std::size_t maxFree_;
  std::vector<Buffer> free_;
};

}  // namespace granary
