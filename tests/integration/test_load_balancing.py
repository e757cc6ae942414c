"""Load balancing policies (docs/config.md `lb_policy`) on the real binary against scripted
upstreams: least_request (the default) keeps load off a slow endpoint that round robin keeps
feeding; ring_hash keeps a key on one endpoint, and moves only a leaving endpoint's keys on a
reload; with the proxy's zone known, requests stay in it."""

import http.client
import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Remora, http_config, wait_until  # noqa: E402
from scripted_upstream import ScriptedUpstreamTest, stall  # noqa: E402


def get(port, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("x-served-by")
    finally:
        conn.close()


class LoadBalancingTest(ScriptedUpstreamTest):

    def config(self, policy_lines, addrs):
        return http_config([("{prefix: /}", "app")], {"app": addrs},
                           cluster_extra={"app": policy_lines})

    def slow_share(self, policy):
        """The share of 8 concurrent clients' requests (2 s, back to back) that went to an
        endpoint answering in 100 ms, beside one answering at once."""
        slow, fast = self.upstream("slow"), self.upstream("fast")
        slow.default = stall(0.1)
        with Remora(self.config([f"lb_policy: {policy}"], [slow.address, fast.address])) as r:
            port = r.port("web")
            stop = time.monotonic() + 2

            def client():
                while time.monotonic() < stop:
                    self.assertEqual(get(port)[0], 200)

            threads = [threading.Thread(target=client) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        total = slow.count() + fast.count()
        print(f"\n{policy}: slow endpoint {slow.count()} of {total} requests "
              f"({slow.count() / total:.1%})", file=sys.stderr)
        return slow.count() / total

    def test_least_request_keeps_load_off_a_slow_endpoint(self):
        rr = self.slow_share("round_robin")
        lr = self.slow_share("least_request")
        self.assertGreater(rr, 0.4)   # every other request, whatever it costs
        self.assertLess(lr, 0.25)     # only when both draws are busy there
        self.assertLess(lr, rr / 2)

    def test_ring_hash_keeps_keys_and_a_reload_moves_only_the_leavers(self):
        ups = [self.upstream(n) for n in "abc"]
        lines = ["lb_policy: ring_hash", "hash_on: {header: x-user}"]
        with Remora(self.config(lines, [u.address for u in ups])) as r:
            port = r.port("web")
            placed = {}
            for i in range(60):
                user = f"user-{i}"
                first = get(port, {"x-user": user})[1]
                self.assertEqual({get(port, {"x-user": user})[1] for _ in range(3)}, {first})
                placed[user] = first
            self.assertEqual(len(set(placed.values())), 3, placed)  # every endpoint has keys
            # b leaves: only b's users move.
            r.write_config(self.config(lines, [ups[0].address, ups[2].address]))
            before = r.metrics()["remora_config_reloads_total{result=\"success\"}"]
            r.signal(signal.SIGHUP)
            wait_until(lambda: r.metrics()["remora_config_reloads_total{result=\"success\"}"]
                       > before, what="the reload")
            for user, was in placed.items():
                now = get(port, {"x-user": user})[1]
                if was != "b":
                    self.assertEqual(now, was, user)
                else:
                    self.assertIn(now, ("a", "c"))

    def test_requests_stay_in_the_local_zone(self):
        ups = [self.upstream(n) for n in ("a1", "b1", "a2", "b2")]
        lines = ["admin:", "  address: 127.0.0.1:0", "zone: zone-a", "listeners:",
                 "  - {name: web, address: 127.0.0.1:0, kind: http,",
                 "     routes: [{cluster: app}]}", "clusters:", "  - name: app",
                 "    endpoints:"]
        lines += [f"      - {{address: {u.address}, zone: zone-{u.name[0]}}}" for u in ups]
        with Remora("\n".join(lines) + "\n") as r:
            port = r.port("web")
            for _ in range(40):
                self.assertEqual(get(port)[0], 200)
        counts = {u.name: u.count() for u in ups}
        self.assertEqual(counts["b1"] + counts["b2"], 0, counts)
        self.assertEqual(counts["a1"] + counts["a2"], 40, counts)
        self.assertGreater(min(counts["a1"], counts["a2"]), 5, counts)  # both local ones


if __name__ == "__main__":
    unittest.main(verbosity=2)
