#pragma once
// Access traces for cache policies (shared by the policy tests and bench/policy_trace): the issue's
// cyclic scan (an AI training epoch) and Zipf(0.9), plus the LRU they are compared with. Seeded, exact.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <list>
#include <random>
#include <unordered_map>
#include <vector>

namespace granary::testing {

/// Keys look like the cache's: 64-bit hashes, not small integers.
inline std::uint64_t traceKey(std::uint64_t i) { return i * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull; }

class Lru {
 public:
  explicit Lru(std::size_t cap) : cap_(cap) {}
  bool access(std::uint64_t k) {
    auto it = map_.find(k);
    if (it != map_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return true;
    }
    order_.push_front(k);
    map_[k] = order_.begin();
    if (order_.size() > cap_) {
      map_.erase(order_.back());
      order_.pop_back();
    }
    return false;
  }

 private:
  std::size_t cap_;
  std::list<std::uint64_t> order_;
  std::unordered_map<std::uint64_t, std::list<std::uint64_t>::iterator> map_;
};

/// `epochs` passes over `objects` keys, each pass in the same or a fresh random order.
inline std::vector<std::uint64_t> cyclicTrace(std::size_t objects, int epochs, bool shuffle, std::uint64_t seed = 7) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint64_t> order(objects), out;
  for (std::size_t i = 0; i < objects; ++i) order[i] = traceKey(i);
  for (int e = 0; e < epochs; ++e) {
    if (shuffle) std::shuffle(order.begin(), order.end(), rng);
    out.insert(out.end(), order.begin(), order.end());
  }
  return out;
}

/// `accesses` draws from Zipf(alpha) over `objects` keys.
inline std::vector<std::uint64_t> zipfTrace(std::size_t objects, std::size_t accesses, double alpha = 0.9,
                                            std::uint64_t seed = 11) {
  std::vector<double> cdf(objects);
  double sum = 0;
  for (std::size_t i = 0; i < objects; ++i) cdf[i] = (sum += 1.0 / std::pow(double(i + 1), alpha));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, sum);
  std::vector<std::uint64_t> out(accesses);
  for (auto& k : out) k = traceKey(std::size_t(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin()));
  return out;
}

}  // namespace granary::testing
