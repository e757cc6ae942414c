#pragma once

// Our own YAML value tree, built from yaml-cpp's event API rather than YAML::Load, because Load
// silently resolves aliases, keeps duplicate keys (last one wins) and forgets whether a scalar was
// quoted. The decoder (decode.cc) needs all three facts: an alias or a duplicate key in a proxy's
// config is almost always a mistake, and `port: "80"` must be a string while `port: 80` is an int.
//
// Every node keeps its 1-based line so that errors can point at it. Only ParseYaml() touches
// yaml-cpp; it catches yaml-cpp's exceptions, so none leave this file.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "proxy/config/decode.h"

namespace remora::config {

// How a scalar resolves under the YAML 1.2 core schema (yaml.org/spec/1.2.2 section 10.3.2).
// Quoted and block scalars are always strings; so are plain `yes`, `on`, `off` (YAML 1.1 would
// have made them booleans, a classic source of surprises).
enum class ScalarType { kString, kBool, kInt, kFloat };

struct MapEntry;

struct Value {
  enum class Kind {
    kNull,
    kScalar,
    kSequence,
    kMap,
    // A node that was already reported as an error while parsing (an alias). The decoder skips
    // it silently, so one mistake produces one message, not a cascade.
    kInvalid,
  };

  Kind kind = Kind::kNull;
  int line = 0;  // 1-based; 0 only for the null root of an empty document

  // kScalar only. `quoted` is true for single/double-quoted and block (| >) scalars and for
  // scalars tagged !!str: anything whose text must not be resolved to a bool or a number.
  std::string scalar;
  bool quoted = false;

  std::vector<Value> items;       // kSequence, in document order
  std::vector<MapEntry> entries;  // kMap, in document order; keys are unique

  bool IsNull() const { return kind == Kind::kNull; }
  bool IsScalar() const { return kind == Kind::kScalar; }
  bool IsSequence() const { return kind == Kind::kSequence; }
  bool IsMap() const { return kind == Kind::kMap; }
  bool IsInvalid() const { return kind == Kind::kInvalid; }

  // kMap: the entry with this key, or nullptr.
  const MapEntry* Find(absl::string_view key) const;

  // kScalar: its core-schema type. Other kinds return kString (callers check kind first).
  ScalarType Resolve() const;

  // True when the node is a plain true/false (core schema); sets *out.
  bool AsBool(bool* out) const;
  // True when the node is a plain core-schema integer (decimal with optional sign, 0o octal,
  // 0x hex) that fits in int64; sets *out. An integer too large for int64 resolves as kInt but
  // returns false here, so callers can report it as out of range rather than as a wrong type.
  bool AsInt(int64_t* out) const;

  // What the node is, for "expected X, got <this>" messages: `null`, `a list`, `a map`,
  // `boolean true`, `integer 12`, `number 1.5` or `string "yes"` (long text is shortened).
  std::string Describe() const;
};

struct MapEntry {
  std::string key;
  int key_line = 0;
  Value value;
};

// `"text"` for messages: quotes, backslashes and control bytes escaped (so a message stays on one
// line), other bytes (UTF-8) kept, and text past 40 bytes cut with "...".
std::string Quote(absl::string_view text);

// "listeners[0]" + "name" -> "listeners[0].name"; a key that is not [A-Za-z0-9_-]+ is written
// quoted (`admin."bad key"`) so that paths stay unambiguous and on one line.
std::string JoinPath(absl::string_view path, absl::string_view key);

// Parses exactly one YAML document into *root. Returns false when it found errors and appends
// them to *errors (which may then hold several: every anchor, alias and duplicate key is
// reported, and parsing goes on after them; a syntax error ends parsing). Rejected:
//   - YAML syntax errors (with yaml-cpp's mark, converted to a 1-based line)
//   - anchors (&a) and aliases (*a): a config is read by people, who should not have to chase
//     references; repeat the value instead
//   - duplicate keys in one map (the second one is reported and dropped)
//   - map keys that are not scalars (the entry is dropped)
//   - explicit tags other than !!str on a scalar (the node is reported and skipped)
//   - a second document in the stream
// After a syntax error *root is a kInvalid node (the tree is incomplete and must not be decoded);
// after the other errors it is the tree without the offending parts, so the caller can go on and
// report schema errors too. An empty stream (nothing but comments or whitespace) is not an error
// here: *root is then a null node with line 0, and the caller decides what that means.
bool ParseYaml(absl::string_view text, Value* root, std::vector<ConfigError>* errors);

}  // namespace remora::config
