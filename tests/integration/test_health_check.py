"""Active health checks (docs/config.md `health_check`) on the real binary: an endpoint whose
health path starts failing leaves rotation after `unhealthy_threshold` checks, gets no traffic
while out, and returns after `healthy_threshold` passing checks; a check that hangs past its
timeout fails; with too few healthy endpoints the panic threshold sends traffic to all."""

import http.client
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BackgroundServer, QuietHandler, Remora, ServersTest,  # noqa: E402
                     http_config, wait_until)


class Service(BackgroundServer):
    """GET /healthz answers `health` (a status, or "hang"); anything else 200 with the name."""

    def __init__(self, name):
        self.name = name
        self.health = 200
        self.checks = 0
        self.served = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(QuietHandler):
            def do_GET(self):
                if self.path == "/healthz":
                    with outer.lock:
                        outer.checks += 1
                    if outer.health == "hang":
                        time.sleep(2)
                        return
                    self.reply(outer.health, b"")
                    return
                with outer.lock:
                    outer.served += 1
                self.reply(200, outer.name.encode())

            def reply(self, status, body):
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.serve(Handler)


def get(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/work")
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


CHECK = ["health_check:", "  path: /healthz", "  interval: 100ms", "  timeout: 300ms",
         "  healthy_threshold: 2", "  unhealthy_threshold: 3"]


class HealthCheckTest(ServersTest):
    def service(self, name):
        return self.keep(Service(name))

    def health(self, r):
        status, text = r.http("GET", "/clusters")
        cluster = json.loads(text)["clusters"][0]
        return {e["address"]: e["health"] for e in cluster["endpoints"]}

    def test_unhealthy_endpoints_leave_rotation_and_return(self):
        a, b = self.service("a"), self.service("b")
        config = http_config([("{prefix: /}", "svc")], {"svc": [a.address, b.address]},
                             cluster_extra={"svc": ["lb_policy: round_robin"] + CHECK},
                             workers=2)
        with Remora(config) as r:
            port = r.port("web")
            wait_until(lambda: a.checks >= 2 and b.checks >= 2, what="checks running")
            self.assertEqual({get(port)[1] for _ in range(10)}, {"a", "b"})
            a.health = 503
            wait_until(lambda: self.health(r)[a.address] == "unhealthy", what="a unhealthy")
            self.assertIn(f"endpoint {a.address} unhealthy, out of rotation", r.log())
            served = a.served
            self.assertEqual([get(port) for _ in range(20)], [(200, "b")] * 20)
            self.assertEqual(a.served, served)
            # Back: two passing checks in a row.
            a.health = 200
            wait_until(lambda: self.health(r)[a.address] == "healthy", what="a healthy again")
            self.assertEqual({get(port)[1] for _ in range(10)}, {"a", "b"})
            m = r.metrics()
            self.assertGreaterEqual(
                m['remora_cluster_health_checks_total{cluster="svc",result="failed"}'], 3)
            self.assertEqual(m['remora_cluster_endpoints_unhealthy{cluster="svc"}'], 0)

    def test_a_hanging_check_fails_at_its_timeout(self):
        a, b = self.service("a"), self.service("b")
        config = http_config([("{prefix: /}", "svc")], {"svc": [a.address, b.address]},
                             cluster_extra={"svc": CHECK})
        with Remora(config) as r:
            a.health = "hang"
            start = time.monotonic()
            wait_until(lambda: self.health(r)[a.address] == "unhealthy", timeout=5,
                       what="a unhealthy")
            # Three checks, each ending at the 300 ms timeout, 100 ms apart.
            self.assertLess(time.monotonic() - start, 2.5)
            self.assertEqual({get(r.port("web"))[1] for _ in range(10)}, {"b"})

    def test_panic_when_too_few_are_healthy(self):
        svcs = [self.service(n) for n in "abc"]
        config = http_config([("{prefix: /}", "svc")], {"svc": [s.address for s in svcs]},
                             cluster_extra={"svc": ["lb_policy: round_robin",
                                                    "panic_threshold_percent: 50"] + CHECK})
        with Remora(config) as r:
            svcs[0].health = svcs[1].health = 503
            wait_until(lambda: list(self.health(r).values()).count("unhealthy") == 2,
                       what="two unhealthy")
            # 1 of 3 healthy is below 50%: all three take traffic.
            self.assertEqual({get(r.port("web"))[1] for _ in range(9)}, {"a", "b", "c"})


if __name__ == "__main__":
    unittest.main(verbosity=2)
