// Subcommand registry for the `gimbal` binary.
//
// Each subcommand lives in its own src/cli/<name>_command.cc and registers itself at static
// initialisation with GIMBAL_REGISTER_COMMAND(name, setup). `setup` adds a CLI11 subcommand to the
// app and sets its callback; a callback reports failure by throwing CommandFailed(exit code), after
// printing a message to stderr. main() sets every registered command up in name order.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <map>
#include <string>

namespace gimbal::cli {

using CommandSetup = std::function<void(CLI::App& app)>;

std::map<std::string, CommandSetup>& CommandRegistry();
bool RegisterCommand(const std::string& name, CommandSetup setup);

// Thrown by a command's callback to exit with `code` (its message was already printed).
struct CommandFailed : CLI::RuntimeError {
  explicit CommandFailed(int code) : CLI::RuntimeError(code) {}
};

}  // namespace gimbal::cli

#define GIMBAL_REGISTER_COMMAND(name, setup) \
  static const bool gimbal_command_registered_##setup = ::gimbal::cli::RegisterCommand(name, setup)
