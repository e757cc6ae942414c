"""Circuit breaking (docs/config.md `circuit_breaker`): each endpoint's breaker goes Closed -> Open
-> Half-Open -> Closed (or back to Open) on the real binary with scripted upstreams; with every
endpoint open the cluster fails fast (503 circuit_open, or the route's fallback) without touching
the upstream; the ejection cap and panic threshold hold."""

import concurrent.futures
import http.client
import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import EchoServer, Remora, free_port_refused, http_config, wait_until  # noqa: E402
from scripted_upstream import ScriptedUpstreamTest, fail, ok, stall  # noqa: E402


def get(port, path="/", timeout=10):
    """(status, x-remora-reason, body, headers)"""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, resp.getheader("x-remora-reason"), body, dict(resp.getheaders())
    finally:
        conn.close()


def breaker_lines(**fields):
    lines = ["circuit_breaker:"]
    lines += [f"  {k}: {v}" for k, v in fields.items()]
    return lines


class CircuitBreakerTest(ScriptedUpstreamTest):
    def cluster(self, r, name):
        status, text = r.http("GET", "/clusters")
        self.assertEqual(status, 200, text)
        return next(c for c in json.loads(text)["clusters"] if c["name"] == name)

    def states(self, r, name):
        return {e["address"]: e["breaker"]["state"] for e in self.cluster(r, name)["endpoints"]}

    def test_closed_open_half_open_closed_and_reopen(self):
        bad, good = self.upstream("bad"), self.upstream("good")
        bad.default = fail(503)
        config = http_config(
            [("{prefix: /}", "svc")], {"svc": [bad.address, good.address]},
            cluster_extra={"svc": ["lb_policy: round_robin"] + breaker_lines(
                consecutive_failures=3, open_for="1s", max_open_for="10s")})
        with Remora(config) as r:
            port = r.port("web")
            results = [get(port)[0] for _ in range(20)]
            # Round robin alternates until the third failure in a row opens `bad`; then
            # every request goes to `good`.
            self.assertEqual(bad.count(), 3, results)
            self.assertEqual(results.count(503), 3)
            self.assertEqual(self.states(r, "svc")[bad.address], "open")
            self.assertIn(f"endpoint {bad.address} breaker open", r.log())
            # Open -> Half-Open after open_for: one probe reaches it, fails, and it opens again
            # (for 2 s now).
            time.sleep(1.1)
            for _ in range(6):
                get(port)
            self.assertEqual(bad.count(), 4)
            cl = self.cluster(r, "svc")
            ep = next(e for e in cl["endpoints"] if e["address"] == bad.address)
            self.assertEqual(ep["breaker"]["state"], "open")
            self.assertEqual(ep["breaker"]["openings_in_a_row"], 2)
            self.assertGreater(ep["breaker"]["probe_in_ms"], 1000)
            # Recovered: the next probe succeeds and the breaker closes; traffic returns.
            bad.default = ok()
            time.sleep(2.1)
            results = [get(port)[0] for _ in range(10)]
            self.assertEqual(results, [200] * 10)
            self.assertEqual(self.states(r, "svc")[bad.address], "closed")
            self.assertGreaterEqual(bad.count(), 4 + 4)  # the probe, then its round-robin share
            self.assertIn(f"endpoint {bad.address} breaker closed", r.log())
            m = r.metrics()
            self.assertEqual(
                m['remora_cluster_breaker_transitions_total{cluster="svc",to="open"}'], 2)
            self.assertEqual(
                m['remora_cluster_breaker_transitions_total{cluster="svc",to="half_open"}'], 2)
            self.assertEqual(
                m['remora_cluster_breaker_transitions_total{cluster="svc",to="closed"}'], 1)
            self.assertEqual(m['remora_cluster_endpoints_ejected{cluster="svc"}'], 0)

    def test_an_open_cluster_fails_fast_and_the_upstream_sees_nothing(self):
        up = self.upstream("down")
        up.default = fail(503)
        retries = ["retries:", "  attempts: 3", "  per_try_timeout: 5s", "  retry_on: [5xx]"]
        fallback = ["fallback:", "  status: 200",
                    "  headers: [{name: content-type, value: application/json}]",
                    "  body: '{\"items\": [], \"degraded\": true}'"]
        config = http_config(
            [("{prefix: /fallback}", "svc", fallback), ("{prefix: /}", "svc", retries)],
            {"svc": [up.address]},
            cluster_extra={"svc": breaker_lines(consecutive_failures=3, open_for="30s")},
            workers=2)
        with Remora(config) as r:
            port = r.port("web")
            status, reason, _, _ = get(port)  # three attempts, three failures: open
            self.assertEqual(status, 503)
            wait_until(lambda: self.states(r, "svc")[up.address] == "open", what="breaker open")
            seen = up.count()
            # Now the endpoint would hang for 6 s past any per-try timeout: nobody may wait.
            up.default = stall(6)
            start = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(20) as pool:
                results = list(pool.map(lambda _: get(port, "/x"), range(100)))
            elapsed = time.monotonic() - start
            self.assertLess(elapsed, 1.0)
            self.assertEqual({(s, reason) for s, reason, _, _ in results}, {(503, "circuit_open")})
            self.assertEqual(up.count(), seen)
            # The route with a fallback answers with it instead, marked all the same.
            status, reason, body, headers = get(port, "/fallback/list")
            self.assertEqual(status, 200)
            self.assertEqual(json.loads(body), {"items": [], "degraded": True})
            self.assertEqual(headers["content-type"], "application/json")
            self.assertEqual(reason, "circuit_open")
            self.assertEqual(up.count(), seen)
            self.assertEqual(self.cluster(r, "svc")["circuit_breaker"]["state"], "open")
            self.assertEqual(r.metrics()['remora_cluster_circuit_open_total{cluster="svc"}'], 101)

    def test_the_ejection_cap_keeps_half_the_cluster_in_rotation(self):
        ups = [self.upstream(f"u{i}") for i in range(4)]
        for u in ups:
            u.default = fail(500)
        config = http_config(
            [("{prefix: /}", "svc")], {"svc": [u.address for u in ups]},
            cluster_extra={"svc": ["lb_policy: round_robin"] + breaker_lines(
                consecutive_failures=2, open_for="30s", max_ejection_percent=50)})
        with Remora(config) as r:
            port = r.port("web")
            for _ in range(24):
                get(port)
            states = self.states(r, "svc")
            self.assertEqual(sorted(states.values()), ["closed", "closed", "open", "open"])
            before = {u.name: u.count() for u in ups}
            for _ in range(10):
                get(port)
            moved = [u.name for u in ups if u.count() > before[u.name]]
            closed = [u.name for u in ups if states[u.address] == "closed"]
            self.assertEqual(sorted(moved), sorted(closed))  # the capped ones still serve
            self.assertGreater(
                r.metrics()['remora_cluster_ejections_capped_total{cluster="svc"}'], 0)

    def test_panic_spreads_the_load_over_every_endpoint(self):
        a, b, c = self.upstream("a"), self.upstream("b"), self.upstream("c")
        a.default = b.default = fail(500)
        config = http_config(
            [("{prefix: /}", "svc")], {"svc": [a.address, b.address, c.address]},
            cluster_extra={"svc": ["lb_policy: round_robin", "panic_threshold_percent: 50"]
                           + breaker_lines(consecutive_failures=2, open_for="30s")})
        with Remora(config) as r:
            port = r.port("web")
            for _ in range(12):
                get(port)
            self.assertEqual(self.states(r, "svc"), {a.address: "open", b.address: "open",
                                                     c.address: "closed"})
            # 1 of 3 closed is below 50%: every endpoint takes its share again.
            panic = 'remora_cluster_lb_panic_total{cluster="svc"}'
            panics = r.metrics()[panic]
            before = [u.count() for u in (a, b, c)]
            for _ in range(9):
                get(port)
            after = [u.count() for u in (a, b, c)]
            self.assertEqual([x - y for x, y in zip(after, before)], [3, 3, 3])
            self.assertEqual(r.metrics()[panic] - panics, 9)

    def test_tcp_connects_skip_an_open_endpoint_and_a_closed_cluster_closes_at_once(self):
        refused = free_port_refused()
        with EchoServer() as echo:
            config = "\n".join([
                "admin: {address: 127.0.0.1:0}",
                "listeners:",
                "  - {name: mixed, address: 127.0.0.1:0, kind: tcp, cluster: mixed}",
                "  - {name: down, address: 127.0.0.1:0, kind: tcp, cluster: down}",
                "clusters:",
                "  - name: mixed",
                "    lb_policy: round_robin",
                "    circuit_breaker: {consecutive_failures: 1, open_for: 30s}",
                f"    endpoints: [{{address: {refused}}}, {{address: {echo.address}}}]",
                "  - name: down",
                "    circuit_breaker: {consecutive_failures: 1, open_for: 30s}",
                f"    endpoints: [{{address: {refused}}}]",
            ]) + "\n"

            def echoed(port):
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    try:
                        s.sendall(b"ping")
                        s.shutdown(socket.SHUT_WR)
                        return s.recv(16)
                    except OSError:
                        return b""

            with Remora(config) as r:
                results = [echoed(r.port("mixed")) for _ in range(10)]
                # At most the first connect meets the refused endpoint; then it is open.
                self.assertGreaterEqual(results.count(b"ping"), 9, results)
                self.assertEqual(self.states(r, "mixed")[refused], "open")
                self.assertEqual(echoed(r.port("down")), b"")  # the connect fails: open
                for _ in range(5):
                    self.assertEqual(echoed(r.port("down")), b"")
                self.assertEqual(
                    r.metrics()['remora_cluster_circuit_open_total{cluster="down"}'], 5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
