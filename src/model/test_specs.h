// Test support: model architectures written out by hand, so tests of formulas and policies depend
// on no data file. The catalogue tests check that data/ gives the same numbers.
#pragma once

#include "model/specs.h"

namespace gimbal::testing {

// Qwen3-30B-A3B as in its config.json: 48 layers, 128 experts top-8, GQA 32q/4kv.
inline ModelSpec HandQwen3_30B() {
  ModelSpec m;
  m.name = "qwen3-30b-a3b";
  m.hidden = 2048;
  m.layers = 48;
  m.experts = 128;
  m.top_k = 8;
  m.expert_ffn = 768;
  m.vocab = 151936;
  m.attention = AttentionKind::kGqa;
  m.q_heads = 32;
  m.kv_heads = 4;
  m.head_dim = 128;
  return m;
}

}  // namespace gimbal::testing
