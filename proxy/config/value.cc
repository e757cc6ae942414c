#include "proxy/config/value.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <exception>
#include <limits>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace remora::config {
namespace {

// yaml-cpp's spelling of the one explicit tag we accept (`!!str`).
constexpr absl::string_view kYamlTagPrefix = "tag:yaml.org,2002:";
constexpr absl::string_view kStrTag = "tag:yaml.org,2002:str";

// Long scalars are shortened in messages so one bad value cannot flood a terminal.
constexpr size_t kMaxQuotedChars = 40;

std::string Shorten(absl::string_view text) {
  if (text.size() <= kMaxQuotedChars) return std::string(text);
  return absl::StrCat(text.substr(0, kMaxQuotedChars), "...");
}

// yaml-cpp marks are 0-based; a null mark (-1) means "no position", which we call line 0.
int LineOf(const YAML::Mark& mark) { return mark.line < 0 ? 0 : mark.line + 1; }

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsOctalDigit(char c) { return c >= '0' && c <= '7'; }
bool IsHexDigit(char c) { return absl::ascii_isxdigit(static_cast<unsigned char>(c)); }

int HexValue(char c) {
  if (IsDigit(c)) return c - '0';
  return absl::ascii_tolower(static_cast<unsigned char>(c)) - 'a' + 10;
}

bool AllOf(absl::string_view s, bool (*pred)(char)) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!pred(c)) return false;
  }
  return true;
}

// Core schema: [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+
bool IsCoreInt(absl::string_view s) {
  if (absl::StartsWith(s, "0o")) return AllOf(s.substr(2), IsOctalDigit);
  if (absl::StartsWith(s, "0x")) return AllOf(s.substr(2), IsHexDigit);
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  return AllOf(s, IsDigit);
}

// Core schema: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? plus .inf/.nan spellings.
bool IsCoreFloat(absl::string_view s) {
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return true;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  if (s == ".inf" || s == ".Inf" || s == ".INF") return true;
  size_t i = 0;
  size_t int_digits = 0;
  while (i < s.size() && IsDigit(s[i])) ++i, ++int_digits;
  size_t frac_digits = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && IsDigit(s[i])) ++i, ++frac_digits;
    if (int_digits == 0 && frac_digits == 0) return false;
  } else if (int_digits == 0) {
    return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t exp_digits = 0;
    while (i < s.size() && IsDigit(s[i])) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == s.size();
}

bool IsCoreBool(absl::string_view s, bool* value) {
  if (s == "true" || s == "True" || s == "TRUE") {
    *value = true;
    return true;
  }
  if (s == "false" || s == "False" || s == "FALSE") {
    *value = false;
    return true;
  }
  return false;
}

// Accumulates digits of `base` into an int64, failing on overflow rather than wrapping.
bool AccumulateDigits(absl::string_view digits, int base, bool negative, int64_t* out) {
  // Accumulate negatively so that INT64_MIN is representable.
  int64_t value = 0;
  const int64_t min = std::numeric_limits<int64_t>::min();
  for (char c : digits) {
    int d = HexValue(c);
    if (value < (min + d) / base) return false;
    value = value * base - d;
  }
  if (!negative) {
    if (value == min) return false;
    value = -value;
  }
  *out = value;
  return true;
}

std::string DisplayTag(const std::string& tag) {
  if (absl::StartsWith(tag, kYamlTagPrefix)) {
    return absl::StrCat("!!", absl::string_view(tag).substr(kYamlTagPrefix.size()));
  }
  return tag;
}

// Builds the tree from parser events. yaml-cpp reports nodes depth-first; each open collection
// is a frame that owns its value until its end event, when it is handed to its parent. Owning
// by value (not pointers into the parent's vector) keeps this safe when vectors reallocate.
class TreeBuilder : public YAML::EventHandler {
 public:
  TreeBuilder(absl::string_view text, std::vector<ConfigError>* errors)
      : text_(text), errors_(errors) {}

  Value TakeRoot() { return std::move(root_); }

  void OnDocumentStart(const YAML::Mark& mark) override {}
  void OnDocumentEnd() override {}

  void OnAnchor(const YAML::Mark& mark, const std::string& name) override {
    // The node event that follows carries the anchor's id; remember the name for its message.
    pending_anchor_name_ = name;
  }

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    CheckAnchor(mark, anchor);
    Value v;
    v.kind = Value::Kind::kNull;
    v.line = LineOf(mark);
    Add(std::move(v));
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchor_names_.find(anchor);
    std::string name = it == anchor_names_.end() ? "" : it->second;
    Error(LineOf(mark), ChildPath(), AliasMessage(name));
    Value v;
    v.kind = Value::Kind::kInvalid;
    v.line = LineOf(mark);
    Add(std::move(v));
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    CheckAnchor(mark, anchor);
    Value v;
    v.kind = Value::Kind::kScalar;
    v.line = LineOf(mark);
    v.scalar = value;
    // yaml-cpp gives plain scalars the non-specific tag "?" and every other style "!".
    if (tag == "?") {
      v.quoted = false;
    } else if (tag == "!" || tag == kStrTag) {
      v.quoted = true;
      if (!QuoteIsClosed(mark)) {
        Error(v.line, ChildPath(), "unterminated quoted string");
        v = Value();
        v.kind = Value::Kind::kInvalid;
        v.line = LineOf(mark);
      }
    } else {
      Error(v.line, ChildPath(), TagMessage(tag));
      v = Value();
      v.kind = Value::Kind::kInvalid;
      v.line = LineOf(mark);
    }
    Add(std::move(v));
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value style) override {
    Push(Value::Kind::kSequence, mark, tag, anchor);
  }
  void OnSequenceEnd() override { Pop(); }

  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value style) override {
    Push(Value::Kind::kMap, mark, tag, anchor);
  }
  void OnMapEnd() override { Pop(); }

  static std::string AliasMessage(absl::string_view name) {
    if (name.empty()) return "aliases are not supported; repeat the value instead";
    return absl::StrCat("aliases are not supported (found \"*", name,
                        "\"); repeat the value instead");
  }

 private:
  struct Frame {
    Value value;
    std::string path;
    bool rejected = false;  // reported (bad tag): replaced by kInvalid when it ends
    // kMap only: the key read so far, waiting for its value.
    bool have_key = false;
    bool key_ok = false;
    std::string key;
    int key_line = 0;
    absl::flat_hash_map<std::string, int> first_line_of_key;
  };

  void Error(int line, std::string path, std::string message) {
    errors_->push_back(ConfigError{line, std::move(path), std::move(message)});
  }

  // yaml-cpp 0.7 accepts a quoted scalar whose closing quote is missing when the file ends in a
  // newline: `token: "abc` then swallows the rest of the file into the token, silently. So check
  // the source: from the opening quote at the scalar's mark, the closing quote must exist.
  // (When the mark is not at a quote, e.g. after a tag, there is nothing to check against.)
  bool QuoteIsClosed(const YAML::Mark& mark) const {
    if (mark.pos < 0 || static_cast<size_t>(mark.pos) >= text_.size()) return true;
    const char quote = text_[mark.pos];
    if (quote != '"' && quote != '\'') return true;
    for (size_t i = mark.pos + 1; i < text_.size(); ++i) {
      if (quote == '"' && text_[i] == '\\') {
        ++i;  // an escape: the next character cannot close the string
      } else if (text_[i] == quote) {
        if (quote == '\'' && i + 1 < text_.size() && text_[i + 1] == '\'') {
          ++i;  // '' is an escaped single quote
        } else {
          return true;
        }
      }
    }
    return false;
  }

  static std::string TagMessage(const std::string& tag) {
    return absl::StrCat("unsupported tag \"", DisplayTag(tag), "\"; only !!str is allowed");
  }

  void CheckAnchor(const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (anchor == YAML::NullAnchor) return;
    anchor_names_[anchor] = pending_anchor_name_;
    Error(LineOf(mark), ChildPath(),
          pending_anchor_name_.empty()
              ? std::string("anchors are not supported; repeat the value instead")
              : absl::StrCat("anchors are not supported (found \"&", pending_anchor_name_,
                             "\"); repeat the value instead"));
    pending_anchor_name_.clear();
  }

  // The path of a node that starts now, from where it lands in its parent.
  std::string ChildPath() const {
    if (stack_.empty()) return "";
    const Frame& top = stack_.back();
    if (top.value.IsSequence()) {
      return absl::StrCat(top.path, "[", top.value.items.size(), "]");
    }
    if (top.have_key && top.key_ok) return JoinPath(top.path, top.key);
    return top.path;
  }

  void Push(Value::Kind kind, const YAML::Mark& mark, const std::string& tag,
            YAML::anchor_t anchor) {
    CheckAnchor(mark, anchor);
    Frame frame;
    frame.value.kind = kind;
    frame.value.line = LineOf(mark);
    frame.path = ChildPath();
    if (tag != "?" && tag != "!") {
      Error(frame.value.line, frame.path, TagMessage(tag));
      frame.rejected = true;
    }
    stack_.push_back(std::move(frame));
  }

  void Pop() {
    if (stack_.empty()) return;  // unbalanced events would be a yaml-cpp bug; never crash on it
    Frame frame = std::move(stack_.back());
    stack_.pop_back();
    if (frame.rejected) {
      int line = frame.value.line;
      frame.value = Value();
      frame.value.kind = Value::Kind::kInvalid;
      frame.value.line = line;
    }
    Add(std::move(frame.value));
  }

  void Add(Value v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return;
    }
    Frame& top = stack_.back();
    if (top.value.IsSequence()) {
      top.value.items.push_back(std::move(v));
      return;
    }
    if (!top.have_key) {
      top.have_key = true;
      top.key_ok = false;
      if (v.IsScalar()) {
        top.key_ok = true;
        top.key = std::move(v.scalar);
        top.key_line = v.line;
      } else if (!v.IsInvalid()) {
        Error(v.line, top.path, absl::StrCat("map keys must be strings, got ", v.Describe()));
      }
      return;
    }
    top.have_key = false;
    if (!top.key_ok) return;  // already reported; drop the entry
    auto [it, inserted] = top.first_line_of_key.try_emplace(top.key, top.key_line);
    if (!inserted) {
      Error(top.key_line, JoinPath(top.path, top.key),
            absl::StrCat("duplicate key ", Quote(top.key), " (first defined on line ", it->second,
                         ")"));
      return;
    }
    // yaml-cpp marks an empty value (`key:` then a newline) with the line of the next token;
    // the key's line is where the user left it empty.
    if (v.IsNull()) v.line = top.key_line;
    top.value.entries.push_back(MapEntry{std::move(top.key), top.key_line, std::move(v)});
  }

  absl::string_view text_;
  std::vector<ConfigError>* errors_;
  std::vector<Frame> stack_;
  Value root_;
  std::string pending_anchor_name_;
  absl::flat_hash_map<YAML::anchor_t, std::string> anchor_names_;
};

// Only notices that a further document starts; its content is ignored.
class DocumentWatcher : public YAML::EventHandler {
 public:
  bool started() const { return started_; }
  int line() const { return line_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    started_ = true;
    line_ = LineOf(mark);
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  bool started_ = false;
  int line_ = 0;
};

std::string SyntaxMessage(const YAML::ParserException& e) {
  // An alias to an anchor that does not exist fails inside yaml-cpp before we see it; say what
  // we would have said about any alias.
  if (absl::StartsWith(e.msg, YAML::ErrorMsg::UNKNOWN_ANCHOR)) {
    absl::string_view name =
        absl::string_view(e.msg).substr(absl::string_view(YAML::ErrorMsg::UNKNOWN_ANCHOR).size());
    absl::ConsumePrefix(&name, ": ");
    return TreeBuilder::AliasMessage(name);
  }
  if (dynamic_cast<const YAML::DeepRecursion*>(&e) != nullptr) {
    return "yaml syntax error: nesting is too deep";
  }
  return absl::StrCat("yaml syntax error: ", absl::AsciiStrToLower(e.msg));
}

// yaml-cpp's syntax messages describe the parser's state, not the user's mistake. One mistake is
// common enough to name: an unquoted IPv6 address (`address: [::1]:80`) starts a flow list.
std::string Hint(absl::string_view text, const YAML::Mark& mark) {
  if (mark.line < 0) return "";
  for (int i = 0; i < mark.line; ++i) {
    size_t newline = text.find('\n');
    if (newline == absl::string_view::npos) return "";
    text.remove_prefix(newline + 1);
  }
  absl::string_view line = text.substr(0, text.find('\n'));
  size_t open = line.find(": [");
  if (open != absl::string_view::npos && line.find("]:", open) != absl::string_view::npos) {
    return " (an ipv6 address must be quoted: \"[::1]:8080\")";
  }
  return "";
}

Value InvalidRoot(int line) {
  Value v;
  v.kind = Value::Kind::kInvalid;
  v.line = line;
  return v;
}

constexpr char kMultipleDocuments[] =
    "multiple yaml documents are not supported; put the whole config in one document";

}  // namespace

const MapEntry* Value::Find(absl::string_view key) const {
  for (const MapEntry& e : entries) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

ScalarType Value::Resolve() const {
  if (kind != Kind::kScalar || quoted) return ScalarType::kString;
  bool b;
  if (IsCoreBool(scalar, &b)) return ScalarType::kBool;
  if (IsCoreInt(scalar)) return ScalarType::kInt;
  if (IsCoreFloat(scalar)) return ScalarType::kFloat;
  return ScalarType::kString;
}

bool Value::AsBool(bool* out) const {
  if (kind != Kind::kScalar || quoted) return false;
  return IsCoreBool(scalar, out);
}

bool Value::AsInt(int64_t* out) const {
  if (kind != Kind::kScalar || quoted || !IsCoreInt(scalar)) return false;
  absl::string_view s = scalar;
  if (absl::ConsumePrefix(&s, "0o")) return AccumulateDigits(s, 8, false, out);
  if (absl::ConsumePrefix(&s, "0x")) return AccumulateDigits(s, 16, false, out);
  bool negative = false;
  if (s[0] == '-' || s[0] == '+') {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  return AccumulateDigits(s, 10, negative, out);
}

std::string Value::Describe() const {
  switch (kind) {
    case Kind::kNull:
      return "null";
    case Kind::kSequence:
      return "a list";
    case Kind::kMap:
      return "a map";
    case Kind::kInvalid:
      return "an invalid value";
    case Kind::kScalar:
      break;
  }
  switch (Resolve()) {
    case ScalarType::kBool:
      return absl::StrCat("boolean ", scalar);
    case ScalarType::kInt:
      return absl::StrCat("integer ", Shorten(scalar));
    case ScalarType::kFloat:
      return absl::StrCat("number ", Shorten(scalar));
    case ScalarType::kString:
      break;
  }
  return absl::StrCat("string ", Quote(scalar));
}

std::string Quote(absl::string_view text) {
  std::string out = "\"";
  bool cut = text.size() > kMaxQuotedChars;
  if (cut) text = text.substr(0, kMaxQuotedChars);
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (u < 0x20 || u == 0x7f) {
          absl::StrAppend(&out, "\\x", absl::Hex(u, absl::kZeroPad2));
        } else {
          out += c;
        }
    }
  }
  if (cut) out += "...";
  out += '"';
  return out;
}

std::string JoinPath(absl::string_view path, absl::string_view key) {
  bool simple = !key.empty() && key.size() <= kMaxQuotedChars;
  for (char c : key) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
      simple = false;
    }
  }
  std::string written = simple ? std::string(key) : Quote(key);
  if (path.empty()) return written;
  return absl::StrCat(path, ".", written);
}

bool ParseYaml(absl::string_view text, Value* root, std::vector<ConfigError>* errors) {
  const size_t errors_before = errors->size();
  *root = Value();
  // yaml-cpp skips a UTF-8 byte order mark without counting it in its marks; drop it here so
  // that mark positions index `text` (QuoteIsClosed relies on that).
  absl::ConsumePrefix(&text, "\xEF\xBB\xBF");
  // YAML forbids NUL in a stream; a NUL usually means UTF-16 or a binary file given by mistake.
  if (size_t nul = text.find('\0'); nul != absl::string_view::npos) {
    int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + nul, '\n'));
    errors->push_back(
        ConfigError{line, "", "the config contains a NUL byte; it must be utf-8 text"});
    *root = InvalidRoot(line);
    return false;
  }
  std::istringstream in{std::string(text)};
  // yaml-cpp reports errors by throwing; this is the one place we let it, and nothing escapes.
  try {
    YAML::Parser parser(in);
    TreeBuilder builder(text, errors);
    if (!parser.HandleNextDocument(builder)) return errors->size() == errors_before;
    *root = builder.TakeRoot();
    DocumentWatcher watcher;
    try {
      if (parser.HandleNextDocument(watcher)) {
        errors->push_back(ConfigError{watcher.line(), "", kMultipleDocuments});
      }
    } catch (const YAML::Exception& e) {
      // A broken second document is still a second document; that is the error to fix first.
      if (watcher.started()) {
        errors->push_back(ConfigError{watcher.line(), "", kMultipleDocuments});
      } else {
        throw;
      }
    }
  } catch (const YAML::ParserException& e) {
    errors->push_back(ConfigError{LineOf(e.mark), "", SyntaxMessage(e) + Hint(text, e.mark)});
    *root = InvalidRoot(LineOf(e.mark));
  } catch (const YAML::Exception& e) {
    errors->push_back(ConfigError{LineOf(e.mark), "",
                                  absl::StrCat("yaml error: ", absl::AsciiStrToLower(e.msg))});
    *root = InvalidRoot(LineOf(e.mark));
  } catch (const std::exception& e) {
    // Not expected from yaml-cpp (bad_alloc at most), but nothing may escape this function.
    errors->push_back(ConfigError{0, "", absl::StrCat("yaml error: ", e.what())});
    *root = InvalidRoot(0);
  }
  return errors->size() == errors_before;
}

}  // namespace remora::config
