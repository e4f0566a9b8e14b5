// SocketDeadline (internal to net/): cancels a socket's pending operations when time runs out.
//
// Arm(d) sets a deadline; if it passes before Disarm() or the next Arm(), the socket's pending
// operations are cancelled and fired() turns true. The timer is lazy: Arm() and Disarm() only
// store the deadline (a clock read), and one timer wait stays pending, re-waiting when it wakes
// before the current deadline or going idle when disarmed. An Arm() re-arms the timer only when
// its deadline is earlier than the pending wait's, so a connection alternating between a few
// timeouts costs no timer operation per request. The timer's handler runs on the executor given
// at construction, which must be the one the coroutine using the socket runs on (its strand, or
// the runtime's single thread), so the handler never races the coroutine. The destructor cancels
// the pending wait, releasing `owner` at once. A deadline may be kept across several uses of its
// socket (HttpClient keeps one per pooled connection): a wait pending from an earlier use only
// re-waits or goes idle.
#pragma once

#include <array>
#include <chrono>
#include <memory>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

namespace gimbal::net::detail {

// Writes what `socket` (in non-blocking mode) takes at once. True when everything was written or
// the write failed (`ec` set); false when the rest must wait for the socket, with `bufs` advanced
// past what was written and `ec` clear. A whole small response usually goes out here, with no
// asynchronous operation (no completion handler to queue and run).
template <size_t N>
bool TryWriteNow(boost::asio::ip::tcp::socket& socket,
                 std::array<boost::asio::const_buffer, N>& bufs, boost::system::error_code& ec) {
  size_t n = socket.write_some(bufs, ec);
  if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) {
    ec = {};
    n = 0;
  } else if (ec) {
    return true;
  }
  bool rest = false;
  for (auto& b : bufs) {
    const size_t k = n < b.size() ? n : b.size();
    b += k;
    n -= k;
    rest |= b.size() > 0;
  }
  return !rest;
}

class SocketDeadline {
 public:
  using Clock = std::chrono::steady_clock;

  // `owner` keeps `socket` alive while a timer handler may still run.
  SocketDeadline(boost::asio::any_io_executor ex, boost::asio::ip::tcp::socket* socket,
                 std::shared_ptr<void> owner)
      : st_(std::make_shared<State>(ex, socket, std::move(owner))) {}
  ~SocketDeadline() {
    if (!st_) return;
    st_->deadline = Clock::time_point::max();
    if (st_->waiting) {
      ++st_->gen;
      st_->timer.cancel();
    }
  }
  SocketDeadline(SocketDeadline&&) = default;
  SocketDeadline(const SocketDeadline&) = delete;
  SocketDeadline& operator=(const SocketDeadline&) = delete;
  SocketDeadline& operator=(SocketDeadline&&) = delete;

  void Arm(Clock::duration d) {
    State& s = *st_;
    s.fired = false;
    s.deadline = Clock::now() + d;
    if (!s.waiting || s.expiry > s.deadline) Wait(st_, s.deadline);
  }
  void ArmSeconds(double s) {
    Arm(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)));
  }
  void Disarm() { st_->deadline = Clock::time_point::max(); }
  // Fires now, as if the deadline had passed: the socket's pending operations are cancelled and
  // fired() is true until the next Arm(), so ReadParsed starts no further read. On the executor.
  void Fire() {
    st_->fired = true;
    boost::system::error_code ignored;
    st_->socket->cancel(ignored);
  }
  bool fired() const { return st_->fired; }
  // The executor its timer handler runs on.
  const boost::asio::any_io_executor& executor() const { return st_->ex; }
  // Lets go of the deadline without touching its state, so from any thread; the object is then
  // empty (only destroyed). Only for a disarmed deadline made without an owner: its pending wait,
  // once due, finds nothing armed and ends without touching the socket.
  void Abandon() { st_.reset(); }

 private:
  struct State {
    State(boost::asio::any_io_executor e, boost::asio::ip::tcp::socket* s, std::shared_ptr<void> o)
        : ex(e), timer(e), socket(s), owner(std::move(o)) {}
    boost::asio::any_io_executor ex;
    boost::asio::steady_timer timer;
    boost::asio::ip::tcp::socket* socket;
    std::shared_ptr<void> owner;
    Clock::time_point deadline = Clock::time_point::max();  // max: disarmed
    Clock::time_point expiry;                               // of the pending wait
    uint64_t gen = 0;  // the pending wait's; older handlers do nothing
    bool waiting = false;
    bool fired = false;
  };

  static void Wait(const std::shared_ptr<State>& st, Clock::time_point at) {
    st->expiry = at;
    st->waiting = true;
    const uint64_t gen = ++st->gen;
    st->timer.expires_at(at);  // cancels an earlier wait, whose handler then sees an old gen
    st->timer.async_wait(boost::asio::bind_executor(
        st->ex, [st, gen](const boost::system::error_code& ec) { OnTimer(st, gen, ec); }));
  }

  static void OnTimer(const std::shared_ptr<State>& st, uint64_t gen,
                      const boost::system::error_code& ec) {
    if (st->gen != gen) return;
    st->waiting = false;
    if (ec || st->deadline == Clock::time_point::max()) return;  // cancelled, or disarmed: idle
    if (Clock::now() < st->deadline) {
      Wait(st, st->deadline);  // re-armed to a later deadline since this wait began
      return;
    }
    st->fired = true;
    boost::system::error_code ignored;
    st->socket->cancel(ignored);
  }

  std::shared_ptr<State> st_;
};

}  // namespace gimbal::net::detail
