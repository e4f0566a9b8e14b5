// `gimbal engine`: N emulated DP engines over one lockstep DP+EP cluster model, speaking vLLM's
// OpenAI API: each rank on its own port (vLLM's external load balancing), or L ranks per port
// (`--ranks-per-port`: vLLM's hybrid or internal load balancing). See docs/emulator.md.
#include <csignal>
#include <iostream>

#include <fmt/format.h>

#include "cli/command.h"
#include "config/scenario.h"
#include "engine/engine_server.h"
#include "net/http_server.h"
#include "workload/workload.h"

namespace gimbal::cli {
namespace {

struct EngineFlags {
  int dp = 0;
  std::string model;
  std::string served_model_name;
  std::string gpu;
  std::string topology = "hgx-8gpu";
  std::string config;
  std::string address = "127.0.0.1";
  int port = 8001;
  int ranks_per_port = 1;
  double time_scale = 1;
  std::string queue_policy;
  std::string step_policy;
  int threads = 4;
  int64_t default_max_tokens = 16;
  int64_t kv_capacity_tokens = 0;
  int redundant_slots = -1;
  std::string admin_token_env = "GIMBAL_ADMIN_TOKEN";
  double drain_timeout_s = 30;
  std::string kv_events_endpoint;
  std::string kv_events_replay_endpoint;
};

void Fail(const std::string& msg, int code = 2) {
  std::cerr << "gimbal engine: " << msg << "\n";
  throw CommandFailed(code);
}

// Every size, count and time option, before anything is loaded or allocated.
void CheckRanges(const EngineFlags& f) {
  if (f.dp != 0) CheckIntOption("engine", "--dp", f.dp, 1, kMaxEngineDp);
  CheckIntOption("engine", "--port", f.port, 0, 65535);
  CheckIntOption("engine", "--ranks-per-port", f.ranks_per_port, 1, kMaxEngineDp);
  CheckIntOption("engine", "--threads", f.threads, 1, kMaxIoThreads);
  CheckNumberOption("engine", "--time-scale", f.time_scale, 0, 1000);
  CheckIntOption("engine", "--default-max-tokens", f.default_max_tokens, 1, kMaxRequestTokens);
  CheckIntOption("engine", "--kv-capacity-tokens", f.kv_capacity_tokens, 0, int64_t{1} << 40);
  CheckIntOption("engine", "--redundant-slots", f.redundant_slots, -1, 1024);
  CheckNumberOption("engine", "--drain-timeout", f.drain_timeout_s, 0, 86400);
}

void RunEngine(const EngineFlags& f) {
  CheckRanges(f);
  engine::EngineServiceOptions o;
  engine::EmulatorOptions& e = o.emulator;
  if (!f.config.empty()) {
    auto sc = LoadScenario(f.config);
    if (!sc.ok()) Fail(sc.status().message());
    e.cluster = sc->cluster;
    if (!sc->stacks.empty()) {
      e.queue_policy = sc->stacks.front().queue;
      e.queue_params = sc->stacks.front().queue_params;
      e.step_policy = sc->stacks.front().step;
      e.step_params = sc->stacks.front().step_params;
    }
    if (f.dp > 0) e.cluster.dp = f.dp;
    if (!f.model.empty() || !f.gpu.empty()) {
      Fail("--model and --gpu come from the scenario when --config is given");
    }
    if (o.served_model.empty()) o.served_model = sc->model_name;
  } else {
    if (f.model.empty() || f.gpu.empty() || f.dp <= 0) {
      Fail("--dp, --model and --gpu are required (or --config scenario.yaml)");
    }
    auto c = engine::ClusterFromCatalog(f.model, f.gpu, f.topology, f.dp);
    if (!c.ok()) Fail(c.status().message());
    e.cluster = *c;
    o.served_model = f.model;
  }
  if (!f.served_model_name.empty()) o.served_model = f.served_model_name;
  if (!f.queue_policy.empty()) {
    e.queue_policy = f.queue_policy;
    e.queue_params = {};
  }
  if (!f.step_policy.empty()) {
    e.step_policy = f.step_policy;
    e.step_params = {};
  }
  if (e.cluster.dp > kMaxEngineDp) {
    Fail(fmt::format("the scenario's cluster.dp {} is more than {} engines; pass --dp",
                     e.cluster.dp, kMaxEngineDp));
  }
  if (e.cluster.dp % f.ranks_per_port != 0) {
    Fail(fmt::format("--ranks-per-port {} does not divide the {} DP ranks", f.ranks_per_port,
                     e.cluster.dp));
  }
  const int ports = e.cluster.dp / f.ranks_per_port;
  if (f.port > 0 && f.port + ports - 1 > 65535) {
    Fail(fmt::format(
        "--port {} with {} engines{} needs ports up to {}, beyond 65535", f.port, e.cluster.dp,
        f.ranks_per_port == 1 ? std::string() : fmt::format(", {} per port,", f.ranks_per_port),
        f.port + ports - 1));
  }
  if (f.kv_capacity_tokens > 0) e.cluster.engine.kv_capacity_tokens = f.kv_capacity_tokens;
  if (f.redundant_slots >= 0) e.cluster.redundant_slots_per_gpu = f.redundant_slots;
  e.time_scale = f.time_scale;
  e.kv_events_endpoint = f.kv_events_endpoint;
  e.kv_events_replay_endpoint = f.kv_events_replay_endpoint;
  o.address = f.address;
  o.port = static_cast<uint16_t>(f.port);
  o.ranks_per_server = f.ranks_per_port;
  o.threads = f.threads;
  o.default_max_tokens = f.default_max_tokens;
  if (!f.admin_token_env.empty()) {
    if (const char* t = std::getenv(f.admin_token_env.c_str())) o.admin_token = t;
  }

  // SIGTERM and SIGINT are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  uint64_t files_before = 0;
  const uint64_t files = net::RaiseOpenFileLimit(&files_before);
  if (files > files_before) {
    std::cerr << fmt::format("gimbal engine: open-file limit raised from {} to {}\n", files_before,
                             files);
  }
  auto svc = engine::EngineService::Start(std::move(o));
  if (!svc.ok()) Fail(svc.status().ToString(), 1);
  engine::EngineService& s = **svc;
  const auto& spec = s.emulator().spec();
  std::cerr << fmt::format(
      "gimbal engine: {} on {} x {} (DP{}+EP{}), time scale {}, KV {} tokens per engine\n",
      spec.model.name, spec.dp, spec.hardware.gpu.name, spec.dp, spec.dp, f.time_scale,
      s.emulator().kv_capacity_tokens());
  for (int i = 0; i < s.engines(); ++i) {
    std::cerr << fmt::format("gimbal engine: engine {} on {}\n", i, s.url(i));
    if (!f.kv_events_endpoint.empty()) {
      std::cerr << fmt::format(
          "gimbal engine: engine {} publishes KV events on {}{}\n", i,
          s.emulator().kv_events_endpoint(i),
          f.kv_events_replay_endpoint.empty()
              ? std::string()
              : std::string(", replay on ") + s.emulator().kv_events_replay_endpoint(i));
    }
  }
  std::cerr << "gimbal engine: SIGTERM or Ctrl-C drains and exits; a second one exits at once\n";
  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "gimbal engine: draining (a second SIGTERM or Ctrl-C exits at once)\n";
  ExitOnSecondSignal("engine", signals);
  if (!s.Shutdown(f.drain_timeout_s)) {
    std::cerr << "gimbal engine: drain timed out; some requests were cut off\n";
    throw CommandFailed(1);
  }
}

void SetupEngine(CLI::App& app) {
  auto f = std::make_shared<EngineFlags>();
  CLI::App* cmd = app.add_subcommand(
      "engine", "Run N emulated vLLM engines over one simulated DP+EP cluster, on the real clock");
  cmd->add_option("--dp", f->dp,
                  "DP engines (= EP size = GPUs), 1..1024; engine i listens on port + i "
                  "(port + i / ranks-per-port)");
  cmd->add_option("--model", f->model,
                  "model from the catalogue (data/models), e.g. qwen3-30b-a3b");
  cmd->add_option("--served-model-name", f->served_model_name,
                  "the `model` requests must name (default: --model, or the scenario's model)");
  cmd->add_option("--gpu", f->gpu, "GPU from the catalogue (data/gpus), e.g. h100-sxm");
  cmd->add_option("--topology", f->topology, "topology from the catalogue (data/topologies)")
      ->capture_default_str();
  cmd->add_option("--config,-c", f->config,
                  "scenario YAML: cluster, engine limits, hardware, routing and traffic classes; "
                  "the first stack's queue and step policies");
  cmd->add_option("--address", f->address, "listen address")->capture_default_str();
  cmd->add_option("--port", f->port, "port of engine 0 (0: ephemeral ports)")
      ->capture_default_str();
  cmd->add_option("--ranks-per-port", f->ranks_per_port,
                  "DP ranks behind each port, dividing --dp: 1 is one API server per rank "
                  "(vLLM's external load balancing; engine i on port + i); L fronts ranks "
                  "jL..jL+L-1 on port + j and balances over them (one node under vLLM's hybrid "
                  "load balancing; --dp: one server for all)")
      ->capture_default_str();
  cmd->add_option("--time-scale", f->time_scale,
                  "modelled step durations are multiplied by this before sleeping (< 1: faster "
                  "than real time; 0: no sleeping)")
      ->capture_default_str();
  cmd->add_option("--queue-policy", f->queue_policy, "engine queue policy (default fcfs)");
  cmd->add_option("--step-policy", f->step_policy,
                  "per-step token budgets across the ranks: vllm (fixed) or gimbal "
                  "(coordinated; default vllm)");
  cmd->add_option("--threads", f->threads, "io threads, 1..256")->capture_default_str();
  cmd->add_option("--default-max-tokens", f->default_max_tokens,
                  "output length of requests without max_tokens")
      ->capture_default_str();
  cmd->add_option("--kv-capacity-tokens", f->kv_capacity_tokens,
                  "override the memory-derived KV capacity per engine");
  cmd->add_option("--redundant-slots", f->redundant_slots, "redundant expert slots per GPU");
  cmd->add_option("--admin-token-env", f->admin_token_env,
                  "environment variable holding the bearer token POST /gimbal/placement needs "
                  "(unset: no token needed)")
      ->capture_default_str();
  cmd->add_option("--drain-timeout", f->drain_timeout_s, "seconds to let requests finish on exit")
      ->capture_default_str();
  cmd->add_option("--kv-events-endpoint", f->kv_events_endpoint,
                  "publish vLLM KV-cache events (ZeroMQ PUB, bound) on this endpoint, engine i on "
                  "port + i, e.g. tcp://127.0.0.1:5557 (docs/kv-events.md)");
  cmd->add_option("--kv-events-replay-endpoint", f->kv_events_replay_endpoint,
                  "also answer replay requests (ZeroMQ ROUTER) here, engine i on port + i");
  cmd->callback([f] { RunEngine(*f); });
}

}  // namespace

GIMBAL_REGISTER_COMMAND("engine", SetupEngine);

}  // namespace gimbal::cli
