#include "net/http_wire.h"

#include <algorithm>
#include <exception>
#include <limits>
#include <optional>

#include <boost/asio/error.hpp>
#include <boost/beast/http/error.hpp>

#include "net/parser_read.h"

namespace gimbal::net::detail {

namespace http = boost::beast::http;
namespace asio = boost::asio;
using boost::system::error_code;

size_t ServerBufferLimit(const HttpServerOptions& opts) {
  // The head must fit (its own limit says 431 first); trailers share the same room.
  return std::max<size_t>(opts.header_limit, 1024);
}

int RequestErrorStatus(const error_code& ec, ReadPhase phase, bool nothing_read, bool timed_out,
                       const HttpServerOptions& opts, std::string* message) {
  if (ec == http::error::body_limit) {
    *message = "request body exceeds the limit of " + std::to_string(opts.body_limit) + " bytes";
    return 413;
  }
  if (ec == http::error::header_limit ||
      (ec == http::error::buffer_overflow && phase == ReadPhase::kHeader)) {
    *message = "request header too large";
    return 431;
  }
  if (ec == http::error::buffer_overflow) {
    *message = "request trailer fields exceed the limit of " + std::to_string(opts.header_limit) +
               " bytes";
    return 431;
  }
  if (phase == ReadPhase::kHeader) {
    if (nothing_read) return 0;
    if (timed_out) {
      *message = "timed out reading the request header";
      return 408;
    }
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
      return 0;
    }
  } else {
    if (timed_out) {
      *message = "timed out reading the request body";
      return 408;
    }
    if (ec == asio::error::eof || ec == http::error::end_of_stream ||
        ec == http::error::partial_message || ec == asio::error::connection_reset ||
        ec == asio::error::operation_aborted) {
      return 0;
    }
  }
  *message = "malformed HTTP request: " + ec.message();
  return 400;
}

StatusVerdict ClassifyResponseStatus(int status, int interims_before, std::string* why) {
  if (status < 100) {  // three digits, but no HTTP status
    *why = "answered a malformed status " + std::to_string(status);
    return StatusVerdict::kRefuse;
  }
  if (status == 101) {
    *why = "answered 101 Switching Protocols";
    return StatusVerdict::kRefuse;
  }
  if (status / 100 != 1) return StatusVerdict::kFinal;
  if (interims_before + 1 >= kMaxInterimResponses) {
    *why = "sent too many interim 1xx answers";
    return StatusVerdict::kRefuse;
  }
  return StatusVerdict::kInterim;
}

template <bool kRequest>
void MessageParser<kRequest>::on_request_impl(http::verb /*method*/,
                                              std::string_view /*method_str*/,
                                              std::string_view /*target*/, int /*version*/,
                                              error_code& ec) {
  ec = http::error::bad_version;
}

template <bool kRequest>
void MessageParser<kRequest>::on_response_impl(int /*code*/, std::string_view /*reason*/,
                                               int /*version*/, error_code& ec) {
  ec = http::error::bad_version;
}

template <bool kRequest>
void MessageParser<kRequest>::on_field_impl(http::field /*name*/, std::string_view name_string,
                                            std::string_view value, error_code& ec) {
  field_bytes_ += name_string.size() + value.size() + 4;
  if (field_bytes_ > field_limit_) {
    ec = http::error::header_limit;
    return;
  }
  if (!this->is_header_done()) fields_.Add(std::string(name_string), std::string(value));
  ec = {};
}

template <bool kRequest>
void MessageParser<kRequest>::on_header_impl(error_code& ec) {
  ec = {};
}

template <bool kRequest>
void MessageParser<kRequest>::on_body_init_impl(
    const boost::optional<std::uint64_t>& content_length, error_code& ec) {
  if (reserve_declared_ && content_length) body_.reserve(static_cast<size_t>(*content_length));
  ec = {};
}

template <bool kRequest>
size_t MessageParser<kRequest>::on_body_impl(std::string_view body, error_code& ec) {
  body_.append(body.data(), body.size());
  ec = {};
  return body.size();
}

template <bool kRequest>
void MessageParser<kRequest>::on_chunk_header_impl(std::uint64_t /*size*/,
                                                   std::string_view /*extensions*/,
                                                   error_code& ec) {
  ec = {};
}

template <bool kRequest>
size_t MessageParser<kRequest>::on_chunk_body_impl(std::uint64_t /*remain*/, std::string_view body,
                                                   error_code& ec) {
  return on_body_impl(body, ec);
}

template <bool kRequest>
void MessageParser<kRequest>::on_finish_impl(error_code& ec) {
  ec = {};
}

template class MessageParser<true>;
template class MessageParser<false>;

RequestParser::RequestParser(HttpRequest& out, const HttpServerOptions& opts)
    : MessageParser<true>(out.headers, out.body, opts.header_limit, /*reserve_declared=*/true),
      out_(out) {
  body_limit(opts.body_limit);
  header_limit(static_cast<std::uint32_t>(std::min<size_t>(opts.header_limit, 0xFFFFFFFFu)));
  out_.method.clear();
  out_.target.clear();
  out_.headers.Clear();
  out_.body.clear();
}

void RequestParser::on_request_impl(http::verb method, std::string_view method_str,
                                    std::string_view target, int version, error_code& ec) {
  method_ = method;
  version_ = version;
  out_.method.assign(method_str.data(), method_str.size());
  out_.target.assign(target.data(), target.size());
  ec = {};
}

ResponseParser::ResponseParser(std::string piece_storage)
    : MessageParser<false>(headers_, piece_, kClientBufferLimit, /*reserve_declared=*/false),
      piece_(std::move(piece_storage)) {
  piece_.clear();
  headers_.Reserve(8);  // an engine's answer has a handful of fields: one allocation, not three
}

void ResponseParser::on_response_impl(int code, std::string_view /*reason*/, int /*version*/,
                                      error_code& ec) {
  status_ = code;
  ec = {};
}

int CheckRequestHead(const RequestParser& parser, std::string* message) {
  // Beast reads any coding list that ends in `chunked` as chunked, and takes a list without it as
  // no coding at all; the server decodes nothing but `chunked`, so anything else is refused
  // (RFC 9112 §6.1: 501 for a transfer coding it does not understand). A second field after a
  // `chunked` one never gets here: Beast's parser refuses it (400).
  for (const auto& [name, value] : parser.request().headers.items()) {
    if (!EqualsIgnoreCase(name, "Transfer-Encoding")) continue;
    std::string_view v = value;
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    if (!EqualsIgnoreCase(v, "chunked")) {
      *message = "Transfer-Encoding '" + std::string(std::string_view(value).substr(0, 64)) +
                 "' is not supported: only 'chunked' is";
      return 501;
    }
  }
  return 0;
}

namespace {

// Appends `bytes` to `buffer` as a read would: no more than the buffer's limit allows.
size_t Fill(boost::beast::flat_buffer& buffer, std::string_view& bytes) {
  const size_t room = buffer.max_size() - buffer.size();
  const size_t n = std::min({room, bytes.size(), size_t{65536}});
  if (n == 0) return 0;
  auto mb = buffer.prepare(n);
  std::copy_n(bytes.data(), n, static_cast<char*>(mb.data()));
  buffer.commit(n);
  bytes.remove_prefix(n);
  return n;
}

}  // namespace

RequestStream ParseRequestBytes(std::string_view bytes, const HttpServerOptions& opts) {
  RequestStream out;
  boost::beast::flat_buffer buffer(ServerBufferLimit(opts));
  try {
    for (;;) {
      HttpRequest r;
      RequestParser parser(r, opts);
      ReadPhase phase = ReadPhase::kHeader;
      error_code ec;
      bool checked = false;
      for (;;) {
        if (!parser.got_some()) DropBlankLines(buffer);  // as ReadParsed
        if (buffer.size() > 0) {
          const size_t used = parser.put(buffer.data(), ec);
          buffer.consume(used);
          if (ec == http::error::need_more) ec = {};
          if (ec) break;
          if (parser.is_header_done() && !checked) {
            checked = true;
            phase = ReadPhase::kBody;
            std::string message;
            if (int status = CheckRequestHead(parser, &message); status != 0) {
              out.error_status = status;
              out.error = message;
              return out;
            }
          }
          if (parser.is_done()) break;
          if (used > 0) continue;
        }
        // The parser needs more bytes; with none left the server would wait (or, at the
        // connection's end, close without an answer).
        if (bytes.empty()) return out;
        if (Fill(buffer, bytes) == 0) {
          ec = http::error::buffer_overflow;
          break;
        }
      }
      if (ec) {
        std::string message;
        out.error_status = RequestErrorStatus(ec, phase, false, false, opts, &message);
        out.error = message;
        return out;
      }
      const bool keep_alive = parser.keep_alive();
      out.requests.push_back(std::move(r));
      if (!keep_alive) return out;
    }
  } catch (const std::exception& e) {
    // HttpServer catches the same; a parser that throws is a finding for the fuzz targets.
    out.error_status = 400;
    out.error = std::string("parser threw: ") + e.what();
  }
  return out;
}

ResponseStream ParseResponseBytes(std::string_view bytes, size_t body_limit) {
  ResponseStream out;
  boost::beast::flat_buffer buffer(kClientBufferLimit);
  try {
    std::optional<ResponseParser> parser;
    for (int interim = 0;; ++interim) {
      parser.emplace();
      parser->body_limit(body_limit);
      error_code ec;
      for (;;) {
        if (buffer.size() > 0) {
          const size_t used = parser->put(buffer.data(), ec);
          buffer.consume(used);
          if (ec == http::error::need_more) ec = {};
          if (ec) break;
          if (parser->is_done() || (parser->is_header_done() && parser->status() / 100 == 1)) {
            break;
          }
          if (used > 0) continue;
        }
        if (bytes.empty()) {
          if (parser->is_header_done() && parser->status() / 100 != 1) {
            // A body read to the connection's end.
            parser->put_eof(ec);
            if (!ec) break;
          }
          out.error = "response broken off";
          return out;
        }
        if (Fill(buffer, bytes) == 0) {
          ec = http::error::buffer_overflow;
          break;
        }
      }
      if (ec) {
        out.error = "malformed response: " + ec.message();
        return out;
      }
      const int status = parser->status();
      const StatusVerdict verdict = ClassifyResponseStatus(status, interim, &out.error);
      if (verdict == StatusVerdict::kRefuse) return out;
      if (verdict == StatusVerdict::kInterim) continue;
      out.status = status;
      out.headers = std::move(parser->headers());
      out.body = std::move(parser->piece());
      out.complete = true;
      out.reusable = parser->keep_alive() && buffer.size() == 0 && bytes.empty();
      return out;
    }
  } catch (const std::exception& e) {
    out.error = std::string("parser threw: ") + e.what();
  }
  return out;
}

}  // namespace gimbal::net::detail
