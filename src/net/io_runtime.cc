#include "net/io_runtime.h"

#include <exception>

#include <spdlog/spdlog.h>

namespace gimbal::net {

IoRuntime::IoRuntime(int threads) : threads_(threads < 1 ? 1 : threads), ctx_(threads_) {}

IoRuntime::~IoRuntime() {
  Stop();
}

void IoRuntime::Start() {
  if (!pool_.empty()) return;
  guard_.emplace(ctx_.get_executor());
  for (int i = 0; i < threads_; ++i) {
    pool_.emplace_back([this] {
      // A handler that throws ends only the operation it belonged to: the thread logs it and
      // runs on (Asio lets run() be called again after an exception passed through it).
      for (;;) {
        try {
          ctx_.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("io thread: a handler threw, its operation was dropped: {}", e.what());
        } catch (...) {
          spdlog::error("io thread: a handler threw a non-standard exception; dropped");
        }
      }
    });
  }
}

void IoRuntime::Stop() {
  guard_.reset();
  ctx_.stop();
  for (auto& t : pool_) {
    if (t.joinable()) t.join();
  }
  pool_.clear();
}

}  // namespace gimbal::net
