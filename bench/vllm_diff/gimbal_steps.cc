// gimbal_steps: Gimbal's engine scheduler (sim::EngineScheduler) over a vllm_diff trace, step by
// step, writing the same step log as drive_vllm.py (format gimbal-vllm-diff-steps/1, README.md) so
// that compare_steps.py can set the two side by side.
//
//   gimbal_steps TRACE.json [-o STEPS.jsonl] [--async-scheduling] [--prefix-caching 0|1]
//                [--reserve-full-isl 0|1] [--max-steps N]
//
// The engine limits come from the trace's `engine` object (drive_vllm.py's defaults fill the
// missing keys): block_size, max_num_seqs, max_num_batched_tokens, and num_blocks, of which vLLM
// never allocates one (its null block): kv_blocks = num_blocks with prefix caching (Gimbal's block
// pool reserves one block too), num_blocks − 1 without. enable_prefix_caching,
// scheduler_reserve_full_isl and async_scheduling set the EngineLimits switches; the flags override
// them. Each prompt's full blocks become Request::prefix_hashes, chained (block i's hash covers
// tokens [0, (i+1)·block_size)), so two prompts share hash i exactly when they share that token
// prefix, as vLLM's block hashes do.
//
// Steps follow drive_vllm.py: step s adds the requests arriving at s (trace order), plans one step
// (Schedule), applies it (Complete) and writes a line. In async mode the `finished` ids of line s
// are those the previous step's Complete reported, as vLLM's AsyncScheduler applies step s−1's
// output only after planning step s. Exit codes: 0 done, 2 bad input or options, 3 the scheduler
// stopped making progress (or --max-steps ran out) with work left. Like vLLM's loop, the log ends
// with one empty step after the last step that finished requests.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/params.h"
#include "core/request.h"
#include "policy/queue/queue_policy.h"
#include "sim/engine_scheduler.h"

namespace {

using Json = nlohmann::ordered_json;
constexpr const char* kTraceFormat = "gimbal-vllm-diff-trace/1";
constexpr const char* kStepFormat = "gimbal-vllm-diff-steps/1";

[[noreturn]] void Fail(const std::string& msg, int code = 2) {
  std::cerr << "gimbal_steps: " << msg << "\n";
  std::exit(code);
}

// drive_vllm.py's ENGINE_DEFAULTS, in its order.
Json EngineDefaults() {
  Json e;
  e["block_size"] = 16;
  e["num_blocks"] = 1024;
  e["max_num_seqs"] = 256;
  e["max_num_batched_tokens"] = 8192;
  e["max_model_len"] = 32768;
  e["enable_prefix_caching"] = true;
  e["scheduler_reserve_full_isl"] = true;
  e["long_prefill_token_threshold"] = 0;
  e["watermark"] = 0.0;
  e["policy"] = "fcfs";
  e["async_scheduling"] = false;
  e["cache_aware_admission_window"] = 0;
  e["cache_aware_admission_threshold"] = 0.5;
  return e;
}

struct TraceRequest {
  std::string id;
  int64_t arrival_step = 0;
  std::vector<int64_t> prompt;
  int64_t output_tokens = 0;
  int64_t priority = 0;
};

struct Options {
  std::string trace_path;
  std::string output = "-";
  int async_scheduling = -1;  // -1: the trace's setting
  int prefix_caching = -1;
  int reserve_full_isl = -1;
  int64_t max_steps = 1000000;
};

int64_t IntField(const Json& j, const char* key, const std::string& where) {
  if (!j.contains(key)) Fail(where + " lacks '" + key + "'");
  if (!j[key].is_number_integer()) Fail(where + ": '" + key + "' must be an integer");
  return j[key].get<int64_t>();
}

// One 64-bit mix step (splitmix64's finaliser).
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Chained hashes of the prompt's full blocks: hash i depends on hash i−1 and block i's tokens.
std::vector<uint64_t> PrefixHashes(const std::vector<int64_t>& prompt, int block_size) {
  std::vector<uint64_t> out;
  uint64_t parent = 0x6a09e667f3bcc908ULL;  // the first block's parent
  const size_t full = prompt.size() / static_cast<size_t>(block_size);
  for (size_t b = 0; b < full; ++b) {
    uint64_t h = Mix(parent);
    for (int t = 0; t < block_size; ++t) {
      h = Mix(h ^ static_cast<uint64_t>(prompt[b * block_size + t]));
    }
    if (h == 0) h = 1;
    out.push_back(h);
    parent = h;
  }
  return out;
}

Json LoadTrace(const std::string& path, std::vector<TraceRequest>& requests) {
  std::ifstream in(path);
  if (!in) Fail("cannot read trace " + path);
  Json trace;
  try {
    trace = Json::parse(in);
  } catch (const std::exception& e) {
    Fail("cannot parse trace " + path + ": " + e.what());
  }
  if (!trace.is_object() || trace.value("format", std::string()) != kTraceFormat) {
    Fail(path + ": format must be '" + kTraceFormat + "'");
  }
  Json engine = EngineDefaults();
  if (trace.contains("engine")) {
    if (!trace["engine"].is_object()) Fail(path + ": 'engine' must be an object");
    for (const auto& [k, v] : trace["engine"].items()) {
      if (!engine.contains(k)) Fail(path + ": unknown engine key '" + k + "'");
      if (v.type() != engine[k].type() && !(v.is_number() && engine[k].is_number())) {
        Fail(path + ": engine key '" + k + "' has the wrong type");
      }
      engine[k] = v;
    }
  }
  const int64_t max_model_len = engine["max_model_len"].get<int64_t>();
  std::set<std::string> seen;
  const Json empty = Json::array();
  const Json& list = trace.contains("requests") ? trace["requests"] : empty;
  if (!list.is_array()) Fail(path + ": 'requests' must be a list");
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& r = list[i];
    const std::string where = path + ": request #" + std::to_string(i);
    if (!r.is_object() || !r.contains("id")) Fail(where + " lacks 'id'");
    TraceRequest t;
    t.id = r["id"].is_string() ? r["id"].get<std::string>() : r["id"].dump();
    if (!seen.insert(t.id).second) Fail(path + ": duplicate request id '" + t.id + "'");
    t.arrival_step = IntField(r, "arrival_step", where);
    t.output_tokens = IntField(r, "output_tokens", where);
    if (r.contains("priority")) t.priority = IntField(r, "priority", where);
    if (!r.contains("prompt") || !r["prompt"].is_array()) Fail(where + " lacks a 'prompt' list");
    for (const Json& tok : r["prompt"]) {
      if (!tok.is_number_integer()) Fail(where + ": prompt tokens must be integers");
      t.prompt.push_back(tok.get<int64_t>());
    }
    if (t.prompt.empty() || t.output_tokens < 1 || t.arrival_step < 0) {
      Fail(path + ": request '" + t.id +
           "' needs a non-empty prompt, output_tokens >= 1 and arrival_step >= 0");
    }
    if (static_cast<int64_t>(t.prompt.size()) + t.output_tokens > max_model_len) {
      Fail(path + ": request '" + t.id + "' is longer than max_model_len");
    }
    requests.push_back(std::move(t));
  }
  // Same-step arrivals keep trace order (drive_vllm.py sorts stably by arrival step).
  std::stable_sort(requests.begin(), requests.end(),
                   [](const auto& a, const auto& b) { return a.arrival_step < b.arrival_step; });
  return engine;
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  auto flag01 = [&](int& i, const std::string& name) {
    if (i + 1 >= argc) Fail(name + " needs 0 or 1");
    const std::string v = argv[++i];
    if (v != "0" && v != "1") Fail(name + " needs 0 or 1, got '" + v + "'");
    return v == "1" ? 1 : 0;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-o" || a == "--output") {
      if (i + 1 >= argc) Fail(a + " needs a path");
      o.output = argv[++i];
    } else if (a == "--async-scheduling") {
      o.async_scheduling = 1;
    } else if (a == "--prefix-caching") {
      o.prefix_caching = flag01(i, a);
    } else if (a == "--reserve-full-isl") {
      o.reserve_full_isl = flag01(i, a);
    } else if (a == "--max-steps") {
      if (i + 1 >= argc) Fail(a + " needs a number");
      try {
        o.max_steps = std::stoll(argv[++i]);
      } catch (const std::exception&) {
        Fail(a + " needs a number");
      }
    } else if (a == "-h" || a == "--help") {
      std::cout << "usage: gimbal_steps TRACE.json [-o STEPS.jsonl] [--async-scheduling]\n"
                   "       [--prefix-caching 0|1] [--reserve-full-isl 0|1] [--max-steps N]\n";
      std::exit(0);
    } else if (!a.empty() && a[0] == '-') {
      Fail("unknown option '" + a + "'");
    } else if (o.trace_path.empty()) {
      o.trace_path = a;
    } else {
      Fail("more than one trace given");
    }
  }
  if (o.trace_path.empty()) Fail("usage: gimbal_steps TRACE.json [-o STEPS.jsonl] [options]");
  return o;
}

Json SortedIds(std::vector<std::string> ids) {
  std::sort(ids.begin(), ids.end());
  Json out = Json::array();
  for (auto& id : ids) out.push_back(std::move(id));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace gimbal;
  const Options opt = ParseArgs(argc, argv);
  std::vector<TraceRequest> trace;
  Json engine = LoadTrace(opt.trace_path, trace);
  if (opt.async_scheduling >= 0) engine["async_scheduling"] = opt.async_scheduling == 1;
  if (opt.prefix_caching >= 0) engine["enable_prefix_caching"] = opt.prefix_caching == 1;
  if (opt.reserve_full_isl >= 0) engine["scheduler_reserve_full_isl"] = opt.reserve_full_isl == 1;
  // Settings Gimbal does not model: refuse rather than compare something else.
  if (engine["long_prefill_token_threshold"].get<double>() != 0) {
    Fail("long_prefill_token_threshold is not modelled by Gimbal; use 0");
  }
  if (engine["watermark"].get<double>() != 0) Fail("watermark is not modelled by Gimbal; use 0");

  sim::EngineLimits limits;
  limits.block_size = engine["block_size"].get<int>();
  // vLLM never allocates its null block. Gimbal's block pool (prefix caching on) reserves one of
  // kv_blocks the same way; without it every one of kv_blocks is usable.
  limits.enable_prefix_caching = engine["enable_prefix_caching"].get<bool>();
  limits.kv_blocks = engine["num_blocks"].get<int64_t>() - (limits.enable_prefix_caching ? 0 : 1);
  limits.max_num_seqs = engine["max_num_seqs"].get<int64_t>();
  limits.max_num_batched_tokens = engine["max_num_batched_tokens"].get<int64_t>();
  limits.reserve_full_isl = engine["scheduler_reserve_full_isl"].get<bool>();
  limits.async_scheduling = engine["async_scheduling"].get<bool>();
  limits.cache_aware_admission_window = engine["cache_aware_admission_window"].get<int64_t>();
  limits.cache_aware_admission_threshold = engine["cache_aware_admission_threshold"].get<double>();
  if (limits.cache_aware_admission_window < 0) Fail("cache_aware_admission_window must be >= 0");
  if (limits.block_size < 1 || engine["num_blocks"].get<int64_t>() < 2 || limits.max_num_seqs < 1 ||
      limits.max_num_batched_tokens < 1) {
    Fail("block_size, max_num_seqs and max_num_batched_tokens must be >= 1, num_blocks >= 2");
  }
  auto queue = MakeQueuePolicy(engine["policy"].get<std::string>(), Params());
  if (!queue.ok()) Fail("policy: " + queue.status().message());
  sim::EngineScheduler sched(limits, queue->get());

  std::ofstream file;
  if (opt.output != "-") {
    file.open(opt.output);
    if (!file) Fail("cannot write " + opt.output);
  }
  std::ostream& out = opt.output == "-" ? std::cout : file;
  Json head;
  head["format"] = kStepFormat;
  head["engine"] = engine;
  head["source"] = "gimbal";
  out << head.dump() << "\n";

  // Request ids are the trace positions after the stable sort, so the queue's id tie-break keeps
  // same-step arrivals in trace order.
  std::vector<std::string> names;
  names.reserve(trace.size());
  for (const auto& t : trace) names.push_back(t.id);
  const bool async = limits.async_scheduling;
  std::set<RequestId> running;   // admitted and not yet preempted or finished
  std::set<RequestId> admitted;  // admitted at least once
  // Async: requests that sampled a token in the last step. vLLM has not seen that token when it
  // plans the next step (its output is in flight), so generated_before leaves it out.
  std::set<RequestId> in_flight;
  std::vector<std::string> carried_finished;  // async: reported one line late
  size_t next = 0;
  int64_t step = 0;
  int idle = 0;  // consecutive empty steps with nothing left to arrive
  // vLLM's has_requests() stays true for one schedule() after a step that finished requests (it
  // still has their ids to report), so its log has one more, empty, step; so does this one.
  bool just_finished = false;
  while (next < trace.size() || sched.HasWork() || !carried_finished.empty() || just_finished) {
    if (step >= opt.max_steps) {
      Fail("stopped after " + std::to_string(opt.max_steps) + " steps with work left", 3);
    }
    Json arrived = Json::array();
    while (next < trace.size() && trace[next].arrival_step <= step) {
      const TraceRequest& t = trace[next];
      Request r;
      r.id = static_cast<RequestId>(next);
      r.arrival = static_cast<double>(step);
      r.prompt_tokens = static_cast<int64_t>(t.prompt.size());
      r.output_tokens = t.output_tokens;
      r.priority = t.priority;
      r.prefix_hashes = PrefixHashes(t.prompt, limits.block_size);
      sched.Add(r, static_cast<double>(step));
      arrived.push_back(t.id);
      ++next;
    }
    const sim::StepPlan plan = sched.Schedule();

    Json line;
    line["step"] = step;
    line["arrived"] = std::move(arrived);
    Json seqs = Json::array();
    int64_t total = 0;
    for (RequestId v : plan.preempted) running.erase(v);
    for (const sim::ScheduledSeq& q : plan.seqs) {
      const sim::SeqState* s = sched.Find(q.id);
      if (s == nullptr) Fail("scheduled request " + names.at(q.id) + " is unknown", 3);
      Json e;
      e["id"] = names.at(q.id);
      e["tokens"] = q.new_tokens;
      e["computed_before"] = q.context_before;
      e["prompt_tokens"] = s->req.prompt_tokens;
      e["generated_before"] = s->generated - static_cast<int64_t>(in_flight.count(q.id));
      if (running.insert(q.id).second) {
        e["admitted"] = admitted.insert(q.id).second ? "new" : "resumed";
        e["prefix_hit_tokens"] = q.context_before;
      }
      total += q.new_tokens;
      seqs.push_back(std::move(e));
    }
    line["scheduled"] = std::move(seqs);
    line["total_tokens"] = total;
    std::vector<std::string> preempted;
    for (RequestId v : plan.preempted) preempted.push_back(names.at(v));
    line["preempted"] = SortedIds(std::move(preempted));

    // Async: the state after the step is what the planner saw before the step's output lands.
    auto after = [&](Json& l) {
      l["running_after"] = sched.num_running();
      l["waiting_after"] = sched.num_waiting();
      const double usage = sched.Snapshot(static_cast<double>(step)).kv_usage;
      l["kv_usage_after"] = std::round(usage * 1e6) / 1e6;
      l["kv_free_blocks_after"] = sched.free_blocks();
    };
    std::vector<std::string> finished;
    if (async) {
      finished.swap(carried_finished);
      line["finished"] = SortedIds(finished);
      after(line);
    }
    const std::vector<sim::TokenEvent> events = sched.Complete(plan);
    in_flight.clear();
    if (async) {
      for (const sim::TokenEvent& ev : events) in_flight.insert(ev.id);
    }
    std::vector<std::string> done_now;
    for (const sim::TokenEvent& ev : events) {
      if (!ev.finished) continue;
      running.erase(ev.id);
      done_now.push_back(names.at(ev.id));
    }
    if (async) {
      carried_finished = std::move(done_now);
    } else {
      line["finished"] = SortedIds(std::move(done_now));
      after(line);
    }
    out << line.dump() << "\n";

    just_finished = !line["finished"].empty();
    const bool progress = !plan.empty() || just_finished;
    idle = (progress || next < trace.size()) ? 0 : idle + 1;
    if (idle >= 3) {
      Fail("the scheduler made no progress for 3 steps at step " + std::to_string(step) +
               " with work left (a request that never fits?)",
           3);
    }
    ++step;
  }
  out.flush();
  std::cerr << "gimbal_steps: " << step << " steps\n";
  return 0;
}
