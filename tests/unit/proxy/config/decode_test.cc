#include "proxy/config/decode.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace remora::config {
namespace {

// Decodes `text`, expecting failure, and returns the formatted errors ("t.yaml:LINE: ...").
std::vector<std::string> Errors(const std::string& text) {
  Config config;
  std::vector<ConfigError> errors;
  EXPECT_FALSE(DecodeConfig(text, &config, &errors)) << text;
  std::vector<std::string> out;
  for (const ConfigError& e : errors) out.push_back(e.Format("t.yaml"));
  return out;
}

Config Decode(const std::string& text) {
  Config config;
  std::vector<ConfigError> errors;
  EXPECT_TRUE(DecodeConfig(text, &config, &errors))
      << (errors.empty() ? "" : errors[0].Format("t.yaml"));
  return config;
}

// A valid config with one cluster "app" that tests extend at the end.
constexpr char kBase[] =
    "clusters:\n"                        // 1
    "  - name: app\n"                    // 2
    "    endpoints:\n"                   // 3
    "      - address: 127.0.0.1:8080\n"  // 4
    "listeners:\n";                      // 5

// One listener entry in block style, starting at the given indentation.
std::string ListenerYaml(const std::string& name, const std::string& address) {
  return "  - name: " + name + "\n    address: \"" + address +
         "\"\n    kind: tcp\n    cluster: app\n";
}

TEST(DecodeConfigTest, FullConfig) {
  Config c = Decode(R"(
admin:
  address: "[::1]:15000"
  token: "s3cret"
  unix_socket: /run/remora/admin.sock
workers: 4
drain_timeout: 250ms
log_level: debug
listeners:
  - name: app-in
    address: 127.0.0.1:15001
    kind: tcp
    cluster: app
    buffer_limit_bytes: 16384
  - name: any.out_1
    address: 0.0.0.0:0
    kind: tcp
    cluster: db
clusters:
  - name: app
    connect_timeout: 1.5s
    max_connections: 10
    endpoints:
      - address: 127.0.0.1:8080
        weight: 3
      - address: "[2001:DB8::1]:8081"
  - name: db
    endpoints:
      - address: 10.0.0.7:5432
)");
  EXPECT_EQ(c.admin.address.ip, "::1");
  EXPECT_EQ(c.admin.address.port, 15000);
  EXPECT_TRUE(c.admin.address.is_ipv6);
  EXPECT_EQ(c.admin.token, "s3cret");
  EXPECT_EQ(c.admin.unix_socket, "/run/remora/admin.sock");
  EXPECT_EQ(c.workers, 4u);
  EXPECT_EQ(c.drain_timeout, absl::Milliseconds(250));
  EXPECT_EQ(c.log_level, LogLevel::kDebug);
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].name, "app-in");
  EXPECT_EQ(c.listeners[0].address.ToString(), "127.0.0.1:15001");
  EXPECT_EQ(c.listeners[0].kind, ListenerKind::kTcp);
  EXPECT_EQ(c.listeners[0].cluster, "app");
  EXPECT_EQ(c.listeners[0].buffer_limit_bytes, 16384u);
  EXPECT_EQ(c.listeners[0].line, 10);
  EXPECT_EQ(c.listeners[1].name, "any.out_1");
  EXPECT_EQ(c.listeners[1].address.port, 0);
  EXPECT_EQ(c.listeners[1].buffer_limit_bytes, 256u * 1024);  // default
  ASSERT_EQ(c.clusters.size(), 2u);
  EXPECT_EQ(c.clusters[0].name, "app");
  EXPECT_EQ(c.clusters[0].line, 20);
  EXPECT_EQ(c.clusters[0].connect_timeout, absl::Milliseconds(1500));
  EXPECT_EQ(c.clusters[0].max_connections, 10u);
  ASSERT_EQ(c.clusters[0].endpoints.size(), 2u);
  EXPECT_EQ(c.clusters[0].endpoints[0].weight, 3u);
  EXPECT_EQ(c.clusters[0].endpoints[1].address.ToString(), "[2001:db8::1]:8081");  // canonical
  EXPECT_EQ(c.clusters[0].endpoints[1].weight, 1u);
  EXPECT_EQ(c.clusters[1].connect_timeout, absl::Seconds(5));  // default
  EXPECT_EQ(c.clusters[1].max_connections, 1024u);             // default
  ASSERT_NE(c.FindCluster("db"), nullptr);
  EXPECT_EQ(c.FindCluster("db")->endpoints[0].address.port, 5432);
  EXPECT_EQ(c.FindCluster("nope"), nullptr);
}

TEST(DecodeConfigTest, EmptyMapGivesDefaults) {
  Config c = Decode("{}");
  EXPECT_EQ(c.admin.address.ToString(), "127.0.0.1:15000");
  EXPECT_TRUE(c.admin.token.empty());
  EXPECT_TRUE(c.admin.unix_socket.empty());
  EXPECT_EQ(c.workers, 0u);
  EXPECT_EQ(c.drain_timeout, absl::Seconds(30));
  EXPECT_EQ(c.log_level, LogLevel::kInfo);
  EXPECT_TRUE(c.listeners.empty());
  EXPECT_TRUE(c.clusters.empty());
}

TEST(DecodeConfigTest, NullOptionalFieldsMeanDefaults) {
  Config c = Decode("admin:\nworkers: ~\ndrain_timeout: null\nlisteners:\nclusters: []\n");
  EXPECT_EQ(c.workers, 0u);
  EXPECT_EQ(c.drain_timeout, absl::Seconds(30));
  EXPECT_EQ(c.admin.address.port, 15000);
}

TEST(DecodeConfigTest, Json) {
  Config c = Decode(R"({"workers": 2, "log_level": "warn",
    "listeners": [{"name": "in", "address": "127.0.0.1:15001", "kind": "tcp", "cluster": "c"}],
    "clusters": [{"name": "c", "connect_timeout": "2m",
                  "endpoints": [{"address": "127.0.0.1:80", "weight": 7}]}]})");
  EXPECT_EQ(c.workers, 2u);
  EXPECT_EQ(c.log_level, LogLevel::kWarn);
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].cluster, "c");
  EXPECT_EQ(c.clusters[0].connect_timeout, absl::Minutes(2));
  EXPECT_EQ(c.clusters[0].endpoints[0].weight, 7u);

  EXPECT_EQ(Errors(R"({"workers": "2"})"),
            (std::vector<std::string>{"t.yaml:1: workers: expected an integer, got string \"2\" "
                                      "(remove the quotes to make it a number)"}));
}

TEST(DecodeConfigTest, LogLevelsIncludingOffWhichIsAStringInYaml12) {
  const char* names[] = {"trace", "debug", "info", "warn", "error", "off"};
  for (int i = 0; i < 6; ++i) {
    Config c = Decode(std::string("log_level: ") + names[i] + "\n");
    EXPECT_EQ(c.log_level, static_cast<LogLevel>(i)) << names[i];
    EXPECT_STREQ(LogLevelName(c.log_level), names[i]);
  }
  EXPECT_STREQ(ListenerKindName(ListenerKind::kTcp), "tcp");
}

TEST(DecodeConfigTest, IntegerFormsAndLimits) {
  EXPECT_EQ(Decode("workers: 0x10\n").workers, 16u);
  EXPECT_EQ(Decode("workers: 0o20\n").workers, 16u);
  EXPECT_EQ(Decode("workers: +256\n").workers, 256u);
  EXPECT_EQ(Decode("workers: 0\n").workers, 0u);
  EXPECT_EQ(Errors("workers: 257\n"),
            (std::vector<std::string>{
                "t.yaml:1: workers: must be between 0 and 256 (0 = automatic), got 257"}));
  EXPECT_EQ(Errors("workers: 1.0\n"),
            (std::vector<std::string>{"t.yaml:1: workers: expected an integer, got number 1.0"}));
  EXPECT_EQ(Errors("workers: [1]\n"),
            (std::vector<std::string>{"t.yaml:1: workers: expected an integer, got a list"}));
  EXPECT_EQ(
      Errors("workers: yes\n"),
      (std::vector<std::string>{"t.yaml:1: workers: expected an integer, got string \"yes\""}));
}

TEST(DecodeConfigTest, DocumentLevelErrors) {
  EXPECT_EQ(Errors(""),
            (std::vector<std::string>{"t.yaml: empty config; write {} to use every default"}));
  EXPECT_EQ(Errors("---\n"),
            (std::vector<std::string>{"t.yaml: empty config; write {} to use every default"}));
  EXPECT_EQ(Errors("\n- a\n"),
            (std::vector<std::string>{"t.yaml:2: the top level must be a map, got a list"}));
  EXPECT_EQ(Errors("just text\n"),
            (std::vector<std::string>{"t.yaml:1: the top level must be a map, got string "
                                      "\"just text\""}));
}

TEST(DecodeConfigTest, UnknownFieldsAreReportedAtTheKeyWithSuggestions) {
  EXPECT_EQ(Errors("admin:\n  adress: 127.0.0.1:1\n  Token: x\n  zzz: 1\n"),
            (std::vector<std::string>{
                "t.yaml:2: admin.adress: unknown field \"adress\" (did you mean \"address\"?); "
                "allowed fields: address, token, unix_socket",
                "t.yaml:3: admin.Token: unknown field \"Token\" (did you mean \"token\"?); "
                "allowed fields: address, token, unix_socket",
                "t.yaml:4: admin.zzz: unknown field \"zzz\"; allowed fields: address, token, "
                "unix_socket"}));
}

TEST(DecodeConfigTest, MissingRequiredFieldsPointAtTheParentMap) {
  EXPECT_EQ(Errors(std::string(kBase) + "  - name: x\n    kind: tcp\n    cluster: app\n"),
            (std::vector<std::string>{"t.yaml:6: listeners[0].address: missing required field"}));
  EXPECT_EQ(Errors("clusters:\n  - name: c\n"),
            (std::vector<std::string>{"t.yaml:2: clusters[0].endpoints: missing required field"}));
  // Present but null is a type error at the field itself.
  EXPECT_EQ(Errors("clusters:\n  - name:\n    endpoints: [{address: 127.0.0.1:1}]\n"),
            (std::vector<std::string>{"t.yaml:2: clusters[0].name: expected a name, got null"}));
}

TEST(DecodeConfigTest, NamesAreValidated) {
  EXPECT_EQ(Errors("clusters:\n  - name: \"\"\n    endpoints: [{address: 127.0.0.1:1}]\n"),
            (std::vector<std::string>{
                "t.yaml:2: clusters[0].name: invalid name \"\"; use 1 to 64 characters from "
                "a-z, A-Z, 0-9, '_', '.' and '-'"}));
  std::string ok64(64, 'a');
  Decode("clusters:\n  - name: " + ok64 + "\n    endpoints: [{address: 127.0.0.1:1}]\n");
  EXPECT_EQ(Errors("clusters:\n  - name: 123\n    endpoints: [{address: 127.0.0.1:1}]\n"),
            (std::vector<std::string>{"t.yaml:2: clusters[0].name: expected a name, got integer "
                                      "123 (quote it to make it a string)"}));
  Decode("clusters:\n  - name: \"123\"\n    endpoints: [{address: 127.0.0.1:1}]\n");
}

TEST(DecodeConfigTest, DuplicateNames) {
  EXPECT_EQ(Errors(std::string(kBase) + ListenerYaml("a", "127.0.0.1:1") +
                   ListenerYaml("a", "127.0.0.1:2")),
            (std::vector<std::string>{
                "t.yaml:10: listeners[1].name: duplicate listener name \"a\" (first defined on "
                "line 6)"}));
  EXPECT_EQ(Errors("clusters:\n  - {name: c, endpoints: [{address: 127.0.0.1:1}]}\n"
                   "  - {name: c, endpoints: [{address: 127.0.0.1:1}]}\n"),
            (std::vector<std::string>{
                "t.yaml:3: clusters[1].name: duplicate cluster name \"c\" (first defined on "
                "line 2)"}));
  // A listener and a cluster may share a name.
  Decode(std::string(kBase) + ListenerYaml("app", "127.0.0.1:1"));
}

TEST(DecodeConfigTest, DanglingClusterReference) {
  EXPECT_EQ(Errors(std::string(kBase) + ListenerYaml("a", "127.0.0.1:1") +
                   "  - name: b\n    address: 127.0.0.1:2\n    kind: tcp\n    cluster: pay\n"),
            (std::vector<std::string>{"t.yaml:13: listeners[1].cluster: unknown cluster \"pay\""}));
  // No clusters at all: every reference dangles.
  EXPECT_EQ(Errors("listeners:\n  - {name: a, address: 127.0.0.1:1, kind: tcp, cluster: x}\n"),
            (std::vector<std::string>{"t.yaml:2: listeners[0].cluster: unknown cluster \"x\""}));
  // A cluster whose name was itself wrong does not also make references to it dangle.
  EXPECT_EQ(Errors("clusters:\n  - {name: \"b c\", endpoints: [{address: 127.0.0.1:1}]}\n"
                   "listeners:\n  - {name: a, address: 127.0.0.1:1, kind: tcp, cluster: d}\n"),
            (std::vector<std::string>{
                "t.yaml:2: clusters[0].name: invalid name \"b c\"; use 1 to 64 characters from "
                "a-z, A-Z, 0-9, '_', '.' and '-'",
                "t.yaml:4: listeners[0].cluster: unknown cluster \"d\""}));
  // When the cluster list is unreadable, references are not judged.
  EXPECT_EQ(Errors("clusters: 5\n"
                   "listeners:\n  - {name: a, address: 127.0.0.1:1, kind: tcp, cluster: d}\n"),
            (std::vector<std::string>{"t.yaml:1: clusters: expected a list, got integer 5"}));
}

TEST(DecodeConfigTest, ListenerAddressConflicts) {
  auto two = [](const std::string& a, const std::string& b) {
    return std::string(kBase) + ListenerYaml("first", a) + ListenerYaml("second", b);
  };
  const std::string exact_prefix = "t.yaml:11: listeners[1].address: address ";
  EXPECT_EQ(Errors(two("127.0.0.1:7000", "127.0.0.1:7000")),
            (std::vector<std::string>{exact_prefix +
                                      "127.0.0.1:7000 is already used by listener \"first\" "
                                      "(line 7)"}));
  EXPECT_EQ(
      Errors(two("10.1.2.3:7000", "0.0.0.0:7000")),
      (std::vector<std::string>{
          exact_prefix + "0.0.0.0:7000 overlaps listener \"first\" on 10.1.2.3:7000 (line "
                         "7); a wildcard address takes the port on every address of its family"}));
  EXPECT_EQ(Errors(two("[::1]:7000", "[::]:7000")).size(), 1u);
  EXPECT_EQ(Errors(two("[::1]:7000", "[0::1]:7000")).size(), 1u);  // same after canonicalizing
  // No conflict: port 0, different ports, different IPs, 0.0.0.0 vs an IPv6 address.
  Decode(two("127.0.0.1:0", "127.0.0.1:0"));
  Decode(two("0.0.0.0:0", "127.0.0.1:0"));
  Decode(two("127.0.0.1:7000", "127.0.0.1:7001"));
  Decode(two("127.0.0.1:7000", "127.0.0.2:7000"));
  Decode(two("0.0.0.0:7000", "[::1]:7000"));
  // IPv6 listeners are bound IPv6-only: [::] takes no IPv4 address, so a dual-stack sidecar
  // listens on both wildcards with one port.
  Decode(two("[::]:7000", "127.0.0.1:7000"));
  Decode(two("0.0.0.0:15001", "[::]:15001"));
}

TEST(DecodeConfigTest, AdminAddressConflicts) {
  EXPECT_EQ(Errors(std::string("admin:\n  address: 127.0.0.1:7000\n") + kBase +
                   ListenerYaml("l", "127.0.0.1:7000")),
            (std::vector<std::string>{
                "t.yaml:2: admin.address: address 127.0.0.1:7000 conflicts with listener \"l\" "
                "on 127.0.0.1:7000 (line 9)"}));
  EXPECT_EQ(Errors(std::string(kBase) + ListenerYaml("l", "127.0.0.1:15000")),
            (std::vector<std::string>{
                "t.yaml:7: listeners[0].address: address 127.0.0.1:15000 conflicts with the "
                "admin address 127.0.0.1:15000 (the default; set admin.address to move it)"}));
  // Moving the admin address away resolves it.
  Decode(std::string("admin: {address: 127.0.0.1:15999}\n") + kBase +
         ListenerYaml("l", "127.0.0.1:15000"));
}

TEST(DecodeConfigTest, AdminFields) {
  EXPECT_EQ(Errors("admin:\n  unix_socket: run/x.sock\n"),
            (std::vector<std::string>{
                "t.yaml:2: admin.unix_socket: must be an absolute path, got \"run/x.sock\""}));
  EXPECT_EQ(Errors("admin:\n  unix_socket: /" + std::string(107, 'a') + "\n"),
            (std::vector<std::string>{"t.yaml:2: admin.unix_socket: is 108 bytes long; a unix "
                                      "socket path is at most 107 bytes"}));
  EXPECT_EQ(Errors("admin:\n  token: |\n    abc\n"),
            (std::vector<std::string>{"t.yaml:2: admin.token: must contain only visible ascii "
                                      "characters (no spaces or line breaks)"}));
  EXPECT_EQ(Errors("admin:\n  token: 12345\n"),
            (std::vector<std::string>{"t.yaml:2: admin.token: expected a string, got integer "
                                      "12345 (quote it to make it a string)"}));
  EXPECT_EQ(Decode("admin:\n  token: \"12345\"\n").admin.token, "12345");
  EXPECT_EQ(Decode("admin:\n  address: 127.0.0.1:0\n").admin.address.port, 0);
}

TEST(DecodeConfigTest, EndpointsNeedAPortAndAreUniquePerCluster) {
  EXPECT_EQ(Errors("clusters:\n  - name: c\n    endpoints:\n      - address: 127.0.0.1:0\n"),
            (std::vector<std::string>{
                "t.yaml:4: clusters[0].endpoints[0].address: invalid address \"127.0.0.1:0\": "
                "port 0 is not allowed for an endpoint (1..65535)"}));
  EXPECT_EQ(Errors("clusters:\n  - name: c\n    endpoints: []\n"),
            (std::vector<std::string>{
                "t.yaml:3: clusters[0].endpoints: must list at least one endpoint"}));
  EXPECT_EQ(Errors("clusters:\n  - name: c\n    endpoints:\n      - address: \"[::1]:80\"\n"
                   "      - address: \"[0:0::1]:80\"\n"),
            (std::vector<std::string>{
                "t.yaml:5: clusters[0].endpoints[1].address: duplicate endpoint [::1]:80 (first "
                "defined on line 4)"}));
}

TEST(DecodeConfigTest, ErrorsAreCollectedAndSortedByLine) {
  // Value-level errors (duplicate key, alias) and schema errors come out together, in order.
  std::vector<std::string> errors = Errors(
      "log_level: nope\n"       // 1
      "workers: 1\n"            // 2
      "workers: 2\n"            // 3 duplicate
      "drain_timeout: 1y\n"     // 4
      "admin: &a {token: x}\n"  // 5 anchor
      "clusters:\n"             // 6
      "  - name: c\n"           // 7
      "    bogus: 1\n"          // 8
      "    endpoints: [{address: 127.0.0.1:1}]\n");
  ASSERT_EQ(errors.size(), 5u);
  EXPECT_EQ(errors[0].substr(0, 10), "t.yaml:1: ");
  EXPECT_EQ(errors[1].substr(0, 10), "t.yaml:3: ");
  EXPECT_EQ(errors[2].substr(0, 10), "t.yaml:4: ");
  EXPECT_EQ(errors[3].substr(0, 10), "t.yaml:5: ");
  EXPECT_EQ(errors[4].substr(0, 10), "t.yaml:8: ");
}

TEST(DecodeConfigTest, AppendsToExistingErrors) {
  std::vector<ConfigError> errors = {ConfigError{1, "x", "earlier"}};
  Config c;
  EXPECT_FALSE(DecodeConfig("workers: -1\n", &c, &errors));
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].message, "earlier");
}

TEST(ConfigErrorTest, Format) {
  EXPECT_EQ((ConfigError{7, "listeners[0].kind", "bad"}).Format("a.yaml"),
            "a.yaml:7: listeners[0].kind: bad");
  EXPECT_EQ((ConfigError{3, "", "bad"}).Format("a.yaml"), "a.yaml:3: bad");
  EXPECT_EQ((ConfigError{0, "", "bad"}).Format("a.yaml"), "a.yaml: bad");
  EXPECT_EQ((ConfigError{0, "p", "bad"}).Format("a.yaml"), "a.yaml: p: bad");
}

TEST(LoadConfigFileTest, ReadsAFileAndReportsUnreadableOnes) {
  char path[] = "/tmp/remora_config_testXXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string text = "workers: 3\n";
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  Config c;
  std::vector<ConfigError> errors;
  EXPECT_TRUE(LoadConfigFile(path, &c, &errors));
  EXPECT_EQ(c.workers, 3u);
  unlink(path);

  errors.clear();
  EXPECT_FALSE(LoadConfigFile(path, &c, &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].Format(path),
            std::string(path) + ": cannot open file: no such file or directory");

  errors.clear();
  EXPECT_FALSE(LoadConfigFile("/", &c, &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].Format("/"), "/: cannot read file: is a directory");
}

TEST(ParseDurationTest, Accepts) {
  struct Case {
    const char* text;
    absl::Duration want;
  };
  for (const Case& c : std::vector<Case>{
           {"0s", absl::ZeroDuration()},
           {"0ms", absl::ZeroDuration()},
           {"250ms", absl::Milliseconds(250)},
           {"1.5s", absl::Milliseconds(1500)},
           {".5s", absl::Milliseconds(500)},
           {"2m", absl::Minutes(2)},
           {"1h", absl::Hours(1)},
           {"1.5h", absl::Minutes(90)},
           {"1m30s", absl::Seconds(90)},
           {"1h0m0.001s", absl::Hours(1) + absl::Milliseconds(1)},
           {"0.000001ms", absl::Nanoseconds(1)},
           {"0.0000001ms", absl::ZeroDuration()},  // below 1ns: truncated
           {"1.0000000019s", absl::Seconds(1) + absl::Nanoseconds(1)},
           {"0.000000000000000000001h", absl::ZeroDuration()},
           {"2562047h", absl::Hours(2562047)},
       }) {
    absl::Duration d;
    EXPECT_TRUE(config::ParseDuration(c.text, &d)) << c.text;
    EXPECT_EQ(d, c.want) << c.text;
  }
}

TEST(ParseDurationTest, Rejects) {
  for (const char* text :
       {"",        "5",     "s",    "5 s", " 5s", "5s ",   "-5s",
        "+5s",     "5S",    "5sec", "5us", "5ns", "5d",    "1.s",
        ".s",      "1..5s", "1e3s", "5m3", "inf", "0x10s", "99999999999999999999999h",
        "2562048h"}) {
    absl::Duration d;
    EXPECT_FALSE(config::ParseDuration(text, &d)) << text;
  }
}

TEST(DurationToStringTest, LargestExactUnitAndRoundTrip) {
  EXPECT_EQ(DurationToString(absl::ZeroDuration()), "0s");
  EXPECT_EQ(DurationToString(absl::Milliseconds(250)), "250ms");
  EXPECT_EQ(DurationToString(absl::Seconds(5)), "5s");
  EXPECT_EQ(DurationToString(absl::Seconds(90)), "90s");
  EXPECT_EQ(DurationToString(absl::Minutes(2)), "2m");
  EXPECT_EQ(DurationToString(absl::Hours(3)), "3h");
  EXPECT_EQ(DurationToString(absl::Milliseconds(1500)), "1500ms");
  EXPECT_EQ(DurationToString(absl::Nanoseconds(1000500)), "0.0010005s");
  for (absl::Duration d : {absl::Nanoseconds(1), absl::Nanoseconds(1999999999),
                           absl::Hours(1) + absl::Nanoseconds(7), absl::Microseconds(3)}) {
    absl::Duration back;
    ASSERT_TRUE(config::ParseDuration(DurationToString(d), &back)) << DurationToString(d);
    EXPECT_EQ(back, d) << DurationToString(d);
  }
}

TEST(ParseSocketAddressTest, Accepts) {
  struct Case {
    const char* text;
    const char* ip;
    uint16_t port;
    bool v6;
  };
  for (const Case& c : std::vector<Case>{
           {"127.0.0.1:80", "127.0.0.1", 80, false},
           {"0.0.0.0:0", "0.0.0.0", 0, false},
           {"255.255.255.255:65535", "255.255.255.255", 65535, false},
           {"[::1]:15000", "::1", 15000, true},
           {"[::]:1", "::", 1, true},
           {"[2001:DB8:0:0::1]:443", "2001:db8::1", 443, true},
           {"[::ffff:10.0.0.1]:80", "::ffff:10.0.0.1", 80, true},
           {"10.0.0.1:080", "10.0.0.1", 80, false},
       }) {
    SocketAddress a;
    ASSERT_TRUE(ParseSocketAddress(c.text, &a)) << c.text;
    EXPECT_EQ(a.ip, c.ip) << c.text;
    EXPECT_EQ(a.port, c.port) << c.text;
    EXPECT_EQ(a.is_ipv6, c.v6) << c.text;
  }
  SocketAddress a;
  ASSERT_TRUE(ParseSocketAddress("[::1]:80", &a));
  EXPECT_EQ(a.ToString(), "[::1]:80");
  EXPECT_EQ(a, (SocketAddress{"::1", 80, true}));
}

TEST(ParseSocketAddressTest, Rejects) {
  for (const char* text : {"",
                           ":",
                           ":80",
                           "127.0.0.1",
                           "127.0.0.1:",
                           "127.0.0.1:65536",
                           "127.0.0.1:-1",
                           "127.0.0.1:+80",
                           "127.0.0.1:http",
                           "127.0.0.1:80 ",
                           " 127.0.0.1:80",
                           "localhost:80",
                           "example.com:443",
                           "1.2.3:80",
                           "1.2.3.4.5:80",
                           "01.2.3.4:80",
                           "256.0.0.1:80",
                           "::1:80",
                           "::1",
                           "[::1]",
                           "[::1]:",
                           "[::1]80",
                           "[::1:80",
                           "[::g]:80",
                           "[127.0.0.1]:80",
                           "[fe80::1%eth0]:80",
                           "127.0.0.1:99999999999999999999"}) {
    SocketAddress a;
    EXPECT_FALSE(ParseSocketAddress(text, &a)) << text;
  }
  SocketAddress a;
  EXPECT_FALSE(ParseSocketAddress(absl::string_view("1.2.3.4\0:80", 11), &a));
}

TEST(DecodeConfigTest, AddressMessages) {
  auto admin = [](const std::string& address) {
    return Errors("admin:\n  address: \"" + address + "\"\n");
  };
  const std::string p = "t.yaml:2: admin.address: invalid address ";
  EXPECT_EQ(admin("localhost:1"),
            (std::vector<std::string>{p + "\"localhost:1\": hostnames are not allowed; use an "
                                          "ip literal such as 127.0.0.1"}));
  EXPECT_EQ(admin("10.0.0.1"),
            (std::vector<std::string>{p + "\"10.0.0.1\": missing port (expected ip:port, such "
                                          "as 127.0.0.1:8080)"}));
  EXPECT_EQ(admin("::1"),
            (std::vector<std::string>{p + "\"::1\": missing port; write an ipv6 address in "
                                          "brackets with a port, such as [::1]:8080"}));
  EXPECT_EQ(admin("1.2.3.4:http"),
            (std::vector<std::string>{p + "\"1.2.3.4:http\": port \"http\" is not a number"}));
  EXPECT_EQ(
      admin(":80"),
      (std::vector<std::string>{p + "\":80\": missing ip (use 0.0.0.0 to listen on every ipv4 "
                                    "address)"}));
  EXPECT_EQ(admin("[::1"),
            (std::vector<std::string>{p + "\"[::1\": missing \"]\" after the ipv6 address"}));
  EXPECT_EQ(admin("[::1]x"),
            (std::vector<std::string>{p + "\"[::1]x\": expected \":\" and a port after \"]\""}));
  EXPECT_EQ(Errors("admin:\n  address: 8080\n"),
            (std::vector<std::string>{"t.yaml:2: admin.address: expected an address such as "
                                      "\"127.0.0.1:8080\", got integer 8080 (quote it to make "
                                      "it a string)"}));
  EXPECT_EQ(Errors("admin:\n  address:\n    - \"::1\"\n"),
            (std::vector<std::string>{"t.yaml:3: admin.address: expected an address such as "
                                      "\"127.0.0.1:8080\", got a list (quote ipv6 addresses: "
                                      "\"[::1]:8080\")"}));
}

TEST(DecodeConfigTest, DurationMessages) {
  EXPECT_EQ(Errors("drain_timeout: 30\n"),
            (std::vector<std::string>{"t.yaml:1: drain_timeout: expected a duration, got integer "
                                      "30 (add a unit, such as \"30s\")"}));
  EXPECT_EQ(Errors("drain_timeout: 5 sec\n"),
            (std::vector<std::string>{
                "t.yaml:1: drain_timeout: invalid duration \"5 sec\"; expected a number and a "
                "unit (ms, s, m or h), such as \"250ms\", \"1.5s\" or \"2m\""}));
  EXPECT_EQ(
      Errors("drain_timeout: 61m\n"),
      (std::vector<std::string>{"t.yaml:1: drain_timeout: must be between 0s and 1h, got 61m"}));
  EXPECT_EQ(Decode("drain_timeout: \"1h\"\n").drain_timeout, absl::Hours(1));
  EXPECT_EQ(Decode("drain_timeout: 0s\n").drain_timeout, absl::ZeroDuration());
  EXPECT_EQ(Errors("clusters:\n  - {name: c, connect_timeout: 0.5ms, endpoints: "
                   "[{address: 127.0.0.1:1}]}\n"),
            (std::vector<std::string>{"t.yaml:2: clusters[0].connect_timeout: must be between "
                                      "1ms and 5m, got 0.5ms"}));
}

// An http listener on line 6 whose one route (line 10) ends with `extra` (indented 8).
std::string RouteYaml(const std::string& extra) {
  return std::string(kBase) +
         "  - name: web\n"             // 6
         "    address: 127.0.0.1:0\n"  // 7
         "    kind: http\n"            // 8
         "    routes:\n"               // 9
         "      - cluster: app\n" +    // 10
         extra;
}

TEST(DecodeConfigTest, RetryPolicy) {
  Config c =
      Decode(RouteYaml("        idempotent: true\n"
                       "        retries:\n"
                       "          attempts: 5\n"
                       "          retry_on: [connect-failure, 503, unavailable, cancelled, 429]\n"
                       "          per_try_timeout: 200ms\n"
                       "          backoff: {base: 5ms, max: 80ms}\n"
                       "          buffer_limit_bytes: 1024\n"));
  const Route& r = c.listeners[0].routes[0];
  EXPECT_TRUE(r.idempotent);
  EXPECT_TRUE(r.has_retries);
  EXPECT_EQ(r.retries.attempts, 5u);
  EXPECT_EQ(r.retries.retry_on, uint32_t{kRetryOnConnectFailure});
  EXPECT_EQ(r.retries.status_codes, (std::vector<uint16_t>{503, 429}));
  EXPECT_EQ(r.retries.grpc_statuses, (1u << 14) | (1u << 1));
  EXPECT_EQ(r.retries.per_try_timeout, absl::Milliseconds(200));
  EXPECT_EQ(r.retries.backoff_base, absl::Milliseconds(5));
  EXPECT_EQ(r.retries.backoff_max, absl::Milliseconds(80));
  EXPECT_EQ(r.retries.buffer_limit_bytes, 1024u);
  EXPECT_EQ(RetryOnNames(r.retries),
            (std::vector<std::string>{"connect-failure", "cancelled", "unavailable"}));

  // An empty block takes every default; no block means no retry policy.
  Config d = Decode(RouteYaml("        retries: {}\n"));
  EXPECT_TRUE(d.listeners[0].routes[0].has_retries);
  EXPECT_EQ(d.listeners[0].routes[0].retries.attempts, 3u);
  EXPECT_EQ(
      RetryOnNames(d.listeners[0].routes[0].retries),
      (std::vector<std::string>{"gateway-error", "reset", "connect-failure", "refused-stream"}));
  EXPECT_FALSE(d.listeners[0].routes[0].idempotent);
  EXPECT_FALSE(Decode(RouteYaml("")).listeners[0].routes[0].has_retries);
}

TEST(DecodeConfigTest, RetryPolicyErrors) {
  EXPECT_EQ(Errors(RouteYaml("        retries:\n"
                             "          attempts: 0\n"
                             "          retry_on: [5xx, flaky, 200, 503]\n"
                             "          backoff: {base: 1s, max: 100ms}\n"
                             "          per_try_timeout: 3\n")),
            (std::vector<std::string>{
                "t.yaml:12: listeners[0].routes[0].retries.attempts: must be between 1 and 10 "
                "(the first one included), got 0",
                "t.yaml:13: listeners[0].routes[0].retries.retry_on[1]: unknown retry condition "
                "\"flaky\"; allowed values: 5xx, gateway-error, reset, connect-failure, "
                "refused-stream, cancelled, deadline-exceeded, resource-exhausted, internal, "
                "unavailable, or a status code 400-599",
                "t.yaml:13: listeners[0].routes[0].retries.retry_on[2]: a retried status must be "
                "between 400 and 599, got 200",
                "t.yaml:14: listeners[0].routes[0].retries.backoff.max: max (100ms) must not be "
                "below base (1s)",
                "t.yaml:15: listeners[0].routes[0].retries.per_try_timeout: expected a duration, "
                "got integer 3 (add a unit, such as \"3s\")"}));
  EXPECT_EQ(Errors(RouteYaml("        idempotent: yes please\n")),
            (std::vector<std::string>{"t.yaml:11: listeners[0].routes[0].idempotent: expected "
                                      "true or false, got string \"yes please\""}));
}

TEST(DecodeConfigTest, LoadBalancing) {
  Config d = Decode("clusters:\n  - {name: c, endpoints: [{address: 127.0.0.1:1}]}\n");
  EXPECT_EQ(d.clusters[0].lb_policy, LbPolicy::kLeastRequest);
  EXPECT_EQ(d.clusters[0].max_requests, 0u);
  EXPECT_EQ(
      Decode("clusters:\n  - {name: c, max_requests: 7, endpoints: [{address: 127.0.0.1:1}]}\n")
          .clusters[0]
          .max_requests,
      7u);
  Config c = Decode(
      "clusters:\n  - {name: c, lb_policy: ring_hash, hash_on: {header: X-User}, endpoints: "
      "[{address: 127.0.0.1:1}]}\n");
  EXPECT_EQ(c.clusters[0].lb_policy, LbPolicy::kRingHash);
  EXPECT_EQ(c.clusters[0].hash_header, "x-user");
  Config a = Decode(
      "clusters:\n  - {name: c, lb_policy: ring_hash, hash_on: {client_address: true}, "
      "endpoints: [{address: 127.0.0.1:1}]}\n");
  EXPECT_EQ(a.clusters[0].hash_header, "");
  EXPECT_EQ(Errors("clusters:\n  - {name: c, lb_policy: fastest, endpoints: "
                   "[{address: 127.0.0.1:1}]}\n"),
            (std::vector<std::string>{
                "t.yaml:2: clusters[0].lb_policy: unknown load balancing policy \"fastest\"; "
                "allowed values: round_robin, random, least_request, ring_hash"}));
  EXPECT_EQ(Errors("clusters:\n  - {name: c, hash_on: {header: x}, endpoints: "
                   "[{address: 127.0.0.1:1}]}\n"),
            (std::vector<std::string>{
                "t.yaml:2: clusters[0].hash_on: hash_on applies to lb_policy: ring_hash only"}));
  EXPECT_EQ(Errors("clusters:\n  - {name: c, lb_policy: ring_hash, hash_on: {header: x, "
                   "client_address: true}, endpoints: [{address: 127.0.0.1:1}]}\n"),
            (std::vector<std::string>{
                "t.yaml:2: clusters[0].hash_on: give exactly one of header and client_address"}));
}

TEST(DecodeConfigTest, RetryBudget) {
  Config c = Decode(
      "clusters:\n  - {name: c, retry_budget: {ratio: 0.5, min_concurrency: 0}, endpoints: "
      "[{address: 127.0.0.1:1}]}\n");
  EXPECT_EQ(c.clusters[0].retry_budget_ratio, 0.5);
  EXPECT_EQ(c.clusters[0].retry_budget_min_concurrency, 0u);
  Config d = Decode("clusters:\n  - {name: c, endpoints: [{address: 127.0.0.1:1}]}\n");
  EXPECT_EQ(d.clusters[0].retry_budget_ratio, 0.2);
  EXPECT_EQ(d.clusters[0].retry_budget_min_concurrency, 3u);
  EXPECT_EQ(Errors("clusters:\n  - {name: c, retry_budget: {ratio: 1.5}, endpoints: "
                   "[{address: 127.0.0.1:1}]}\n"),
            (std::vector<std::string>{
                "t.yaml:2: clusters[0].retry_budget.ratio: must be between 0 and 1, got 1.5"}));
  EXPECT_EQ(Errors("clusters:\n  - {name: c, retry_budget: {ratio: \"0.1\"}, endpoints: "
                   "[{address: 127.0.0.1:1}]}\n"),
            (std::vector<std::string>{"t.yaml:2: clusters[0].retry_budget.ratio: expected a "
                                      "number between 0 and 1, got string \"0.1\""}));
}

TEST(DecodeConfigTest, CircuitBreaker) {
  Config c = Decode(
      "clusters:\n  - {name: c, circuit_breaker: {}, endpoints: [{address: 127.0.0.1:1}]}\n");
  const CircuitBreaker& b = c.clusters[0].circuit_breaker;
  EXPECT_TRUE(b.enabled);
  EXPECT_EQ(b.consecutive_failures, 5u);
  EXPECT_EQ(b.open_for, absl::Seconds(5));
  EXPECT_EQ(b.max_open_for, absl::Seconds(60));
  EXPECT_FALSE(Decode("clusters:\n  - {name: c, endpoints: [{address: 127.0.0.1:1}]}\n")
                   .clusters[0]
                   .circuit_breaker.enabled);
  // open_for alone above the default cap raises the cap with it.
  EXPECT_EQ(Decode("clusters:\n  - {name: c, circuit_breaker: {open_for: 2m}, endpoints: "
                   "[{address: 127.0.0.1:1}]}\n")
                .clusters[0]
                .circuit_breaker.max_open_for,
            absl::Minutes(2));
  EXPECT_EQ(
      Errors("clusters:\n  - name: c\n    circuit_breaker:\n      failure_on: [5xx, slow]\n"
             "      open_for: 10s\n      max_open_for: 5s\n      max_ejection_percent: 101\n"
             "    endpoints: [{address: 127.0.0.1:1}]\n"),
      (std::vector<std::string>{
          "t.yaml:4: clusters[0].circuit_breaker.failure_on[1]: unknown failure class \"slow\"; "
          "allowed values: 5xx, gateway-error, reset, connect-failure, timeout",
          "t.yaml:6: clusters[0].circuit_breaker.max_open_for: must not be below open_for (10s)",
          "t.yaml:7: clusters[0].circuit_breaker.max_ejection_percent: must be between 0 and 100 "
          "(percent), got 101"}));
  EXPECT_EQ(Errors("clusters:\n  - {name: c, circuit_breaker: {consecutive_failures: 0}, "
                   "endpoints: [{address: 127.0.0.1:1}]}\n"),
            (std::vector<std::string>{"t.yaml:2: clusters[0].circuit_breaker: set "
                                      "consecutive_failures or failure_ratio (or leave "
                                      "circuit_breaker out)"}));
}

TEST(DecodeConfigTest, Fallback) {
  Config c = Decode(
      "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    kind: http\n    routes:\n"
      "      - cluster: c\n        fallback: {status: 200, body: cached, headers: "
      "[{name: x-a, value: b}]}\n"
      "clusters:\n  - {name: c, endpoints: [{address: 127.0.0.1:1}]}\n");
  const Route& r = c.listeners[0].routes[0];
  EXPECT_TRUE(r.has_fallback);
  EXPECT_EQ(r.fallback.status, 200);
  EXPECT_EQ(r.fallback.body, "cached");
  ASSERT_EQ(r.fallback.headers.size(), 1u);
  EXPECT_EQ(r.fallback.headers[0].name, "x-a");
  EXPECT_EQ(Errors("listeners:\n  - name: l\n    address: 127.0.0.1:0\n    kind: http\n"
                   "    routes:\n      - cluster: c\n        fallback: {status: 99}\n"
                   "clusters:\n  - {name: c, endpoints: [{address: 127.0.0.1:1}]}\n"),
            (std::vector<std::string>{"t.yaml:7: listeners[0].routes[0].fallback.status: must be "
                                      "between 200 "
                                      "and 599, got 99"}));
}

TEST(DecodeConfigTest, RateLimit) {
  const std::string head = "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    kind: http\n";
  const std::string tail =
      "    routes:\n      - cluster: c\n"
      "clusters:\n  - {name: c, endpoints: [{address: 127.0.0.1:1}]}\n";
  Config c = Decode(head + "    rate_limit: {requests_per_second: 2.5}\n" + tail);
  const Listener& l = c.listeners[0];
  EXPECT_TRUE(l.has_rate_limit);
  EXPECT_EQ(l.rate_limit.requests_per_second, 2.5);
  EXPECT_EQ(l.rate_limit.burst, 3u);  // a second's worth, rounded up
  EXPECT_FALSE(l.rate_limit.keyed());
  Config k = Decode(head +
                    "    rate_limit: {requests_per_second: 100, burst: 7, key: {header: X-User}, "
                    "max_keys: 50}\n" +
                    tail);
  EXPECT_EQ(k.listeners[0].rate_limit.key_header, "x-user");
  EXPECT_EQ(k.listeners[0].rate_limit.burst, 7u);
  EXPECT_EQ(k.listeners[0].rate_limit.max_keys, 50u);
  EXPECT_EQ(Errors(head + "    rate_limit: {requests_per_second: 0, key: {}}\n" + tail),
            (std::vector<std::string>{
                "t.yaml:5: listeners[0].rate_limit.requests_per_second: must be between 0.001 "
                "and 1000000000, got 0",
                "t.yaml:5: listeners[0].rate_limit.key: give exactly one of header and "
                "client_address"}));
  EXPECT_EQ(Errors(head + "    rate_limit: {burst: 5}\n" + tail),
            (std::vector<std::string>{
                "t.yaml:5: listeners[0].rate_limit.requests_per_second: missing required field"}));
}

TEST(DecodeConfigTest, Zones) {
  Config c = Decode(
      "zone: us-east-1a\nclusters:\n  - {name: c, endpoints: [{address: 127.0.0.1:1, zone: "
      "us-east-1b}]}\n");
  EXPECT_EQ(c.zone, "us-east-1a");
  EXPECT_EQ(c.clusters[0].endpoints[0].zone, "us-east-1b");
  EXPECT_EQ(Errors("zone: \"a b\"\n"),
            (std::vector<std::string>{"t.yaml:1: zone: invalid name \"a b\"; use 1 to 64 "
                                      "characters from a-z, A-Z, 0-9, '_', '.' and '-'"}));
}

TEST(DecodeConfigTest, TransparentListeners) {
  const std::string clusters = "clusters:\n  - {name: c, endpoints: [{address: 127.0.0.1:1}]}\n";
  Config c = Decode(
      "listeners:\n  - {name: out, address: 0.0.0.0:15001, kind: outbound, detect_timeout: 50ms, "
      "server_first_ports: [3306], tls_routes: [{sni: \"*.example.com\", cluster: c}]}\n"
      "  - {name: in, address: 0.0.0.0:15006, kind: inbound, cluster: c, app_port: 8080, "
      "routes: [{cluster: c}]}\n" +
      clusters);
  const Listener& out = c.listeners[0];
  EXPECT_EQ(out.kind, ListenerKind::kOutbound);
  EXPECT_EQ(out.direction, Direction::kOutbound);
  EXPECT_TRUE(out.routes.empty());  // optional here
  EXPECT_EQ(out.detect_timeout, absl::Milliseconds(50));
  EXPECT_EQ(out.server_first_ports, std::vector<uint16_t>{3306});
  ASSERT_EQ(out.tls_routes.size(), 1u);
  EXPECT_EQ(out.tls_routes[0].sni, "*.example.com");
  EXPECT_EQ(c.listeners[1].direction, Direction::kInbound);
  EXPECT_EQ(c.listeners[1].cluster, "c");
  EXPECT_EQ(c.listeners[1].app_port, 8080);
  EXPECT_EQ(c.listeners[1].server_first_ports.size(), 8u);  // the default list
  EXPECT_EQ(
      Errors("listeners:\n  - {name: out, address: 0.0.0.0:1, kind: outbound, direction: inbound, "
             "tls_routes: [{sni: \"a b\", cluster: nope}]}\n"
             "  - {name: t, address: 0.0.0.0:2, kind: tcp, cluster: c, detect_timeout: 1s}\n" +
             clusters),
      (std::vector<std::string>{
          "t.yaml:2: listeners[0].direction: is implied by kind: outbound",
          "t.yaml:2: listeners[0].tls_routes[0].sni: invalid server name \"a b\"; a host name, "
          "or *. and one",
          "t.yaml:2: listeners[0].tls_routes[0].cluster: unknown cluster \"nope\"",
          "t.yaml:3: listeners[1].detect_timeout: applies to inbound and outbound listeners "
          "only"}));
}

TEST(DecodeConfigTest, TlsRoutesMatchOnSniAlpnOrBoth) {
  const std::string clusters = "clusters:\n  - {name: c, endpoints: [{address: 127.0.0.1:1}]}\n";
  Config c = Decode(
      "listeners:\n  - {name: out, address: 0.0.0.0:15001, kind: outbound, tls_routes: ["
      "{alpn: [h2], cluster: c}, {sni: a.test, alpn: [http/1.1, h2], cluster: c}]}\n" +
      clusters);
  const auto& routes = c.listeners[0].tls_routes;
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_EQ(routes[0].sni, "");
  EXPECT_EQ(routes[0].alpn, std::vector<std::string>{"h2"});
  EXPECT_EQ(routes[1].sni, "a.test");
  EXPECT_EQ(routes[1].alpn, (std::vector<std::string>{"http/1.1", "h2"}));
  EXPECT_EQ(Errors("listeners:\n  - {name: out, address: 0.0.0.0:15001, kind: outbound, "
                   "tls_routes: [{cluster: c}, {alpn: [], cluster: c}, {alpn: [\"\"], "
                   "cluster: c}]}\n" +
                   clusters),
            (std::vector<std::string>{
                "t.yaml:2: listeners[0].tls_routes[0].sni: missing required field (or alpn, or "
                "both)",
                "t.yaml:2: listeners[0].tls_routes[1].alpn: must list at least one protocol (or "
                "leave alpn out)",
                "t.yaml:2: listeners[0].tls_routes[2].alpn[0]: an ALPN protocol name is 1 to 255 "
                "bytes (such as h2 or http/1.1)"}));
}

TEST(DecodeConfigTest, TlsBlocks) {
  Config c = Decode(
      "listeners:\n  - {name: in, address: 127.0.0.1:1, kind: http, routes: [{cluster: c}], "
      "tls: {cert: /c.pem, key: /k.pem, ca: /ca.pem, handshake_timeout: 2s}}\n"
      "clusters:\n  - {name: c, tls: {ca: /ca.pem, trust_domain: mesh.test, sni: c.test}, "
      "endpoints: [{address: 127.0.0.1:2}]}\n");
  EXPECT_TRUE(c.listeners[0].tls.enabled);
  EXPECT_EQ(c.listeners[0].tls.cert, "/c.pem");
  EXPECT_EQ(c.listeners[0].tls.handshake_timeout, absl::Seconds(2));
  EXPECT_TRUE(c.clusters[0].tls.enabled);
  EXPECT_EQ(c.clusters[0].tls.trust_domain, "mesh.test");
  EXPECT_EQ(c.clusters[0].tls.sni, "c.test");
  EXPECT_EQ(
      Errors("listeners:\n"
             "  - {name: a, address: 127.0.0.1:1, kind: tcp, cluster: c, tls: {cert: /c.pem, "
             "sni: x}}\n"
             "  - {name: b, address: 127.0.0.1:2, kind: outbound, tls: {cert: /c, key: /k}}\n"
             "clusters:\n"
             "  - {name: c, tls: {key: /k, spiffe_id: \"spiffe://T/x\"}, endpoints: "
             "[{address: 127.0.0.1:3}]}\n"
             "  - {name: d, tls: {ca: /ca, spiffe_id: \"spiffe://t/x\", trust_domain: t, "
             "handshake_timeout: 1s}, endpoints: [{address: 127.0.0.1:4}]}\n"),
      (std::vector<std::string>{
          "t.yaml:2: listeners[0].tls: cert and key go together: give both or neither",
          "t.yaml:2: listeners[0].tls.sni: applies to a cluster's tls only",
          "t.yaml:3: listeners[1].tls: an outbound listener does not terminate TLS: its "
          "clusters' tls originates it",
          "t.yaml:5: clusters[0].tls: cert and key go together: give both or neither",
          "t.yaml:5: clusters[0].tls: a cluster's tls needs ca (the trust bundle its endpoints "
          "are checked with)",
          "t.yaml:5: clusters[0].tls.spiffe_id: \"spiffe://T/x\": the trust domain \"T\" may "
          "hold only lower-case letters, digits, '.', '-' and '_'",
          "t.yaml:6: clusters[1].tls.handshake_timeout: applies to a listener's tls only (a "
          "cluster's handshake is within connect_timeout)",
          "t.yaml:6: clusters[1].tls.trust_domain: give spiffe_id (one identity) or "
          "trust_domain (any of it), not both"}));
}

TEST(DecodeConfigTest, InboundListenersTakeMutualTlsStrictOrPermissive) {
  const std::string clusters = "clusters:\n  - {name: c, endpoints: [{address: 127.0.0.1:2}]}\n";
  Config c = Decode(
      "listeners:\n  - {name: in, address: 0.0.0.0:15006, kind: inbound, "
      "tls: {cert: /c.pem, key: /k.pem, ca: /ca.pem}}\n"
      "  - {name: in2, address: 0.0.0.0:15007, kind: inbound, "
      "tls: {cert: /c.pem, key: /k.pem, ca: /ca.pem, mode: permissive}}\n");
  EXPECT_EQ(c.listeners[0].tls.mode, config::TlsMode::kStrict);  // secure unless told
  EXPECT_EQ(c.listeners[1].tls.mode, config::TlsMode::kPermissive);
  EXPECT_EQ(
      Errors("listeners:\n"
             "  - {name: a, address: 0.0.0.0:15006, kind: inbound, tls: {cert: /c, key: /k}}\n"
             "  - {name: b, address: 0.0.0.0:15007, kind: inbound, tls: {cert: /c, key: /k, "
             "ca: /ca, mode: lax}}\n"
             "  - {name: d, address: 127.0.0.1:1, kind: tcp, cluster: c, tls: {cert: /c, key: "
             "/k, mode: strict}}\n" +
             clusters +
             "  - {name: e, tls: {ca: /ca, trust_domain: t, mode: strict}, endpoints: "
             "[{address: 127.0.0.1:4}]}\n"),
      (std::vector<std::string>{
          "t.yaml:2: listeners[0].tls: an inbound listener's tls is the mesh's mutual TLS: it "
          "needs ca (the trust bundle callers are checked with)",
          "t.yaml:3: listeners[1].tls.mode: unknown TLS mode \"lax\"; allowed values: strict, "
          "permissive",
          "t.yaml:4: listeners[2].tls.mode: applies to inbound listeners only (an http or tcp "
          "listener with tls takes TLS only)",
          "t.yaml:7: clusters[1].tls.mode: applies to a listener's tls only"}));
}

// An empty allow list would admit everyone (no allow rules: anyone not denied): refused, not
// taken to mean "nobody".
TEST(DecodeConfigTest, AnEmptyAuthorizationListIsRefused) {
  const std::string head =
      "listeners:\n  - name: in\n    address: 127.0.0.1:1\n    kind: http\n    routes:\n"
      "      - cluster: c\n        authorization:\n";
  const std::string clusters = "clusters:\n  - {name: c, endpoints: [{address: 127.0.0.1:2}]}\n";
  EXPECT_EQ(Errors(head + "          allow: []\n          deny: []\n" + clusters),
            (std::vector<std::string>{
                "t.yaml:8: listeners[0].routes[0].authorization.allow: must list at least one "
                "rule (or leave it out)",
                "t.yaml:9: listeners[0].routes[0].authorization.deny: must list at least one "
                "rule (or leave it out)"}));
}

TEST(DecodeConfigTest, AuthorizationRules) {
  const std::string head =
      "listeners:\n  - name: in\n    address: 127.0.0.1:1\n    kind: http\n    routes:\n"
      "      - cluster: c\n        authorization:\n";
  const std::string clusters = "clusters:\n  - {name: c, endpoints: [{address: 127.0.0.1:2}]}\n";
  Config c = Decode(head +
                    "          allow: [{peers: [\"spiffe://td/ns/a/*\", \"ns/b/*\", \"*\"], "
                    "methods: [GET], paths: [\"/x*\"]}]\n"
                    "          deny: [{methods: [DELETE]}]\n" +
                    clusters);
  const config::Route& r = c.listeners[0].routes[0];
  ASSERT_TRUE(r.has_authorization);
  ASSERT_EQ(r.authorization.allow.size(), 1u);
  EXPECT_EQ(r.authorization.allow[0].peers.size(), 3u);
  EXPECT_EQ(r.authorization.deny[0].methods, std::vector<std::string>{"DELETE"});
  EXPECT_EQ(Errors(head +
                   "          allow: [{peers: [\"ns/a\", \"spiffe://TD/x\"]}, {methods: [get]}, "
                   "{paths: [x]}, {}]\n" +
                   clusters),
            (std::vector<std::string>{
                "t.yaml:8: listeners[0].routes[0].authorization.allow[0].peers[0]: expected "
                "ns/NAMESPACE/*, got \"ns/a\"",
                "t.yaml:8: listeners[0].routes[0].authorization.allow[0].peers[1]: expected a "
                "SPIFFE ID (optionally ending in /*), ns/NAMESPACE/* or *: \"spiffe://TD/x\": the "
                "trust domain \"TD\" may hold only lower-case letters, digits, '.', '-' and '_'",
                "t.yaml:8: listeners[0].routes[0].authorization.allow[1].methods[0]: expected an "
                "upper-case method such as GET, got \"get\"",
                "t.yaml:8: listeners[0].routes[0].authorization.allow[2].paths[0]: a path starts "
                "with /, got \"x\"",
                "t.yaml:8: listeners[0].routes[0].authorization.allow[3]: a rule needs peers, "
                "methods or paths"}));
}

// Each transparent listener with passthrough gets the original_dst cluster of its direction: the
// config's own if it defines one (its settings kept), else one with the defaults, added once.
TEST(DecodeConfigTest, PassthroughClustersAreAddedWhereNeeded) {
  Config c = Decode(
      "listeners:\n"
      "  - {name: out, address: 0.0.0.0:15001, kind: outbound}\n"
      "  - {name: out2, address: 0.0.0.0:15002, kind: outbound}\n"
      "  - {name: in, address: 0.0.0.0:15006, kind: inbound}\n"
      "clusters:\n"
      "  - {name: passthrough, type: original_dst, connect_timeout: 2s, max_connections: 7}\n");
  ASSERT_EQ(c.clusters.size(), 2u);
  EXPECT_EQ(c.clusters[0].name, "passthrough");
  EXPECT_EQ(c.clusters[0].type, ClusterType::kOriginalDst);
  EXPECT_EQ(c.clusters[0].connect_timeout, absl::Seconds(2));
  EXPECT_EQ(c.clusters[0].max_connections, 7u);
  EXPECT_EQ(c.clusters[1].name, "inbound_passthrough");
  EXPECT_EQ(c.clusters[1].type, ClusterType::kOriginalDst);
  EXPECT_TRUE(c.clusters[1].endpoints.empty());

  Config off = Decode(
      "listeners:\n  - {name: out, address: 0.0.0.0:15001, kind: outbound, passthrough: false, "
      "cluster: c}\n"
      "clusters:\n  - {name: c, endpoints: [{address: 127.0.0.1:1}]}\n");
  EXPECT_FALSE(off.listeners[0].passthrough);
  ASSERT_EQ(off.clusters.size(), 1u);  // none added

  // A plain http listener never gets one.
  EXPECT_EQ(Decode("listeners:\n  - {name: web, address: 127.0.0.1:1, kind: http, routes: "
                   "[{cluster: c}]}\nclusters:\n  - {name: c, endpoints: [{address: "
                   "127.0.0.1:2}]}\n")
                .clusters.size(),
            1u);
}

// A transparent listener may send routes, TLS routes and its cluster to any original_dst cluster.
TEST(DecodeConfigTest, TransparentListenersMayUseOriginalDstClusters) {
  Config c = Decode(
      "listeners:\n  - {name: out, address: 0.0.0.0:15001, kind: outbound, passthrough: false, "
      "cluster: anywhere, tls_routes: [{sni: a.test, cluster: anywhere}], routes: "
      "[{cluster: anywhere}]}\n"
      "clusters:\n  - {name: anywhere, type: original_dst}\n");
  ASSERT_EQ(c.clusters.size(), 1u);
  EXPECT_EQ(c.clusters[0].type, ClusterType::kOriginalDst);
}

}  // namespace
}  // namespace remora::config
