#include "http/backoff.h"

#include <algorithm>
#include <cmath>

namespace lfh {

Millis backoff_ceiling(int attempt, Millis base, Millis cap) {
  if (base <= Millis(0) || cap <= Millis(0)) return Millis(0);
  if (base >= cap) return cap;
  // Double until the cap is reached instead of computing base << attempt, which overflows for
  // large attempts; the loop runs at most ~63 times because base >= 1 ms.
  Millis ceiling = base;
  for (int i = 0; i < attempt; ++i) {
    if (ceiling > cap / 2) return cap;
    ceiling *= 2;
  }
  return std::min(ceiling, cap);
}

Millis backoff_delay(int attempt, Millis base, Millis cap, Random& random) {
  Millis ceiling = backoff_ceiling(attempt, base, cap);
  if (ceiling <= Millis(0)) return Millis(0);
  // Clamp a misbehaving source (NaN, out of range) so the result stays below the ceiling.
  double fraction = random.uniform01();
  if (!(fraction >= 0.0)) fraction = 0.0;
  fraction = std::min(fraction, 1.0);
  auto drawn =
      static_cast<Millis::rep>(std::floor(fraction * static_cast<double>(ceiling.count())));
  return Millis(std::clamp<Millis::rep>(drawn, 0, ceiling.count() - 1));
}

}  // namespace lfh
