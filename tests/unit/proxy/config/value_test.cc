#include "proxy/config/value.h"

#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace remora::config {
namespace {

// Parses `text` and returns the errors as "LINE path: message" for compact expectations.
std::vector<std::string> ParseErrors(const std::string& text, Value* root = nullptr) {
  Value local;
  std::vector<ConfigError> errors;
  ParseYaml(text, root != nullptr ? root : &local, &errors);
  std::vector<std::string> out;
  for (const ConfigError& e : errors) {
    out.push_back(std::to_string(e.line) + " " + (e.path.empty() ? "" : e.path + ": ") + e.message);
  }
  return out;
}

Value Parse(const std::string& text) {
  Value root;
  std::vector<ConfigError> errors;
  EXPECT_TRUE(ParseYaml(text, &root, &errors)) << (errors.empty() ? "" : errors[0].message);
  return root;
}

// A single plain or quoted scalar, parsed as the value of key `v`.
Value Scalar(const std::string& yaml_value) {
  Value root = Parse("v: " + yaml_value + "\n");
  EXPECT_TRUE(root.IsMap());
  EXPECT_EQ(root.entries.size(), 1u);
  return root.entries.empty() ? Value() : root.entries[0].value;
}

TEST(ValueTest, BuildsTreeWithLinesAndInsertionOrder) {
  Value root = Parse(
      "# comment\n"
      "zeta: 1\n"
      "alpha:\n"
      "  - a\n"
      "  - {x: 1, y: two}\n"
      "mid: \"q\"\n");
  ASSERT_TRUE(root.IsMap());
  EXPECT_EQ(root.line, 2);
  ASSERT_EQ(root.entries.size(), 3u);
  EXPECT_EQ(root.entries[0].key, "zeta");
  EXPECT_EQ(root.entries[0].key_line, 2);
  EXPECT_EQ(root.entries[1].key, "alpha");
  EXPECT_EQ(root.entries[1].key_line, 3);
  EXPECT_EQ(root.entries[2].key, "mid");
  const Value& alpha = root.entries[1].value;
  ASSERT_TRUE(alpha.IsSequence());
  EXPECT_EQ(alpha.line, 4);
  ASSERT_EQ(alpha.items.size(), 2u);
  EXPECT_EQ(alpha.items[0].scalar, "a");
  EXPECT_EQ(alpha.items[0].line, 4);
  const Value& flow = alpha.items[1];
  ASSERT_TRUE(flow.IsMap());
  EXPECT_EQ(flow.line, 5);
  ASSERT_NE(flow.Find("y"), nullptr);
  EXPECT_EQ(flow.Find("y")->value.scalar, "two");
  EXPECT_EQ(flow.Find("nope"), nullptr);
  EXPECT_TRUE(root.entries[2].value.quoted);
  EXPECT_FALSE(root.entries[0].value.quoted);
}

TEST(ValueTest, JsonIsParsedThroughTheSamePath) {
  Value root = Parse("{\"workers\": 2, \"list\": [1, \"2\", null, true],\n \"m\": {}}");
  ASSERT_TRUE(root.IsMap());
  const Value& workers = root.Find("workers")->value;
  int64_t n = 0;
  EXPECT_TRUE(workers.AsInt(&n));
  EXPECT_EQ(n, 2);
  const Value& list = root.Find("list")->value;
  ASSERT_EQ(list.items.size(), 4u);
  EXPECT_EQ(list.items[0].Resolve(), ScalarType::kInt);
  EXPECT_TRUE(list.items[1].quoted);
  EXPECT_EQ(list.items[1].Resolve(), ScalarType::kString);
  EXPECT_TRUE(list.items[2].IsNull());
  EXPECT_EQ(list.items[3].Resolve(), ScalarType::kBool);
  EXPECT_TRUE(root.Find("m")->value.IsMap());
  EXPECT_EQ(root.Find("m")->key_line, 2);
}

TEST(ValueTest, CoreSchemaBooleans) {
  for (const char* t : {"true", "True", "TRUE"}) {
    bool b = false;
    EXPECT_TRUE(Scalar(t).AsBool(&b)) << t;
    EXPECT_TRUE(b) << t;
  }
  for (const char* f : {"false", "False", "FALSE"}) {
    bool b = true;
    EXPECT_TRUE(Scalar(f).AsBool(&b)) << f;
    EXPECT_FALSE(b) << f;
  }
  // YAML 1.1 booleans are plain strings in the 1.2 core schema.
  for (const char* s : {"yes", "no", "on", "off", "y", "n", "tRUE", "Yes"}) {
    bool b;
    EXPECT_EQ(Scalar(s).Resolve(), ScalarType::kString) << s;
    EXPECT_FALSE(Scalar(s).AsBool(&b)) << s;
  }
  bool b;
  EXPECT_FALSE(Scalar("\"true\"").AsBool(&b));
  EXPECT_EQ(Scalar("'true'").Resolve(), ScalarType::kString);
}

TEST(ValueTest, CoreSchemaIntegers) {
  struct Case {
    const char* text;
    int64_t value;
  };
  for (const Case& c : std::vector<Case>{{"0", 0},
                                         {"42", 42},
                                         {"+42", 42},
                                         {"-42", -42},
                                         {"007", 7},
                                         {"0o17", 15},
                                         {"0x1F", 31},
                                         {"0xff", 255},
                                         {"9223372036854775807", INT64_MAX},
                                         {"-9223372036854775808", INT64_MIN}}) {
    Value v = Scalar(c.text);
    int64_t n = 0;
    EXPECT_EQ(v.Resolve(), ScalarType::kInt) << c.text;
    EXPECT_TRUE(v.AsInt(&n)) << c.text;
    EXPECT_EQ(n, c.value) << c.text;
  }
  // Too large for int64: still an integer (so callers say "out of range"), but no value.
  for (const char* big : {"9223372036854775808", "-9223372036854775809", "0xffffffffffffffffff"}) {
    int64_t n;
    EXPECT_EQ(Scalar(big).Resolve(), ScalarType::kInt) << big;
    EXPECT_FALSE(Scalar(big).AsInt(&n)) << big;
  }
  // Not integers under the core schema.
  for (const char* s : {"0x", "0o", "0o8", "0xg", "-0x1", "+0o7", "1_000", "12abc", "0b101"}) {
    int64_t n;
    EXPECT_NE(Scalar(s).Resolve(), ScalarType::kInt) << s;
    EXPECT_FALSE(Scalar(s).AsInt(&n)) << s;
  }
  int64_t n;
  EXPECT_FALSE(Scalar("\"123\"").AsInt(&n));
  EXPECT_EQ(Scalar("\"123\"").Resolve(), ScalarType::kString);
}

TEST(ValueTest, CoreSchemaFloats) {
  for (const char* f : {"1.5", "-1.5", ".5", "1.", "1e3", "1.5E-3", "+2e+2", ".inf", "-.Inf",
                        "+.INF", ".nan", ".NaN", ".NAN"}) {
    EXPECT_EQ(Scalar(f).Resolve(), ScalarType::kFloat) << f;
  }
  for (const char* s : {"1.2.3", "1e", "e3", ".", "-.", "inf", "nan", "1.5s", ".infinity"}) {
    EXPECT_EQ(Scalar(s).Resolve(), ScalarType::kString) << s;
  }
}

TEST(ValueTest, CoreSchemaNulls) {
  for (const char* s : {"null", "Null", "NULL", "~", ""}) {
    EXPECT_TRUE(Scalar(s).IsNull()) << "'" << s << "'";
  }
  for (const char* s : {"nULL", "\"null\"", "'~'", "none"}) {
    EXPECT_TRUE(Scalar(s).IsScalar()) << s;
  }
  // An empty value points at its key's line, not at the next token.
  Value root = Parse("a:\n\nb: 1\n");
  EXPECT_EQ(root.Find("a")->value.line, 1);
}

TEST(ValueTest, QuotedAndBlockScalarsAreStrings) {
  EXPECT_TRUE(Scalar("'12'").quoted);
  EXPECT_TRUE(Scalar("\"12\"").quoted);
  EXPECT_FALSE(Scalar("12").quoted);
  EXPECT_TRUE(Scalar("!!str 12").quoted);
  EXPECT_EQ(Scalar("!!str 12").Resolve(), ScalarType::kString);
  Value root = Parse("a: |\n  12\n");
  EXPECT_TRUE(root.Find("a")->value.quoted);
  EXPECT_EQ(root.Find("a")->value.scalar, "12\n");
}

TEST(ValueTest, Describe) {
  EXPECT_EQ(Scalar("yes").Describe(), "string \"yes\"");
  EXPECT_EQ(Scalar("\"12\"").Describe(), "string \"12\"");
  EXPECT_EQ(Scalar("12").Describe(), "integer 12");
  EXPECT_EQ(Scalar("1.5").Describe(), "number 1.5");
  EXPECT_EQ(Scalar("True").Describe(), "boolean True");
  EXPECT_EQ(Scalar("~").Describe(), "null");
  EXPECT_EQ(Scalar("[1]").Describe(), "a list");
  EXPECT_EQ(Scalar("{a: 1}").Describe(), "a map");
  EXPECT_EQ(Scalar("\"a\\tb\\\"c\\\\\"").Describe(), "string \"a\\tb\\\"c\\\\\"");
  EXPECT_EQ(Scalar(std::string(50, 'x')).Describe(), "string \"" + std::string(40, 'x') + "...\"");
}

TEST(ValueTest, QuoteAndJoinPath) {
  EXPECT_EQ(Quote("abc"), "\"abc\"");
  EXPECT_EQ(Quote(std::string("a\0b\n", 4)), "\"a\\x00b\\n\"");
  EXPECT_EQ(Quote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");  // UTF-8 kept
  EXPECT_EQ(JoinPath("", "admin"), "admin");
  EXPECT_EQ(JoinPath("listeners[0]", "name"), "listeners[0].name");
  EXPECT_EQ(JoinPath("admin", "bad key"), "admin.\"bad key\"");
  EXPECT_EQ(JoinPath("admin", "a.b"), "admin.\"a.b\"");
  EXPECT_EQ(JoinPath("admin", ""), "admin.\"\"");
}

TEST(ValueTest, EmptyStreamIsANullRootWithoutErrors) {
  for (const char* text : {"", "\n\n", "# only a comment\n", "   "}) {
    Value root;
    root.kind = Value::Kind::kMap;
    std::vector<ConfigError> errors;
    EXPECT_TRUE(ParseYaml(text, &root, &errors)) << text;
    EXPECT_TRUE(root.IsNull()) << text;
    EXPECT_EQ(root.line, 0) << text;
  }
}

TEST(ValueTest, RejectsAnchorsAndAliases) {
  Value root;
  EXPECT_EQ(ParseErrors("a: &x 1\nb: *x\n", &root),
            (std::vector<std::string>{
                "1 a: anchors are not supported (found \"&x\"); repeat the value instead",
                "2 b: aliases are not supported (found \"*x\"); repeat the value instead"}));
  // The tree stays usable: the anchored value is kept, the alias is a reported invalid node.
  ASSERT_TRUE(root.IsMap());
  EXPECT_EQ(root.Find("a")->value.scalar, "1");
  EXPECT_TRUE(root.Find("b")->value.IsInvalid());

  EXPECT_EQ(ParseErrors("list:\n  - &anchor {k: v}\n"),
            (std::vector<std::string>{"2 list[0]: anchors are not supported (found \"&anchor\"); "
                                      "repeat the value instead"}));
  // An alias to an anchor that does not exist is caught by yaml-cpp first; same message.
  EXPECT_EQ(ParseErrors("a: *nowhere\n"),
            (std::vector<std::string>{"1 aliases are not supported; repeat the value instead"}));
}

TEST(ValueTest, RejectsDuplicateKeysAndKeepsTheFirst) {
  Value root;
  EXPECT_EQ(ParseErrors("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n", &root),
            (std::vector<std::string>{"4 b.c: duplicate key \"c\" (first defined on line 3)",
                                      "5 a: duplicate key \"a\" (first defined on line 1)"}));
  EXPECT_EQ(root.Find("a")->value.scalar, "1");
  EXPECT_EQ(root.entries.size(), 2u);
  EXPECT_EQ(ParseErrors("{\"a\": 1, \"a\": 2}"),
            (std::vector<std::string>{"1 a: duplicate key \"a\" (first defined on line 1)"}));
}

TEST(ValueTest, RejectsNonScalarKeys) {
  EXPECT_EQ(ParseErrors("? [1, 2]\n: x\nok: 1\n"),
            (std::vector<std::string>{"1 map keys must be strings, got a list"}));
  EXPECT_EQ(ParseErrors("m:\n  ? {a: 1}\n  : x\n"),
            (std::vector<std::string>{"2 m: map keys must be strings, got a map"}));
  EXPECT_EQ(ParseErrors("~: 1\n"),
            (std::vector<std::string>{"1 map keys must be strings, got null"}));
}

TEST(ValueTest, RejectsTagsOtherThanStr) {
  EXPECT_EQ(ParseErrors("a: !!int 1\nb: !custom x\nc: !!str 1\nd: !!map {}\n"),
            (std::vector<std::string>{"1 a: unsupported tag \"!!int\"; only !!str is allowed",
                                      "2 b: unsupported tag \"!custom\"; only !!str is allowed",
                                      "4 d: unsupported tag \"!!map\"; only !!str is allowed"}));
}

TEST(ValueTest, RejectsMultipleDocuments) {
  EXPECT_EQ(ParseErrors("a: 1\n---\nb: 2\n"),
            (std::vector<std::string>{"2 multiple yaml documents are not supported; put the "
                                      "whole config in one document"}));
  // Even when the second document is broken, the second document is the thing to report.
  EXPECT_EQ(ParseErrors("a: 1\n---\nb: [\n"),
            (std::vector<std::string>{"2 multiple yaml documents are not supported; put the "
                                      "whole config in one document"}));
  // An explicit start and end marker around one document is fine.
  EXPECT_TRUE(ParseErrors("---\na: 1\n...\n").empty());
}

TEST(ValueTest, SyntaxErrorsCarryTheirLineAndLeaveAnInvalidRoot) {
  Value root;
  EXPECT_EQ(ParseErrors("a:\n  b: 1\n   c: 2\n", &root),
            (std::vector<std::string>{"3 yaml syntax error: illegal map value"}));
  EXPECT_TRUE(root.IsInvalid());
  EXPECT_EQ(ParseErrors("a: [1, 2\nb: 3\n"),
            (std::vector<std::string>{"2 yaml syntax error: end of sequence flow not found"}));
  EXPECT_EQ(ParseErrors("a: \"unterminated"),
            (std::vector<std::string>{"1 yaml syntax error: illegal eof in scalar"}));
  // The common IPv6 mistake gets a hint.
  EXPECT_EQ(ParseErrors("admin:\n  address: [::1]:15000\n"),
            (std::vector<std::string>{"2 yaml syntax error: end of map not found (an ipv6 "
                                      "address must be quoted: \"[::1]:8080\")"}));
}

// yaml-cpp 0.7 accepts a missing closing quote when the file ends in a newline, and the string
// silently swallows the rest of the file. ParseYaml checks the source.
TEST(ValueTest, UnterminatedQuotedStringIsAnError) {
  Value root;
  EXPECT_EQ(ParseErrors("a: 1\ntoken: \"abc\nworkers: 2\n", &root),
            (std::vector<std::string>{"2 token: unterminated quoted string"}));
  EXPECT_TRUE(root.Find("token")->value.IsInvalid());
  EXPECT_EQ(ParseErrors("a: 'it''s\n"),
            (std::vector<std::string>{"1 a: unterminated quoted string"}));
  // Closed ones with escapes, across lines, after multi-byte UTF-8, with CRLF and a BOM.
  EXPECT_TRUE(ParseErrors("a: 'it''s'\nb: \"q\\\"x\"\n\"k\": 'v'\n").empty());
  EXPECT_TRUE(ParseErrors("a: \"multi\n  line\"\nb: 1\n").empty());
  EXPECT_EQ(ParseErrors("x: \"\xc3\xa9\xf0\x9f\x98\x80\"\nb: \"y\n"),
            (std::vector<std::string>{"2 b: unterminated quoted string"}));
  EXPECT_EQ(ParseErrors("a: \"x\"\r\nb: \"y\r\n"),
            (std::vector<std::string>{"2 b: unterminated quoted string"}));
  EXPECT_EQ(ParseErrors("\xEF\xBB\xBF"
                        "a: \"x\"\nb: \"y\n"),
            (std::vector<std::string>{"2 b: unterminated quoted string"}));
}

TEST(ValueTest, NulBytesAreRejected) {
  EXPECT_EQ(ParseErrors(std::string("a: 1\nb: \0\n", 10)),
            (std::vector<std::string>{"2 the config contains a NUL byte; it must be utf-8 text"}));
  // UTF-16 (here with a byte order mark) is full of NULs.
  EXPECT_EQ(ParseErrors(std::string("\xff\xfe"
                                    "a\0:\0",
                                    6)),
            (std::vector<std::string>{"1 the config contains a NUL byte; it must be utf-8 text"}));
}

TEST(ValueTest, DeepNestingIsAnErrorNotACrash) {
  std::string deep(10000, '[');
  EXPECT_EQ(ParseErrors(deep),
            (std::vector<std::string>{"1 yaml syntax error: nesting is too deep"}));
}

}  // namespace
}  // namespace remora::config
