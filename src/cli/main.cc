// gimbal: coordinated scheduling for MoE serving. See README.md and docs/.
#include <spdlog/spdlog.h>

#include "cli/command.h"

namespace gimbal::cli {

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
  CLI::App app{"gimbal: coordinated scheduling for Mixture-of-Experts LLM serving on DP+EP clusters"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "gimbal 0.1.0");
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  for (auto& [name, setup] : gimbal::cli::CommandRegistry()) setup(app);
  app.parse_complete_callback([&] { spdlog::set_level(spdlog::level::from_str(log_level)); });
  CLI11_PARSE(app, argc, argv);
  return 0;
}
