// The framing rules of http_wire: what the server and the client read, refuse and keep.
#include "net/http_wire.h"

#include <algorithm>
#include <string>
#include <vector>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <gtest/gtest.h>

namespace gimbal::net::detail {
namespace {

std::string Chunked(const std::string& trailer) {
  return "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5\r\nhello\r\n0\r\n" +
         trailer + "\r\n";
}

// Empty lines before a request line are ignored (RFC 9112 §2.2), as some clients send a CRLF after
// a body; Beast's parser alone answers them 400 "bad method". Bare LFs count too; other bytes
// before the method are still refused.
TEST(HttpWire, EmptyLinesBeforeARequestAreIgnored) {
  auto got = ParseRequestBytes(
      "\r\n\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\r\n\r\n"
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
      HttpServerOptions{});
  ASSERT_EQ(got.requests.size(), 2u) << got.error;
  EXPECT_EQ(got.requests[0].body, "abc");
  EXPECT_EQ(got.requests[1].target, "/a");
  EXPECT_EQ(got.error_status, 0);
  EXPECT_EQ(ParseRequestBytes(" \r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n", {}).error_status, 400);
}

TEST(HttpWire, ReadsPipelinedRequestsInOrder) {
  auto got = ParseRequestBytes(
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: "
      "3\r\n\r\nabc",
      HttpServerOptions{});
  ASSERT_EQ(got.requests.size(), 2u);
  EXPECT_EQ(got.requests[0].target, "/a");
  EXPECT_EQ(got.requests[1].method, "POST");
  EXPECT_EQ(got.requests[1].body, "abc");
  EXPECT_EQ(got.error_status, 0);
}

TEST(HttpWire, ATrailerFieldOf64KiBIs431NotAnException) {
  auto got = ParseRequestBytes(Chunked(std::string("X: ") + std::string(65536, 'a') + "\r\n"), {});
  EXPECT_TRUE(got.requests.empty());
  EXPECT_EQ(got.error_status, 431) << got.error;
  EXPECT_NE(got.error.find("trailer"), std::string::npos) << got.error;
}

TEST(HttpWire, TrailerFieldsTogetherCountAgainstTheHeaderLimit) {
  std::string trailer;
  for (int i = 0; i < 40; ++i)
    trailer +=
        std::string("X") + std::to_string(i) + std::string(": ") + std::string(2000, 'b') + "\r\n";
  HttpServerOptions o;
  o.header_limit = 16 << 10;
  EXPECT_EQ(ParseRequestBytes(Chunked(trailer), o).error_status, 431);
  auto fine = ParseRequestBytes(Chunked("X-Sum: 1\r\n"), o);
  ASSERT_EQ(fine.requests.size(), 1u);
  EXPECT_EQ(fine.requests[0].body, "hello");
}

TEST(HttpWire, OnlyTheChunkedCodingIsRead) {
  for (const char* te : {"gzip, chunked", "gzip", "x-custom", "chunked, chunked"}) {
    auto got = ParseRequestBytes(
        std::string("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ") + te + "\r\n\r\n0\r\n\r\n",
        {});
    EXPECT_EQ(got.error_status, 501) << te;
  }
  EXPECT_EQ(ParseRequestBytes("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                              "Content-Length: 3\r\n\r\n0\r\n\r\n",
                              {})
                .error_status,
            400);
}

TEST(HttpWire, ASecondTransferEncodingFieldIsRefusedWhereverItStands) {
  // Chunked first, then (next to it or not) a coding the server does not decode: read as a list
  // ("chunked, gzip") the body is not chunked-framed, so the request is refused (by Beast's
  // parser: 400), never read as chunked.
  for (const char* between : {"", "X-Other: 1\r\n"}) {
    auto got = ParseRequestBytes(std::string("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                                             "chunked\r\n") +
                                     between + "Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n",
                                 {});
    EXPECT_EQ(got.error_status, 400) << between << got.error;
    EXPECT_TRUE(got.requests.empty());
  }
}

TEST(HttpWire, TheRequestKeepsItsFieldsAsSentInOrder) {
  auto got = ParseRequestBytes(
      "PATCH /v1/x?y=1 HTTP/1.1\r\nhost: a\r\nX-Dup: 1\r\nCONTENT-length: 0\r\nX-Dup:  two \r\n"
      "Connection: close\r\n\r\nGET /never HTTP/1.1\r\n\r\n",
      {});
  ASSERT_EQ(got.requests.size(), 1u) << "Connection: close ends the connection's requests";
  const HttpRequest& r = got.requests[0];
  EXPECT_EQ(r.method, "PATCH");
  EXPECT_EQ(r.target, "/v1/x?y=1");
  EXPECT_EQ(r.path(), "/v1/x");
  const std::vector<std::pair<std::string, std::string>> want = {{"host", "a"},
                                                                 {"X-Dup", "1"},
                                                                 {"CONTENT-length", "0"},
                                                                 {"X-Dup", "two"},
                                                                 {"Connection", "close"}};
  EXPECT_EQ(r.headers.items(), want);
  EXPECT_EQ(r.headers.Get("x-dup"), "1");
  EXPECT_TRUE(r.body.empty());
}

TEST(HttpWire, AChunkedBodyIsDecodedAcrossChunks) {
  auto got = ParseRequestBytes(
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;ext=1\r\nabc\r\n0A\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
      "POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nzz",
      {});
  ASSERT_EQ(got.requests.size(), 2u) << got.error;
  EXPECT_EQ(got.requests[0].body, "abc0123456789");
  EXPECT_FALSE(got.requests[0].headers.Has("X-Trailer")) << "trailer fields are not kept";
  EXPECT_EQ(got.requests[0].headers.items().size(), 2u);
  EXPECT_EQ(got.requests[1].body, "zz");
  EXPECT_EQ(got.error_status, 0);
}

// Feeds `parser` the way a socket might: each piece appended to the buffer, then put() over
// what the buffer holds, as the server's read loop does. Returns the first error.
template <class Parser>
boost::system::error_code FeedPieces(Parser& parser, const std::vector<std::string>& pieces) {
  boost::beast::flat_buffer buffer(64 << 10);
  boost::system::error_code ec;
  for (const std::string& piece : pieces) {
    auto space = buffer.prepare(piece.size());
    std::copy(piece.begin(), piece.end(), static_cast<char*>(space.data()));
    buffer.commit(piece.size());
    const size_t used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (ec == boost::beast::http::error::need_more) ec = {};
    if (ec) return ec;
  }
  return ec;
}

// Many small fields, each read ending on a field's end: Beast's header limit sees only the few
// bytes left unparsed, so without a count of its own the head would grow without end.
std::vector<std::string> FieldByField(const std::string& start, int reads) {
  std::vector<std::string> pieces = {start + "H"};
  const std::string piece = ": " + std::string(100, 'v') + "\r\nH";
  for (int i = 0; i < reads; ++i) pieces.push_back(piece);
  return pieces;
}

TEST(HttpWire, AHeadSentFieldByFieldStillMeetsTheHeaderLimit) {
  HttpServerOptions o;
  o.header_limit = 4096;
  HttpRequest r;
  RequestParser parser(r, o);
  const auto ec = FeedPieces(parser, FieldByField("GET / HTTP/1.1\r\n", 1000));  // ~106 kB
  EXPECT_EQ(ec, boost::beast::http::error::header_limit);
  EXPECT_LE(r.headers.items().size(), 4096u / 100);
  std::string message;
  EXPECT_EQ(RequestErrorStatus(ec, ReadPhase::kHeader, false, false, o, &message), 431);

  // Under the limit the same pieces are read.
  HttpRequest fine;
  RequestParser small(fine, o);
  auto pieces = FieldByField("GET / HTTP/1.1\r\n", 30);
  pieces.back() += "ost: x\r\n\r\n";
  EXPECT_FALSE(FeedPieces(small, pieces));
  EXPECT_TRUE(small.is_done());
  EXPECT_EQ(fine.headers.items().size(), 31u);
}

TEST(HttpWire, AnAnswerSentFieldByFieldStillMeetsTheClientsLimit) {
  ResponseParser parser;
  parser.body_limit(1 << 20);
  const auto ec = FeedPieces(parser, FieldByField("HTTP/1.1 200 OK\r\n", 1000));
  EXPECT_EQ(ec, boost::beast::http::error::header_limit);
  EXPECT_LE(parser.headers().items().size(), kClientBufferLimit / 100);
}

TEST(HttpWire, BodyOverTheLimitIs413) {
  HttpServerOptions o;
  o.body_limit = 10;
  auto got = ParseRequestBytes("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world", o);
  EXPECT_EQ(got.error_status, 413);
}

TEST(HttpWire, ClientSkipsInterimAnswersAndRefuses101) {
  auto got = ParseResponseBytes(
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nalice", 1 << 20);
  EXPECT_TRUE(got.complete) << got.error;
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.body, "alice");
  EXPECT_TRUE(got.reusable);
  auto upgrade = ParseResponseBytes(
      "HTTP/1.1 101 Switching Protocols\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
      1 << 20);
  EXPECT_FALSE(upgrade.complete);
  EXPECT_NE(upgrade.error.find("101"), std::string::npos);
  std::string many;
  for (int i = 0; i < 20; ++i) many += "HTTP/1.1 100 Continue\r\n\r\n";
  EXPECT_FALSE(
      ParseResponseBytes(many + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 100).complete);
}

TEST(HttpWire, ClientRefusesAnOversizedTrailerAndExtraBytesMakeAConnectionUnusable) {
  auto got = ParseResponseBytes(
      std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX: ") +
          std::string(70000, 't') + "\r\n\r\n",
      1 << 20);
  EXPECT_FALSE(got.complete);
  EXPECT_FALSE(got.error.empty());
  auto extra =
      ParseResponseBytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK", 100);
  EXPECT_TRUE(extra.complete);
  EXPECT_FALSE(extra.reusable);
}

// Found by fuzz/http_response.cc: three digits that are no HTTP status.
TEST(HttpWire, ClientRefusesAStatusBelow100) {
  auto got = ParseResponseBytes("HTTP/1.1 020 Odd\r\nContent-Length: 0\r\n\r\n", 100);
  EXPECT_FALSE(got.complete);
  EXPECT_NE(got.error.find("malformed status"), std::string::npos) << got.error;
}

}  // namespace
}  // namespace gimbal::net::detail
