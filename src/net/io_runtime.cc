#include "net/io_runtime.h"

namespace gimbal::net {

IoRuntime::IoRuntime(int threads) : threads_(threads < 1 ? 1 : threads), ctx_(threads_) {}

IoRuntime::~IoRuntime() { Stop(); }

void IoRuntime::Start() {
  if (!pool_.empty()) return;
  guard_.emplace(ctx_.get_executor());
  for (int i = 0; i < threads_; ++i) pool_.emplace_back([this] { ctx_.run(); });
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
