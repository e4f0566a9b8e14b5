// Reading an HTTP message from a socket into a Beast parser, for HttpServer and HttpClient
// (internal to net/).
//
// ReadParsed does what Beast's http::async_read_some, async_read_header and async_read do, with the
// same parser calls, the same read sizes (beast::read_size, at most 64 KiB at a time) and the same
// errors (buffer_overflow when the buffer's limit is reached, end_of_stream when the peer closes
// before a byte of the message, put_eof's verdict when it closes mid-message), but as plain
// coroutines: one socket operation per read, where Beast's composed operations stack three
// operation objects, their executor work guards and an extra coroutine frame per read
// (docs/router.md, "Throughput").
#pragma once

#include <cstddef>
#include <stdexcept>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include "net/socket_deadline.h"

namespace gimbal::net::detail {

// How far a read goes: until the parser takes one structured element (a head, a piece of body, a
// chunk), until it has the whole head, or the whole message.
enum class ReadGoal { kSome, kHeader, kMessage };

// Drops the CR and LF bytes at the front of `buffer`: the empty lines a server ignores before a
// request line (RFC 9112 §2.2; some clients send a CRLF after a body). Beast's parser refuses
// them ("bad method"). A connection that sends nothing else stays bounded by its read deadline.
inline void DropBlankLines(boost::beast::flat_buffer& buffer) {
  const auto* p = static_cast<const char*>(buffer.data().data());
  size_t n = 0;
  while (n < buffer.size() && (p[n] == '\r' || p[n] == '\n')) ++n;
  buffer.consume(n);
}

// Parses what `buffer` holds and reads from `sock` until `goal` or an error (`ec`). kSome is
// http::async_read_some, kHeader http::async_read_header, kMessage http::async_read. A request's
// leading empty lines are dropped (DropBlankLines).
//
// `deadline`, the read's SocketDeadline: once it has fired, no further read starts (ec =
// timed_out). Its cancel() stops a read that is waiting, but a read whose data had already
// arrived has completed when the timer runs, and the reads after it would go on without a
// deadline: a client that kept a large body flowing just past the deadline held its connection
// (and up to the body limit) for as long as it kept sending.
template <bool kRequest>
boost::asio::awaitable<void> ReadParsed(boost::asio::ip::tcp::socket& sock,
                                        boost::beast::flat_buffer& buffer,
                                        boost::beast::http::basic_parser<kRequest>& parser,
                                        ReadGoal goal, const SocketDeadline& deadline,
                                        boost::system::error_code& ec) {
  namespace http = boost::beast::http;
  ec = {};
  const auto reached = [&] {
    return goal == ReadGoal::kHeader ? parser.is_header_done() : parser.is_done();
  };
  if (goal != ReadGoal::kSome && reached()) co_return;
  bool parse = buffer.size() != 0;
  for (;;) {
    if constexpr (kRequest) {
      if (parse && !parser.got_some()) {
        DropBlankLines(buffer);
        parse = buffer.size() != 0;
      }
    }
    if (parse) {
      const size_t used = parser.put(buffer.data(), ec);
      buffer.consume(used);
      if (ec != http::error::need_more) {
        // An element taken (or an error): one read_some ends here.
        if (ec || goal == ReadGoal::kSome || reached()) co_return;
        parse = buffer.size() != 0;
        continue;
      }
      ec = {};
    }
    parse = true;
    if (deadline.fired()) {
      ec = boost::asio::error::timed_out;
      co_return;
    }
    const size_t size = boost::beast::read_size(buffer, 65536);
    if (size == 0) {
      ec = http::error::buffer_overflow;
      co_return;
    }
    boost::asio::mutable_buffer space;
    try {
      space = buffer.prepare(size);
    } catch (const std::length_error&) {
      ec = http::error::buffer_overflow;
      co_return;
    }
    const size_t n = co_await sock.async_read_some(
        space, boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    buffer.commit(n);
    if (ec == boost::asio::error::eof) {
      if (parser.got_some()) {  // the peer's end may complete the message (a body read to EOF)
        ec = {};
        parser.put_eof(ec);  // done, or partial_message
      } else {
        ec = http::error::end_of_stream;
      }
      co_return;
    }
    if (ec) co_return;
  }
}

}  // namespace gimbal::net::detail
