// Fuzz target: the C placement planner (include/gimbal/placement_c.h) driven with a policy,
// parameters, a topology, sizes, token counts and a current placement decoded from the input
// (sizes kept small; counts include 0, negatives, NaN, infinities and 1e308; dimensions include 0
// and -1; a current placement may name experts out of range).
// Invariants: never crashes nor writes past the buffers it is given; a failure leaves a message;
// a plan holds an expert in range in every slot and every expert in every layer; routes point at
// replicas of their expert with weights summing to 1; the quality is not NaN.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "gimbal/placement_c.h"

namespace {

using gimbal::fuzz::ByteReader;

double Special(uint8_t b, double scale) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  static const double kTable[] = {0,      -1,    std::numeric_limits<double>::quiet_NaN(),
                                  kInf,   -kInf, 1e308,
                                  1e-308, -0.0,  std::numeric_limits<double>::denorm_min(),
                                  1e300,  0.5,   1e15,
                                  2,      3,     1e9,
                                  7};
  if (b >= 240) return kTable[b - 240];
  return b * scale;
}

// A dimension in [0, hi], or -1 now and then.
int Dim(ByteReader& in, int hi) {
  const uint8_t b = in.Byte();
  if (b == 255) return -1;
  return b % (hi + 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteReader in(data, size);
  const uint8_t mode = in.Byte();
  const char* policy = (mode & 1) != 0 ? "eplb" : "gimbal";
  static const char* const kParams[] = {
      "",
      "max_moves_per_layer=6;min_gain=0",
      "max_moves_per_layer=0",
      "min_gain=-1",
      "oops",
      "max_moves_per_layer=1000000000",
      "=;;=",
      "load=0;traffic=0;migration=0",
  };
  const char* params = kParams[(mode >> 1) % (sizeof kParams / sizeof kParams[0])];

  char err[128] = "";
  gimbal_planner* planner = gimbal_planner_create(policy, params, err, sizeof err);
  if (planner == nullptr) {
    FUZZ_CHECK(err[0] != '\0', "create failed without a message");
    return 0;
  }

  gimbal_topology topo{};
  topo.gpus = Dim(in, 8);
  topo.gpus_per_node = Dim(in, 8);
  const double cost_scale = in.Byte() < 128 ? 0.01 : 1.0;
  topo.alpha = Special(in.Byte(), cost_scale);
  topo.beta = Special(in.Byte(), cost_scale);
  topo.expert_groups = Dim(in, 4);
  topo.expert_bytes = Special(in.Byte(), 1e6);
  const int layers = Dim(in, 3);
  const int sources = Dim(in, 8);
  const int experts = Dim(in, 32);
  const int slots_per_gpu = Dim(in, 8);
  const uint8_t scale_byte = in.Byte();
  const double count_scale = scale_byte < 128 ? 1 : scale_byte < 250 ? 1000 : 1e300;
  const bool with_current = (in.Byte() & 1) != 0;

  auto product = [](int a, int b, int c) {
    return a <= 0 || b <= 0 || c <= 0
               ? size_t{0}
               : static_cast<size_t>(a) * static_cast<size_t>(b) * static_cast<size_t>(c);
  };
  const size_t n_counts = product(layers, sources, experts);
  const size_t n_slots = product(layers, topo.gpus, slots_per_gpu);
  // At least one element each, so that every pointer is valid; ASan sees any write past the end.
  std::vector<double> counts(std::max<size_t>(n_counts, 1), 0);
  for (double& c : counts) c = Special(in.Byte(), count_scale);
  std::vector<int32_t> current(std::max<size_t>(n_slots, 1), 0);
  for (size_t i = 0; i < current.size(); ++i) {
    const uint8_t b = in.Byte();
    // Mostly the contiguous layout, sometimes any id (out of range included).
    current[i] = b < 200 || experts <= 0
                     ? static_cast<int32_t>(i % static_cast<size_t>(std::max(experts, 1)))
                     : static_cast<int32_t>(b % (experts + 2)) - 1;
  }
  std::vector<int32_t> out(std::max<size_t>(n_slots, 1), -7);

  const int rc =
      gimbal_planner_plan(planner, &topo, layers, sources, experts, slots_per_gpu, counts.data(),
                          with_current ? current.data() : nullptr, out.data());
  if (rc != 0) {
    FUZZ_CHECK(rc == -1, std::to_string(rc));
    FUZZ_CHECK(gimbal_planner_last_error(planner)[0] != '\0', "failed without a message");
    gimbal_planner_destroy(planner);
    return 0;
  }
  FUZZ_CHECK(layers >= 0 && sources > 0 && experts > 0 && topo.gpus > 0 && slots_per_gpu > 0,
             "planned with a dimension <= 0");
  const size_t slots = static_cast<size_t>(topo.gpus) * static_cast<size_t>(slots_per_gpu);
  for (int l = 0; l < layers; ++l) {
    std::vector<int> replicas(static_cast<size_t>(experts), 0);
    for (size_t s = 0; s < slots; ++s) {
      const int32_t x = out[static_cast<size_t>(l) * slots + s];
      FUZZ_CHECK(x >= 0 && x < experts,
                 "slot " + std::to_string(s) + " holds " + std::to_string(x));
      ++replicas[static_cast<size_t>(x)];
    }
    for (int x = 0; x < experts; ++x) {
      FUZZ_CHECK(replicas[static_cast<size_t>(x)] > 0, "expert " + std::to_string(x) + " lost");
    }
  }
  // Routes of a few (layer, source, expert) triples, the last ones out of range.
  for (int k = 0; k < 6; ++k) {
    const int l = Dim(in, layers);
    const int s = Dim(in, sources);
    const int x = Dim(in, experts);
    const int capacity = Dim(in, 4);
    std::vector<int32_t> route_slots(static_cast<size_t>(std::max(capacity, 1)), -1);
    std::vector<float> weights(static_cast<size_t>(std::max(capacity, 1)), -1);
    const int n = gimbal_planner_route(planner, l, s, x, route_slots.data(), weights.data(),
                                       std::max(capacity, 0));
    const bool valid = l >= 0 && l < layers && s >= 0 && s < sources && x >= 0 && x < experts;
    if (!valid) {
      FUZZ_CHECK(n == -1, "route out of range answered " + std::to_string(n));
      continue;
    }
    FUZZ_CHECK(n >= 1, std::to_string(n));
    if (n > capacity) continue;  // asks for a larger buffer
    float sum = 0;
    for (int i = 0; i < n; ++i) {
      const int32_t slot = route_slots[static_cast<size_t>(i)];
      FUZZ_CHECK(slot >= 0 && static_cast<size_t>(slot) < slots, std::to_string(slot));
      FUZZ_CHECK(out[static_cast<size_t>(l) * slots + static_cast<size_t>(slot)] == x,
                 "route to a slot without the expert");
      FUZZ_CHECK(weights[static_cast<size_t>(i)] >= 0, std::to_string(weights[0]));
      sum += weights[static_cast<size_t>(i)];
    }
    FUZZ_CHECK(std::fabs(sum - 1.0f) < 1e-3f, std::to_string(sum));
  }
  gimbal_quality q{};
  FUZZ_CHECK(gimbal_planner_quality(planner, &q) == 0, gimbal_planner_last_error(planner));
  FUZZ_CHECK(!std::isnan(q.objective) && !std::isnan(q.mean_max_over_mean), "NaN quality");
  FUZZ_CHECK(q.experts_moved >= 0, std::to_string(q.experts_moved));
  gimbal_planner_destroy(planner);
  return 0;
}
