// HTTP/1.1 framing rules shared by HttpServer, HttpClient and the fuzz targets (internal to net/
// and fuzz/): how a request or response is parsed, which limits apply, and what the server answers
// a request it will not read.
//
// Limits (`header_limit` bytes for the server, kClientBufferLimit for the client): a message's
// head, and a chunked message's trailer fields together with whatever else sits unread in the
// read buffer, must fit in the read buffer; and all of a message's fields together (head and
// trailers, each counted as "name: value\r\n") may take at most as many bytes, however they
// arrive. The body has its own limit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/optional/optional.hpp>

#include "net/http_server.h"
#include "net/http_types.h"

namespace gimbal::net::detail {

namespace beast_http = boost::beast::http;

// The read buffer of one connection on either side. Bounded: see the limits above.
constexpr size_t kClientBufferLimit = 64 << 10;

// Beast's HTTP/1.1 parser (start line, fields, framing, chunked decoding, limits) writing the
// fields and the body straight to where they are used, with no message of Beast's in between
// (Beast's parser<> builds one, an allocation per field, to be copied). What both parsers below
// share: the fields go to `fields` (trailer fields of a chunked body are read and counted but
// not kept: merged into the head they could add a field such as Authorization that nothing in
// front saw, RFC 9110 §6.5.1), the body is appended to `body`, and all fields together (head and
// trailers, each counted as "name: value\r\n") may take at most `field_limit` bytes, more is
// error::header_limit: Beast's own header limit bounds only what sits unparsed in the buffer, and
// it takes a head field by field, so a head sent a few fields at a time would otherwise grow
// without end. One parser per message (Beast's parsers are not reused).
template <bool kRequest>
class MessageParser : public beast_http::basic_parser<kRequest> {
 public:
  // It refers to where it writes (the derived parser's own members, for ResponseParser).
  MessageParser(const MessageParser&) = delete;
  MessageParser& operator=(const MessageParser&) = delete;

 protected:
  // `reserve_declared`: reserve a declared body length up front (Beast has already held it to
  // the body limit); false where a declared length is not trusted.
  MessageParser(Headers& fields, std::string& body, size_t field_limit, bool reserve_declared)
      : fields_(fields),
        body_(body),
        field_limit_(field_limit),
        reserve_declared_(reserve_declared) {}

  // The start line the parser does not read: never called (bad_version if it were).
  void on_request_impl(beast_http::verb method, std::string_view method_str,
                       std::string_view target, int version,
                       boost::system::error_code& ec) override;
  void on_response_impl(int code, std::string_view reason, int version,
                        boost::system::error_code& ec) override;

 private:
  void on_field_impl(beast_http::field name, std::string_view name_string, std::string_view value,
                     boost::system::error_code& ec) final;
  void on_header_impl(boost::system::error_code& ec) final;
  void on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                         boost::system::error_code& ec) final;
  size_t on_body_impl(std::string_view body, boost::system::error_code& ec) final;
  void on_chunk_header_impl(std::uint64_t size, std::string_view extensions,
                            boost::system::error_code& ec) final;
  size_t on_chunk_body_impl(std::uint64_t remain, std::string_view body,
                            boost::system::error_code& ec) final;
  void on_finish_impl(boost::system::error_code& ec) final;

  Headers& fields_;
  std::string& body_;
  const size_t field_limit_;
  size_t field_bytes_ = 0;
  bool reserve_declared_;
};

// The server's request parser: the request line, fields and body go straight into an
// HttpRequest, under the server's limits (body, head, and all fields together within the header
// limit). `out` must outlive the parser.
class RequestParser final : public MessageParser<true> {
 public:
  // Clears `out`'s method, target, headers and body, keeping their storage, and parses into them
  // under `opts`' limits.
  RequestParser(HttpRequest& out, const HttpServerOptions& opts);

  // The request's method (verb::unknown for one Beast does not name).
  beast_http::verb method() const { return method_; }
  // Its HTTP version: 10 for HTTP/1.0, 11 for HTTP/1.1 (0 before the request line is read).
  int version() const { return version_; }
  const HttpRequest& request() const { return out_; }

 private:
  void on_request_impl(beast_http::verb method, std::string_view method_str,
                       std::string_view target, int version,
                       boost::system::error_code& ec) override;

  HttpRequest& out_;
  beast_http::verb method_ = beast_http::verb::unknown;
  int version_ = 0;
};

// The client's response parser: the status and fields into this object, the body piece by
// piece into piece(), which the reader empties between reads. Nothing is reserved from the
// framing (a declared length is not trusted), so the piece storage is only as large as the
// largest piece read so far: a held stream waiting for its next event keeps a few hundred bytes,
// not a fixed read chunk. Field limit: kClientBufferLimit.
class ResponseParser final : public MessageParser<false> {
 public:
  // `piece_storage`: storage to reuse for the pieces (cleared here).
  explicit ResponseParser(std::string piece_storage = {});

  int status() const { return status_; }
  Headers& headers() { return headers_; }
  std::string& piece() { return piece_; }

 private:
  void on_response_impl(int code, std::string_view reason, int version,
                        boost::system::error_code& ec) override;

  int status_ = 0;
  Headers headers_;
  std::string piece_;
};

// Responses in the 1xx range an upstream may send before its final answer (100, 102, 103).
constexpr int kMaxInterimResponses = 8;

// What the client does with an upstream's response head, by its status: read it as the final
// answer; skip it as an interim answer (100, 102, 103) and read the next head; or refuse it and
// drop the connection (`why` set): a status below 100, 101 Switching Protocols, or an interim
// answer past the kMaxInterimResponses-th. `interims_before`: interim heads already skipped.
enum class StatusVerdict { kFinal, kInterim, kRefuse };
StatusVerdict ClassifyResponseStatus(int status, int interims_before, std::string* why);

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
