"""Local rate limiting (docs/config.md `rate_limit`) on the real binary: over 10 s at three times
a listener's limit, the requests admitted stay within the documented bound rate x time + burst
(the bucket is shared by both workers); the refused ones get 429 rate_limited with Retry-After at
once and never reach the upstream; keyed limits give each key its own bucket; a route's limit
applies to that route alone."""

import concurrent.futures
import http.client
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Remora, http_config  # noqa: E402
from scripted_upstream import ScriptedUpstreamTest  # noqa: E402


class Client:
    """One keep-alive connection."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def get(self, path="/", headers=None):
        self.conn.request("GET", path, headers=headers or {})
        resp = self.conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("x-remora-reason"), resp.getheader("retry-after")

    def close(self):
        self.conn.close()


class RateLimitTest(ScriptedUpstreamTest):
    def test_three_times_the_rate_for_ten_seconds_stays_within_the_bound(self):
        rate, burst, seconds = 20, 5, 10.0
        up = self.upstream("up")
        config = http_config(
            [("{prefix: /}", "up")], {"up": [up.address]},
            listener_extra=[f"rate_limit: {{requests_per_second: {rate}, burst: {burst}}}"],
            workers=2)
        with Remora(config) as r:
            port = r.port("web")
            results, lock = [], threading.Lock()
            start = time.monotonic()

            def paced(offset):
                # Three connections (spread over both workers) together send 3 x rate per second.
                c = Client(port)
                try:
                    i = 0
                    while True:
                        due = start + offset + i * 3 / (3 * rate)
                        if due - start >= seconds:
                            return
                        time.sleep(max(0.0, due - time.monotonic()))
                        t0 = time.monotonic()
                        status, reason, retry_after = c.get()
                        with lock:
                            results.append((status, reason, retry_after,
                                            time.monotonic() - t0))
                        i += 1
                finally:
                    c.close()

            with concurrent.futures.ThreadPoolExecutor(3) as pool:
                list(pool.map(paced, [k / (3 * rate) for k in range(3)]))
            span = time.monotonic() - start
            admitted = sum(1 for s, _, _, _ in results if s == 200)
            refused = [x for x in results if x[0] == 429]
            bound = rate * span + burst
            print(f"\n{len(results)} requests in {span:.2f}s at 3x {rate}/s: {admitted} admitted "
                  f"(bound {bound:.0f}), {len(refused)} refused", file=sys.stderr)
            self.assertGreaterEqual(len(results), 3 * rate * seconds * 0.9)
            self.assertLessEqual(admitted, bound)
            # Not over-strict either: a steady excess wastes no tokens.
            self.assertGreaterEqual(admitted, rate * seconds * 0.9)
            self.assertEqual(admitted + len(refused), len(results))
            self.assertTrue(all(reason == "rate_limited" and ra is not None and int(ra) >= 1
                                for _, reason, ra, _ in refused), refused[:3])
            self.assertEqual(up.count(), admitted)
            self.assertEqual(r.metrics()['remora_listener_rate_limited_total{listener="web"}'],
                             len(refused))

    def test_keys_have_their_own_buckets_and_routes_their_own_limits(self):
        up = self.upstream("up")
        slow_refill = "requests_per_second: 0.01"
        config = http_config(
            [("{prefix: /limited}", "up",
              [f"rate_limit: {{{slow_refill}, burst: 2, key: {{header: x-user}}}}"]),
             ("{prefix: /}", "up")],
            {"up": [up.address]})
        with Remora(config) as r:
            c = Client(r.port("web"))
            try:
                alice = [c.get("/limited", {"x-user": "alice"})[0] for _ in range(3)]
                bob = [c.get("/limited", {"x-user": "bob"})[0] for _ in range(3)]
                self.assertEqual(alice, [200, 200, 429])
                self.assertEqual(bob, [200, 200, 429])
                status, reason, retry_after = c.get("/limited", {"x-user": "alice"})
                self.assertEqual((status, reason), (429, "rate_limited"))
                self.assertGreaterEqual(int(retry_after), 99)  # one token per 100 s
                # The other route has no limit.
                self.assertEqual([c.get("/other")[0] for _ in range(10)], [200] * 10)
            finally:
                c.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
