// libFuzzer target for the TLS transport (tls/transport.h) as a server under mutual TLS and as a
// client: the peer's bytes, in chunks the input chooses, go through Read as the connection would
// feed them, with writes in between. Our glue around OpenSSL (the BIO over our buffers, bytes
// staged while reading, writes held through the handshake, failure reasons) must never crash or
// misbehave under sanitizers: a transport that reports kError stays failed with a reason, and
// nothing is decrypted before the handshake completes.
//
// Input: byte 0 picks the side (even: server, odd: client) and the rest is split into chunks,
// each prefixed by one length byte.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "proxy/buffer/buffer.h"
#include "tls/context.h"
#include "tls/dev_ca.h"
#include "tls/transport.h"

namespace {

using remora::tls::Context;
using remora::tls::ContextOptions;
using Status = remora::event::Transport::Status;

struct Contexts {
  std::shared_ptr<const Context> server, client;
};

// Certificates made once per process, in a directory removed at exit.
const Contexts& Load() {
  static const Contexts* contexts = [] {
    namespace fs = std::filesystem;
    static const std::string dir =
        (fs::temp_directory_path() / ("remora-tls-fuzz-" + std::to_string(getpid()))).string();
    fs::create_directories(dir);
    std::atexit([] { fs::remove_all(dir); });
    remora::tls::PemPair ca = *remora::tls::MakeCa("fuzz CA", absl::Hours(1));
    remora::tls::WorkloadOptions w;
    w.uris = {"spiffe://fuzz.test/ns/a/sa/b"};
    remora::tls::PemPair leaf = *remora::tls::IssueWorkload(ca, w);
    auto write = [&](const char* name, const std::string& text) {
      if (!remora::tls::WriteFileAtomically(dir + "/" + name, text, 0600).ok()) std::abort();
    };
    write("ca.pem", ca.cert);
    write("cert.pem", leaf.cert);
    write("key.pem", leaf.key);
    ContextOptions o;
    o.cert_file = dir + "/cert.pem";
    o.key_file = dir + "/key.pem";
    o.ca_file = dir + "/ca.pem";
    o.server = true;
    o.require_peer_certificate = true;
    o.alpn = {"h2", "http/1.1", remora::tls::kAlpnTunnel};
    auto* c = new Contexts;
    c->server = *Context::Load(o);
    o.server = false;
    o.require_peer_certificate = false;
    o.alpn = {"h2"};
    o.peer.trust_domain = "fuzz.test";
    c->client = *Context::Load(o);
    return c;
  }();
  return *contexts;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Contexts& contexts = Load();
  const bool server = (data[0] & 1) == 0;
  remora::tls::TlsTransport t(server ? contexts.server : contexts.client, {},
                              server ? std::string() : std::string("fuzz:1"));
  remora::buffer::Buffer in, plain, out;
  if (!server && t.Start(out) == Status::kError) std::abort();  // a ClientHello must go out
  bool failed = false;
  for (size_t i = 1; i < size && !failed;) {
    size_t n = std::min<size_t>(data[i], size - i - 1);
    in.Append(absl::string_view(reinterpret_cast<const char*>(data + i + 1), n));
    i += 1 + n;
    Status st = t.Read(in, plain, out);
    if (!t.ready() && !plain.empty()) std::abort();  // nothing before the handshake is done
    if (st == Status::kError) {
      failed = true;
      if (t.ready() == false && t.failure() == remora::tls::HandshakeFailure::kNone) std::abort();
    }
    remora::buffer::Buffer w;
    w.Append("written between reads");
    if (t.Write(w, out) == Status::kError && !t.ready()) std::abort();  // held, never refused
    out.Clear();
    plain.Clear();
  }
  t.OnHandshakeAbandoned(/*timed_out=*/false);
  t.Shutdown(out);
  return 0;
}
