// Golden bad configs: tests/golden/bad_configs/NN_name.yaml must produce exactly the error lines in
// NN_name.expected (formatted with the file's base name). The goldens are the user-visible
// contract of `remora validate`: a changed message shows up here as a readable diff.
//
// To regenerate after an intended message change, run the test with REMORA_UPDATE_GOLDEN=1 and
// review the diff of the .expected files before committing it.

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "proxy/config/decode.h"

namespace remora::config {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMinCases = 20;

fs::path GoldenDir() { return fs::path(REMORA_SOURCE_DIR) / "tests/golden/bad_configs"; }

std::vector<fs::path> Cases() {
  std::vector<fs::path> cases;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(GoldenDir(), ec)) {
    if (e.path().extension() == ".yaml") cases.push_back(e.path());
  }
  std::sort(cases.begin(), cases.end());
  return cases;
}

bool ReadFile(const fs::path& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

// A line-by-line diff, small inputs only: "  same", "- expected only", "+ actual only".
std::string Diff(const std::vector<std::string>& expected, const std::vector<std::string>& actual) {
  // Longest common subsequence table.
  const size_t n = expected.size(), m = actual.size();
  std::vector<std::vector<size_t>> lcs(n + 1, std::vector<size_t>(m + 1, 0));
  for (size_t i = n; i-- > 0;) {
    for (size_t j = m; j-- > 0;) {
      lcs[i][j] =
          expected[i] == actual[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  std::string out;
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && expected[i] == actual[j]) {
      absl::StrAppend(&out, "  ", expected[i++], "\n");
      ++j;
    } else if (i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      absl::StrAppend(&out, "- ", expected[i++], "\n");
    } else {
      absl::StrAppend(&out, "+ ", actual[j++], "\n");
    }
  }
  return out;
}

TEST(GoldenBadConfigsTest, EnoughCases) {
  EXPECT_GE(Cases().size(), kMinCases) << "golden directory: " << GoldenDir();
}

TEST(GoldenBadConfigsTest, NoExpectedFileWithoutItsConfig) {
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(GoldenDir(), ec)) {
    if (e.path().extension() != ".expected") continue;
    fs::path yaml = e.path();
    yaml.replace_extension(".yaml");
    EXPECT_TRUE(fs::exists(yaml)) << e.path().filename().string() << " has no .yaml beside it";
  }
}

TEST(GoldenBadConfigsTest, EachFileGivesExactlyItsExpectedErrors) {
  const bool update = std::getenv("REMORA_UPDATE_GOLDEN") != nullptr;
  const std::vector<fs::path> cases = Cases();
  ASSERT_FALSE(cases.empty()) << "no .yaml files in " << GoldenDir();
  for (const fs::path& yaml : cases) {
    SCOPED_TRACE(yaml.filename().string());
    const std::string name = yaml.filename().string();
    Config config;
    std::vector<ConfigError> errors;
    const bool ok = LoadConfigFile(yaml.string(), &config, &errors);
    EXPECT_FALSE(ok) << name << " decoded without errors; a golden bad config must fail";
    std::vector<std::string> actual;
    for (const ConfigError& e : errors) actual.push_back(e.Format(name));

    fs::path expected_path = yaml;
    expected_path.replace_extension(".expected");
    if (update) {
      std::ofstream(expected_path, std::ios::binary) << absl::StrJoin(actual, "\n") << "\n";
      continue;
    }
    std::string expected_text;
    if (!ReadFile(expected_path, &expected_text)) {
      ADD_FAILURE() << "missing " << expected_path.filename().string() << "; actual errors were:\n"
                    << absl::StrJoin(actual, "\n");
      continue;
    }
    const std::vector<std::string> expected = Lines(expected_text);
    EXPECT_FALSE(expected.empty()) << expected_path.filename().string() << " is empty";
    if (expected != actual) {
      ADD_FAILURE() << name << ": errors differ from " << expected_path.filename().string()
                    << " (- expected, + actual):\n"
                    << Diff(expected, actual);
    }
  }
}

}  // namespace
}  // namespace remora::config
