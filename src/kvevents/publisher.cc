#include "kvevents/publisher.h"

#include <zmq.h>

#include <cerrno>
#include <chrono>
#include <vector>

#include <spdlog/spdlog.h>

namespace gimbal::kvevents {

namespace {

std::string ZmqError(const std::string& what) {
  return what + ": " + zmq_strerror(zmq_errno());
}

// Binds `s` to `endpoint`, retrying for a moment while a just-closed socket still holds the
// address (a restarted publisher on the same port); returns the bound endpoint.
Result<std::string> Bind(void* s, const std::string& endpoint) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (zmq_bind(s, endpoint.c_str()) != 0) {
    if (zmq_errno() != EADDRINUSE || std::chrono::steady_clock::now() > give_up) {
      return InvalidArgument(ZmqError(std::string("cannot bind ") + endpoint));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  char buf[512];
  size_t len = sizeof(buf);
  if (zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, buf, &len) != 0 || len == 0) return endpoint;
  return std::string(buf, len - 1);  // len counts the terminating NUL
}

void SendFrames(void* s, const std::vector<std::string_view>& frames) {
  for (size_t i = 0; i < frames.size(); ++i) {
    const int more = i + 1 < frames.size() ? ZMQ_SNDMORE : 0;
    zmq_send(s, frames[i].data(), frames[i].size(), more | ZMQ_DONTWAIT);
  }
}

}  // namespace

void* ZmqContext() {
  static void* ctx = zmq_ctx_new();
  return ctx;
}

Result<std::string> EndpointForRank(const std::string& endpoint, int rank) {
  if (rank < 0) return InvalidArgument("a data-parallel rank cannot be negative");
  if (rank == 0) return endpoint;
  if (endpoint.rfind("inproc://", 0) == 0 || endpoint.rfind("ipc://", 0) == 0) {
    return endpoint + "_dp" + std::to_string(rank);
  }
  const size_t colon = endpoint.rfind(':');
  if (endpoint.rfind("tcp://", 0) != 0 || colon == std::string::npos || colon < 6) {
    return InvalidArgument("endpoint '" + endpoint +
                           "': expected tcp://HOST:PORT, ipc:// or inproc://");
  }
  int port = -1;
  try {
    size_t used = 0;
    port = std::stoi(endpoint.substr(colon + 1), &used);
    if (used != endpoint.size() - colon - 1) port = -1;
  } catch (const std::exception&) {
    port = -1;
  }
  if (port < 0 || port > 65535) return InvalidArgument("endpoint '" + endpoint + "': bad port");
  if (port == 0) return endpoint;
  if (port + rank > 65535) {
    return InvalidArgument("endpoint '" + endpoint + "': port + rank > 65535");
  }
  return endpoint.substr(0, colon + 1) + std::to_string(port + rank);
}

Result<std::unique_ptr<Publisher>> Publisher::Create(PublisherOptions options) {
  if (options.endpoint.empty()) return InvalidArgument("a KV-event publisher needs an endpoint");
  if (options.buffer_steps < 0 || options.hwm < 0 || options.max_queue < 1) {
    return InvalidArgument("KV-event publisher: buffer_steps and hwm >= 0, max_queue >= 1");
  }
  std::unique_ptr<Publisher> p(new Publisher(std::move(options)));
  const int linger = 0;
  p->pub_ = zmq_socket(ZmqContext(), ZMQ_PUB);
  if (!p->pub_) return Internal(ZmqError("zmq_socket"));
  zmq_setsockopt(p->pub_, ZMQ_SNDHWM, &p->options_.hwm, sizeof(int));
  zmq_setsockopt(p->pub_, ZMQ_LINGER, &linger, sizeof(int));
  auto bound = Bind(p->pub_, p->options_.endpoint);
  if (!bound.ok()) return bound.status();
  p->endpoint_ = *bound;
  if (!p->options_.replay_endpoint.empty()) {
    p->replay_ = zmq_socket(ZmqContext(), ZMQ_ROUTER);
    if (!p->replay_) return Internal(ZmqError("zmq_socket"));
    // Room for a whole replay plus its end marker, as vLLM sizes it.
    const int64_t want = 2 * (p->options_.buffer_steps + 1);
    const int hwm = want > INT32_MAX ? INT32_MAX : static_cast<int>(want);
    zmq_setsockopt(p->replay_, ZMQ_SNDHWM, &hwm, sizeof(int));
    zmq_setsockopt(p->replay_, ZMQ_LINGER, &linger, sizeof(int));
    auto rb = Bind(p->replay_, p->options_.replay_endpoint);
    if (!rb.ok()) return rb.status();
    p->replay_endpoint_ = *rb;
  }
  p->thread_ = std::thread([q = p.get()] { q->Loop(); });
  return p;
}

Publisher::~Publisher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (pub_) zmq_close(pub_);
  if (replay_) zmq_close(replay_);
}

bool Publisher::Publish(EventBatch batch) {
  if (!batch.data_parallel_rank) batch.data_parallel_rank = options_.data_parallel_rank;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t seq = next_seq_++;
    if (static_cast<int64_t>(queue_.size()) >= options_.max_queue) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    queue_.emplace_back(seq, std::move(batch));
  }
  cv_.notify_all();
  return true;
}

bool Publisher::Flush(double timeout_s) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, std::chrono::duration<double>(timeout_s),
                      [&] { return queue_.empty() && in_flight_ == 0; });
}

int64_t Publisher::next_seq() const {
  std::lock_guard<std::mutex> lock(mu_);
  return next_seq_;
}

void Publisher::Loop() {
  std::deque<std::pair<int64_t, EventBatch>> work;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    auto ready = [&] { return stop_ || !queue_.empty(); };
    if (replay_) {
      cv_.wait_for(lock, std::chrono::milliseconds(2), ready);  // replay requests are polled
    } else {
      cv_.wait(lock, ready);
    }
    work.swap(queue_);
    in_flight_ = static_cast<int64_t>(work.size());
    const bool stop = stop_;
    lock.unlock();
    for (auto& [seq, batch] : work) {
      std::string payload = EncodeBatch(batch);
      const std::string seq_bytes = EncodeSeq(seq);
      SendFrames(pub_, {options_.topic, seq_bytes, payload});
      sent_.fetch_add(1, std::memory_order_relaxed);
      if (options_.buffer_steps > 0) {
        kept_.emplace_back(seq, std::move(payload));
        if (static_cast<int64_t>(kept_.size()) > options_.buffer_steps) kept_.pop_front();
      }
    }
    work.clear();
    if (replay_) {
      // One request per round, as vLLM serves them: a peer sending requests without pause must
      // not hold up the live stream (serving all waiting, a flood let no live batch out).
      zmq_pollitem_t item{replay_, 0, ZMQ_POLLIN, 0};
      if (zmq_poll(&item, 1, 0) > 0 && (item.revents & ZMQ_POLLIN)) ServeReplay();
    }
    lock.lock();
    in_flight_ = 0;
    cv_.notify_all();
    if (stop && queue_.empty()) return;
  }
}

void Publisher::ServeReplay() {
  std::vector<std::string> frames;
  int more = 1;
  while (more) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, replay_, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&m);
      return;
    }
    if (frames.size() < 8) {
      frames.emplace_back(static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m));
    }
    more = zmq_msg_more(&m);
    zmq_msg_close(&m);
  }
  const std::optional<int64_t> start = frames.size() == 3 ? DecodeSeq(frames[2]) : std::nullopt;
  if (!start) {
    if (LogThisOccurrence(++bad_replay_requests_)) {
      spdlog::warn(
          "kv-events publisher {}: ignoring a replay request of {} frame(s) ({} so far); expected "
          "[identity, empty, 8-byte sequence number]",
          endpoint_, frames.size(), bad_replay_requests_);
    }
    return;
  }
  const std::string& id = frames[0];
  for (const auto& [seq, payload] : kept_) {
    if (seq < *start) continue;
    const std::string seq_bytes = EncodeSeq(seq);
    SendFrames(replay_, {id, "", options_.topic, seq_bytes, payload});
  }
  SendFrames(replay_, {id, "", "", EncodeSeq(-1), ""});
  replays_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace gimbal::kvevents
