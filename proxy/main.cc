// remora: a sidecar L7 proxy. Subcommands: proxy, validate, demo, cert, version.

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proxy/cli/cert.h"
#include "proxy/config/decode.h"
#include "proxy/demo/sample_service.h"
#include "proxy/demo_config.h"
#include "proxy/server/server.h"

namespace remora {
namespace {

constexpr char kUsage[] =
    "usage: remora <command> [options]\n"
    "\n"
    "commands:\n"
    "  proxy -c FILE      run the proxy with the config FILE (YAML or JSON)\n"
    "  validate -c FILE   check a config file; prints every error as FILE:LINE: field: message\n"
    "  demo [--ports=auto]  run remora in front of a built-in sample service on loopback\n"
    "  cert ca|issue      make a development CA and workload (SPIFFE) certificates\n"
    "  version            print the version\n"
    "\n"
    "Run `remora <command> --help` for a command's options.\n"
    "Docs: docs/config.md, docs/metrics.md.\n";

constexpr char kProxyUsage[] =
    "usage: remora proxy -c FILE\n"
    "\n"
    "Runs the proxy. SIGHUP re-reads FILE (an invalid file is rejected and the running\n"
    "config keeps serving); SIGTERM or POST /drain drains: listeners close, open connections\n"
    "get drain_timeout to finish, then the process exits 0.\n"
    "\n"
    "options:\n"
    "  -c, --config FILE  the config file (required)\n";

constexpr char kValidateUsage[] =
    "usage: remora validate -c FILE [--skip-tls-files]\n"
    "\n"
    "Decodes and checks FILE without starting anything, and loads the TLS certificates, keys\n"
    "and trust bundles it names (not with --skip-tls-files: for checking a config where its\n"
    "certificates are not mounted). Exit status 0 when valid; otherwise 1, with one line per\n"
    "error on stderr: FILE:LINE: field.path: message. TLS files are loaded only once the config\n"
    "decodes, and the first one that cannot be used is the one reported, with its listener or\n"
    "cluster.\n";

constexpr char kDemoUsage[] =
    "usage: remora demo [--ports=auto]\n"
    "\n"
    "Starts a small sample HTTP service and remora in front of it (the embedded config from\n"
    "examples/demo.yaml: a tcp listener on 127.0.0.1:15001, admin on 127.0.0.1:15000, the sample\n"
    "service on 127.0.0.1:18080), prints what to try, and runs until Ctrl-C.\n"
    "\n"
    "options:\n"
    "  --ports=auto  use free ports instead of the fixed ones (printed at start)\n";

bool WantsHelp(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "-h" || a == "--help" || a == "help") return true;
  }
  return false;
}

// Finds -c FILE / --config FILE / --config=FILE. Returns false (with a message) on anything else.
// -c FILE; with `skip_tls`, also --skip-tls-files (validate).
bool ParseConfigFlag(const std::vector<std::string>& args, std::string* path, const char* usage,
                     bool* skip_tls = nullptr) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (skip_tls != nullptr && a == "--skip-tls-files") {
      *skip_tls = true;
    } else if ((a == "-c" || a == "--config") && i + 1 < args.size()) {
      *path = args[++i];
    } else if (absl::StartsWith(a, "--config=")) {
      *path = a.substr(strlen("--config="));
    } else {
      std::fprintf(stderr, "remora: unexpected argument \"%s\"\n\n%s", a.c_str(), usage);
      return false;
    }
  }
  if (path->empty()) {
    std::fprintf(stderr, "remora: missing -c FILE\n\n%s", usage);
    return false;
  }
  return true;
}

bool LoadOrReport(const std::string& path, config::Config* cfg) {
  std::vector<config::ConfigError> errors;
  if (config::LoadConfigFile(path, cfg, &errors)) return true;
  for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.Format(path).c_str());
  return false;
}

int CmdValidate(const std::vector<std::string>& args) {
  if (WantsHelp(args)) {
    std::fputs(kValidateUsage, stdout);
    return 0;
  }
  std::string path;
  bool skip_tls = false;
  if (!ParseConfigFlag(args, &path, kValidateUsage, &skip_tls)) return 2;
  config::Config cfg;
  if (!LoadOrReport(path, &cfg)) return 1;
  // What `remora proxy` would refuse to start with is not valid either.
  absl::StatusOr<server::TlsContexts> tls =
      skip_tls ? server::TlsContexts{} : server::LoadTlsContexts(cfg);
  if (!tls.ok()) {
    std::fprintf(stderr, "%s: %s\n", path.c_str(), std::string(tls.status().message()).c_str());
    return 1;
  }
  std::printf("%s: ok (%zu listeners, %zu clusters)\n", path.c_str(), cfg.listeners.size(),
              cfg.clusters.size());
  return 0;
}

int CmdProxy(const std::vector<std::string>& args) {
  if (WantsHelp(args)) {
    std::fputs(kProxyUsage, stdout);
    return 0;
  }
  std::string path;
  if (!ParseConfigFlag(args, &path, kProxyUsage)) return 2;
  config::Config cfg;
  if (!LoadOrReport(path, &cfg)) return 1;
  server::Server server(path, std::move(cfg));
  return server.Run();
}

int CmdDemo(const std::vector<std::string>& args) {
  if (WantsHelp(args)) {
    std::fputs(kDemoUsage, stdout);
    return 0;
  }
  bool auto_ports = false;
  for (const auto& a : args) {
    if (a == "--ports=auto") {
      auto_ports = true;
    } else {
      std::fprintf(stderr, "remora: unexpected argument \"%s\"\n\n%s", a.c_str(), kDemoUsage);
      return 2;
    }
  }
  config::Config cfg;
  std::vector<config::ConfigError> errors;
  if (!config::DecodeConfig(kDemoConfigYaml, &cfg, &errors)) {
    for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.Format("<embedded demo>").c_str());
    return 1;
  }
  config::SocketAddress sample_addr = cfg.clusters[0].endpoints[0].address;
  if (auto_ports) {
    sample_addr.port = 0;
    cfg.admin.address.port = 0;
    for (auto& l : cfg.listeners) l.address.port = 0;
  }
  auto sample = demo::SampleService::Start(sample_addr);
  if (!sample.ok()) {
    std::fprintf(stderr, "remora demo: cannot start the sample service on %s: %s\n",
                 sample_addr.ToString().c_str(), std::string(sample.status().message()).c_str());
    return 1;
  }
  cfg.clusters[0].endpoints[0].address.port = (*sample)->port();
  const std::string sample_url =
      absl::StrCat("http://", cfg.clusters[0].endpoints[0].address.ToString());

  server::Server server("", std::move(cfg));
  server.SetOnStarted(
      [&](const std::string& admin, const std::map<std::string, std::string>& listeners) {
        const std::string& proxy = listeners.at("demo");
        std::printf(
            "remora demo is running: remora in front of a sample service, all on loopback.\n"
            "\n"
            "  sample service  %s/        (stands in for your app)\n"
            "  remora          %s -> sample service (tcp listener \"demo\")\n"
            "  admin API       http://%s/\n"
            "\n"
            "Try:\n"
            "  curl -s http://%s/hello\n"
            "  curl -s http://%s/metrics | grep '^remora_listener'\n"
            "  curl -s http://%s/clusters\n"
            "  curl -s http://%s/ready\n"
            "\n"
            "Ctrl-C drains and stops.\n",
            sample_url.c_str(), proxy.c_str(), admin.c_str(), proxy.c_str(), admin.c_str(),
            admin.c_str(), admin.c_str());
        std::fflush(stdout);
      });
  int rc = server.Run();
  sample->reset();
  return rc;
}

}  // namespace
}  // namespace remora

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::fputs(remora::kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  std::string cmd = args[0];
  args.erase(args.begin());
  if (cmd == "proxy") return remora::CmdProxy(args);
  if (cmd == "validate") return remora::CmdValidate(args);
  if (cmd == "demo") return remora::CmdDemo(args);
  if (cmd == "cert") return remora::cli::RunCert(args);
  if (cmd == "version" || cmd == "--version") {
    std::printf("remora %s\n", REMORA_VERSION);
    return 0;
  }
  std::fprintf(stderr, "remora: unknown command \"%s\"\n\n%s", cmd.c_str(), remora::kUsage);
  return 2;
}
