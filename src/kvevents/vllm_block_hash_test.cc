// vLLM's block hash against vectors vLLM's own code produced (testdata/vllm_block_hashes.json,
// written by tests/kvevents/vllm_hash_vectors.py): root digests, block digests and event hashes for
// all four algorithms, and event batches vLLM's encoder wrote, decoded by DecodeBatch.
#include "kvevents/vllm_block_hash.h"

#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kvevents/events.h"

namespace gimbal::kvevents {
namespace {

using nlohmann::json;

const json& Vectors() {
  static const json doc = [] {
    const std::string path =
        std::string(GIMBAL_SOURCE_DIR) + "/src/kvevents/testdata/vllm_block_hashes.json";
    std::ifstream in(path);
    if (!in) return json();
    return json::parse(in, nullptr, /*allow_exceptions=*/false);
  }();
  return doc;
}

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    out.push_back(kDigits[static_cast<uint8_t>(c) >> 4]);
    out.push_back(kDigits[static_cast<uint8_t>(c) & 0xf]);
  }
  return out;
}

std::string Unhex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

std::vector<int64_t> Tokens(const json& c) {
  std::vector<int64_t> tokens;
  if (c.contains("token_ids")) return c["token_ids"].get<std::vector<int64_t>>();
  for (const json& run : c["token_ids_rle"]) {
    tokens.insert(tokens.end(), run[1].get<size_t>(), run[0].get<int64_t>());
  }
  return tokens;
}

VllmHashConfig Config(const json& c) {
  VllmHashConfig config;
  config.algo = c["algo"].get<std::string>();
  if (!c["python_hash_seed"].is_null()) config.python_hash_seed = c["python_hash_seed"];
  return config;
}

TEST(VllmBlockHashTest, MatchesEveryVectorFromVllm) {
  const json& doc = Vectors();
  ASSERT_TRUE(doc.is_object()) << "testdata/vllm_block_hashes.json missing or unreadable";
  std::map<std::string, int> cases_per_algo;
  int big_blocks = 0;
  for (size_t i = 0; i < doc["cases"].size(); ++i) {
    const json& c = doc["cases"][i];
    SCOPED_TRACE("case " + std::to_string(i) + ": " + c["algo"].get<std::string>() + ", seed " +
                 c["python_hash_seed"].dump() + ", block " + c["block_size"].dump());
    auto hasher = VllmBlockHasher::Create(Config(c));
    ASSERT_TRUE(hasher.ok()) << hasher.status().ToString();
    EXPECT_EQ(Hex(hasher->root_digest()), c["none_hash"].get<std::string>());

    const std::vector<int64_t> tokens = Tokens(c);
    const auto block_size = c["block_size"].get<int64_t>();
    std::vector<std::string> digests;
    for (const std::string& d : hasher->Digests(tokens, block_size)) digests.push_back(Hex(d));
    EXPECT_EQ(digests, c["digests"].get<std::vector<std::string>>());
    EXPECT_EQ(hasher->Hashes(tokens, block_size), c["event_hashes"].get<std::vector<uint64_t>>());

    ++cases_per_algo[c["algo"].get<std::string>()];
    if (block_size >= 20000) ++big_blocks;
  }
  // Every algorithm is covered, with blocks past pickle's 64 KiB frame.
  EXPECT_EQ(cases_per_algo.size(), 4U);
  for (const auto& [algo, n] : cases_per_algo) EXPECT_GE(n, 10) << algo;
  EXPECT_EQ(big_blocks, 8);
}

TEST(VllmBlockHashTest, VllmsEncodedEventsDecodeToOurHashes) {
  const json& doc = Vectors();
  ASSERT_TRUE(doc.is_object());
  ASSERT_EQ(doc["event_payloads"].size(), 4U);
  for (const json& p : doc["event_payloads"]) {
    const json& c = doc["cases"][p["case"].get<size_t>()];
    SCOPED_TRACE(c["algo"].get<std::string>());
    auto hasher = VllmBlockHasher::Create(Config(c));
    ASSERT_TRUE(hasher.ok());
    const std::vector<int64_t> tokens = Tokens(c);
    const std::vector<uint64_t> ours = hasher->Hashes(tokens, c["block_size"]);
    ASSERT_EQ(ours.size(), 3U);
    // vLLM's batch: the first block as parent, the other two stored.
    for (const char* form : {"int_form", "bytes_form"}) {
      auto batch = DecodeBatch(Unhex(p[form].get<std::string>()));
      ASSERT_TRUE(batch.ok()) << form << ": " << batch.status().ToString();
      ASSERT_EQ(batch->events.size(), 1U);
      const auto* stored = std::get_if<BlockStored>(&batch->events[0]);
      ASSERT_NE(stored, nullptr);
      EXPECT_EQ(stored->parent_block_hash, ours[0]) << form;
      EXPECT_EQ(stored->block_hashes, std::vector<uint64_t>(ours.begin() + 1, ours.end())) << form;
      EXPECT_EQ(stored->block_size, 16);
    }
  }
}

TEST(VllmBlockHashTest, HashesSurviveOurEncodeAndDecode) {
  auto hasher = VllmBlockHasher::Create({"sha256", "42"});
  ASSERT_TRUE(hasher.ok());
  std::vector<int64_t> tokens(size_t{16} * 4 + 3);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int64_t>(i * 7919 % 151936);
  const std::vector<uint64_t> hashes = hasher->Hashes(tokens, 16);
  ASSERT_EQ(hashes.size(), 4U);

  BlockStored stored;
  stored.parent_block_hash = hashes[0];
  stored.block_hashes.assign(hashes.begin() + 1, hashes.end());
  stored.token_ids.assign(tokens.begin() + 16, tokens.begin() + 64);
  stored.block_size = 16;
  stored.medium = "GPU";
  EventBatch batch{.ts = 2.5, .events = {stored}, .data_parallel_rank = 1};
  auto decoded = DecodeBatch(EncodeBatch(batch));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, batch);
}

TEST(VllmBlockHashTest, ChainsOverThePrefixOnly) {
  auto hasher = VllmBlockHasher::Create({"sha256", std::nullopt});
  ASSERT_TRUE(hasher.ok());
  std::vector<int64_t> tokens(40);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int64_t>(i + 1000);
  const std::vector<uint64_t> all = hasher->Hashes(tokens, 8);
  ASSERT_EQ(all.size(), 5U);
  // A shorter prompt (with a partial block) gives the leading hashes of the longer one.
  const std::vector<uint64_t> head = hasher->Hashes(std::span(tokens).first(20), 8);
  EXPECT_EQ(head, std::vector<uint64_t>(all.begin(), all.begin() + 2));
  // A change in block 2 changes it and every block after it, not the ones before.
  tokens[17] += 1;
  const std::vector<uint64_t> changed = hasher->Hashes(tokens, 8);
  EXPECT_EQ(changed[0], all[0]);
  EXPECT_EQ(changed[1], all[1]);
  for (size_t i = 2; i < all.size(); ++i) EXPECT_NE(changed[i], all[i]) << i;
  // Another seed moves every hash.
  auto other = VllmBlockHasher::Create({"sha256", "0"});
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->Hashes(tokens, 8)[0], changed[0]);
}

TEST(VllmBlockHashTest, NoHashesWithoutAFullBlock) {
  auto hasher = VllmBlockHasher::Create({"sha256_cbor", "1"});
  ASSERT_TRUE(hasher.ok());
  const std::vector<int64_t> tokens = {1, 2, 3};
  EXPECT_TRUE(hasher->Hashes(tokens, 4).empty());
  EXPECT_TRUE(hasher->Hashes(tokens, 0).empty());
  EXPECT_TRUE(hasher->Hashes(tokens, -16).empty());
  EXPECT_TRUE(hasher->Hashes({}, 16).empty());
  EXPECT_EQ(hasher->Hashes(tokens, 3).size(), 1U);
}

TEST(VllmBlockHashTest, RejectsWhatCannotMatchVllm) {
  auto unknown = VllmBlockHasher::Create({"md5", "0"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("md5"), std::string::npos);

  for (const char* algo : {"xxhash", "xxhash_cbor"}) {
    auto unseeded = VllmBlockHasher::Create({algo, std::nullopt});
    ASSERT_FALSE(unseeded.ok()) << algo;
    EXPECT_NE(unseeded.status().message().find("PYTHONHASHSEED"), std::string::npos);
    EXPECT_TRUE(VllmBlockHasher::Create({algo, "5"}).ok()) << algo;
  }
  EXPECT_FALSE(VllmBlockHasher::Create({"sha256", std::string("\xff\xfe")}).ok());
  EXPECT_FALSE(VllmBlockHasher::Create({"sha256", std::string("\xed\xa0\x80")}).ok());  // surrogate
  EXPECT_FALSE(VllmBlockHasher::Create({"sha256", std::string("\xc3")}).ok());          // cut short
  EXPECT_FALSE(VllmBlockHasher::Create({"sha256", std::string(256, '1')}).ok());
  EXPECT_TRUE(VllmBlockHasher::Create({"sha256", std::string(255, '1')}).ok());
  EXPECT_TRUE(VllmBlockHasher::Create({"sha256", std::string("gr\xc3\xbc\xc3\x9f")}).ok());
  EXPECT_TRUE(VllmBlockHasher::Create({"sha256", std::string()}).ok());  // PYTHONHASHSEED=""
}

TEST(VllmBlockHashTest, SameHashesFromManyThreads) {
  auto hasher = VllmBlockHasher::Create({"xxhash", "9"});
  ASSERT_TRUE(hasher.ok());
  std::vector<int64_t> tokens(size_t{16} * 20);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int64_t>(i * i % 100003);
  const std::vector<uint64_t> expected = hasher->Hashes(tokens, 16);
  std::vector<std::vector<uint64_t>> got(4);
  std::vector<std::thread> threads;
  threads.reserve(got.size());
  for (auto& g : got) {
    threads.emplace_back([&] {
      for (int k = 0; k < 50; ++k) g = hasher->Hashes(tokens, 16);
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& g : got) EXPECT_EQ(g, expected);
}

}  // namespace
}  // namespace gimbal::kvevents
