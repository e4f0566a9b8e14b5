// gimbal: coordinated scheduling for MoE serving. See README.md and docs/.
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cli/command.h"

namespace gimbal::cli {

void ExitOnSecondSignal(const char* command, const sigset_t& signals) {
  std::thread([command, signals] {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) return;
    const std::string name = sig == SIGINT    ? "SIGINT"
                             : sig == SIGTERM ? "SIGTERM"
                                              : "signal " + std::to_string(sig);
    const std::string msg =
        fmt::format("gimbal {}: second {}; exiting at once without draining\n", command, name);
    if (::write(STDERR_FILENO, msg.data(), msg.size()) < 0) {
      // Nothing to do: the exit below is what matters.
    }
    std::_Exit(128 + sig);
  }).detach();
}

std::map<std::string, CommandSetup>& CommandRegistry() {
  static std::map<std::string, CommandSetup> registry;
  return registry;
}

bool RegisterCommand(const std::string& name, CommandSetup setup) {
  CommandRegistry()[name] = std::move(setup);
  return true;
}

}  // namespace gimbal::cli

int main(int argc, char** argv) {
  CLI::App app{
      "gimbal: coordinated scheduling for Mixture-of-Experts LLM serving on DP+EP clusters"};
  app.require_subcommand(1);
  // GIMBAL_VERSION: the top-level project(gimbal VERSION ...) (src/cli/CMakeLists.txt).
  app.set_version_flag("--version", std::string("gimbal ") + GIMBAL_VERSION);
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  for (auto& [name, setup] : gimbal::cli::CommandRegistry()) setup(app);
  app.parse_complete_callback([&] { spdlog::set_level(spdlog::level::from_str(log_level)); });
  CLI11_PARSE(app, argc, argv);
  return 0;
}
