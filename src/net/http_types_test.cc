#include "net/http_types.h"

#include <gtest/gtest.h>

namespace gimbal::net {
namespace {

TEST(Url, ParsesHostPortAndPath) {
  Url u;
  std::string err;
  ASSERT_TRUE(Url::Parse("http://127.0.0.1:8001/", &u, &err)) << err;
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 8001);
  EXPECT_EQ(u.base_path, "");
  ASSERT_TRUE(Url::Parse("http://localhost/prefix/", &u, &err));
  EXPECT_EQ(u.port, 80);
  EXPECT_EQ(u.base_path, "/prefix");
  EXPECT_FALSE(Url::Parse("https://x", &u, &err));
  EXPECT_FALSE(Url::Parse("http://x:99999", &u, &err));
  EXPECT_FALSE(Url::Parse("http://:80", &u, &err));
}

TEST(Headers, CaseInsensitive) {
  Headers h;
  h.Add("Content-Type", "a");
  h.Set("content-type", "b");
  EXPECT_EQ(h.Get("CONTENT-TYPE"), "b");
  EXPECT_EQ(h.items().size(), 1u);
  h.Remove("Content-type");
  EXPECT_FALSE(h.Has("content-type"));
}

}  // namespace
}  // namespace gimbal::net
