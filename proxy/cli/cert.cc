#include "proxy/cli/cert.h"

#include <cstdio>
#include <filesystem>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "proxy/common/file.h"
#include "proxy/config/decode.h"
#include "tls/dev_ca.h"
#include "tls/spiffe.h"

namespace remora::cli {

namespace {

constexpr char kUsage[] =
    "usage: remora cert ca --out DIR [--name NAME] [--ttl DURATION]\n"
    "       remora cert issue --ca DIR --spiffe-id ID --out DIR [--dns NAME]... [--ttl DURATION]\n"
    "\n"
    "A development CA and workload certificates (ECDSA P-256), enough to run mTLS between\n"
    "sidecars without other tools. Not for production: keys sit in plain files (mode 0600).\n"
    "\n"
    "  ca      writes DIR/ca.pem (the CA certificate, the trust bundle) and DIR/ca.key.\n"
    "          --name: its common name (default \"remora development CA\");\n"
    "          --ttl: how long it is valid (default 8760h).\n"
    "  issue   signs a workload certificate with the CA in --ca DIR: writes DIR/cert.pem,\n"
    "          DIR/key.pem and DIR/ca.pem (the CA's certificate, as the trust bundle).\n"
    "          --spiffe-id: the workload's identity, spiffe://TRUST-DOMAIN/PATH (required);\n"
    "          --dns: a DNS name to add (repeatable); --ttl: validity (default 24h);\n"
    "          --not-before/--not-after: the validity window as RFC 3339 times instead (to\n"
    "          stage a future certificate, or test an expired one).\n"
    "\n"
    "Files are replaced whole (written aside, then renamed), so a sidecar watching DIR never\n"
    "reads half a certificate.\n";

int Fail(const std::string& message) {
  std::fprintf(stderr, "remora cert: %s\n", message.c_str());
  return 1;
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "remora cert: %s\n\n%s", message.c_str(), kUsage);
  return 2;
}

absl::Status EnsureDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (!ec) return absl::OkStatus();
  return absl::UnknownError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
}

struct Flags {
  std::string out, ca, name = "remora development CA", spiffe_id;
  std::vector<std::string> dns;
  absl::Duration ttl = absl::ZeroDuration();
  absl::Time not_before = absl::InfinitePast();
  absl::Time not_after = absl::InfinitePast();
};

// Parses --flag VALUE and --flag=VALUE; an error message, or empty.
std::string ParseFlags(const std::vector<std::string>& args, size_t from, Flags* f) {
  for (size_t i = from; i < args.size(); ++i) {
    std::string name = args[i], value;
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    } else if (absl::StartsWith(name, "--") && i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::StrCat("unexpected argument \"", args[i], "\"");
    }
    if (name == "--out") {
      f->out = value;
    } else if (name == "--ca") {
      f->ca = value;
    } else if (name == "--name") {
      f->name = value;
    } else if (name == "--spiffe-id") {
      f->spiffe_id = value;
    } else if (name == "--dns") {
      f->dns.push_back(value);
    } else if (name == "--not-before" || name == "--not-after") {
      absl::Time t;
      std::string err;
      if (!absl::ParseTime(absl::RFC3339_full, value, &t, &err)) {
        return absl::StrCat(
            name, ": expected an RFC 3339 time such as 2026-01-02T15:04:05Z, got \"", value, "\"");
      }
      (name == "--not-before" ? f->not_before : f->not_after) = t;
    } else if (name == "--ttl") {
      if (!config::ParseDuration(value, &f->ttl) || f->ttl <= absl::ZeroDuration()) {
        return absl::StrCat("--ttl: expected a positive duration such as 24h, got \"", value, "\"");
      }
    } else {
      return absl::StrCat("unknown option \"", name, "\"");
    }
  }
  return "";
}

int MakeCa(const Flags& f) {
  if (f.out.empty()) return Usage("missing --out DIR");
  absl::StatusOr<tls::PemPair> ca =
      tls::MakeCa(f.name, f.ttl > absl::ZeroDuration() ? f.ttl : absl::Hours(8760));
  if (!ca.ok()) return Fail(std::string(ca.status().message()));
  if (absl::Status s = EnsureDir(f.out); !s.ok()) return Fail(std::string(s.message()));
  for (const auto& [file, contents, mode] :
       {std::tuple{"ca.key", ca->key, 0600}, std::tuple{"ca.pem", ca->cert, 0644}}) {
    if (absl::Status s = tls::WriteFileAtomically(absl::StrCat(f.out, "/", file), contents, mode);
        !s.ok()) {
      return Fail(std::string(s.message()));
    }
  }
  std::printf("wrote %s/ca.pem and %s/ca.key (%s)\n", f.out.c_str(), f.out.c_str(),
              tls::DescribeCertificate(ca->cert).value_or("?").c_str());
  return 0;
}

int Issue(const Flags& f) {
  if (f.ca.empty()) return Usage("missing --ca DIR (made by `remora cert ca`)");
  if (f.out.empty()) return Usage("missing --out DIR");
  if (f.spiffe_id.empty()) return Usage("missing --spiffe-id spiffe://TRUST-DOMAIN/PATH");
  if (absl::StatusOr<tls::SpiffeId> id = tls::ParseSpiffeId(f.spiffe_id); !id.ok()) {
    return Fail(absl::StrCat("--spiffe-id: ", id.status().message()));
  }
  tls::PemPair ca;
  if (!ReadFile(f.ca + "/ca.pem", &ca.cert) || !ReadFile(f.ca + "/ca.key", &ca.key)) {
    return Fail(absl::StrCat("cannot read ", f.ca, "/ca.pem and ", f.ca, "/ca.key"));
  }
  tls::WorkloadOptions o;
  o.uris = {f.spiffe_id};
  o.dns = f.dns;
  o.not_after = absl::Now() + (f.ttl > absl::ZeroDuration() ? f.ttl : absl::Hours(24));
  if (f.not_before != absl::InfinitePast()) o.not_before = f.not_before;
  if (f.not_after != absl::InfinitePast()) o.not_after = f.not_after;
  if (o.not_after <= o.not_before) return Usage("the certificate would end before it starts");
  absl::StatusOr<tls::PemPair> cert = tls::IssueWorkload(ca, o);
  if (!cert.ok()) return Fail(std::string(cert.status().message()));
  if (absl::Status s = EnsureDir(f.out); !s.ok()) return Fail(std::string(s.message()));
  // The key first: a watcher that sees the new certificate finds its key already there.
  for (const auto& [file, contents, mode] :
       {std::tuple{"key.pem", cert->key, 0600}, std::tuple{"cert.pem", cert->cert, 0644},
        std::tuple{"ca.pem", ca.cert, 0644}}) {
    if (absl::Status s = tls::WriteFileAtomically(absl::StrCat(f.out, "/", file), contents, mode);
        !s.ok()) {
      return Fail(std::string(s.message()));
    }
  }
  std::printf("wrote %s/cert.pem, key.pem and ca.pem for %s (%s)\n", f.out.c_str(),
              f.spiffe_id.c_str(), tls::DescribeCertificate(cert->cert).value_or("?").c_str());
  return 0;
}

}  // namespace

int RunCert(const std::vector<std::string>& args) {
  if (args.empty()) return Usage("missing a command: ca or issue");
  for (const std::string& a : args) {
    if (a == "-h" || a == "--help" || a == "help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  }
  Flags f;
  if (std::string err = ParseFlags(args, 1, &f); !err.empty()) return Usage(err);
  if (args[0] == "ca") return MakeCa(f);
  if (args[0] == "issue") return Issue(f);
  return Usage(absl::StrCat("unknown command \"", args[0], "\" (ca or issue)"));
}

}  // namespace remora::cli
