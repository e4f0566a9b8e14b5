// EngineService: `gimbal engine` — N emulated DP ranks of one EP group over one Emulator, presented
// as vLLM presents them: HTTP servers speaking vLLM's OpenAI API (docs/emulator.md).
//
// Each server fronts ranks_per_server consecutive ranks; server j listens on port + j (every
// server on an ephemeral port when port is 0). With 1 (the default) every rank has its own port,
// as vLLM's external load balancing starts one API server per rank (`--data-parallel-rank k`, or
// `--data-parallel-multi-port-external-lb`: rank k on port + k). With L > 1 a server fronts L
// ranks and balances its requests over them, as one node's API server under vLLM's hybrid load
// balancing (`--data-parallel-hybrid-lb`, `--data-parallel-size-local L`); L = N is one API server
// over all ranks (vLLM's internal load balancing). Whatever the layout, the ranks share one
// cluster: one lockstep step, one all-to-all, one placement.
//
// Endpoints of a server: POST /v1/completions and /v1/chat/completions (streaming and not; a
// request goes to the server's rank with the fewest requests in flight, ties taken in turn),
// GET /v1/models, /health, /metrics (vLLM names, labels model_name and engine = the global rank;
// only the server's own ranks' series, as a vLLM API server publishes only the engines it
// manages), GET /gimbal/state (the rank's pushed state as JSON), GET /gimbal/state/stream
// (server-sent events: the state after every step, at least once a second) — these two only on a
// server of one rank, 404 otherwise (as vLLM's), GET /gimbal/stats (source x expert routing
// statistics, gimbal.routing_stats/1), GET and POST /gimbal/placement (gimbal.placement/1; the
// placement is shared by all ranks, as in one EP group).
//
// HTTP handlers never wait on the model: they hand requests to the Emulator's driver thread and
// are woken, on their connection's executor, when it posts tokens back. A completion whose client
// closes or resets its connection before the answer is complete is cancelled in the emulator
// (Emulator::Cancel) at once, even while nothing is being written (a non-streaming request, or a
// stream between tokens), and counted in gimbal:aborted_requests_total.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/emulator.h"

namespace gimbal::engine {

struct EngineServiceOptions {
  EmulatorOptions emulator;
  std::string address = "127.0.0.1";
  uint16_t port = 8001;      // server j on port + j; 0: ephemeral ports
  int ranks_per_server = 1;  // consecutive ranks behind each server; divides the DP size
  int threads = 4;           // io threads shared by all servers
  std::string served_model = "emulated";  // the `model` requests must name
  // When set, POST /gimbal/placement needs "Authorization: Bearer <it>" (scheme in any case;
  // the token compared in constant time), else 401.
  std::string admin_token;
  double chars_per_token = 4;
  int64_t default_max_tokens = 16;
  double state_stream_heartbeat_s = 1;  // /gimbal/state/stream emits at least this often
};

class EngineService {
 public:
  // Builds the emulator and binds every server's port; running when it returns.
  static Result<std::unique_ptr<EngineService>> Start(EngineServiceOptions options);
  // Shutdown(1) unless already shut down.
  ~EngineService();
  EngineService(const EngineService&) = delete;
  EngineService& operator=(const EngineService&) = delete;

  int engines() const;  // DP ranks
  int servers() const;  // engines() / ranks_per_server
  // The port and URL ("http://address:port") of the server that fronts rank `engine`;
  // std::out_of_range for a rank that does not exist.
  uint16_t port(int engine) const;
  std::string url(int engine) const;
  Emulator& emulator();

  // Ends state streams, stops accepting, lets in-flight requests finish (up to `timeout_s`),
  // stops the emulator (failing what is left) and the io threads. True when everything finished
  // in time. Must not be called from an io thread. Idempotent.
  bool Shutdown(double timeout_s);

  struct Impl;

 private:
  explicit EngineService(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace gimbal::engine
