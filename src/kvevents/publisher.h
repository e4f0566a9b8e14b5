// Publisher: one engine's (one DP rank's) KV-cache event stream over ZeroMQ, as vLLM's
// ZmqEventPublisher sends it (docs/kv-events.md).
//
// Each batch goes out on a PUB socket as three frames: topic, 8-byte big-endian sequence number
// (0, 1, 2, ... from this publisher's creation), msgpack payload (EncodeBatch). The last
// `buffer_steps` payloads are kept; with a replay endpoint a ROUTER socket answers a request
// [identity, "", 8-byte start] with every kept batch numbered >= start, each as
// [identity, "", topic, seq, payload], then an end marker [identity, "", "", seq -1, ""].
//
// Publish() never blocks and never grows memory without bound: batches wait in a queue of at most
// `max_queue` entries for the publisher's own thread, which sends them without waiting (a PUB
// socket drops what a slow subscriber's high-water mark cannot take). A batch that finds the queue
// full is dropped but keeps its sequence number, so subscribers see the gap. Endpoints are always
// bound (vLLM connects instead when the host is neither a wildcard nor ipc/inproc); a tcp port of
// 0 binds an ephemeral port, reported by endpoint(). Thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "core/status.h"
#include "kvevents/events.h"

namespace gimbal::kvevents {

// The process-wide ZeroMQ context (inproc:// endpoints only meet inside one context). Never freed.
void* ZmqContext();

// vLLM's per-rank endpoint: tcp port + rank (a port of 0 stays 0), inproc/ipc name + "_dp<rank>";
// rank 0 keeps the endpoint as given. Errors on an endpoint with no usable port.
Result<std::string> EndpointForRank(const std::string& endpoint, int rank);

struct PublisherOptions {
  std::string endpoint;          // bound PUB endpoint: tcp://127.0.0.1:5557, tcp://*:0, inproc://x
  std::string replay_endpoint;   // bound ROUTER endpoint; empty: no replay
  std::string topic;             // first frame of every message
  int data_parallel_rank = 0;    // set on batches that carry none
  int64_t buffer_steps = 10000;  // batches kept for replay
  int hwm = 100000;              // PUB send high-water mark (messages per subscriber)
  int64_t max_queue = 100000;    // batches waiting for the publisher thread
};

class Publisher {
 public:
  // Binds the sockets and starts the thread; fails on a bad endpoint or option.
  static Result<std::unique_ptr<Publisher>> Create(PublisherOptions options);
  // Hands what is queued to the socket, then closes the sockets (linger 0: what a subscriber has
  // not taken yet is dropped, as when a vLLM engine exits).
  ~Publisher();
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // Queues `batch` under the next sequence number; false when the queue was full (dropped).
  bool Publish(EventBatch batch);
  // Waits until the thread has sent everything queued so far, or `timeout_s` passes; true if sent.
  bool Flush(double timeout_s);

  const std::string& endpoint() const { return endpoint_; }                // as bound
  const std::string& replay_endpoint() const { return replay_endpoint_; }  // empty: none
  int64_t next_seq() const;
  int64_t sent() const { return sent_.load(std::memory_order_relaxed); }
  int64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  int64_t replays_served() const { return replays_.load(std::memory_order_relaxed); }

 private:
  explicit Publisher(PublisherOptions options) : options_(std::move(options)) {}
  void Loop();
  void ServeReplay();

  PublisherOptions options_;
  void* pub_ = nullptr;
  void* replay_ = nullptr;
  std::string endpoint_, replay_endpoint_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<int64_t, EventBatch>> queue_;
  int64_t next_seq_ = 0;
  int64_t in_flight_ = 0;  // taken from the queue, not yet sent
  bool stop_ = false;
  std::thread thread_;

  std::deque<std::pair<int64_t, std::string>> kept_;  // publisher thread only
  std::atomic<int64_t> sent_{0}, dropped_{0}, replays_{0};
  int64_t bad_replay_requests_ = 0;  // malformed replay requests (the publishing thread's)
};

}  // namespace gimbal::kvevents
