// SocketDeadline (internal to net/): cancels a socket's pending operations when time runs out.
//
// Arm(d) starts a timer; if it expires before Disarm() or the next Arm(), the socket's pending
// operations are cancelled and fired() turns true. The timer's handler runs on the executor given
// at construction, which must be the strand of the coroutine using the socket, so the handler
// never races the coroutine. A handler that outlives a re-arm or Disarm() does nothing.
#pragma once

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>

namespace gimbal::net::detail {

class SocketDeadline {
 public:
  // `owner` keeps `socket` alive while a timer handler may still run.
  SocketDeadline(boost::asio::any_io_executor ex, boost::asio::ip::tcp::socket* socket,
                 std::shared_ptr<void> owner)
      : st_(std::make_shared<State>(ex, socket, std::move(owner))) {}
  ~SocketDeadline() { Disarm(); }
  SocketDeadline(const SocketDeadline&) = delete;
  SocketDeadline& operator=(const SocketDeadline&) = delete;

  void Arm(std::chrono::steady_clock::duration d) {
    uint64_t gen = ++st_->gen;
    st_->armed = true;
    st_->fired = false;
    st_->timer.expires_after(d);
    st_->timer.async_wait(boost::asio::bind_executor(
        st_->ex, [st = st_, gen](const boost::system::error_code& ec) {
          if (ec || !st->armed || st->gen != gen) return;
          st->fired = true;
          boost::system::error_code ignored;
          st->socket->cancel(ignored);
        }));
  }
  void ArmSeconds(double s) {
    Arm(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(s)));
  }
  void Disarm() {
    if (!st_->armed) return;
    st_->armed = false;
    ++st_->gen;
    st_->timer.cancel();
  }
  bool fired() const { return st_->fired; }

 private:
  struct State {
    State(boost::asio::any_io_executor e, boost::asio::ip::tcp::socket* s, std::shared_ptr<void> o)
        : ex(e), timer(e), socket(s), owner(std::move(o)) {}
    boost::asio::any_io_executor ex;
    boost::asio::steady_timer timer;
    boost::asio::ip::tcp::socket* socket;
    std::shared_ptr<void> owner;
    uint64_t gen = 0;
    bool armed = false;
    bool fired = false;
  };
  std::shared_ptr<State> st_;
};

}  // namespace gimbal::net::detail
