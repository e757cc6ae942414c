"""Bulkheads (docs/config.md `max_requests`): a cluster at its limit answers 503 overflow at
once, and another cluster's traffic goes on untouched."""

import concurrent.futures
import http.client
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Remora, http_config  # noqa: E402
from scripted_upstream import ScriptedUpstreamTest, stall  # noqa: E402


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


if __name__ == "__main__":
    unittest.main(verbosity=2)
