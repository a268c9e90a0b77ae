// Capped full-jitter exponential backoff (the "Full Jitter" schedule of AWS's "Exponential
// Backoff and Jitter"): spreads retries of many clients over the whole window instead of letting
// them retry in lock step.
#pragma once

#include "core/clock.h"
#include "core/random.h"

namespace lfh {

/// The wait before retry number `attempt` (counted from 0): uniform in [0, min(cap, base *
/// 2^attempt)). Pure apart from one draw from `random`. A negative attempt counts as 0; a
/// non-positive base or cap gives 0; huge attempts saturate at the cap (no overflow). Thread-safe
/// if `random` is.
[[nodiscard]] Millis backoff_delay(int attempt, Millis base, Millis cap, Random& random);

/// The upper bound of the window backoff_delay draws from: min(cap, base * 2^attempt), saturated.
[[nodiscard]] Millis backoff_ceiling(int attempt, Millis base, Millis cap);

}  // namespace lfh
