"""Mutual TLS between sidecars through transparent interception (docs/tls.md "Inbound
listeners"), with real kernel NAT: a "pod" network namespace whose inbound traffic iptables
redirects to remora's inbound listeners (strict on most ports, permissive on 8080 and 7171), the
app inside it on loopback, and the caller's sidecar (a second remora) in this namespace
originating mTLS to the pod's address.

Strict: HTTP and a TCP tunnel (to a server-speaks-first app) arrive over mTLS and reach the app
from 127.0.0.6 with the caller's identity; plaintext, silence, a client without a certificate,
and a certificate from another CA are refused, each counted by reason. Permissive: plaintext
and the mesh's mTLS both reach the app; TLS that is not the mesh's passes through to the app
still encrypted. The probe listener lets plaintext health checks reach the app's probe path,
and nothing else. Needs root, ip, iptables, setpriv, curl and openssl: skipped with the reason
otherwise."""

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Remora, payload, recv_exactly, remora_cert, wait_until  # noqa: E402
from netns import PROXY_UID, Pod, PodTestCase, why_not  # noqa: E402

TD = "mesh.test"
PAYMENT = f"spiffe://{TD}/ns/shop/sa/payment"  # the pod's workload
ORDER = f"spiffe://{TD}/ns/shop/sa/order"  # its caller

SKIP = why_not(("ip", "iptables", "setpriv", "curl", "openssl"))


def client_hello(alpn=None):
    """A real TLS ClientHello's bytes (what a client sends first), made without a socket."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="app.test")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


@unittest.skipIf(SKIP, SKIP)
class MeshMtlsTest(PodTestCase):
    @classmethod
    def _set_up(cls):
        cls.dir = tempfile.mkdtemp(prefix="remora-mesh-")
        cls.cleanup.append(lambda: shutil.rmtree(cls.dir, ignore_errors=True))
        d = cls.dir
        remora_cert("ca", "--out", f"{d}/ca")
        remora_cert("issue", "--ca", f"{d}/ca", "--spiffe-id", PAYMENT, "--out", f"{d}/payment")
        remora_cert("issue", "--ca", f"{d}/ca", "--spiffe-id", ORDER, "--out", f"{d}/order")
        remora_cert("ca", "--out", f"{d}/other-ca")
        remora_cert("issue", "--ca", f"{d}/other-ca", "--spiffe-id", ORDER, "--out",
                    f"{d}/stranger")
        # The pod's sidecar runs as its own uid: its files are its own.
        os.chmod(d, 0o755)
        for root, dirs, files in os.walk(f"{d}/payment"):
            for name in dirs + files:
                os.chown(os.path.join(root, name), PROXY_UID, PROXY_UID)
        os.chown(f"{d}/payment", PROXY_UID, PROXY_UID)

        cls.pod = pod = Pod("mesh", 202)
        cls.cleanup.append(pod.close)
        pod.nat("OUTPUT", "-p", "tcp", "-m", "owner", "--uid-owner", str(PROXY_UID), "-j",
                "RETURN")
        # The admin and probe ports are not intercepted: the kubelet's plaintext probes go to
        # the probe listener.
        for port in ("15000", "15021"):
            pod.nat("PREROUTING", "-p", "tcp", "--dport", port, "-j", "RETURN")
        for port in ("8080", "7171"):
            pod.nat("PREROUTING", "-p", "tcp", "--dport", port, "-j", "REDIRECT", "--to-ports",
                    "15016")
        pod.nat("PREROUTING", "-p", "tcp", "-j", "REDIRECT", "--to-ports", "15006")
        for mode, port in (("serve-http", 9090), ("serve-echo", 7070), ("serve-http", 8080),
                           ("serve-echo", 7171)):
            pod.serve(mode, "127.0.0.1", port)
        p = f"{d}/payment"
        tls = f"cert: {p}/cert.pem, key: {p}/key.pem, ca: {p}/ca.pem, forward_client_cert: true"
        cls.inbound = Remora(f"""
admin: {{address: "{pod.pod_ip}:15000"}}
workers: 1
listeners:
  - name: inbound
    address: 0.0.0.0:15006
    kind: inbound
    detect_timeout: 300ms
    tls: {{{tls}, handshake_timeout: 2s}}
  - name: permissive
    address: 0.0.0.0:15016
    kind: inbound
    detect_timeout: 300ms
    tls: {{{tls}, mode: permissive}}
  - name: probes
    address: 0.0.0.0:15021
    kind: http
    direction: inbound
    routes:
      - {{match: {{path: /healthz, method: GET}}, cluster: app-probe}}
clusters:
  - {{name: app-probe, protocol: http1, endpoints: [{{address: "127.0.0.1:9090"}}]}}
""", prefix=pod.cmd(uid=PROXY_UID))
        cls.cleanup.append(cls.inbound.close)
        o = f"{d}/order"
        mesh = f'cert: {o}/cert.pem, key: {o}/key.pem, ca: {o}/ca.pem, spiffe_id: "{PAYMENT}"'
        ip = pod.pod_ip
        cls.outbound = Remora(f"""
admin: {{address: "127.0.0.1:0"}}
workers: 1
listeners:
  - name: http
    address: 127.0.0.1:0
    kind: http
    routes:
      - {{match: {{authority: permissive.test}}, cluster: payment-permissive}}
      - {{match: {{authority: impostor.test}}, cluster: impostor}}
      - {{cluster: payment}}
  - {{name: tunnel, address: 127.0.0.1:0, kind: tcp, cluster: payment-tcp}}
  - {{name: tunnel-permissive, address: 127.0.0.1:0, kind: tcp, cluster: payment-tcp-permissive}}
clusters:
  - {{name: payment, protocol: http1, tls: {{{mesh}}}, endpoints: [{{address: "{ip}:9090"}}]}}
  - {{name: payment-permissive, protocol: http1, tls: {{{mesh}}},
     endpoints: [{{address: "{ip}:8080"}}]}}
  - {{name: payment-tcp, tls: {{{mesh}}}, endpoints: [{{address: "{ip}:7070"}}]}}
  - {{name: payment-tcp-permissive, tls: {{{mesh}}}, endpoints: [{{address: "{ip}:7171"}}]}}
  - name: impostor
    protocol: http1
    tls: {{cert: {o}/cert.pem, key: {o}/key.pem, ca: {o}/ca.pem,
           spiffe_id: "spiffe://{TD}/ns/shop/sa/someone-else"}}
    endpoints: [{{address: "{ip}:9090"}}]
""")
        cls.cleanup.append(cls.outbound.close)


    def metric(self, remora, name, **labels):
        inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
        return remora.metrics().get(f"{name}{{{inner}}}", 0)

    def failures(self, listener, reason):
        return self.metric(self.inbound, "remora_listener_tls_handshake_failures_total",
                           listener=listener, reason=reason)

    def curl(self, url, *extra):
        r = subprocess.run(["curl", "-s", "-m", "10", "-w", "\n%{http_code}", *extra, url],
                           capture_output=True, text=True, timeout=20)
        body, _, status = r.stdout.rpartition("\n")
        return int(status or 0), body

    def through_sidecar(self, path="/hello", host=None):
        extra = ("-H", f"Host: {host}") if host else ()
        return self.curl(f"http://127.0.0.1:{self.outbound.port('http')}{path}", *extra)

    def test_http_over_mtls_reaches_the_app_with_the_callers_identity(self):
        handshakes = self.metric(self.inbound, "remora_listener_tls_handshakes_total",
                                 listener="inbound")
        http1 = self.metric(self.inbound, "remora_listener_protocol_detected_total",
                            listener="inbound", protocol="http1")
        status, body = self.through_sidecar()
        self.assertEqual(status, 200, body)
        seen = json.loads(body)
        self.assertEqual(seen["peer"], "127.0.0.6")  # delivered by the pod's sidecar
        self.assertEqual(seen["headers"]["x-forwarded-client-cert"], f"By={PAYMENT};URI={ORDER}")
        self.assertEqual(seen["headers"]["x-forwarded-proto"], "https")
        self.assertIn("traceparent", seen["headers"])
        self.assertEqual(self.metric(self.inbound, "remora_listener_tls_handshakes_total",
                                     listener="inbound"), handshakes + 1)
        # Told apart as HTTP/1.1 after decryption.
        self.assertEqual(self.metric(self.inbound, "remora_listener_protocol_detected_total",
                                     listener="inbound", protocol="http1"), http1 + 1)

    def test_a_tcp_tunnel_is_mtls_end_to_end_even_when_the_server_speaks_first(self):
        tunnels = self.metric(self.inbound, "remora_listener_protocol_detected_total",
                              listener="inbound", protocol="tcp")
        data = payload(200 * 1024)
        with socket.create_connection(("127.0.0.1", self.outbound.port("tunnel")),
                                      timeout=10) as c:
            # The app speaks first: the tunnel is relayed once its handshake is done, not after
            # waiting for bytes from the client.
            banner = b""
            while not banner.endswith(b"\n"):
                chunk = c.recv(1)
                if not chunk:
                    break
                banner += chunk
            self.assertEqual(banner, b"peer=127.0.0.6\n")
            c.sendall(data)
            self.assertEqual(recv_exactly(c, len(data)), data)
        self.assertEqual(self.metric(self.inbound, "remora_listener_protocol_detected_total",
                                     listener="inbound", protocol="tcp"), tunnels + 1)

    def test_strict_refuses_plaintext_and_silence(self):
        ip = self.pod.pod_ip
        before = self.failures("inbound", "not_tls")
        status, _ = self.curl(f"http://{ip}:9090/hello")
        self.assertEqual(status, 0)  # closed without a response
        wait_until(lambda: self.failures("inbound", "not_tls") == before + 1,
                   what="plaintext to be counted as not_tls")
        self.assertIn("strict mode takes mutual TLS only", self.inbound.log())
        before = self.failures("inbound", "timeout")
        with socket.create_connection((ip, 7070), timeout=5) as c:
            self.assertEqual(c.recv(64), b"")  # no banner: the app was never reached
        self.assertEqual(self.failures("inbound", "timeout"), before + 1)

    def test_strict_refuses_clients_the_mesh_does_not_vouch_for(self):
        ip = self.pod.pod_ip
        d = self.dir
        for who, reason in (("", "no_peer_certificate"), ("stranger", "untrusted")):
            before = self.failures("inbound", reason)
            args = ["openssl", "s_client", "-connect", f"{ip}:9090", "-brief",
                    "-CAfile", f"{d}/order/ca.pem"]
            if who:
                args += ["-cert", f"{d}/{who}/cert.pem", "-key", f"{d}/{who}/key.pem"]
            r = subprocess.run(args, input="GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
                               capture_output=True, text=True, timeout=20)
            self.assertNotIn("200", r.stdout)
            wait_until(lambda: self.failures("inbound", reason) == before + 1,
                       what=f"the {reason} failure to be counted")

    def test_an_upstream_of_another_identity_is_refused_by_the_caller(self):
        before = self.metric(self.outbound, "remora_cluster_tls_handshake_failures_total",
                             cluster="impostor", reason="wrong_identity")
        status, _ = self.through_sidecar(host="impostor.test")
        self.assertEqual(status, 502)
        self.assertEqual(self.metric(self.outbound, "remora_cluster_tls_handshake_failures_total",
                                     cluster="impostor", reason="wrong_identity"), before + 1)

    def test_permissive_takes_plaintext_and_the_mesh_and_passes_other_tls_through(self):
        ip = self.pod.pod_ip
        status, body = self.curl(f"http://{ip}:8080/plain")
        self.assertEqual(status, 200, body)
        self.assertNotIn("x-forwarded-client-cert", json.loads(body)["headers"])
        status, body = self.through_sidecar(host="permissive.test")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["headers"]["x-forwarded-client-cert"],
                         f"By={PAYMENT};URI={ORDER}")
        # TLS that is not the mesh's (no remora ALPN mark) is the app's: it gets the very bytes.
        hello = client_hello(alpn=["h2", "http/1.1"])
        with socket.create_connection((ip, 7171), timeout=10) as c:
            c.sendall(hello)
            banner = b"peer=127.0.0.6\n"
            self.assertEqual(recv_exactly(c, len(banner) + len(hello)), banner + hello)
        # And a tunnel from the mesh is terminated there.
        data = payload(64 * 1024)
        with socket.create_connection(("127.0.0.1", self.outbound.port("tunnel-permissive")),
                                      timeout=10) as c:
            c.sendall(data)
            banner = b"peer=127.0.0.6\n"
            self.assertEqual(recv_exactly(c, len(banner) + len(data)), banner + data)

    def test_the_probe_listener_lets_plaintext_health_checks_reach_only_the_probe_path(self):
        ip = self.pod.pod_ip
        status, body = self.curl(f"http://{ip}:15021/healthz")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["peer"], "127.0.0.1")
        for extra, path in (((), "/other"), (("-X", "POST"), "/healthz")):
            status, _ = self.curl(f"http://{ip}:15021{path}", *extra)
            self.assertEqual(status, 404, path)
        # The same path on the app's port is still mTLS only.
        status, _ = self.curl(f"http://{ip}:9090/healthz")
        self.assertEqual(status, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
