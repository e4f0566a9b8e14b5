// HttpClient: an asynchronous HTTP/1.1 client with a keep-alive connection pool per host.
//
// Requests are coroutines run on the caller's executor (its strand). Open() returns once the
// response header has arrived and hands back a ClientStream whose body is read piece by piece as
// it arrives (for server-sent events); Send() reads the whole body. A connection goes back to the
// pool when its response was read to the end and both sides allow keep-alive; a stream dropped
// early closes its connection (the server sees the client go away). A request that fails on a
// reused connection before any response byte arrived is retried once on a fresh connection.
//
// Thread-safe: any number of coroutines on any threads may use one client.
#pragma once

#include <utility>  // before Asio 1.74 awaitable.hpp, which uses std::exchange unincluded

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/status.h"
#include "net/http_types.h"

namespace gimbal::net {

struct HttpClientOptions {
  double connect_timeout_s = 5;
  double write_timeout_s = 30;
  double header_timeout_s = 300;  // from the request's end to the response header
  double read_timeout_s = 120;    // between two body pieces
  size_t max_body_bytes = 64 << 20;  // Send() only
  size_t max_idle_per_host = 256;
  double idle_ttl_s = 30;  // pooled connections idle longer are closed, not reused
};

struct ClientRequest {
  std::string method = "GET";
  std::string host;
  uint16_t port = 80;
  std::string target = "/";
  Headers headers;
  std::string body;
};

struct ClientResponse {
  int status = 0;
  Headers headers;
  std::string body;
};

// A response being received. Use from one coroutine at a time.
class ClientStream {
 public:
  virtual ~ClientStream() = default;
  virtual int status() const = 0;
  virtual const Headers& headers() const = 0;
  // The next piece of the body as it arrived; std::nullopt at the end. kUnavailable when the
  // connection broke or no byte arrived within read_timeout_s.
  virtual boost::asio::awaitable<Result<std::optional<std::string>>> Next() = 0;
};

class HttpClient {
 public:
  HttpClient(boost::asio::io_context& ctx, HttpClientOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `req` and waits for the response header. kUnavailable when the host cannot be reached
  // or does not answer in time.
  boost::asio::awaitable<Result<std::unique_ptr<ClientStream>>> Open(ClientRequest req);
  // Sends `req` and reads the whole response (body up to max_body_bytes).
  boost::asio::awaitable<Result<ClientResponse>> Send(ClientRequest req);
  // Closes every pooled idle connection.
  void CloseIdle();
  // Idle connections held now (for tests).
  size_t idle_connections() const;

  struct Pool;

 private:
  boost::asio::io_context& ctx_;
  HttpClientOptions opts_;
  std::shared_ptr<Pool> pool_;
};

}  // namespace gimbal::net
