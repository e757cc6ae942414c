"""`remora cert` (docs/tls.md): a development CA and workload certificates that real TLS peers
accept. The certificates are checked by `openssl verify` and `openssl x509`, then used for a
mutually authenticated handshake between `openssl s_server` and `openssl s_client`, each side
verifying the other against the CA. Bad input gets a clear error and exit status 1 (or 2 for
usage)."""

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, remora_cert  # noqa: E402


def cert(*args):
    return remora_cert(*args, check=False)


def openssl(*args, **kw):
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30, **kw)


@unittest.skipIf(shutil.which("openssl") is None, "needs openssl")
class CertCliTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="remora-cert-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.ca = os.path.join(self.dir, "ca")
        r = cert("ca", "--out", self.ca, "--ttl", "48h")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("wrote", r.stdout)

    def issue(self, name, spiffe_id, *extra):
        out = os.path.join(self.dir, name)
        r = cert("issue", "--ca", self.ca, "--spiffe-id", spiffe_id, "--out", out, *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        return out

    def test_a_workload_certificate_is_an_svid_the_ca_vouches_for(self):
        web = self.issue("web", "spiffe://example.org/ns/default/sa/web", "--dns", "web.local",
                         "--ttl", "2h")
        for f, mode in (("key.pem", 0o600), ("cert.pem", 0o644), ("ca.pem", 0o644)):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(web, f)).st_mode), mode, f)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.ca, "ca.key")).st_mode), 0o600)
        r = openssl("verify", "-CAfile", os.path.join(web, "ca.pem"),
                    os.path.join(web, "cert.pem"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        text = openssl("x509", "-in", os.path.join(web, "cert.pem"), "-noout", "-text").stdout
        self.assertIn("URI:spiffe://example.org/ns/default/sa/web", text)
        self.assertIn("DNS:web.local", text)
        self.assertIn("CA:FALSE", text)
        self.assertIn("NIST CURVE: P-256", text)
        self.assertIn("TLS Web Server Authentication, TLS Web Client Authentication", text)
        end = openssl("x509", "-in", os.path.join(web, "cert.pem"), "-noout", "-checkend",
                      str(3 * 3600))
        self.assertNotEqual(end.returncode, 0, "a 2h certificate should end within 3h")
        # Another CA does not vouch for it.
        other = os.path.join(self.dir, "other")
        self.assertEqual(cert("ca", "--out", other).returncode, 0)
        r = openssl("verify", "-CAfile", os.path.join(other, "ca.pem"),
                    os.path.join(web, "cert.pem"))
        self.assertNotEqual(r.returncode, 0)

    def s_server(self, d, port):
        """openssl s_server with d's certificate, requiring and verifying a client certificate
        against the CA; serves one connection. Returns once it listens."""
        s = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-naccept", "1",
             "-cert", os.path.join(d, "cert.pem"), "-key", os.path.join(d, "key.pem"),
             "-CAfile", os.path.join(d, "ca.pem"), "-Verify", "1", "-verify_return_error",
             "-tls1_3"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)  # stdin open: at its EOF s_server quits
        self.addCleanup(s.stdout.close)
        self.addCleanup(s.stdin.close)
        self.addCleanup(s.kill)
        while (line := s.stdout.readline()) and line.strip() != "ACCEPT":
            pass  # "verify depth is 1, must return a certificate" first
        self.assertEqual(line.strip(), "ACCEPT", "s_server did not start")
        return s

    def s_client(self, d, port, *extra):
        return openssl("s_client", "-connect", f"127.0.0.1:{port}", "-cert",
                       os.path.join(d, "cert.pem"), "-key", os.path.join(d, "key.pem"),
                       "-CAfile", os.path.join(d, "ca.pem"), "-verify_return_error", "-brief",
                       *extra, input="ping\n")

    def test_two_workloads_authenticate_each_other(self):
        server = self.issue("server", "spiffe://example.org/ns/default/sa/server")
        client = self.issue("client", "spiffe://example.org/ns/default/sa/client")
        port = free_port()
        s = self.s_server(server, port)
        r = self.s_client(client, port)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("Verification: OK", r.stderr)
        self.assertIn("spiffe://example.org/ns/default/sa/server", r.stderr)  # the peer's CN
        s.wait(timeout=10)
        # The server verified the client's certificate and names it.
        self.assertIn("spiffe://example.org/ns/default/sa/client", s.stdout.read())

    def test_a_client_from_another_ca_is_refused(self):
        server = self.issue("server", "spiffe://example.org/ns/default/sa/server")
        other = os.path.join(self.dir, "other-ca")
        self.assertEqual(cert("ca", "--out", other).returncode, 0)
        stranger = os.path.join(self.dir, "stranger")
        r = cert("issue", "--ca", other, "--spiffe-id", "spiffe://example.org/x", "--out",
                 stranger)
        self.assertEqual(r.returncode, 0, r.stderr)
        shutil.copy(os.path.join(server, "ca.pem"), os.path.join(stranger, "ca.pem"))
        port = free_port()
        s = self.s_server(server, port)
        # In TLS 1.3 the client is done before the server checks its certificate, so s_client
        # may well exit 0: the server's verdict is what counts.
        self.s_client(stranger, port)
        s.wait(timeout=10)
        self.assertIn("verify error", s.stdout.read())

    def test_bad_input_is_refused_with_a_reason(self):
        r = cert("issue", "--ca", self.ca, "--spiffe-id", "spiffe://Example.org/x", "--out",
                 os.path.join(self.dir, "x"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("--spiffe-id", r.stderr)
        self.assertIn("lower-case", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "x")))
        r = cert("issue", "--ca", os.path.join(self.dir, "nope"), "--spiffe-id",
                 "spiffe://td/x", "--out", os.path.join(self.dir, "y"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot read", r.stderr)
        # Durations as the config spells them: "inf" and "us" are not among them.
        for ttl in ("forever", "inf", "5000000000us"):
            r = cert("ca", "--out", os.path.join(self.dir, "z"), "--ttl", ttl)
            self.assertEqual(r.returncode, 2, ttl)
            self.assertIn("--ttl", r.stderr)
            self.assertFalse(os.path.exists(os.path.join(self.dir, "z")))
        r = cert("sign")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
