"""Mutual TLS with workload identities (docs/tls.md), against real peers: certificates from
`remora cert`; curl (HTTP/1.1 and HTTP/2 by ALPN) and openssl s_client as clients of a TLS
listener; two remoras, outbound -> inbound -> app, with mTLS and SPIFFE checks between them, for
HTTP and gRPC; a TLS-terminating tcp listener. Every refused handshake adds 1 to its
remora_listener_tls_handshake_failures_total{reason} (or the cluster's) and logs why."""

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (REMORA_BIN, EchoServer, Remora, Upstream, payload,  # noqa: E402
                     recv_exactly, recv_until_closed, remora_cert, wait_until)

TD = "mesh.test"
PAYMENT = f"spiffe://{TD}/ns/default/sa/payment"
ORDER = f"spiffe://{TD}/ns/default/sa/order"
BILLING = f"spiffe://{TD}/ns/default/sa/billing"


@unittest.skipIf(shutil.which("curl") is None or shutil.which("openssl") is None,
                 "needs curl and openssl")
class MtlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="remora-mtls-")
        d = cls.dir
        remora_cert("ca", "--out", f"{d}/ca")
        remora_cert("issue", "--ca", f"{d}/ca", "--spiffe-id", PAYMENT, "--dns", "localhost",
             "--out", f"{d}/payment")
        remora_cert("issue", "--ca", f"{d}/ca", "--spiffe-id", ORDER, "--out", f"{d}/order")
        remora_cert("issue", "--ca", f"{d}/ca", "--spiffe-id", BILLING, "--out", f"{d}/billing")
        remora_cert("issue", "--ca", f"{d}/ca", "--spiffe-id", ORDER, "--out", f"{d}/expired",
             "--not-before", "2025-01-01T00:00:00Z", "--not-after", "2025-01-02T00:00:00Z")
        remora_cert("issue", "--ca", f"{d}/ca", "--spiffe-id", ORDER, "--out", f"{d}/future",
             "--not-before", "2099-01-01T00:00:00Z", "--not-after", "2099-01-02T00:00:00Z")
        remora_cert("ca", "--out", f"{d}/other-ca")
        remora_cert("issue", "--ca", f"{d}/other-ca", "--spiffe-id", ORDER, "--out", f"{d}/stranger")
        cls.app = Upstream()
        cls.echo = EchoServer()
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from grpc_peer import EchoPeer
        cls.grpc = EchoPeer()
        p = f"{d}/payment"
        # The payment service's sidecar: mTLS in, plaintext to the app.
        cls.inbound = Remora(f"""
workers: 1
admin: {{address: "127.0.0.1:0"}}
listeners:
  - name: mtls
    address: 127.0.0.1:0
    kind: http
    direction: inbound
    tls: {{cert: {p}/cert.pem, key: {p}/key.pem, ca: {p}/ca.pem, handshake_timeout: 300ms,
           forward_client_cert: true}}
    routes:
      - {{match: {{prefix: /remora.test.Echo/}}, cluster: grpc,
         authorization: {{deny: [{{peers: ["{BILLING}"]}}]}}}}
      - match: {{prefix: /echo/admin}}
        cluster: app
        authorization:
          allow: [{{peers: ["{ORDER}"], methods: [GET]}}]
      - {{cluster: app}}
  - name: tls-open  # TLS without client certificates, for the scanner
    address: 127.0.0.1:0
    kind: http
    tls: {{cert: {p}/cert.pem, key: {p}/key.pem}}
    routes: [{{cluster: app}}]
  - name: tls-tcp
    address: 127.0.0.1:0
    kind: tcp
    cluster: echo
    tls: {{cert: {p}/cert.pem, key: {p}/key.pem}}
clusters:
  - {{name: app, protocol: http1, endpoints: [{{address: "{cls.app.address}"}}]}}
  - {{name: grpc, protocol: http2, endpoints: [{{address: "{cls.grpc.address}"}}]}}
  - {{name: echo, endpoints: [{{address: "{cls.echo.address}"}}]}}
""")
        o = f"{d}/order"
        mtls_port = cls.inbound.port("mtls")
        # The order service's sidecar: plaintext from the app, mTLS to payment's sidecar.
        cls.outbound = Remora(f"""
workers: 1
admin: {{address: "127.0.0.1:0"}}
listeners:
  - name: out
    address: 127.0.0.1:0
    kind: http
    routes:
      - {{match: {{authority: wrong.test}}, cluster: impostor}}
      - {{match: {{authority: stranger.test}}, cluster: stranger}}
      - {{cluster: payment}}
  - name: tunnel
    address: 127.0.0.1:0
    kind: tcp
    cluster: payment-tcp
clusters:
  - name: payment-tcp
    tls: {{ca: {o}/ca.pem, spiffe_id: "{PAYMENT}"}}
    endpoints: [{{address: "127.0.0.1:{cls.inbound.port('tls-tcp')}"}}]
  - name: payment
    tls: {{cert: {o}/cert.pem, key: {o}/key.pem, ca: {o}/ca.pem, spiffe_id: "{PAYMENT}"}}
    endpoints: [{{address: "127.0.0.1:{mtls_port}"}}]
  - name: stranger  # our certificate is from a CA the server does not trust
    tls: {{cert: {d}/stranger/cert.pem, key: {d}/stranger/key.pem, ca: {o}/ca.pem,
           spiffe_id: "{PAYMENT}"}}
    endpoints: [{{address: "127.0.0.1:{mtls_port}"}}]
  - name: impostor
    tls: {{cert: {o}/cert.pem, key: {o}/key.pem, ca: {o}/ca.pem,
           spiffe_id: "spiffe://{TD}/ns/default/sa/someone-else"}}
    endpoints: [{{address: "127.0.0.1:{mtls_port}"}}]
""")

    @classmethod
    def tearDownClass(cls):
        for c in (cls.outbound, cls.inbound):
            c.close()
        cls.grpc.stop()
        cls.echo.close()
        cls.app.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def failures(self, remora, scope, name, reason):
        return remora.metrics().get(
            f'remora_{scope}_tls_handshake_failures_total{{{scope}="{name}",reason="{reason}"}}', 0)

    def handshakes(self, remora, scope, name):
        return remora.metrics().get(
            f'remora_{scope}_tls_handshakes_total{{{scope}="{name}"}}', 0)

    def curl(self, who, *extra, path="/echo/in"):
        d = f"{self.dir}/{who}"
        args = ["curl", "-s", "-m", "10", "-w", "\\n%{http_code} %{http_version}",
                "--cacert", f"{self.dir}/payment/ca.pem"]
        if who:
            args += ["--cert", f"{d}/cert.pem", "--key", f"{d}/key.pem"]
        args += [*extra, f"https://localhost:{self.inbound.port('mtls')}{path}"]
        r = subprocess.run(args, capture_output=True, text=True, timeout=20)
        body, _, tail = r.stdout.rpartition("\n")
        status, _, version = tail.partition(" ")
        return int(status or 0), version, body

    def test_curl_with_a_workload_certificate_over_http1_and_http2(self):
        for flag, version in (("--http1.1", "1.1"), ("--http2", "2")):
            # A client's own claim of who it is goes; the verified identity comes instead.
            status, got_version, body = self.curl(
                "order", flag, "-H", "x-forwarded-client-cert: URI=spiffe://mesh.test/ns/x/sa/root")
            self.assertEqual(status, 200, body)
            self.assertEqual(got_version, version)  # HTTP/2 chosen by ALPN
            seen = json.loads(body)
            self.assertEqual(seen["path"], "/echo/in")
            headers = [(k.lower(), v) for k, v in seen["headers"]]
            self.assertEqual([v for k, v in headers if k == "x-forwarded-client-cert"],
                             [f"By={PAYMENT};URI={ORDER}"])
            self.assertIn(("x-forwarded-proto", "https"), headers)

    def test_routes_authorize_callers_by_identity_method_and_path(self):
        before = self.inbound.metrics()['remora_listener_unauthorized_total{listener="mtls"}']
        status, _, body = self.curl("order", path="/echo/admin/x")
        self.assertEqual(status, 200, body)
        for who, extra in (("billing", ()), ("order", ("-X", "DELETE"))):
            status, _, body = self.curl(who, "-i", *extra, path="/echo/admin/x")
            self.assertEqual(status, 403, body)
            self.assertIn("x-remora-reason: unauthorized_peer", body)
        # Everything else is open to any workload the bundle vouches for.
        status, _, _ = self.curl("billing")
        self.assertEqual(status, 200)
        self.assertEqual(
            self.inbound.metrics()['remora_listener_unauthorized_total{listener="mtls"}'],
            before + 2)

    def grpc_call(self, who):
        import grpc
        d = f"{self.dir}/{who}"
        with open(f"{self.dir}/payment/ca.pem", "rb") as ca, open(f"{d}/key.pem", "rb") as k, \
                open(f"{d}/cert.pem", "rb") as c:
            creds = grpc.ssl_channel_credentials(root_certificates=ca.read(),
                                                 private_key=k.read(), certificate_chain=c.read())
        with grpc.secure_channel(f"localhost:{self.inbound.port('mtls')}", creds) as channel:
            return channel.unary_unary("/remora.test.Echo/Unary")(b"hi", timeout=10)

    def test_grpc_over_mtls_and_a_caller_refused_by_identity(self):
        import grpc
        self.assertEqual(self.grpc_call("order"), b"hi")
        with self.assertRaises(grpc.RpcError) as e:
            self.grpc_call("billing")
        self.assertEqual(e.exception.code(), grpc.StatusCode.PERMISSION_DENIED)

    def test_a_client_without_a_certificate_is_refused(self):
        before = self.failures(self.inbound, "listener", "mtls", "no_peer_certificate")
        status, _, _ = self.curl("")
        self.assertEqual(status, 0)  # no HTTP exchange at all
        wait_until(lambda: self.failures(self.inbound, "listener", "mtls",
                                         "no_peer_certificate") == before + 1,
                   what="the no_peer_certificate failure to be counted")
        self.assertIn("no_peer_certificate", self.inbound.log())

    def test_a_certificate_from_another_ca_is_refused(self):
        before = self.failures(self.inbound, "listener", "mtls", "untrusted")
        s = f"{self.dir}/stranger"
        r = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{self.inbound.port('mtls')}",
             "-cert", f"{s}/cert.pem", "-key", f"{s}/key.pem", "-CAfile",
             f"{self.dir}/payment/ca.pem", "-brief"],
            input="GET / HTTP/1.1\r\nHost: x\r\n\r\n", capture_output=True, text=True,
            timeout=20)
        self.assertNotIn("HTTP/1.1 200", r.stdout)
        wait_until(lambda: self.failures(self.inbound, "listener", "mtls", "untrusted") ==
                   before + 1, what="the untrusted failure to be counted")

    def s_client(self, cert, key, port=None):
        """A TLS 1.3 handshake with `cert` as the client certificate, then a request."""
        return subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port or self.inbound.port('mtls')}",
             "-cert", cert, "-key", key, "-CAfile", f"{self.dir}/payment/ca.pem", "-brief"],
            input="GET / HTTP/1.1\r\nHost: x\r\n\r\n", capture_output=True, text=True,
            timeout=20)

    def test_certificates_that_are_not_workload_identities_are_refused(self):
        d = self.dir
        # Two URI SANs, signed by the mesh's own CA with openssl: the chain is good, the SVID
        # is not.
        with open(f"{d}/two-uris.cnf", "w") as f:
            f.write(f"subjectAltName=URI:{ORDER},URI:{BILLING}\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n")
        subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{d}/two-uris.key",
                        "-subj", "/CN=two", "-out", f"{d}/two-uris.csr"],
                       check=True, capture_output=True, timeout=30)
        subprocess.run(["openssl", "x509", "-req", "-in", f"{d}/two-uris.csr", "-CA",
                        f"{d}/ca/ca.pem", "-CAkey", f"{d}/ca/ca.key", "-set_serial", "7",
                        "-days", "1", "-extfile", f"{d}/two-uris.cnf",
                        "-out", f"{d}/two-uris.pem"], check=True, capture_output=True, timeout=30)
        # The mesh's CA certificate itself, as if it were a workload's.
        for (cert, key), detail in (((f"{d}/two-uris.pem", f"{d}/two-uris.key"), "many_uri_sans"),
                                    ((f"{d}/ca/ca.pem", f"{d}/ca/ca.key"), "ca_as_leaf")):
            before = self.failures(self.inbound, "listener", "mtls", "bad_svid")
            r = self.s_client(cert, key)
            self.assertNotIn("HTTP/1.1 200", r.stdout)
            wait_until(lambda: self.failures(self.inbound, "listener", "mtls", "bad_svid") ==
                       before + 1, what=f"the bad_svid failure ({detail}) to be counted")
            self.assertIn(f"failed (bad_svid): {detail}", self.inbound.log())

    def test_garbage_instead_of_a_client_hello_is_refused(self):
        for garbage, reason in ((bytes(range(256)) * 4, "not_tls"),
                                # A handshake record whose contents are not a ClientHello.
                                (b"\x16\x03\x01\x00\x40" + b"\xee" * 64, "other")):
            before = self.failures(self.inbound, "listener", "mtls", reason)
            with socket.create_connection(("127.0.0.1", self.inbound.port("mtls")),
                                          timeout=5) as c:
                c.sendall(garbage)
                try:
                    while c.recv(4096):
                        pass  # an alert, then the close
                except ConnectionResetError:
                    pass
            wait_until(lambda: self.failures(self.inbound, "listener", "mtls", reason) ==
                       before + 1, what=f"garbage to be counted as {reason}")

    def test_expired_and_not_yet_valid_certificates_are_refused(self):
        for who, reason in (("expired", "expired"), ("future", "not_yet_valid")):
            before = self.failures(self.inbound, "listener", "mtls", reason)
            status, _, _ = self.curl(who)
            self.assertEqual(status, 0, who)
            wait_until(lambda: self.failures(self.inbound, "listener", "mtls", reason) ==
                       before + 1, what=f"the {reason} failure to be counted")

    @unittest.skipIf(shutil.which("sslscan") is None, "needs sslscan")
    def test_sslscan_finds_nothing_below_tls12_and_only_ecdhe_aead(self):
        # A listener without client certificates: under mutual TLS a scanner cannot finish the
        # TLS 1.2 handshakes it needs to list suites. Every listener gets the same settings.
        r = subprocess.run(["sslscan", "--no-colour", f"127.0.0.1:{self.inbound.port('tls-open')}"],
                           capture_output=True, text=True, timeout=120,
                           restore_signals=False)  # SIGPIPE ignored, as Python has it
        out = r.stdout
        self.assertEqual(r.returncode, 0, out + r.stderr)
        protocols = dict(re.findall(r"^(SSLv[23]|TLSv1\.[0-3])\s+(enabled|disabled)", out, re.M))
        self.assertEqual(protocols, {"SSLv2": "disabled", "SSLv3": "disabled",
                                     "TLSv1.0": "disabled", "TLSv1.1": "disabled",
                                     "TLSv1.2": "enabled", "TLSv1.3": "enabled"}, out)
        suites = re.findall(r"^(?:Preferred|Accepted)\s+(TLSv1\.[0-3])\s+\d+ bits\s+(\S+)", out,
                            re.M)
        self.assertTrue(any(v == "TLSv1.2" for v, _ in suites), out)
        self.assertTrue(any(v == "TLSv1.3" for v, _ in suites), out)
        for version, suite in suites:
            if version == "TLSv1.3":
                continue  # every TLS 1.3 suite is AEAD with ephemeral key exchange
            self.assertEqual(version, "TLSv1.2", suite)
            self.assertTrue(suite.startswith("ECDHE-"), suite)
            self.assertTrue("GCM" in suite or "CHACHA20-POLY1305" in suite, suite)

    def test_plaintext_and_silence_are_refused(self):
        before = self.failures(self.inbound, "listener", "mtls", "not_tls")
        with socket.create_connection(("127.0.0.1", self.inbound.port("mtls")), timeout=5) as c:
            c.sendall(b"GET /echo/x HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertNotIn(b"200", c.recv(4096))
        wait_until(lambda: self.failures(self.inbound, "listener", "mtls", "not_tls") ==
                   before + 1, what="the not_tls failure to be counted")
        before = self.failures(self.inbound, "listener", "mtls", "timeout")
        with socket.create_connection(("127.0.0.1", self.inbound.port("mtls")), timeout=5) as c:
            start = time.monotonic()
            self.assertEqual(c.recv(4096), b"")  # closed by the 300 ms handshake timeout
            self.assertLess(time.monotonic() - start, 3)
        self.assertEqual(self.failures(self.inbound, "listener", "mtls", "timeout"), before + 1)

    def test_sidecar_to_sidecar_mtls_for_http_and_grpc(self):
        out = self.outbound.port("out")
        before_in = self.handshakes(self.inbound, "listener", "mtls")
        for http2 in (False, True):
            args = ["curl", "-s", "-m", "10", f"http://127.0.0.1:{out}/echo/chain"]
            if http2:
                args.insert(1, "--http2-prior-knowledge")
            r = subprocess.run(args, capture_output=True, text=True, timeout=20)
            self.assertEqual(json.loads(r.stdout)["path"], "/echo/chain", r.stdout)
        self.assertGreaterEqual(self.handshakes(self.inbound, "listener", "mtls"), before_in + 1)
        self.assertGreaterEqual(self.handshakes(self.outbound, "cluster", "payment"), 1)
        import grpc
        channel = grpc.insecure_channel(f"127.0.0.1:{out}")
        reply = channel.unary_unary("/remora.test.Echo/Unary")(b"over mtls", timeout=10)
        self.assertEqual(reply, b"over mtls")
        channel.close()

    def test_an_upstream_with_the_wrong_identity_is_refused(self):
        out = self.outbound.port("out")
        r = subprocess.run(["curl", "-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}",
                            "-H", "Host: wrong.test", f"http://127.0.0.1:{out}/echo/x"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.stdout, "502")  # connect_failure: the handshake never completed
        self.assertGreaterEqual(
            self.failures(self.outbound, "cluster", "impostor", "wrong_identity"), 1)
        self.assertIn("someone-else", self.outbound.log())

    def test_a_server_refusing_our_certificate_is_counted_by_the_cluster(self):
        # TLS 1.3: our side completes before the server checks our certificate; its alert,
        # read next, still counts as the cluster's failed handshake, with why.
        before = self.failures(self.outbound, "cluster", "stranger", "rejected_by_peer")
        r = subprocess.run(["curl", "-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}",
                            "-H", "Host: stranger.test",
                            f"http://127.0.0.1:{self.outbound.port('out')}/echo/x"],
                           capture_output=True, text=True, timeout=20)
        self.assertIn(r.stdout, ("502", "503"))
        wait_until(lambda: self.failures(self.outbound, "cluster", "stranger",
                                         "rejected_by_peer") >= before + 1,
                   what="the refusal to be counted as rejected_by_peer")
        self.assertIn("the server refused our certificate", self.outbound.log())

    def test_a_tls_tcp_listener_terminates_and_relays(self):
        data = payload(256 * 1024)
        ctx = ssl.create_default_context(cafile=f"{self.dir}/payment/ca.pem")
        ctx.check_hostname = False  # an SVID names a workload, not a host
        port = self.inbound.port("tls-tcp")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw) as s:
                s.sendall(data)
                got = recv_exactly(s, len(data))
        self.assertEqual(got, data)  # decrypted, relayed in plaintext, echoed, encrypted again

    def test_a_cluster_resumes_its_session_with_an_endpoint(self):
        # Each TCP connection through the tunnel is a new TLS connection to the same endpoint:
        # after the first, the ticket it was given is offered, and taken.
        def resumed(remora, scope, name):
            return remora.metrics().get(f'remora_{scope}_tls_resumed_total{{{scope}="{name}"}}', 0)
        before = resumed(self.outbound, "cluster", "payment-tcp")
        before_in = resumed(self.inbound, "listener", "tls-tcp")
        for i in range(3):
            data = payload(4096 + i)
            with socket.create_connection(("127.0.0.1", self.outbound.port("tunnel")),
                                          timeout=10) as c:
                c.sendall(data)
                self.assertEqual(recv_exactly(c, len(data)), data)
        wait_until(lambda: resumed(self.outbound, "cluster", "payment-tcp") >= before + 2,
                   what="the second and third connections to resume")
        self.assertGreaterEqual(resumed(self.inbound, "listener", "tls-tcp"), before_in + 2)

    def test_a_tls_tcp_listener_connects_upstream_only_after_the_handshake(self):
        def opened():
            time.sleep(0.2)  # a connect remora started would have been accepted by now
            return self.echo.accepted
        before, refused = opened(), self.failures(self.inbound, "listener", "tls-tcp", "not_tls")
        with socket.create_connection(("127.0.0.1", self.inbound.port("tls-tcp")),
                                      timeout=5) as c:
            c.sendall(b"plaintext, not a ClientHello\r\n")
            self.assertEqual(recv_until_closed(c).find(b"plaintext"), -1)
        wait_until(lambda: self.failures(self.inbound, "listener", "tls-tcp", "not_tls") ==
                   refused + 1, what="the refused handshake to be counted")
        self.assertEqual(opened(), before)  # the echo server never heard of it

    def test_a_certificate_that_cannot_be_loaded_stops_the_config(self):
        p = f"{self.dir}/payment"
        path = f"{self.dir}/bad.yaml"
        with open(path, "w") as f:
            f.write(f"""listeners:
  - name: in
    address: 127.0.0.1:0
    kind: tcp
    cluster: c
    tls: {{cert: {p}/cert.pem, key: {self.dir}/order/key.pem}}
clusters:
  - {{name: c, endpoints: [{{address: "127.0.0.1:9"}}]}}
admin: {{address: "127.0.0.1:0"}}
""")
        r = subprocess.run([REMORA_BIN, "proxy", "-c", path], capture_output=True, text=True,
                           timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("listener in (line 2): tls: the key", r.stdout + r.stderr)
        self.assertIn("does not match the certificate", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
