// IoRuntime: one Asio io_context run by a fixed number of threads.
//
// The HTTP server, the HTTP client and periodic tasks of one process share it. With several
// threads, handlers of one connection run on that connection's strand, so code inside a
// connection's coroutine never runs concurrently with itself; with one thread they run on the
// context directly (nothing can run concurrently), which saves a strand hop per operation. The
// context's concurrency hint is the thread count, so one thread gets Asio's single-threaded
// scheduler path.
#pragma once

#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

namespace gimbal::net {

class IoRuntime {
 public:
  // threads >= 1.
  explicit IoRuntime(int threads);
  // Stops the context and joins the threads.
  ~IoRuntime();
  IoRuntime(const IoRuntime&) = delete;
  IoRuntime& operator=(const IoRuntime&) = delete;

  boost::asio::io_context& context() { return ctx_; }
  // Starts the threads; they run until Stop(). Idempotent.
  void Start();
  // Stops the context (pending handlers are dropped) and joins the threads. Idempotent; must not
  // be called from one of the runtime's own threads.
  void Stop();
  int threads() const { return threads_; }

 private:
  int threads_;
  boost::asio::io_context ctx_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_;
  std::vector<std::thread> pool_;
};

}  // namespace gimbal::net
