// Polling helpers for tests that wait on another thread or process: bounded in time, so a
// failure costs the timeout and never hangs.
#pragma once

#include <chrono>
#include <thread>

namespace gimbal::testutil {

// Calls `done` every `every` until it returns true (then true) or `timeout` passed (then false).
template <typename F>
bool Eventually(F&& done, std::chrono::milliseconds timeout = std::chrono::seconds(10),
                std::chrono::milliseconds every = std::chrono::milliseconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(every);
  }
  return true;
}

// Reads `read()` until it equals `want` or `timeout` passed; returns the last value read (so an
// EXPECT_EQ on it shows what was seen).
template <typename F, typename T>
auto EventuallyEquals(F&& read, const T& want,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10),
                      std::chrono::milliseconds every = std::chrono::milliseconds(10)) {
  auto v = read();
  Eventually([&] { return (v = read()) == want; }, timeout, every);
  return v;
}

}  // namespace gimbal::testutil
