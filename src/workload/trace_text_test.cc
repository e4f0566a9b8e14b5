#include "workload/trace_text.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

namespace gimbal::trace {
namespace {

TEST(SplitCsvLine, HandlesQuotesEscapesAndBlanks) {
  auto f = SplitCsvLine(R"(a, "b,c" ,"say ""hi""",,  d  )");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f, (std::vector<std::string>{"a", "b,c", "say \"hi\"", "", "d"}));
  EXPECT_EQ(*SplitCsvLine(""), (std::vector<std::string>{""}));
  EXPECT_EQ(*SplitCsvLine("x,"), (std::vector<std::string>{"x", ""}));
  EXPECT_FALSE(SplitCsvLine("\"open,1").ok());
  EXPECT_FALSE(SplitCsvLine("\"a\"b,1").ok());
}

TEST(ParseNumbers, AcceptOnlyWellFormedValues) {
  EXPECT_EQ(ParseNonNegativeInt("42"), 42);
  EXPECT_EQ(ParseNonNegativeInt(" 7 "), 7);
  EXPECT_EQ(ParseNonNegativeInt("12.0"), 12);
  EXPECT_FALSE(ParseNonNegativeInt("12.5"));
  EXPECT_FALSE(ParseNonNegativeInt("-1"));
  EXPECT_FALSE(ParseNonNegativeInt(""));
  EXPECT_FALSE(ParseNonNegativeInt("1e3"));
  EXPECT_FALSE(ParseNonNegativeInt("99999999999999999999"));
  EXPECT_EQ(ParseDouble("1.5"), 1.5);
  EXPECT_EQ(ParseDouble("+2"), 2.0);
  EXPECT_FALSE(ParseDouble("nan"));
  EXPECT_FALSE(ParseDouble("inf"));
  EXPECT_FALSE(ParseDouble("1.5s"));
}

TEST(ParseUtcTime, ReadsAzureTimestampsWithFullPrecision) {
  auto a = ParseUtcTime("2023-11-16 18:15:46.6805900");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->seconds, 1700158546);  // date -u -d '2023-11-16 18:15:46' +%s
  EXPECT_NEAR(a->fraction, 0.68059, 1e-12);
  auto b = ParseUtcTime("1970-01-01T00:00:00Z");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->seconds, 0);
  auto leap = ParseUtcTime("2024-02-29 00:00:00");
  ASSERT_TRUE(leap);
  EXPECT_EQ(leap->seconds, 1709164800);
  EXPECT_FALSE(ParseUtcTime("2023-02-29 00:00:00"));
  EXPECT_FALSE(ParseUtcTime("2023-11-16 25:00:00"));
  EXPECT_FALSE(ParseUtcTime("2023-11-16 18:15:46."));
  EXPECT_FALSE(ParseUtcTime("2023-11-16 18:15:46.12x"));
  EXPECT_FALSE(ParseUtcTime("2023/11/16 18:15:46"));
  EXPECT_FALSE(ParseUtcTime("abc"));
}

TEST(Printable, EscapesAndCuts) {
  EXPECT_EQ(Printable("ok"), "ok");
  EXPECT_EQ(Printable(std::string("a\0b\xff", 4)), "a\\x00b\\xff");
  EXPECT_EQ(Printable(std::string(50, 'x')), std::string(40, 'x') + "...");
}

TEST(LineReader, EnforcesFileSizeLineLengthAndLineCount) {
  const std::string path =
      testing::TempDir() + "/gimbal_line_reader_" + std::to_string(::getpid()) + ".txt";
  std::ofstream(path, std::ios::binary) << "ab\ncd\nefg\n";
  auto too_big = LineReader::Open(path, {.max_file_bytes = 5});
  ASSERT_FALSE(too_big.ok());
  EXPECT_NE(too_big.status().message().find("10 bytes, more than the 5 bytes"), std::string::npos);

  auto lines = LineReader::Open(path, {.max_line_bytes = 2});
  ASSERT_TRUE(lines.ok());
  std::string line;
  ASSERT_TRUE(lines->Next(line));
  EXPECT_EQ(line, "ab");
  ASSERT_TRUE(lines->Next(line));
  EXPECT_EQ(line, "cd");
  EXPECT_FALSE(lines->Next(line));
  EXPECT_EQ(lines->status().message(),
            path + ":3: line longer than 2 bytes (is this a trace file?)");
  EXPECT_FALSE(lines->Next(line));

  auto count = LineReader::Open(path, {.max_lines = 2});
  ASSERT_TRUE(count.ok());
  EXPECT_TRUE(count->Next(line));
  EXPECT_TRUE(count->Next(line));
  EXPECT_FALSE(count->Next(line));
  EXPECT_NE(count->status().message().find(path + ":3: more than 2 lines"), std::string::npos);

  auto all = LineReader::Open(path);
  ASSERT_TRUE(all.ok());
  int n = 0;
  while (all->Next(line)) ++n;
  EXPECT_EQ(n, 3);
  EXPECT_TRUE(all->status().ok());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace gimbal::trace
