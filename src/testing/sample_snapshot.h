// SampleSnapshot (tests only): an engine snapshot with every field set to a distinct plausible
// value, as a front end would hold it before the next report arrives; tests of snapshot parsers
// check which fields a report replaces and which it keeps.
#pragma once

#include "core/engine_state.h"

namespace gimbal::testing {

inline EngineSnapshot SampleSnapshot() {
  EngineSnapshot p;
  p.waiting = 7;
  p.running = 3;
  p.kv_usage = 0.4;
  p.kv_capacity_tokens = 5000;
  p.prefill_pending_tokens = 900;
  p.taken_at = 1;
  return p;
}

}  // namespace gimbal::testing
