#include <unistd.h>

#include <fstream>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "workload/workload.h"

namespace gimbal {
namespace {

std::string Sample(const std::string& name) {
  return std::string(GIMBAL_SOURCE_DIR) + "/examples/traces/" + name;
}

// Writes `text` to a fresh file under the test temp dir and returns its path (the process id in
// the name keeps concurrent runs apart).
std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path =
      testing::TempDir() + "/gimbal_workload_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream out(path, std::ios::binary);
  out << text;
  return path;
}

using Reader = Result<std::vector<Request>> (*)(const std::string&, const WorkloadSpec&,
                                                const std::vector<double>&, Rng&);

Result<std::vector<Request>> Read(Reader reader, const std::string& path,
                                  const WorkloadSpec& spec = {}) {
  Rng rng(1);
  return reader(path, spec, {1, 1, 1}, rng);
}

// The reader fails with InvalidArgument and every piece of `parts` in the message.
void ExpectError(Reader reader, const std::string& path, const std::vector<std::string>& parts) {
  auto r = Read(reader, path);
  ASSERT_FALSE(r.ok()) << path;
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument) << r.status().ToString();
  for (const auto& p : parts) {
    EXPECT_NE(r.status().message().find(p), std::string::npos)
        << "'" << p << "' not in: " << r.status().message();
  }
}

void ExpectSortedAndNumbered(const std::vector<Request>& reqs) {
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(reqs[i].id, static_cast<RequestId>(i));
    EXPECT_GE(reqs[i].prompt_tokens, 1);
    EXPECT_GE(reqs[i].output_tokens, 1);
    if (i > 0) {
      EXPECT_GE(reqs[i].arrival, reqs[i - 1].arrival);
    }
  }
}

TEST(AzureTrace, ReadsTheShippedSample) {
  auto r = Read(&ReadAzureTrace, Sample("azure_sample.csv"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 300u);
  ExpectSortedAndNumbered(*r);
  EXPECT_EQ(r->front().arrival, 0.0);
  EXPECT_EQ(r->front().prompt_tokens, 2013);
  EXPECT_EQ(r->front().output_tokens, 146);
  // 18:15:46.6805900 -> 18:17:03.6068133.
  EXPECT_NEAR(r->back().arrival, 76.9262233, 1e-6);
  EXPECT_EQ(r->back().prompt_tokens, 903);
  EXPECT_EQ(r->back().output_tokens, 165);
  EXPECT_NEAR((*r)[1].arrival, 0.2635953, 1e-6);
}

TEST(AzureTrace, AppliesOffsetScaleAndLimit) {
  WorkloadSpec spec;
  spec.start_offset = 10;
  spec.time_scale = 0.5;
  spec.max_requests = 20;
  auto all = Read(&ReadAzureTrace, Sample("azure_sample.csv"));
  auto r = Read(&ReadAzureTrace, Sample("azure_sample.csv"), spec);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 20u);
  size_t first = 0;
  while ((*all)[first].arrival < 10) ++first;
  for (size_t i = 0; i < 20; ++i) {
    EXPECT_NEAR((*r)[i].arrival, ((*all)[first + i].arrival - 10) * 0.5, 1e-9);
    EXPECT_EQ((*r)[i].prompt_tokens, (*all)[first + i].prompt_tokens);
    EXPECT_EQ((*r)[i].id, static_cast<RequestId>(i));
  }
}

TEST(AzureTrace, OffsetPastTheEndIsAnError) {
  WorkloadSpec spec;
  spec.start_offset = 1000;
  Rng rng(1);
  auto r = ReadAzureTrace(Sample("azure_sample.csv"), spec, {1}, rng);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("start_offset"), std::string::npos);
}

TEST(AzureTrace, SortsUnorderedRowsStablyAndClampsZeroLengths) {
  const auto path = WriteFile("unordered.csv",
                              "TIMESTAMP,ContextTokens,GeneratedTokens\r\n"
                              "2024-05-10 00:00:02.5,10,0\r\n"
                              "2024-05-10 00:00:01,20,5\r\n"
                              "\r\n"
                              "2024-05-10 00:00:02.5,0,7\r\n");
  auto r = Read(&ReadAzureTrace, path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].prompt_tokens, 20);
  EXPECT_EQ((*r)[0].arrival, 0.0);
  EXPECT_EQ((*r)[1].prompt_tokens, 10);  // stable among equal times
  EXPECT_EQ((*r)[1].output_tokens, 1);   // clamped
  EXPECT_EQ((*r)[2].prompt_tokens, 1);   // clamped
  EXPECT_DOUBLE_EQ((*r)[2].arrival, 1.5);
}

TEST(AzureTrace, MalformedInputNamesFileLineAndColumn) {
  const std::string header = "TIMESTAMP,ContextTokens,GeneratedTokens\n";
  const std::string good = "2023-11-16 18:15:46.6805900,10,20\n";
  auto bad_number =
      WriteFile("az_bad_number.csv", header + good + good + "2023-11-16 18:15:47,abc,3\n");
  ExpectError(&ReadAzureTrace, bad_number,
              {bad_number + ":4:", "column 'ContextTokens'", "expected a non-negative integer",
               "got 'abc'"});
  auto negative = WriteFile("az_negative.csv", header + "2023-11-16 18:15:47,5,-3\n");
  ExpectError(&ReadAzureTrace, negative, {negative + ":2:", "'GeneratedTokens'", "got '-3'"});
  auto bad_time = WriteFile("az_bad_time.csv", header + "2023-13-16 18:15:47,5,3\n");
  ExpectError(&ReadAzureTrace, bad_time, {bad_time + ":2:", "column 'TIMESTAMP'", "2023-13-16"});
  auto missing = WriteFile("az_missing.csv", header + good + "2023-11-16 18:15:47,5\n");
  ExpectError(&ReadAzureTrace, missing, {missing + ":3:", "missing column 'GeneratedTokens'"});
  auto extra = WriteFile("az_extra.csv", header + "2023-11-16 18:15:47,5,3,9\n");
  ExpectError(&ReadAzureTrace, extra, {extra + ":2:", "expected 3 columns"});
  auto bad_header = WriteFile("az_bad_header.csv", "time,ContextTokens,GeneratedTokens\n" + good);
  ExpectError(&ReadAzureTrace, bad_header,
              {bad_header + ":1:", "bad header", "missing column 'TIMESTAMP'"});
  auto quote = WriteFile("az_quote.csv", header + "\"2023-11-16 18:15:47,5,3\n");
  ExpectError(&ReadAzureTrace, quote, {quote + ":2:", "unterminated quoted field"});
  auto empty = WriteFile("az_empty.csv", "");
  ExpectError(&ReadAzureTrace, empty, {empty, "missing header"});
  auto header_only = WriteFile("az_header_only.csv", header);
  ExpectError(&ReadAzureTrace, header_only, {header_only, "no requests"});
}

TEST(AzureTrace, QuotedFieldsAndReorderedColumnsAreRead) {
  auto path = WriteFile("az_quoted.csv",
                        "GeneratedTokens,\"TIMESTAMP\",ContextTokens,Note\n"
                        "7,\"2023-11-16 18:15:46\",12,\"a, \"\"quoted\"\" note\"\n");
  auto r = Read(&ReadAzureTrace, path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ(r->front().prompt_tokens, 12);
  EXPECT_EQ(r->front().output_tokens, 7);
}

TEST(Traces, MissingFileIsNotFound) {
  for (Reader reader : {&ReadAzureTrace, &ReadMooncakeTrace, &ReadBurstGptTrace}) {
    auto r = Read(reader, "/nonexistent/trace.file");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
    EXPECT_NE(r.status().message().find("/nonexistent/trace.file"), std::string::npos);
  }
}

TEST(Traces, RandomBytesGiveErrorsNotCrashes) {
  Rng rng(99);
  const char* specials = "\n\r,\"{}[]:0123456789.- ";
  const std::vector<std::string> prefixes = {
      "", "TIMESTAMP,ContextTokens,GeneratedTokens\n",
      "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"};
  for (int trial = 0; trial < 100; ++trial) {
    std::string bytes;
    const auto n = rng.UniformInt(400);
    for (uint64_t i = 0; i < n; ++i) {
      // Mix raw bytes with the characters the parsers care about.
      bytes.push_back(rng.Uniform() < 0.5 ? static_cast<char>(rng.UniformInt(256))
                                          : specials[rng.UniformInt(22)]);
    }
    // Also behind a valid header, so the row parsers see the garbage.
    for (const std::string& prefix : prefixes) {
      const auto path = WriteFile("random.bin", prefix + bytes);
      for (Reader reader : {&ReadAzureTrace, &ReadMooncakeTrace, &ReadBurstGptTrace}) {
        auto r = Read(reader, path);
        if (!r.ok()) {
          EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
          EXPECT_NE(r.status().message().find(path), std::string::npos);
        }
      }
    }
  }
}

TEST(MooncakeTrace, ReadsTheShippedSample) {
  const std::vector<double> weights = {1, 1, 1};
  Rng rng(1);
  auto r = ReadMooncakeTrace(Sample("mooncake_sample.jsonl"), {}, weights, rng);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 300u);
  ExpectSortedAndNumbered(*r);
  const Request& first = r->front();
  EXPECT_EQ(first.arrival, 0.0);
  EXPECT_EQ(first.prompt_tokens, 1167);
  EXPECT_EQ(first.output_tokens, 848);
  EXPECT_EQ(first.prefix_hashes, (std::vector<uint64_t>{0, 1, 2}));
  EXPECT_EQ(first.affinity_key, 1u);
  EXPECT_DOUBLE_EQ(r->back().arrival, 103.5);
  EXPECT_EQ(r->back().prompt_tokens, 11262);
  EXPECT_EQ(r->back().prefix_hashes.size(), 22u);
  EXPECT_DOUBLE_EQ((*r)[1].arrival, 0.369);
  // Requests that share their first block share class and affinity.
  std::map<uint64_t, int32_t> class_of;
  for (const Request& q : *r) {
    ASSERT_FALSE(q.prefix_hashes.empty());
    EXPECT_EQ(q.affinity_key, q.prefix_hashes.front() + 1);
    EXPECT_EQ(q.traffic_class, MooncakeClassForHash(q.prefix_hashes.front(), weights));
    auto [it, inserted] = class_of.emplace(q.prefix_hashes.front(), q.traffic_class);
    EXPECT_EQ(it->second, q.traffic_class);
  }
}

TEST(MooncakeTrace, ClassForHashFollowsWeightsOverManyPrefixes) {
  const std::vector<double> weights = {0.6, 0, 0.3, 0.1};
  std::vector<double> counts(4, 0);
  for (uint64_t h = 0; h < 100000; ++h)
    counts.at(static_cast<size_t>(MooncakeClassForHash(h, weights)))++;
  for (size_t c = 0; c < 4; ++c) EXPECT_NEAR(counts[c] / 100000, weights[c], 0.01) << c;
  EXPECT_EQ(counts[1], 0);
}

TEST(MooncakeTrace, MissingHashIdsDrawTheClassAndLeaveNoAffinity) {
  auto path = WriteFile("mc_nohash.jsonl",
                        "{\"timestamp\": 1500, \"input_length\": 10, \"output_length\": 2}\n"
                        "{\"timestamp\": 1000.5, \"input_length\": 0, \"output_length\": 3.0, "
                        "\"hash_ids\": []}\n");
  auto r = Read(&ReadMooncakeTrace, path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].prompt_tokens, 1);
  EXPECT_EQ((*r)[0].output_tokens, 3);
  EXPECT_EQ((*r)[0].affinity_key, 0u);
  EXPECT_DOUBLE_EQ((*r)[1].arrival, 0.4995);
}

TEST(MooncakeTrace, MalformedInputNamesFileLineAndField) {
  const std::string good =
      "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 2, \"hash_ids\": [1]}\n";
  auto truncated = WriteFile("mc_truncated.jsonl", good + "{\"timestamp\": 10, \"input_len");
  ExpectError(&ReadMooncakeTrace, truncated, {truncated + ":2:", "malformed JSON"});
  auto bad_number = WriteFile(
      "mc_bad_number.jsonl",
      good + good + "{\"timestamp\": 10, \"input_length\": \"abc\", \"output_length\": 2}\n");
  ExpectError(
      &ReadMooncakeTrace, bad_number,
      {bad_number + ":3:", "field 'input_length'", "expected a non-negative integer", "\"abc\""});
  auto missing = WriteFile("mc_missing.jsonl", "{\"timestamp\": 10, \"input_length\": 4}\n");
  ExpectError(&ReadMooncakeTrace, missing, {missing + ":1:", "missing field 'output_length'"});
  auto negative = WriteFile("mc_negative.jsonl",
                            "{\"timestamp\": -1, \"input_length\": 4, \"output_length\": 1}\n");
  ExpectError(&ReadMooncakeTrace, negative, {negative + ":1:", "field 'timestamp'"});
  auto hashes = WriteFile(
      "mc_hashes.jsonl",
      "{\"timestamp\": 1, \"input_length\": 4, \"output_length\": 1, \"hash_ids\": [1, -2]}\n");
  ExpectError(&ReadMooncakeTrace, hashes, {hashes + ":1:", "field 'hash_ids'", "got '-2'"});
  auto not_object = WriteFile("mc_array.jsonl", good + "[1, 2, 3]\n");
  ExpectError(&ReadMooncakeTrace, not_object, {not_object + ":2:", "expected a JSON object"});
  auto empty = WriteFile("mc_empty.jsonl", "\n\n");
  ExpectError(&ReadMooncakeTrace, empty, {empty, "no requests"});
}

TEST(BurstGptTrace, ReadsTheShippedSampleSkippingFailedRequests) {
  auto r = Read(&ReadBurstGptTrace, Sample("burstgpt_sample.csv"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 286u);  // 300 rows, 14 with 0 response tokens
  ExpectSortedAndNumbered(*r);
  EXPECT_EQ(r->front().arrival, 0.0);
  EXPECT_EQ(r->front().prompt_tokens, 217);
  EXPECT_EQ(r->front().output_tokens, 396);
  EXPECT_DOUBLE_EQ(r->back().arrival, 72.0);
  EXPECT_EQ(r->back().prompt_tokens, 609);
  EXPECT_EQ(r->back().output_tokens, 114);
  std::set<int32_t> classes;
  for (const Request& q : *r) classes.insert(q.traffic_class);
  EXPECT_EQ(classes.size(), 3u);
}

TEST(BurstGptTrace, MalformedInputNamesFileLineAndColumn) {
  const std::string header =
      "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n";
  auto bad = WriteFile("bg_bad.csv", header + "5,ChatGPT,12,x1,13,API log\n");
  ExpectError(
      &ReadBurstGptTrace, bad,
      {bad + ":2:", "column 'Response tokens'", "expected a non-negative integer", "got 'x1'"});
  auto bad_time = WriteFile("bg_bad_time.csv",
                            header + "5,ChatGPT,12,1,13,API log\nsoon,GPT-4,1,1,2,API log\n");
  ExpectError(&ReadBurstGptTrace, bad_time, {bad_time + ":3:", "column 'Timestamp'", "got 'soon'"});
  auto bad_header = WriteFile("bg_header.csv", "Timestamp,Model,Request,Response\n5,a,1,1\n");
  ExpectError(&ReadBurstGptTrace, bad_header,
              {bad_header + ":1:", "bad header", "missing column 'Request tokens'"});
  auto all_failed = WriteFile("bg_failed.csv", header + "5,ChatGPT,12,0,12,API log\n");
  ExpectError(&ReadBurstGptTrace, all_failed, {all_failed, "0 response tokens"});
}

TEST(Traces, NonRegularFilesAreRefusedAtOnce) {
  for (Reader reader : {&ReadAzureTrace, &ReadMooncakeTrace, &ReadBurstGptTrace}) {
    ExpectError(reader, "/dev/zero", {"/dev/zero: is not a regular file", "expected a trace file"});
    ExpectError(reader, testing::TempDir(), {"is a directory"});
  }
}

TEST(Traces, OverlongLineNamesFileAndLine) {
  const std::string azure_header = "TIMESTAMP,ContextTokens,GeneratedTokens\n";
  const auto no_newline =
      WriteFile("long.csv", azure_header + std::string(kMaxTraceLineBytes + 10, '7'));
  ExpectError(&ReadAzureTrace, no_newline, {no_newline + ":2: line longer than 1048576 bytes"});
  const auto jsonl = WriteFile("long.jsonl", std::string(kMaxTraceLineBytes + 1, ' ') + "\n");
  ExpectError(&ReadMooncakeTrace, jsonl, {jsonl + ":1: line longer than"});
  // A line of exactly the limit is read.
  const std::string row = R"({"timestamp": 0, "input_length": 1, "output_length": 1})";
  const auto at_limit =
      WriteFile("limit.jsonl", row + std::string(kMaxTraceLineBytes - row.size(), ' ') + "\n");
  EXPECT_TRUE(Read(&ReadMooncakeTrace, at_limit).ok());
}

TEST(Traces, TokenCountsAndSpansAreBounded) {
  const auto azure = WriteFile("big_tokens.csv",
                               "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                               "2023-11-16 18:15:46.6805900,9223372036854775807,20\n");
  ExpectError(&ReadAzureTrace, azure, {azure + ":2:", "column 'ContextTokens'", "<= 1073741824"});
  const auto moon =
      WriteFile("big_tokens.jsonl", R"({"timestamp": 0, "input_length": 5, "output_length": 1e15})"
                                    "\n");
  ExpectError(&ReadMooncakeTrace, moon, {moon + ":1:", "field 'output_length'", "<= 1073741824"});
  const std::string header =
      "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n";
  const auto years = WriteFile("years.csv", header +
                                                "0,ChatGPT,1,1,2,API log\n"
                                                "1e300,ChatGPT,1,1,2,API log\n");
  ExpectError(&ReadBurstGptTrace, years, {years + ": the requests span", "366 days"});
  WorkloadSpec first;
  first.max_requests = 1;  // the far request is cut: fine
  EXPECT_TRUE(Read(&ReadBurstGptTrace, years, first).ok());
}

}  // namespace
}  // namespace gimbal
