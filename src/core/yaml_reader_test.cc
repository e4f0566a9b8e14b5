#include "core/yaml_reader.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace gimbal {
namespace {

TEST(YamlReaderTest, ReadsTypedValues) {
  auto r = YamlReader::FromString("a: 1.5\nb: 3\nc: true\nd: hi\ne: [1, 2]\n", "t.yaml");
  ASSERT_TRUE(r.ok());
  EXPECT_DOUBLE_EQ(r->Double("a", std::nullopt), 1.5);
  EXPECT_EQ(r->Int("b", std::nullopt), 3);
  EXPECT_TRUE(r->Bool("c", std::nullopt));
  EXPECT_EQ(r->String("d", std::nullopt), "hi");
  EXPECT_EQ(r->Doubles("e"), (std::vector<double>{1, 2}));
  EXPECT_EQ(r->Int("missing", 9), 9);
  EXPECT_TRUE(r->ok());
}

TEST(YamlReaderTest, ErrorNamesFileLineKeyAndExpectation) {
  auto r = YamlReader::FromString("workload:\n  rate: fast\n", "s.yaml");
  ASSERT_TRUE(r.ok());
  r->Child("workload").Double("rate", std::nullopt, 0);
  ASSERT_FALSE(r->ok());
  EXPECT_EQ(r->status().message(),
            "s.yaml:2:9: 'workload.rate': expected a number >= 0, got 'fast'");
}

TEST(YamlReaderTest, FirstErrorWinsAndMissingRequiredIsReported) {
  auto r = YamlReader::FromString("x: 1\n", "m.yaml");
  r->Int("y", std::nullopt);
  r->Int("x", std::nullopt, 5);
  EXPECT_NE(r->status().message().find("'y': required integer is missing"), std::string::npos);
}

TEST(YamlReaderTest, RangeAndEnumChecks) {
  auto r = YamlReader::FromString("n: 0\np: lifo\n", "r.yaml");
  r->Int("n", std::nullopt, 1);
  EXPECT_NE(r->status().message().find("expected an integer >= 1, got '0'"), std::string::npos);
  auto r2 = YamlReader::FromString("p: lifo\n", "r.yaml");
  r2->Enum("p", std::nullopt, {"fcfs", "gimbal"});
  EXPECT_NE(r2->status().message().find("'lifo' is not one of: fcfs, gimbal"), std::string::npos);
}

TEST(YamlReaderTest, UnknownKeysAreRejected) {
  auto r = YamlReader::FromString("rate: 1\nrat: 2\n", "k.yaml");
  r->CheckKeys({"rate"});
  ASSERT_FALSE(r->ok());
  EXPECT_NE(r->status().message().find("'rat': unknown key"), std::string::npos);
}

TEST(YamlReaderTest, MalformedYamlGivesLine) {
  auto r = YamlReader::FromString("a: [1, 2\nb: 3\n", "bad.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("bad.yaml:"), std::string::npos);
  EXPECT_NE(r.status().message().find("malformed YAML"), std::string::npos);
}

// yaml-cpp 0.7 returns a document without reading on at a ',' where a node should start, and
// its LoadAll looped, adding null documents until memory ran out (24 GB for a 1.2 KB topology
// file, found by fuzz/placement_stats.cc). Such text is an error that names the place.
TEST(YamlReaderTest, ACommaWhereANodeShouldStartIsAnErrorNotAnEndlessLoop) {
  for (const auto& [text, at] : std::vector<std::pair<std::string, std::string>>{
           {",", "c.yaml:1:1:"}, {",,\n", "c.yaml:1:1:"}, {"\"a\",", "c.yaml:1:4:"}}) {
    auto r = YamlReader::FromString(text, "c.yaml");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.status().message().find(at + " malformed YAML: unexpected ','"), std::string::npos)
        << text << ": " << r.status().message();
  }
  auto second = YamlReader::FromString("a: 1\n---\n,", "c.yaml");  // a second document first
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("c.yaml:3: a second YAML document"), std::string::npos)
      << second.status().message();
}

// A second document was silently ignored, and nesting past the parser's depth said "bad file".
TEST(YamlReaderTest, ASecondDocumentAndDeepNestingAreNamed) {
  auto two = YamlReader::FromString("a: 1\n---\nb: 2\n", "two.yaml");
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.status().message().find("two.yaml:3: a second YAML document"), std::string::npos)
      << two.status().message();
  EXPECT_TRUE(YamlReader::FromString("---\na: 1\n", "one.yaml").ok());
  auto deep = YamlReader::FromString("a: " + std::string(100000, '['), "deep.yaml");
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("nested deeper than"), std::string::npos)
      << deep.status().message();
}

TEST(YamlReaderTest, DuplicateKeyIsAnErrorWithBothLines) {
  auto r = YamlReader::FromString("a: 1\nb: 2\na: 3\n", "d.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "d.yaml:3:1: 'a': duplicate key (first given on line 1); give each key once");
  auto nested = YamlReader::FromString(
      "workload:\n  rate: 1\nstacks:\n  - name: x\n    queue: fcfs\n    queue: gimbal\n", "n.yaml");
  ASSERT_FALSE(nested.ok());
  EXPECT_NE(nested.status().message().find("n.yaml:6:5: 'stacks[0].queue': duplicate key"),
            std::string::npos)
      << nested.status().message();
}

TEST(YamlReaderTest, AliasesAndEqualKeysInDifferentMapsAreNotDuplicates) {
  auto r = YamlReader::FromString("a: &x {k: 1, j: 2}\nb: *x\nc: {k: 3}\n", "ok.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->Child("b").Int("k", std::nullopt), 1);
}

TEST(YamlReaderTest, FromFileRefusesDirectoriesDevicesAndHugeFiles) {
  auto dir = YamlReader::FromFile(std::filesystem::temp_directory_path().string());
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.status().message().find("is a directory"), std::string::npos);
  auto zero = YamlReader::FromFile("/dev/zero");
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.status().message().find("/dev/zero: is a device"), std::string::npos)
      << zero.status().message();
  EXPECT_EQ(YamlReader::FromFile("/nonexistent/x.yaml").status().code(), ErrorCode::kNotFound);
  const auto big = std::filesystem::temp_directory_path() /
                   ("gimbal_yaml_big_" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(big) << "a: 1\n# " << std::string(100, 'x') << "\n";
  auto small_cap = ReadConfigFile(big.string(), "scenario file", 64);
  ASSERT_FALSE(small_cap.ok());
  EXPECT_NE(small_cap.status().message().find("more than the 64 bytes a scenario file may have"),
            std::string::npos)
      << small_cap.status().message();
  EXPECT_TRUE(ReadConfigFile(big.string(), "scenario file").ok());
  std::filesystem::remove(big);
}

TEST(ApplyOverrideTest, SetsNestedKeysAndListItems) {
  YAML::Node root = YAML::Load("a: {b: 1}\nstacks: [{name: x}, {name: y}]\n");
  ASSERT_TRUE(ApplyOverride(root, "a.b=2").ok());
  ASSERT_TRUE(ApplyOverride(root, "a.c.d=hello").ok());
  ASSERT_TRUE(ApplyOverride(root, "stacks.1.name=z").ok());
  EXPECT_EQ(root["a"]["b"].as<int>(), 2);
  EXPECT_EQ(root["a"]["c"]["d"].as<std::string>(), "hello");
  EXPECT_EQ(root["stacks"][1]["name"].as<std::string>(), "z");
  EXPECT_FALSE(ApplyOverride(root, "stacks.5.name=q").ok());
  EXPECT_FALSE(ApplyOverride(root, "noequals").ok());
  EXPECT_FALSE(ApplyOverride(root, "a.b.c=1").ok());  // a.b is a value
  // Indices too long for any integer are errors, not exceptions that end the process.
  for (const char* big : {"stacks.99999999999999999999999.name=x", "stacks.99999999999999999999=x",
                          "stacks.-1=x", "stacks.1x=x"}) {
    const Status st = ApplyOverride(root, big);
    EXPECT_FALSE(st.ok()) << big;
    EXPECT_NE(st.message().find("index"), std::string::npos) << st.message();
  }
}

// Found by fuzz/scenario_yaml.cc: a key that is a list threw from CheckKeys and ended the process.
TEST(YamlReaderTest, AKeyThatIsAListOrAMapIsAnError) {
  auto r = YamlReader::FromString("a: 1\n? [x, y]\n: 2\n{p: q}: 3\n", "k.yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->Keys(), std::vector<std::string>{"a"});
  r->CheckKeys({"a"});
  ASSERT_FALSE(r->ok());
  EXPECT_NE(r->status().message().find("a key must be a plain string"), std::string::npos)
      << r->status().ToString();
}

}  // namespace
}  // namespace gimbal
