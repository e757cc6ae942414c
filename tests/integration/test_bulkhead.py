"""Bulkheads (docs/config.md `max_requests`, `max_pending_requests`, `max_retries`): a cluster
at its limit answers 503 overflow at once, and another cluster's traffic goes on untouched."""

import concurrent.futures
import http.client
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Remora, http_config  # noqa: E402
from scripted_upstream import ScriptedUpstreamTest, fail, stall  # noqa: E402


def get(port, path):
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("x-remora-reason"), time.monotonic() - start
    finally:
        conn.close()


class BulkheadTest(ScriptedUpstreamTest):
    def test_a_full_cluster_overflows_at_once_and_its_neighbour_is_unaffected(self):
        slow, fast = self.upstream("slow"), self.upstream("fast")
        slow.default = stall(1.0)
        config = http_config(
            [("{prefix: /slow}", "slow"), ("{prefix: /}", "fast")],
            {"slow": [slow.address], "fast": [fast.address]},
            cluster_extra={"slow": ["max_requests: 5"]}, workers=2)
        with Remora(config) as r:
            port = r.port("web")
            with concurrent.futures.ThreadPoolExecutor(40) as pool:
                slow_calls = [pool.submit(get, port, "/slow") for _ in range(20)]
                time.sleep(0.2)  # the burst on the slow cluster is in
                fast_calls = [pool.submit(get, port, "/fast") for _ in range(20)]
                slow_results = [f.result() for f in slow_calls]
                fast_results = [f.result() for f in fast_calls]
            ok = [x for x in slow_results if x[0] == 200]
            over = [x for x in slow_results if x[0] == 503]
            self.assertEqual(len(ok), 5, slow_results)
            self.assertEqual(len(over), 15, slow_results)
            self.assertTrue(all(reason == "overflow" and t < 0.5 for _, reason, t in over), over)
            self.assertEqual(slow.count(), 5)  # the overflowed requests never reached it
            # The other cluster served everything, without waiting on the slow one.
            self.assertEqual([s for s, _, _ in fast_results], [200] * 20)
            self.assertTrue(all(t < 0.8 for _, _, t in fast_results), fast_results)
            m = r.metrics()
            self.assertEqual(m['remora_cluster_overflow_total{cluster="slow"}'], 15)
            self.assertEqual(m['remora_cluster_overflow_total{cluster="fast"}'], 0)
            # Slots come back: the cluster serves again once its requests are done.
            self.assertEqual(get(port, "/slow")[0], 200)

    def test_requests_waiting_for_a_connection_are_bounded(self):
        # An endpoint whose accept queue is full: the kernel drops further SYNs, so a connect
        # hangs (a real overloaded server's symptom). Requests wait for a connection there.
        hung = socket.socket()
        hung.bind(("127.0.0.1", 0))
        hung.listen(0)
        filler = socket.create_connection(hung.getsockname())  # takes the one queue slot
        fast = self.upstream("fast")
        address = "%s:%d" % hung.getsockname()
        config = http_config(
            [("{prefix: /hung}", "hung"), ("{prefix: /}", "fast")],
            {"hung": [address], "fast": [fast.address]},
            cluster_extra={"hung": ["max_pending_requests: 3"]}, workers=2)
        config = config.replace("connect_timeout: 1s", "connect_timeout: 2s", 1)
        try:
            with Remora(config) as r:
                port = r.port("web")
                with concurrent.futures.ThreadPoolExecutor(10) as pool:
                    calls = [pool.submit(get, port, "/hung") for _ in range(10)]
                    time.sleep(0.3)
                    self.assertEqual(get(port, "/fast")[0], 200)  # the neighbour is unaffected
                    results = [f.result() for f in calls]
                over = [x for x in results if x[:2] == (503, "overflow")]
                waited = [x for x in results if x[:2] == (504, "connect_timeout")]
                self.assertEqual((len(over), len(waited)), (7, 3), results)
                self.assertTrue(all(t < 0.5 for _, _, t in over), over)
                self.assertTrue(all(t > 1.5 for _, _, t in waited), waited)
                # The slots come back when the waits end.
                self.assertEqual(get(port, "/hung")[:2], (504, "connect_timeout"))
        finally:
            filler.close()
            hung.close()

    def test_max_retries_caps_retries_in_flight(self):
        flaky = self.upstream("flaky")
        # Retry-After within backoff.max is waited exactly: each retry holds its slot 1 s.
        flaky.default = fail(503, retry_after="1")
        retries = ["retries:", "  attempts: 2", "  retry_on: [503]",
                   "  backoff: {base: 10ms, max: 2s}"]
        config = http_config(
            [("{prefix: /}", "flaky", retries)], {"flaky": [flaky.address]},
            cluster_extra={"flaky": ["max_retries: 2",
                                     "retry_budget: {ratio: 1, min_concurrency: 100}"]},
            workers=2)
        with Remora(config) as r:
            port = r.port("web")
            with concurrent.futures.ThreadPoolExecutor(10) as pool:
                results = list(pool.map(lambda _: get(port, "/"), range(10)))
            # Each request fails once; the budget would let all ten retry (min 100), the cap
            # lets two (their backoff holds the slots while the rest fail).
            m = r.metrics()
            self.assertEqual(m['remora_cluster_retries_total{cluster="flaky"}'], 2, results)
            self.assertEqual(m['remora_cluster_retry_overflow_total{cluster="flaky"}'], 8)
            self.assertEqual(flaky.count(), 12)


if __name__ == "__main__":
    unittest.main(verbosity=2)
