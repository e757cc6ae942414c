"""Admin API against the real binary: every read endpoint, Prometheus text validated by promtool,
bearer-token and Unix-socket auth on mutating endpoints, and bad admin requests answered with the
right 4xx without disturbing the proxy."""

import json
import os
import shutil
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

TOKEN = "s3cret-admin-token"


def raw_request(address, data, family=socket.AF_INET, timeout=5):
    """Sends raw bytes to the admin API, returns the whole response (it closes after one)."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(address)
        s.sendall(data)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                return b"".join(chunks)
            chunks.append(b)


def status_of(response):
    return int(response.split(b" ", 2)[1])


class AdminTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.echo = harness.EchoServer()
        cls.tmp = harness.tempfile.TemporaryDirectory(prefix="remora-admin-")
        cls.sock_path = os.path.join(cls.tmp.name, "admin.sock")
        config = harness.render_config(
            [("a", "c")], {"c": [cls.echo.address]}, admin_token=TOKEN)
        config = config.replace("  token: ", f"  unix_socket: {cls.sock_path}\n  token: ", 1)
        cls.r = harness.Remora(config)

    @classmethod
    def tearDownClass(cls):
        cls.r.__exit__(None, None, None)
        cls.echo.close()
        cls.tmp.cleanup()

    def test_live_and_ready(self):
        self.assertEqual(self.r.http("GET", "/live"), (200, "live\n"))
        self.assertEqual(self.r.http("GET", "/ready"), (200, "ready\n"))

    def test_metrics_pass_promtool_and_count_traffic(self):
        with harness.connect(self.r.port("a")) as s:
            s.sendall(b"ping")
            self.assertEqual(s.recv(4), b"ping")
        status, text = self.r.http("GET", "/metrics")
        self.assertEqual(status, 200)
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool (Debian package prometheus) is required")
        check = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                               capture_output=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        m = harness.parse_metrics(text)
        self.assertGreaterEqual(m['remora_listener_connections_total{listener="a"}'], 1)
        self.assertGreaterEqual(m['remora_listener_received_bytes_total{listener="a"}'], 4)
        self.assertEqual(m["remora_config_version"], 1)
        self.assertEqual(m["remora_workers"], 1)
        self.assertGreater(m["remora_process_open_fds"], 0)
        self.assertGreater(m["remora_process_resident_memory_bytes"], 0)
        self.assertEqual(m["remora_stats_series_dropped_total"], 0)

    def test_every_metric_family_is_documented(self):
        status, text = self.r.http("GET", "/metrics")
        self.assertEqual(status, 200)
        families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
        docs_path = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "metrics.md")
        with open(docs_path, encoding="utf-8") as f:
            docs = f.read()
        missing = sorted(name for name in families if "`" + name not in docs)
        self.assertEqual(missing, [], "families exposed by /metrics but not in docs/metrics.md")

    def test_config_is_redacted_and_versioned(self):
        status, body = self.r.http("GET", "/config")
        self.assertEqual(status, 200)
        j = json.loads(body)
        self.assertEqual(j["version"], 1)
        self.assertEqual(j["config"]["listeners"][0]["name"], "a")
        self.assertNotIn(TOKEN, body)

    def test_clusters_and_listeners(self):
        j = json.loads(self.r.http("GET", "/clusters")[1])
        self.assertEqual(j["clusters"][0]["name"], "c")
        self.assertEqual(j["clusters"][0]["endpoints"][0]["address"], self.echo.address)
        j = json.loads(self.r.http("GET", "/listeners")[1])
        self.assertEqual(j["listeners"][0]["address"], f"127.0.0.1:{self.r.port('a')}")

    def test_mutating_endpoints_need_the_token(self):
        for token in (None, "wrong-token"):
            status, _ = self.r.http("POST", "/logging?level=debug", token=token)
            self.assertEqual(status, 401)
            status, _ = self.r.http("POST", "/drain", token=token)
            self.assertEqual(status, 401)
        self.assertEqual(self.r.http("GET", "/ready")[0], 200, "an unauthorized drain drained")
        self.assertEqual(self.r.http("POST", "/logging?level=debug", token=TOKEN),
                         (200, "level: debug\n"))
        self.assertEqual(self.r.http("GET", "/logging"), (200, "level: debug\n"))
        self.assertEqual(self.r.http("POST", "/logging?level=loud", token=TOKEN)[0], 400)
        self.assertEqual(self.r.http("POST", "/logging?level=info", token=TOKEN)[0], 200)

    def test_unix_socket_is_trusted(self):
        self.assertEqual(os.stat(self.sock_path).st_mode & 0o777, 0o600)
        resp = raw_request(self.sock_path, b"POST /logging?level=warn HTTP/1.1\r\nHost: x\r\n\r\n",
                           family=socket.AF_UNIX)
        self.assertEqual(status_of(resp), 200, resp)
        self.assertEqual(self.r.http("GET", "/logging"), (200, "level: warn\n"))
        self.r.http("POST", "/logging?level=info", token=TOKEN)

    def test_bad_requests_get_specific_4xx(self):
        addr = self.r.admin
        cases = [
            (b"GET /nope HTTP/1.1\r\n\r\n", 404),
            (b"DELETE /metrics HTTP/1.1\r\n\r\n", 405),
            (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431),
            (b"POST /drain HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + b"b" * 100000, 413),
        ]
        # libuv reserves one fd per loop (for EMFILE recovery) on its first stream, so the baseline
        # is taken after one request has been served.
        self.r.http("GET", "/live")
        baseline = self.r.fd_count()
        for data, want in cases:
            resp = raw_request(addr, data)
            self.assertEqual(status_of(resp), want, resp[:200])
            self.assertIn(b"Connection: close", resp)
        resp = raw_request(addr, b"DELETE /metrics HTTP/1.1\r\n\r\n")
        self.assertIn(b"Allow: GET", resp)
        harness.wait_until(lambda: self.r.fd_count() <= baseline, timeout=1, what="fds to return")
        self.assertEqual(self.r.http("GET", "/ready")[0], 200)


    def test_idle_admin_connections_are_capped(self):
        """The admin API shares descriptors with the data path, so idle admin connections are
        capped at 64: the 65th is closed at once, the proxy keeps serving, and the admin API
        answers again as soon as the idle ones go."""
        idle = []
        try:
            for _ in range(64):
                idle.append(socket.create_connection(self.r.admin, timeout=5))
            # Each is accepted by the main loop; give it a moment to take them all.
            harness.wait_until(lambda: self.r.fd_count() >= 64, timeout=2,
                               what="the admin connections to be accepted")
            extra = socket.create_connection(self.r.admin, timeout=5)
            self.assertEqual(extra.recv(100), b"", "the 65th admin connection was served")
            extra.close()
            with harness.connect(self.r.port("a")) as s:
                s.sendall(b"still")
                self.assertEqual(s.recv(5), b"still")
        finally:
            for c in idle:
                c.close()

        def live():
            try:
                return self.r.http("GET", "/live")[0] == 200
            except OSError:  # still at the cap: closed on accept
                return False
        harness.wait_until(live, timeout=2, what="the admin API to answer again")


if __name__ == "__main__":
    unittest.main()
