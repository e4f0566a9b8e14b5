// EngineService: `gimbal engine` — N emulated DP engines over one Emulator, each an HTTP server
// speaking vLLM's OpenAI API on its own port (docs/emulator.md).
//
// Engine i listens on port + i (every engine on an ephemeral port when port is 0). Endpoints:
// POST /v1/completions and /v1/chat/completions (streaming and not), GET /v1/models, /health,
// /metrics (vLLM names, labels model_name and engine), GET /gimbal/state (this engine's pushed
// state as JSON), GET /gimbal/state/stream (server-sent events: the state after every step, at
// least once a second), GET /gimbal/stats (source x expert routing statistics,
// gimbal.routing_stats/1), GET and POST /gimbal/placement (gimbal.placement/1; the placement is
// shared by all engines, as in one EP group).
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
  uint16_t port = 8001;                   // engine i on port + i; 0: ephemeral ports
  int threads = 4;                        // io threads shared by all engines' servers
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
  // Builds the emulator and binds every engine's port; running when it returns.
  static Result<std::unique_ptr<EngineService>> Start(EngineServiceOptions options);
  // Shutdown(1) unless already shut down.
  ~EngineService();
  EngineService(const EngineService&) = delete;
  EngineService& operator=(const EngineService&) = delete;

  int engines() const;
  uint16_t port(int engine) const;
  std::string url(int engine) const;  // "http://address:port"
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
