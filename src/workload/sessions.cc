// Session workloads: multi-turn conversations and agentic tool loops (sessions.h), their defaults
// and the prefix-reuse helpers of workload.h.
//
// Defaults (sources in docs/workloads.md, "Sessions"):
// - multiturn: turns per session lognormal with mean 2.0 (LMSYS-Chat-1M: 2.0 turns per
//   conversation, Zheng et al., ICLR 2024; 58% of sessions get several turns, ShareGPT's 73% being
//   the chattier end, CachedAttention, Gao et al., USENIX ATC 2024); short new user messages and
//   outputs of about 220 tokens (LMSYS-Chat-1M: 69.5 prompt and 214.5 response tokens on average;
//   Mooncake's trace: 182 output tokens); long first prompts (documents: Mooncake's trace averages
//   7,590 input tokens); shared system prompts of >= 512 tokens (every request of Mooncake's
//   conversation trace starts with the same 512-token block). The ideal prefix hit rate of these
//   defaults is about 57%: DeepSeek serves 56.3% of its input tokens from cache, Mooncake reports
//   up to 50% on its trace.
// - agentic: few sessions of 10-50 turns, each adding a tool result of a few hundred tokens to a
//   context that starts at several thousand (a shared agent system prompt with tool definitions),
//   short tool-call outputs and think times of seconds (tool execution); agent traces give ideal
//   hit rates of 86-97% (SemiAnalysis InferenceX coding-agent traces).
#include "workload/sessions.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

#include <fmt/format.h>

#include "core/hash.h"
#include "workload/workload_internal.h"

namespace gimbal {
namespace {

enum Stream : uint64_t {
  kArrivals = 1,
  kTurns,
  kThink,
  kFirst,
  kMessage,
  kOutput,
  kTenant,
  kClass,
  kSystemLength,
  kIds
};

// Content tags, so that ids of different roles never coincide.
constexpr uint64_t kRootHash = 0x73657373696f6e01ULL;
constexpr uint64_t kSystemTag = 0x73657373696f6e02ULL;
constexpr uint64_t kMessageTag = 0x73657373696f6e03ULL;
constexpr uint64_t kOutputTag = 0x73657373696f6e04ULL;
constexpr uint64_t kBlockTag = 0x73657373696f6e05ULL;

// A growing token sequence of segments and the chained entries of its full blocks.
class BlockChain {
 public:
  explicit BlockChain(int64_t block) : block_(block) {}

  void Append(uint64_t id, int64_t tokens) {
    segments_.push_back({id, length_, tokens});
    length_ += tokens;
    while ((static_cast<int64_t>(entries_.size()) + 1) * block_ <= length_) HashNextBlock();
  }
  int64_t length() const { return length_; }
  // The entries of the full blocks among the first `tokens` tokens (<= length()).
  std::vector<uint64_t> Entries(int64_t tokens) const {
    const auto n = static_cast<size_t>(tokens / block_);
    return {entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(n)};
  }

 private:
  struct Segment {
    uint64_t id;
    int64_t start, tokens;
  };
  void HashNextBlock() {
    const int64_t begin = static_cast<int64_t>(entries_.size()) * block_;
    const int64_t end = begin + block_;
    while (segments_[cursor_].start + segments_[cursor_].tokens <= begin) ++cursor_;
    uint64_t content = kBlockTag;
    for (size_t i = cursor_; i < segments_.size() && segments_[i].start < end; ++i) {
      const Segment& s = segments_[i];
      const int64_t lo = std::max(begin, s.start);
      const int64_t hi = std::min(end, s.start + s.tokens);
      content =
          HashCombine(content, HashCombine(s.id, HashCombine(static_cast<uint64_t>(lo - s.start),
                                                             static_cast<uint64_t>(hi - lo))));
    }
    entries_.push_back(HashCombine(entries_.empty() ? kRootHash : entries_.back(), content));
  }

  int64_t block_;
  int64_t length_ = 0;
  size_t cursor_ = 0;  // the first segment that may overlap the next block
  std::vector<Segment> segments_;
  std::vector<uint64_t> entries_;
};

LengthDist LogNormal(double mean, double sigma, int64_t min, int64_t max) {
  LengthDist d;
  d.kind = LengthDist::Kind::kLogNormal;
  d.mean = mean;
  d.sigma = sigma;
  d.min = min;
  d.max = max;
  return d;
}

SecondsDist LogNormalSeconds(double mean, double sigma, double max) {
  SecondsDist d;
  d.kind = SecondsDist::Kind::kLogNormal;
  d.mean = mean;
  d.sigma = sigma;
  d.max = max;
  return d;
}

Status Bad(const std::string& key, const std::string& what) {
  return InvalidArgument(fmt::format("workload.{}: {}", key, what));
}

Status CheckSeconds(const SecondsDist& d, const char* key) {
  auto bad = [&](const std::string& what) {
    return Bad(key, fmt::format("{} distribution: {}", SecondsDistKindName(d.kind), what));
  };
  if (!(d.max >= 0) || !(d.max <= kMaxWorkloadSpanS)) {
    return bad(fmt::format("max must be in [0, {}] seconds, got {}", kMaxWorkloadSpanS, d.max));
  }
  switch (d.kind) {
    case SecondsDist::Kind::kFixed:
      if (!(d.mean >= 0) || !std::isfinite(d.mean))
        return bad(fmt::format("value must be >= 0, got {}", d.mean));
      break;
    case SecondsDist::Kind::kUniform:
      if (!(d.low >= 0) || !std::isfinite(d.high) || !(d.low <= d.high)) {
        return bad(fmt::format("expected 0 <= low <= high, got low {} and high {}", d.low, d.high));
      }
      break;
    case SecondsDist::Kind::kExponential:
    case SecondsDist::Kind::kLogNormal:
      if (!(d.mean > 0) || !std::isfinite(d.mean))
        return bad(fmt::format("mean must be > 0, got {}", d.mean));
      if (!(d.sigma >= 0) || !(d.sigma <= 10))
        return bad(fmt::format("sigma must be in [0, 10], got {}", d.sigma));
      break;
  }
  return Status::Ok();
}

}  // namespace

double SecondsDist::Sample(Rng& rng) const {
  double x = mean;
  switch (kind) {
    case Kind::kFixed:
      break;
    case Kind::kUniform:
      x = low + (high - low) * rng.Uniform();
      break;
    case Kind::kExponential:
      x = rng.Exponential(1.0 / mean);
      break;
    case Kind::kLogNormal:
      x = rng.LogNormal(std::log(mean) - sigma * sigma / 2, sigma);
      break;
  }
  if (!(x >= 0)) return 0;  // also NaN
  return std::min(x, max);
}

const char* SecondsDistKindName(SecondsDist::Kind kind) {
  switch (kind) {
    case SecondsDist::Kind::kFixed:
      return "fixed";
    case SecondsDist::Kind::kUniform:
      return "uniform";
    case SecondsDist::Kind::kExponential:
      return "exponential";
    case SecondsDist::Kind::kLogNormal:
      return "lognormal";
  }
  return "?";
}

WorkloadSpec DefaultWorkloadSpec(WorkloadSpec::Kind kind) {
  WorkloadSpec s;
  s.kind = kind;
  SessionSpec& d = s.session;
  if (kind == WorkloadSpec::Kind::kMultiTurn) {
    s.rate = 1;  // sessions per second
    d.num_sessions = 200;
    d.turns = LogNormal(2.0, 0.6, 1, 16);
    d.think_time = LogNormalSeconds(30, 1.0, 600);
    d.first_prompt = LogNormal(4000, 1.2, 16, 65536);
    d.message = LogNormal(100, 1.0, 4, 8192);
    s.output = LogNormal(220, 0.8, 1, 4096);
    d.system_prompts.count = 16;
    d.system_prompts.tokens = LogNormal(600, 0.5, 512, 8192);
    d.system_prompts.zipf = 1;
  } else if (kind == WorkloadSpec::Kind::kAgentic) {
    s.rate = 0.2;
    d.num_sessions = 40;
    d.turns = LengthDist{};
    d.turns.kind = LengthDist::Kind::kUniform;
    d.turns.low = 10;
    d.turns.high = 50;
    d.think_time = LogNormalSeconds(1.5, 0.8, 60);
    d.first_prompt = LogNormal(1500, 0.8, 64, 32768);
    d.message = LogNormal(400, 0.8, 16, 8192);
    s.output = LogNormal(150, 0.6, 1, 2048);
    d.system_prompts.count = 4;
    d.system_prompts.tokens = LogNormal(6000, 0.3, 2048, 16384);
    d.system_prompts.zipf = 1;
  }
  return s;
}

int64_t PrefixHashTokens(const WorkloadSpec& spec) {
  if (spec.prefix_hash_tokens > 0) return spec.prefix_hash_tokens;
  switch (spec.kind) {
    case WorkloadSpec::Kind::kMooncake:
      return kMooncakeHashBlockTokens;
    case WorkloadSpec::Kind::kMultiTurn:
    case WorkloadSpec::Kind::kAgentic:
      return kSessionHashBlockTokens;
    default:
      return 0;
  }
}

double IdealPrefixHitRate(const std::vector<Request>& requests, int64_t tokens_per_hash) {
  std::unordered_set<uint64_t> seen;
  double prompt = 0, hit = 0;
  for (const Request& r : requests) {
    size_t run = 0;
    while (run < r.prefix_hashes.size() && seen.count(r.prefix_hashes[run]) > 0) ++run;
    hit += static_cast<double>(std::min(
        static_cast<int64_t>(run) * std::max<int64_t>(tokens_per_hash, 0), r.prompt_tokens));
    prompt += static_cast<double>(r.prompt_tokens);
    seen.insert(r.prefix_hashes.begin(), r.prefix_hashes.end());
  }
  return prompt > 0 ? hit / prompt : 0.0;
}

namespace internal {

Status CheckSessionSpec(const WorkloadSpec& spec) {
  const SessionSpec& s = spec.session;
  if (s.num_sessions < 1 || s.num_sessions > kMaxWorkloadRequests) {
    return Bad("num_sessions", fmt::format("expected an integer in [1, {}], got {}",
                                           kMaxWorkloadRequests, s.num_sessions));
  }
  GIMBAL_RETURN_IF_ERROR(CheckLengthDist(s.turns, "turns"));
  GIMBAL_RETURN_IF_ERROR(CheckLengthDist(s.first_prompt, "first_prompt"));
  GIMBAL_RETURN_IF_ERROR(CheckLengthDist(s.message, "message"));
  GIMBAL_RETURN_IF_ERROR(CheckLengthDist(spec.output, "output"));
  GIMBAL_RETURN_IF_ERROR(CheckSeconds(s.think_time, "think_time"));
  if (s.turns.max > kMaxWorkloadRequests) {
    return Bad("turns",
               fmt::format("max must be <= {}, got {}", kMaxWorkloadRequests, s.turns.max));
  }
  const SystemPromptSpec& sp = s.system_prompts;
  if (sp.count < 0 || sp.count > kMaxSystemPrompts) {
    return Bad("system_prompts.count",
               fmt::format("expected an integer in [0, {}], got {}", kMaxSystemPrompts, sp.count));
  }
  if (!(sp.zipf >= 0) || !(sp.zipf <= 10)) {
    return Bad("system_prompts.zipf", fmt::format("expected a number in [0, 10], got {}", sp.zipf));
  }
  GIMBAL_RETURN_IF_ERROR(CheckLengthDist(sp.tokens, "system_prompts.tokens"));
  for (const auto& [v, key] :
       {std::pair{s.est_ttft_s, "est_ttft_s"}, {s.est_tpot_s, "est_tpot_s"}}) {
    if (!(v >= 0) || !(v <= 3600)) {
      return Bad(key, fmt::format("expected a number of seconds in [0, 3600], got {}", v));
    }
  }
  if (s.max_prompt < 1 || s.max_prompt > kMaxRequestTokens) {
    return Bad("max_prompt", fmt::format("expected an integer in [1, {}], got {}",
                                         kMaxRequestTokens, s.max_prompt));
  }
  WorkloadSpec starts = spec;  // the span of the session arrivals
  starts.num_requests = s.num_sessions;
  const double span = ExpectedSyntheticSpan(starts);
  if (!(span <= kMaxWorkloadSpanS)) {
    return Bad("num_sessions",
               fmt::format("{} sessions at the given rate start over about {:.3g} s, more than the "
                           "{:.3g} s (366 days) a workload may span; raise the rate or lower "
                           "num_sessions",
                           s.num_sessions, span, kMaxWorkloadSpanS));
  }
  return Status::Ok();
}

}  // namespace internal

Result<SessionWorkload> BuildSessions(const WorkloadSpec& spec,
                                      const std::vector<double>& class_weights, Rng& rng,
                                      bool keep_sequence_hashes, int64_t max_hash_entries) {
  if (spec.kind != WorkloadSpec::Kind::kMultiTurn && spec.kind != WorkloadSpec::Kind::kAgentic) {
    return InvalidArgument(fmt::format("BuildSessions: kind {} is not a session workload",
                                       WorkloadKindName(spec.kind)));
  }
  GIMBAL_RETURN_IF_ERROR(ValidateWorkloadSpec(spec));
  GIMBAL_RETURN_IF_ERROR(internal::CheckClassWeights(class_weights));
  const SessionSpec& ss = spec.session;
  const int64_t block = PrefixHashTokens(spec);
  const Rng base(rng.NextU64());
  Rng arrivals_rng = base.Fork(kArrivals), turns_rng = base.Fork(kTurns);
  Rng think_rng = base.Fork(kThink), first_rng = base.Fork(kFirst);
  Rng message_rng = base.Fork(kMessage), output_rng = base.Fork(kOutput);
  Rng tenant_rng = base.Fork(kTenant), class_rng = base.Fork(kClass);
  Rng system_rng = base.Fork(kSystemLength);
  const uint64_t seed_id = base.Fork(kIds).NextU64();
  const AliasTable classes(class_weights);

  // Tenants: prompt lengths and popularity.
  const SystemPromptSpec& sp = ss.system_prompts;
  std::vector<int64_t> system_tokens;
  std::vector<double> popularity;
  for (int64_t t = 0; t < sp.count; ++t) {
    system_tokens.push_back(sp.tokens.Sample(system_rng));
    popularity.push_back(1.0 / std::pow(static_cast<double>(t + 1), sp.zipf));
  }
  AliasTable tenants;
  if (sp.count > 0) tenants = AliasTable(popularity);

  WorkloadSpec starts = spec;
  starts.num_requests = ss.num_sessions;
  const std::vector<double> session_start =
      SyntheticArrivals(starts, ss.num_sessions, arrivals_rng);

  SessionWorkload w;
  int64_t entries = 0;
  const auto too_many_entries = [&] {
    return Bad("num_sessions",
               fmt::format("the sessions' prompts need more than {} prefix-hash entries; lower "
                           "num_sessions, turns or the lengths, or raise prefix_hash_tokens",
                           max_hash_entries));
  };
  for (int64_t s = 0; s < ss.num_sessions; ++s) {
    const int64_t turns = ss.turns.Sample(turns_rng);
    const int64_t tenant = sp.count > 0 ? static_cast<int64_t>(tenants.Sample(tenant_rng)) : -1;
    const auto cls = static_cast<int32_t>(classes.Sample(class_rng));
    const uint64_t session_id = HashCombine(seed_id, static_cast<uint64_t>(s));
    BlockChain chain(block);
    if (tenant >= 0) {
      // Checked before the chain hashes its blocks: a prompt could need gigabytes of them.
      if (entries + system_tokens[static_cast<size_t>(tenant)] / block > max_hash_entries) {
        return too_many_entries();
      }
      chain.Append(HashCombine(kSystemTag, HashCombine(seed_id, static_cast<uint64_t>(tenant))),
                   system_tokens[static_cast<size_t>(tenant)]);
    }
    double t = session_start[static_cast<size_t>(s)];
    for (int64_t k = 0; k < turns; ++k) {
      const int64_t message =
          k == 0 ? ss.first_prompt.Sample(first_rng) : ss.message.Sample(message_rng);
      if (k > 0 && chain.length() + message > ss.max_prompt) break;
      if (entries + (chain.length() + message) / block > max_hash_entries) {
        return too_many_entries();
      }
      chain.Append(HashCombine(kMessageTag, HashCombine(session_id, static_cast<uint64_t>(k))),
                   message);
      int64_t output = spec.output.Sample(output_rng);
      if (spec.max_tokens > 0) output = std::min(output, spec.max_tokens);
      if (static_cast<int64_t>(w.requests.size()) >= kMaxWorkloadRequests) {
        return Bad("num_sessions", fmt::format("the sessions make more than {} requests; lower "
                                               "num_sessions or turns",
                                               kMaxWorkloadRequests));
      }
      entries += (chain.length() + (keep_sequence_hashes ? output : 0)) / block;
      if (entries > max_hash_entries) {
        return too_many_entries();
      }
      Request r;
      r.arrival = t;
      r.prompt_tokens = chain.length();
      r.output_tokens = output;
      r.traffic_class = cls;
      r.affinity_key = static_cast<uint64_t>(s) + 1;
      r.prefix_hashes = chain.Entries(chain.length());
      w.requests.push_back(std::move(r));
      w.session.push_back(s);
      w.turn.push_back(k);
      w.tenant.push_back(tenant);
      // The output's blocks join the chain too: bounded before they are hashed.
      if (entries + (chain.length() + output) / block > max_hash_entries) {
        return too_many_entries();
      }
      chain.Append(HashCombine(kOutputTag, HashCombine(session_id, static_cast<uint64_t>(k))),
                   output);
      if (keep_sequence_hashes) w.sequence_hashes.push_back(chain.Entries(chain.length()));
      t += ss.est_ttft_s + static_cast<double>(output) * ss.est_tpot_s +
           ss.think_time.Sample(think_rng);
      if (!(t <= kMaxWorkloadSpanS)) {
        return Bad("think_time", fmt::format("session {}'s turns run past {:.3g} s (366 days); "
                                             "shorten think_time or the estimated service time",
                                             s, kMaxWorkloadSpanS));
      }
    }
  }

  // Sort by arrival; ties keep generation order (session, then turn).
  std::vector<size_t> order(w.requests.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return w.requests[a].arrival < w.requests[b].arrival;
  });
  SessionWorkload out;
  out.requests.reserve(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    const size_t j = order[i];
    out.requests.push_back(std::move(w.requests[j]));
    out.requests.back().id = static_cast<RequestId>(i);
    out.session.push_back(w.session[j]);
    out.turn.push_back(w.turn[j]);
    out.tenant.push_back(w.tenant[j]);
    if (keep_sequence_hashes) out.sequence_hashes.push_back(std::move(w.sequence_hashes[j]));
  }
  return out;
}

namespace internal {

Result<std::vector<Request>> BuildSessionRequests(const WorkloadSpec& spec,
                                                  const std::vector<double>& class_weights,
                                                  Rng& rng) {
  auto w = BuildSessions(spec, class_weights, rng);
  if (!w.ok()) return w.status();
  return std::move(w->requests);
}

}  // namespace internal
}  // namespace gimbal
