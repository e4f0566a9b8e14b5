// Subcommand registry for the `gimbal` binary.
//
// Each subcommand lives in its own src/cli/<name>_command.cc and registers itself at static
// initialisation with GIMBAL_REGISTER_COMMAND(name, setup). `setup` adds a CLI11 subcommand to the
// app and sets its callback; a callback reports failure by throwing CommandFailed(exit code), after
// printing a message to stderr. main() sets every registered command up in name order.
#pragma once

#include <csignal>
#include <cstdint>
#include <functional>
#include <iostream>
#include <map>
#include <string>

#include <CLI/CLI.hpp>

namespace gimbal::cli {

using CommandSetup = std::function<void(CLI::App& app)>;

std::map<std::string, CommandSetup>& CommandRegistry();
bool RegisterCommand(const std::string& name, CommandSetup setup);

// Thrown by a command's callback to exit with `code` (its message was already printed).
struct CommandFailed : CLI::RuntimeError {
  explicit CommandFailed(int code) : CLI::RuntimeError(code) {}
};

// Range checks of numeric options, done before a command loads or allocates anything: outside
// [lo, hi] (or NaN) they print "gimbal <command>: <option> must be in lo..hi, got v" and throw
// CommandFailed(2), like the commands' other usage errors.
inline void CheckIntOption(const char* command, const char* option, int64_t value, int64_t lo,
                           int64_t hi) {
  if (value >= lo && value <= hi) return;
  std::cerr << "gimbal " << command << ": " << option << " must be in " << lo << ".." << hi
            << ", got " << value << "\n";
  throw CommandFailed(2);
}

inline void CheckNumberOption(const char* command, const char* option, double value, double lo,
                              double hi) {
  if (value >= lo && value <= hi) return;
  std::cerr << "gimbal " << command << ": " << option << " must be a number in [" << lo << ", "
            << hi << "], got " << value << "\n";
  throw CommandFailed(2);
}

// The most DP engines `gimbal engine` and `gimbal serve` start in one process (each has its own
// listening port, emulated KV cache and state stream), and the most io threads.
inline constexpr int kMaxEngineDp = 1024;
inline constexpr int kMaxIoThreads = 256;

// Makes a second SIGINT or SIGTERM end the process at once: call after the first one was taken
// with sigwait() (both signals blocked in every thread), before draining. A thread waits for the
// next one, then prints "gimbal <command>: second signal; exiting without draining" and exits
// with 128 + the signal's number.
void ExitOnSecondSignal(const char* command, const sigset_t& signals);

}  // namespace gimbal::cli

#define GIMBAL_REGISTER_COMMAND(name, setup) \
  static const bool gimbal_command_registered_##setup = ::gimbal::cli::RegisterCommand(name, setup)
