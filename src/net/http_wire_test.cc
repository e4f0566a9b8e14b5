// The framing rules of http_wire: what the server and the client read, refuse and keep.
#include "net/http_wire.h"

#include <gtest/gtest.h>

namespace gimbal::net::detail {
namespace {

std::string Chunked(const std::string& trailer) {
  return "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5\r\nhello\r\n0\r\n" +
         trailer + "\r\n";
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
  EXPECT_EQ(got.requests[1].body, "zz");
  EXPECT_EQ(got.error_status, 0);
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
