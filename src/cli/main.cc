// gimbal: coordinated scheduling for MoE serving. See README.md and docs/.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
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

namespace {

// An installed gimbal (cmake/Install.cmake: PREFIX/bin/gimbal beside PREFIX/share/gimbal/data)
// reads its own catalogue: when GIMBAL_DATA_DIR is unset and that folder exists, this sets it
// (before any thread starts), so the catalogue and every process gimbal starts see the same
// folder. A binary in a build tree has no such folder and keeps the compiled-in source data/.
void UseInstalledDataDir() {
  const char* env = std::getenv("GIMBAL_DATA_DIR");
  if (env != nullptr && env[0] != '\0') return;
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return;
  const std::filesystem::path data =
      (exe.parent_path() / ".." / "share" / "gimbal" / "data").lexically_normal();
  if (std::filesystem::is_directory(data / "models", ec)) {
    ::setenv("GIMBAL_DATA_DIR", data.c_str(), 1);
  }
}

}  // namespace

}  // namespace gimbal::cli

int main(int argc, char** argv) {
  gimbal::cli::UseInstalledDataDir();
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
