#!/usr/bin/python3
"""Cascading-failure benchmark: a synchronous chain under load with its last hop stalled.

    client --> remora-A --> service A --> remora-B --> service B --> remora-C --> service C

A and B are small threaded HTTP services that call the next hop (through its remora) and answer
with what they got; C sleeps 5 s (it ends early if its caller closes the connection). Callers
(--callers threads, back to back, for --duration seconds) give up after 1 s. Two modes, one run
each, the same binary:

  deadlines     callers send `x-remora-deadline-ms: 1000` and services pass it on (as an app
                using the header, or gRPC with grpc-timeout, would): remora stops the whole
                chain at the caller's deadline.
  no-deadlines  the same callers with a 1 s socket timeout and no header: each hop works on for
                the full 5 s after its caller has gone.

Reported per mode: the caller's p50/p99 latency and how its requests ended, and the work the
chain held for callers who had given up: peak concurrent requests at C, and C-seconds of work
(the sum of its requests' durations). Loopback only; every process is one this script started.

    /usr/bin/python3 bench/cascade/run.py [--remora build/release/remora] [--callers 20]
"""

import argparse
import contextlib
import http.client
import os
import socket
import statistics
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))


def run_mode(deadlines, callers, duration):
    # Imported here, after main() has set REMORA_BIN (the harness reads it on import).
    from chain_service import DEADLINE, ChainService
    from harness import Remora, http_config

    with contextlib.ExitStack() as stack:
        def proxy_for(service):
            config = http_config([("{prefix: /}", "app")], {"app": [service.address]})
            return stack.enter_context(Remora(config))

        c = ChainService("C")
        stack.callback(c.close)
        rc = proxy_for(c)
        b = ChainService("B", rc.port("web"))
        stack.callback(b.close)
        rb = proxy_for(b)
        a = ChainService("A", rb.port("web"))
        stack.callback(a.close)
        ra = proxy_for(a)
        port = ra.port("web")

        latencies, outcomes = [], {}
        lock = threading.Lock()
        stop = time.monotonic() + duration

        def caller():
            while time.monotonic() < stop:
                start = time.monotonic()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
                try:
                    conn.request("GET", "/work", headers={DEADLINE: "1000"} if deadlines else {})
                    resp = conn.getresponse()
                    resp.read()
                    what = f"{resp.status} {resp.getheader('x-remora-reason') or ''}".strip()
                except (socket.timeout, TimeoutError):
                    what = "caller timed out (1 s)"
                except OSError as e:
                    what = f"error {type(e).__name__}"
                finally:
                    conn.close()
                with lock:
                    latencies.append(time.monotonic() - start)
                    outcomes[what] = outcomes.get(what, 0) + 1

        threads = [threading.Thread(target=caller) for _ in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Work still held for callers long gone: let it drain, measuring C's peak meanwhile.
        drain_end = time.monotonic() + 6
        while time.monotonic() < drain_end and (a.active or b.active or c.active):
            time.sleep(0.05)
        latencies.sort()
        return {
            "mode": "deadlines" if deadlines else "no-deadlines",
            "requests": len(latencies),
            "p50": statistics.median(latencies),
            "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "outcomes": outcomes,
            "c_peak": c.peak,
            "c_seconds": c.busy_seconds,
            "b_peak": b.peak,
            "a_peak": a.peak,
        }


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--remora", default=os.path.join(ROOT, "build", "release", "remora"))
    p.add_argument("--callers", type=int, default=20)
    p.add_argument("--duration", type=float, default=10.0)
    args = p.parse_args(argv)
    os.environ["REMORA_BIN"] = os.path.abspath(args.remora)  # the harness reads it on import
    rows = [run_mode(True, args.callers, args.duration),
            run_mode(False, args.callers, args.duration)]
    print(f"{args.callers} callers, {args.duration:.0f} s, C stalls 5 s, callers give up at 1 s\n")
    print("| mode | caller requests | p50 | p99 | how they ended | peak held at A / B / C "
          "| C busy (s) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        ended = ", ".join(f"{k}: {v}" for k, v in sorted(r["outcomes"].items()))
        print(f"| {r['mode']} | {r['requests']} | {r['p50']:.3f} s | {r['p99']:.3f} s | {ended} "
              f"| {r['a_peak']} / {r['b_peak']} / {r['c_peak']} | {r['c_seconds']:.1f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
