"""Transparent listeners (docs/config.md `kind: outbound | inbound`) on the real binary, reached
directly on loopback (the NAT cases are in test_interception.py): the first bytes decide between
HTTP/1.1 and HTTP/2 (through the routes: trace headers added) and anything else (relayed byte
for byte to the listener's cluster); a silent client becomes TCP after detect_timeout; a
server-speaks-first port is not delayed at all; a connection straight to a listener with no
cluster is closed, never looped back to the proxy."""

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (EchoServer, Remora, ServersTest, Upstream, banner_server,  # noqa: E402
                     free_port, payload, recv_until_closed)


def relay(port, data, pause=0.0, timeout=5):
    """Sends `data` (after `pause` seconds of silence), half-closes, returns all it reads."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if pause:
            time.sleep(pause)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        return recv_until_closed(s)


def config(listeners, clusters):
    out = ["admin: {address: 127.0.0.1:0}", "listeners:"]
    out += ["  - " + line for line in listeners]
    out.append("clusters:")
    out += [f"  - {{name: {name}, protocol: http1, endpoints: [{{address: {addr}}}]}}"
            for name, addr in clusters.items()]
    return "\n".join(out) + "\n"


class ProtocolDetectionTest(ServersTest):
    def test_http_goes_through_routes_and_other_bytes_are_relayed(self):
        web = self.keep(Upstream())
        echo = self.keep(EchoServer())
        cfg = config(["{name: out, address: 127.0.0.1:0, kind: outbound, cluster: echo, "
                      "detect_timeout: 300ms, routes: [{cluster: web}]}"],
                     {"web": web.address, "echo": echo.address})
        with Remora(cfg) as r:
            port = r.port("out")
            # HTTP/1.1: routed, and the trace filter ran.
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/echo/x")
            resp = conn.getresponse()
            seen = json.loads(resp.read())
            conn.close()
            self.assertEqual(resp.status, 200)
            headers = {k.lower(): v for k, v in seen["headers"]}
            self.assertIn("traceparent", headers)
            # HTTP/2 prior knowledge: routed too.
            out = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null",
                                  "-w", "%{http_code} %{http_version}",
                                  f"http://127.0.0.1:{port}/echo/y"],
                                 capture_output=True, text=True, timeout=10)
            self.assertEqual(out.stdout, "200 2")
            # Binary, a TLS ClientHello's first bytes, and a one-shot send with FIN: relayed
            # to the cluster byte for byte.
            blob = payload(256 * 1024)
            self.assertEqual(relay(port, b"\x00\x01binary" + blob), b"\x00\x01binary" + blob)
            hello = b"\x16\x03\x01\x00\x05hello"
            self.assertEqual(relay(port, hello), hello)
            self.assertEqual(relay(port, b"hi"), b"hi")
            # Nothing for longer than detect_timeout: TCP, and the late bytes still arrive.
            self.assertEqual(relay(port, b"late bytes", pause=0.6), b"late bytes")
            m = r.metrics()
            for proto, n in (("http1", 1), ("http2", 1), ("tls", 1), ("tcp", 2),
                             ("timeout", 1)):
                key = f'remora_listener_protocol_detected_total{{listener="out",protocol="{proto}"}}'
                self.assertEqual(m[key], n, proto)
            # The silent client alone waited the 300 ms timeout.
            waited = m['remora_listener_protocol_detection_seconds_total{listener="out"}']
            self.assertTrue(0.29 <= waited < 1.0, waited)

    def test_explicit_mode_http_proxy_absolute_form(self):
        # Beside a service without iptables: the app sets HTTP_PROXY (absolute-form requests)
        # and remora routes by the authority in them; the upstream gets the origin form.
        web = self.keep(Upstream())
        cfg = config(["{name: out, address: 127.0.0.1:0, kind: outbound, routes: "
                      "[{match: {authority: svc.test}, cluster: web}]}"], {"web": web.address})
        with Remora(cfg) as r:
            out = subprocess.run(["curl", "-s", "-x", f"http://127.0.0.1:{r.port('out')}",
                                  "http://svc.test/echo/abs"],
                                 capture_output=True, text=True, timeout=10)
            seen = json.loads(out.stdout)
            self.assertEqual(seen["path"], "/echo/abs")
            headers = {k.lower(): v for k, v in seen["headers"]}
            self.assertEqual(headers["host"], "svc.test")

    def test_a_server_speaks_first_port_is_not_delayed(self):
        banner = self.keep(banner_server(b"220 banner\r\n"))
        port = free_port()
        cfg = config([f"{{name: db, address: 127.0.0.1:{port}, kind: outbound, cluster: db, "
                      f"detect_timeout: 2s, server_first_ports: [{port}]}}",
                      "{name: other, address: 127.0.0.1:0, kind: outbound, cluster: db, "
                      "detect_timeout: 2s}"],
                     {"db": banner.address})
        with Remora(cfg) as r:
            start = time.monotonic()
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                self.assertEqual(s.recv(64), b"220 banner\r\n")
            self.assertLess(time.monotonic() - start, 0.5)
            # The same server behind a port not listed waits the whole detect_timeout.
            start = time.monotonic()
            with socket.create_connection(("127.0.0.1", r.port("other")), timeout=5) as s:
                self.assertEqual(s.recv(64), b"220 banner\r\n")
            self.assertGreater(time.monotonic() - start, 1.9)

    def test_a_direct_connection_without_a_cluster_is_closed_not_looped(self):
        web = self.keep(Upstream())
        cfg = config(["{name: out, address: 127.0.0.1:0, kind: outbound, "
                      "routes: [{cluster: web}]}"], {"web": web.address})
        with Remora(cfg) as r:
            port = r.port("out")
            for _ in range(20):
                self.assertEqual(relay(port, b"\x00not http"), b"")
            # Still serving, and nothing piled up.
            m = r.metrics()
            self.assertEqual(m['remora_listener_connections_active{listener="out"}'], 0)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/echo/z")
            self.assertEqual(conn.getresponse().status, 200)
            conn.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
