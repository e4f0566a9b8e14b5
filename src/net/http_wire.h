// HTTP/1.1 framing rules shared by HttpServer, HttpClient and the fuzz targets (internal to net/
// and fuzz/): how a request or response is parsed, which limits apply, and what the server answers
// a request it will not read.
//
// Limits: a message's head, and a chunked message's trailer fields together with whatever else
// sits unread in the read buffer, must fit in the read buffer (`header_limit` bytes for the
// server, kClientBufferLimit for the client); the body has its own limit. Beast throws
// std::length_error for a field value of 64 KiB or more; the buffer limit keeps every field below
// that, so the parser reports an error code instead.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "net/http_server.h"
#include "net/http_types.h"

namespace gimbal::net::detail {

namespace beast_http = boost::beast::http;
using RequestParser = beast_http::request_parser<beast_http::string_body>;

// The read buffer of one connection on either side. Bounded: see the limits above.
constexpr size_t kClientBufferLimit = 64 << 10;
// Responses in the 1xx range an upstream may send before its final answer (100, 102, 103).
constexpr int kMaxInterimResponses = 8;

// What the client does with an upstream's response head, by its status: read it as the final
// answer; skip it as an interim answer (100, 102, 103) and read the next head; or refuse it and
// drop the connection (`why` set): a status below 100, 101 Switching Protocols, or an interim
// answer past the kMaxInterimResponses-th. `interims_before`: interim heads already skipped.
enum class StatusVerdict { kFinal, kInterim, kRefuse };
StatusVerdict ClassifyResponseStatus(int status, int interims_before, std::string* why);

// Applies the server's limits to a fresh request parser.
void ConfigureRequestParser(RequestParser& parser, const HttpServerOptions& opts);
// The read buffer limit the server uses for one connection.
size_t ServerBufferLimit(const HttpServerOptions& opts);

// Where a read stopped with an error.
enum class ReadPhase { kHeader, kBody };
// The status and message the server answers a failed read with; 0 when it answers nothing (the
// client closed or reset the connection before sending anything, or mid-body).
int RequestErrorStatus(const boost::system::error_code& ec, ReadPhase phase, bool nothing_read,
                       bool timed_out, const HttpServerOptions& opts, std::string* message);

// Checks a request head the server has read: 0 when it may be read on and handled, else the
// status to refuse it with (501 for a transfer coding other than `chunked`), with `message`.
int CheckRequestHead(const RequestParser& parser, std::string* message);

// Reads `bytes` as the byte stream of one client connection, as HttpServer does (same parser,
// limits and checks), without a socket: the requests read in order, then either the status the
// server would answer and close with, or 0 when the bytes ran out (mid-request or between
// requests). For the fuzz targets and tests.
struct RequestStream {
  std::vector<HttpRequest> requests;
  int error_status = 0;
  std::string error;
};
RequestStream ParseRequestBytes(std::string_view bytes, const HttpServerOptions& opts);

// Reads `bytes` as an upstream's answer to one request, as HttpClient does (interim 1xx answers
// skipped, 101 refused, the same buffer limit): the final status, headers and body, or `error`
// set. For the fuzz targets and tests.
struct ResponseStream {
  int status = 0;
  Headers headers;
  std::string body;
  bool complete = false;  // the final answer was read to its end
  bool reusable = false;  // the connection could go back to the pool afterwards
  std::string error;      // why the connection would be dropped; "" when fine
};
ResponseStream ParseResponseBytes(std::string_view bytes, size_t body_limit);

}  // namespace gimbal::net::detail
