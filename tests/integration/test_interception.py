"""Transparent interception with real kernel NAT (docs/config.md "Transparent listeners"): a
"pod" network namespace joined to this one by a veth pair, iptables REDIRECT rules like a
sidecar's (the proxy's uid 1337 and loopback exempt; inbound to 15006, outbound to 15001; the
admin port exempt), remora inside it as uid 1337, the app's programs as uid 1000, and peers in
this namespace. Every payload is checked byte for byte.

Outbound: HTTP/1.1, HTTP/2 and gRPC routed by authority; HTTP/1.1 and gRPC no route takes
passed through to their original destinations (traced, counted, pooled and idle-evicted); raw
TCP and TLS (SNI verified) relayed to their original destinations; a server-speaks-first port
not delayed by detection; a listener with passthrough off (port 8181 is redirected to it)
refusing what no route takes. Inbound: HTTP through the routes to the app, the caller's address
in x-forwarded-for, and HTTP no route takes delivered to the app from 127.0.0.6; other bytes
delivered to the app at the original port from 127.0.0.6, or at app_port (port 7171 is
redirected to a listener with one). A connection straight to the listener is closed, never
looped. IPv6 too (ip6tables REDIRECT, IP6T_SO_ORIGINAL_DST, listeners on [::]): HTTP and TCP
out to their original destinations, TCP in to the app on ::1. Needs root, ip (iproute2),
iptables and setpriv: skipped with the reason otherwise (the IPv6 cases alone need ip6tables'
nat table)."""

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (AcceptLoop, EchoServer, Remora, Upstream, banner_server,  # noqa: E402
                     payload, recv_until_closed)
from netns import (APP_UID, HERE, PROXY_UID, PY, Pod, PodTestCase, addresses, run,  # noqa: E402
                   why_not)

HOST_IP, POD_IP, HOST_IP6, POD_IP6 = addresses(201)
SKIP = why_not()
POD = None  # the pod, made by setUpClass


def in_pod(*args, uid=None):
    return POD.cmd(*args, uid=uid)


def pod_json(*args, stdin=None):
    return POD.peer_json(*args, stdin=stdin)


class TlsServer:
    """TLS on HOST_IP:8443 with a certificate for peer.test; records the SNI it was asked for
    and answers "pong" to anything."""

    def __init__(self, certdir):
        cert, key = os.path.join(certdir, "peer.pem"), os.path.join(certdir, "peer.key")
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=peer.test",
            "-addext", "subjectAltName=DNS:peer.test,DNS:api.routed.test")
        os.chmod(certdir, 0o755)
        os.chmod(cert, 0o644)
        self.cafile = cert
        self.sni = []
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.sni_callback = lambda sock, name, ctx: self.sni.append(name)
        self.server = AcceptLoop(self._serve, HOST_IP, 8443)

    def _serve(self, conn):
        with self.ctx.wrap_socket(conn, server_side=True) as s:
            s.recv(64)
            s.sendall(b"pong")

    def close(self):
        self.server.close()


@unittest.skipIf(SKIP, SKIP)
class InterceptionTest(PodTestCase):
    @classmethod
    def _set_up(cls):
        global POD
        POD = Pod("pod", 201)
        cls.cleanup.append(POD.close)
        nat = in_pod("iptables", "-t", "nat", "-A")
        run(*nat, "OUTPUT", "-p", "tcp", "-m", "owner", "--uid-owner", str(PROXY_UID), "-j",
            "RETURN")
        run(*nat, "OUTPUT", "-p", "tcp", "-o", "lo", "-j", "RETURN")
        run(*nat, "OUTPUT", "-p", "tcp", "--dport", "8181", "-j", "REDIRECT", "--to-ports",
            "15002")
        run(*nat, "OUTPUT", "-p", "tcp", "-j", "REDIRECT", "--to-ports", "15001")
        run(*nat, "PREROUTING", "-p", "tcp", "--dport", "15000", "-j", "RETURN")
        run(*nat, "PREROUTING", "-p", "tcp", "--dport", "7171", "-j", "REDIRECT", "--to-ports",
            "15007")
        run(*nat, "PREROUTING", "-p", "tcp", "-j", "REDIRECT", "--to-ports", "15006")
        cls.no_ipv6 = cls._set_up_ipv6()
        # Peers, in this namespace.
        cls.web = Upstream(host=HOST_IP)
        cls.cleanup.append(cls.web.close)
        cls.unrouted = Upstream(host=HOST_IP)  # no route names it
        cls.cleanup.append(cls.unrouted.close)
        if not cls.no_ipv6:
            cls.web6 = Upstream(host=HOST_IP6)
            cls.cleanup.append(cls.web6.close)
            cls.echo6 = EchoServer(host=HOST_IP6)
            cls.cleanup.append(cls.echo6.close)
        cls.echo = EchoServer(host=HOST_IP)
        cls.cleanup.append(cls.echo.close)
        cls.banner = banner_server(b"5.7.0-fake-mysql\n", HOST_IP, 3306)
        cls.cleanup.append(cls.banner.close)
        cls.certdir = tempfile.mkdtemp(prefix="remora-tls-")
        cls.cleanup.append(lambda: shutil.rmtree(cls.certdir, ignore_errors=True))
        cls.tls = TlsServer(cls.certdir)
        cls.cleanup.append(cls.tls.close)
        sys.path.insert(0, HERE)
        from grpc_peer import EchoPeer
        cls.grpc = EchoPeer(host=HOST_IP)
        cls.cleanup.append(cls.grpc.stop)
        cls.grpc_unrouted = EchoPeer(host=HOST_IP)
        cls.cleanup.append(cls.grpc_unrouted.stop)
        # The app, in the pod.
        apps = [("serve-http", "127.0.0.1", "9090"), ("serve-echo", "127.0.0.1", "7070")]
        if not cls.no_ipv6:
            apps.append(("serve-echo", "::1", "7070"))
        for mode, host, port in apps:
            POD.serve(mode, host, port)
        config = f"""
admin: {{address: "{POD_IP}:15000"}}
workers: 1
listeners:
  - name: outbound
    address: 0.0.0.0:15001
    kind: outbound
    detect_timeout: 1s
    tls_routes: [{{sni: "*.routed.test", cluster: tls}}, {{alpn: [remora-test], cluster: tls}}]
    routes:
      - {{match: {{authority: "{HOST_IP}:{cls.grpc.port}"}}, cluster: grpc}}
      - {{match: {{authority: "{HOST_IP}:{cls.web.address.split(':')[1]}"}}, cluster: web}}
  - name: registry-only
    address: 0.0.0.0:15002
    kind: outbound
    passthrough: false
    routes:
      - {{match: {{authority: "{HOST_IP}:{cls.web.address.split(':')[1]}"}}, cluster: web}}
  - name: inbound
    address: 0.0.0.0:15006
    kind: inbound
    routes:
      - {{match: {{authority: "{POD_IP}:9090"}}, cluster: app}}
  - name: inbound-app-port
    address: 0.0.0.0:15007
    kind: inbound
    app_port: 7070
  - name: outbound6
    address: "[::]:15001"
    kind: outbound
  - name: inbound6
    address: "[::]:15006"
    kind: inbound
clusters:
  - {{name: passthrough, type: original_dst, idle_connection_timeout: 1s}}
  - {{name: web, protocol: http1, endpoints: [{{address: "{cls.web.address}"}}]}}
  - {{name: grpc, protocol: http2, endpoints: [{{address: "{cls.grpc.address}"}}]}}
  - {{name: app, protocol: http1, endpoints: [{{address: "127.0.0.1:9090"}}]}}
  - {{name: tls, endpoints: [{{address: "{HOST_IP}:8443"}}]}}
"""
        cls.remora = Remora(config, prefix=in_pod(uid=PROXY_UID))
        cls.cleanup.append(cls.remora.close)

    @classmethod
    def _set_up_ipv6(cls):
        """The same interception for IPv6; the reason it cannot be, or None."""
        if shutil.which("ip6tables") is None:
            return "needs ip6tables"
        # nodad: usable at once, not after duplicate address detection.
        run("ip", "-6", "addr", "add", f"{HOST_IP6}/64", "dev", POD.veth_host, "nodad")
        run(*in_pod("ip", "-6", "addr", "add", f"{POD_IP6}/64", "dev", POD.veth_pod, "nodad"))
        nat = in_pod("ip6tables", "-t", "nat", "-A")
        first = run(*nat, "OUTPUT", "-p", "tcp", "-m", "owner", "--uid-owner", str(PROXY_UID),
                    "-j", "RETURN", check=False)
        if first.returncode != 0:
            return f"ip6tables nat unavailable: {first.stderr.strip()}"
        run(*nat, "OUTPUT", "-p", "tcp", "-o", "lo", "-j", "RETURN")
        run(*nat, "OUTPUT", "-p", "tcp", "-j", "REDIRECT", "--to-ports", "15001")
        run(*nat, "PREROUTING", "-p", "tcp", "--dport", "15000", "-j", "RETURN")
        run(*nat, "PREROUTING", "-p", "tcp", "-j", "REDIRECT", "--to-ports", "15006")
        return None


    def detected(self, listener, protocol):
        m = self.remora.metrics()
        return m[f'remora_listener_protocol_detected_total{{listener="{listener}",'
                 f'protocol="{protocol}"}}']

    def test_outbound_http1_and_http2_are_routed(self):
        url = f"http://{self.web.address}/echo/hello"
        for flags, proto in (((), "http1"), (("--h2",), "http2")):
            before = self.detected("outbound", proto)
            r = pod_json("http", url, *flags)
            self.assertEqual(r["status"], 200, r)
            seen = json.loads(r["body"])
            self.assertEqual(seen["path"], "/echo/hello")
            names = {k.lower() for k, _ in seen["headers"]}
            self.assertIn("traceparent", names)  # it went through remora's filters
            self.assertEqual(self.detected("outbound", proto), before + 1)

    def test_outbound_grpc_is_routed(self):
        self.assertEqual(pod_json("grpc", self.grpc.address), {"reply": "through the mesh"})

    def cluster_metric(self, name, cluster):
        return self.remora.metrics().get(f'{name}{{cluster="{cluster}"}}', 0)

    def test_outbound_http_no_route_takes_passes_through_pooled_and_idle_evicted(self):
        requests = self.cluster_metric("remora_cluster_upstream_requests_total", "passthrough")
        opened = self.cluster_metric("remora_cluster_upstream_connections_total", "passthrough")
        served = self.unrouted.requests
        for path in ("/echo/first", "/echo/second"):  # two clients, one after the other
            r = pod_json("http", f"http://{self.unrouted.address}{path}")
            self.assertEqual(r["status"], 200, r)
            seen = json.loads(r["body"])
            self.assertEqual(seen["path"], path)
            headers = {k.lower(): v for k, v in seen["headers"]}
            self.assertIn("traceparent", headers)  # through remora's filters, not relayed
            self.assertEqual(headers["host"], self.unrouted.address)
        self.assertEqual(self.unrouted.requests, served + 2)
        self.assertEqual(
            self.cluster_metric("remora_cluster_upstream_requests_total", "passthrough"),
            requests + 2)
        # The second request reused the first one's upstream connection (one worker).
        self.assertEqual(
            self.cluster_metric("remora_cluster_upstream_connections_total", "passthrough"),
            opened + 1)
        # The passthrough cluster's idle_connection_timeout (1s) closes it.
        deadline = time.monotonic() + 5
        while self.cluster_metric("remora_cluster_upstream_connections_active", "passthrough"):
            self.assertLess(time.monotonic(), deadline, "the idle connection stayed open")
            time.sleep(0.1)

    def test_outbound_grpc_no_route_takes_passes_through(self):
        before = self.cluster_metric("remora_cluster_upstream_requests_total", "passthrough")
        self.assertEqual(pod_json("grpc", self.grpc_unrouted.address),
                         {"reply": "through the mesh"})
        call = self.grpc_unrouted.calls[-1]
        self.assertIn("traceparent", call.metadata)
        self.assertEqual(
            self.cluster_metric("remora_cluster_upstream_requests_total", "passthrough"),
            before + 1)

    def test_a_listener_without_passthrough_refuses_what_no_route_takes(self):
        # Port 8181 is redirected to the registry-only listener; nothing listens there.
        r = pod_json("http", f"http://{HOST_IP}:8181/anything")
        self.assertEqual(r["status"], 404, r)
        r = pod_json("tcp", HOST_IP, "8181", b"\x00opaque".hex())
        self.assertEqual(r["reply"], "")
        self.assertLess(r["seconds"], 3)
        # What a route takes still goes: the web route, by its authority.
        r = pod_json("http", f"http://{HOST_IP}:8181/echo/routed", "--host", self.web.address)
        self.assertEqual(r["status"], 200, r)
        self.assertEqual(json.loads(r["body"])["path"], "/echo/routed")

    def test_outbound_raw_tcp_goes_to_its_original_destination(self):
        data = b"\x00\x01\x02binary" + payload(200 * 1024)
        r = pod_json("tcp", HOST_IP, str(self.echo.port), "-", stdin=data.hex())
        self.assertEqual(bytes.fromhex(r["reply"]), data)

    def test_outbound_tls_is_passed_through_with_its_sni(self):
        before = self.detected("outbound", "tls")
        r = pod_json("tls", HOST_IP, "8443", "peer.test", self.tls.cafile)
        self.assertEqual(r, {"reply": "pong", "peer_cn": "peer.test"})
        self.assertEqual(self.tls.sni[-1], "peer.test")
        self.assertEqual(self.detected("outbound", "tls"), before + 1)

    def test_outbound_tls_is_routed_by_its_sni(self):
        # Nothing listens on 9443: only the route for *.routed.test can make this work.
        r = pod_json("tls", HOST_IP, "9443", "api.routed.test", self.tls.cafile)
        self.assertEqual(r, {"reply": "pong", "peer_cn": "peer.test"})
        self.assertEqual(self.tls.sni[-1], "api.routed.test")

    def test_outbound_tls_is_routed_by_its_alpn(self):
        # Nothing listens on 9444: the route for ALPN remora-test must take it, whatever the SNI.
        r = pod_json("tls", HOST_IP, "9444", "peer.test", self.tls.cafile, "x-other,remora-test")
        self.assertEqual(r, {"reply": "pong", "peer_cn": "peer.test"})
        # Without that protocol offered it goes where it was going, which refuses it.
        p = subprocess.run(in_pod(PY, os.path.join(HERE, "netns_peer.py"), "tls", HOST_IP,
                                  "9444", "peer.test", self.tls.cafile, "h2", uid=APP_UID),
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0, p.stdout)

    def test_a_server_speaks_first_port_is_not_delayed(self):
        r = pod_json("banner", HOST_IP, "3306")
        self.assertEqual(r["line"], "5.7.0-fake-mysql\n")
        self.assertLess(r["seconds"], 0.5)  # detect_timeout is 1 s

    def test_inbound_http_reaches_the_app_with_the_callers_address(self):
        with socket.create_connection((POD_IP, 9090), timeout=10) as s:
            s.sendall(f"GET /in HTTP/1.1\r\nHost: {POD_IP}:9090\r\nConnection: close\r\n\r\n"
                      .encode())
            raw = recv_until_closed(s)
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        seen = json.loads(body)
        self.assertEqual(seen["headers"]["x-forwarded-for"], HOST_IP)

    def test_inbound_http_no_route_takes_reaches_the_app_from_127_0_0_6(self):
        before = self.cluster_metric("remora_cluster_upstream_requests_total",
                                     "inbound_passthrough")
        with socket.create_connection((POD_IP, 9090), timeout=10) as s:
            s.sendall(b"GET /in HTTP/1.1\r\nHost: unrouted.example\r\nConnection: close\r\n\r\n")
            raw = recv_until_closed(s)
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        seen = json.loads(body)
        self.assertEqual(seen["peer"], "127.0.0.6")
        self.assertEqual(seen["headers"]["x-forwarded-for"], HOST_IP)
        self.assertIn("traceparent", seen["headers"])
        self.assertEqual(
            self.cluster_metric("remora_cluster_upstream_requests_total", "inbound_passthrough"),
            before + 1)

    def test_inbound_tcp_reaches_the_app_from_127_0_0_6(self):
        data = b"\x00opaque inbound" + payload(64 * 1024)
        # To the app's own port, and to another one: app_port sends both to the app.
        for port in (7070, 7171):
            with socket.create_connection((POD_IP, port), timeout=10) as s:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                raw = recv_until_closed(s)
            self.assertEqual(raw, b"peer=127.0.0.6\n" + data, port)

    def test_ipv6_outbound_http_and_tcp_reach_their_original_destinations(self):
        if self.no_ipv6:
            self.skipTest(self.no_ipv6)
        before = self.detected("outbound6", "http1")
        r = pod_json("http", f"http://{self.web6.address}/echo/six")
        self.assertEqual(r["status"], 200, r)
        seen = json.loads(r["body"])
        self.assertEqual(seen["path"], "/echo/six")
        headers = {k.lower(): v for k, v in seen["headers"]}
        self.assertIn("traceparent", headers)
        self.assertEqual(headers["host"], self.web6.address)
        self.assertEqual(self.detected("outbound6", "http1"), before + 1)
        data = b"\x00six" + payload(100 * 1024)
        before = self.detected("outbound6", "tcp")
        r = pod_json("tcp", HOST_IP6, str(self.echo6.port), "-", stdin=data.hex())
        self.assertEqual(bytes.fromhex(r["reply"]), data)
        self.assertEqual(self.detected("outbound6", "tcp"), before + 1)  # intercepted

    def test_ipv6_inbound_tcp_reaches_the_app_on_loopback(self):
        if self.no_ipv6:
            self.skipTest(self.no_ipv6)
        data = b"\x00six inbound" + payload(32 * 1024)
        with socket.create_connection((POD_IP6, 7070), timeout=10) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            raw = recv_until_closed(s)
        self.assertEqual(raw, b"peer=::1\n" + data)

    def test_a_direct_connection_to_the_listener_does_not_loop(self):
        # Loopback is exempt from the NAT rules: this reaches the listener as addressed, and
        # the kernel reports the listener itself as the original destination.
        r = pod_json("tcp", "127.0.0.1", "15001", b"\x00direct".hex())
        self.assertEqual(r["reply"], "")
        self.assertLess(r["seconds"], 2)
        m = self.remora.metrics()
        self.assertEqual(m['remora_listener_connections_active{listener="outbound"}'], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
