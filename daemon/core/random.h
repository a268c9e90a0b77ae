// Randomness as a seam: backoff jitter and the deletion-sweep spread take a Random&.
#pragma once

#include <cstdint>
#include <mutex>
#include <random>

namespace lfh {

class Random {
 public:
  virtual ~Random() = default;
  /// Uniform in [0, 1). Thread-safe.
  virtual double uniform01() = 0;
};

/// Mersenne twister behind a mutex. Seeded from std::random_device by default; tests pass a seed.
class SeededRandom final : public Random {
 public:
  SeededRandom() : engine_(std::random_device{}()) {}
  explicit SeededRandom(std::uint64_t seed) : engine_(seed) {}
  double uniform01() override {
    std::lock_guard lock(mu_);
    return std::uniform_real_distribution<double>(0.0, 1.0)(engine_);
  }

 private:
  std::mutex mu_;
  std::mt19937_64 engine_;
};

}  // namespace lfh
