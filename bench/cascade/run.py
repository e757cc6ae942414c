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
import http.server
import os
import select
import socket
import statistics
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

DEADLINE = "x-remora-deadline-ms"


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512

    def handle_error(self, request, client_address):
        pass


class Service:
    """A hop of the chain. With `next_port`: calls it (passing the deadline header on) and
    answers with its status. Without: sleeps `stall` seconds, or until its caller closes."""

    def __init__(self, name, next_port=None, stall=5.0):
        self.name = name
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.busy_seconds = 0.0
        self.served = 0
        svc = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                start = time.monotonic()
                with svc.lock:
                    svc.active += 1
                    svc.peak = max(svc.peak, svc.active)
                try:
                    status, reason = self.relay() if next_port else self.stall()
                    body = b"done"
                    self.send_response(status)
                    if reason:  # a hop's own failure, passed on as an app would
                        self.send_header("x-remora-reason", f"{reason}, relayed by {svc.name}")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass
                finally:
                    with svc.lock:
                        svc.active -= 1
                        svc.served += 1
                        svc.busy_seconds += time.monotonic() - start

            def relay(self):
                conn = http.client.HTTPConnection("127.0.0.1", next_port, timeout=30)
                headers = {}
                if self.headers.get(DEADLINE) is not None:
                    headers[DEADLINE] = self.headers[DEADLINE]
                try:
                    conn.request("GET", self.path, headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                    return resp.status, resp.getheader("x-remora-reason")
                finally:
                    conn.close()

            def stall(self):
                end = time.monotonic() + stall
                while time.monotonic() < end:
                    readable, _, _ = select.select([self.connection], [], [], 0.01)
                    if readable and not self.connection.recv(1, socket.MSG_PEEK):
                        raise OSError("caller went away")
                return 200, None

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.address = "127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def run_mode(deadlines, callers, duration):
    from harness import Remora, http_config  # after main() has set REMORA_BIN

    with contextlib.ExitStack() as stack:
        def proxy_for(service):
            config = http_config([("{prefix: /}", "app")], {"app": [service.address]})
            return stack.enter_context(Remora(config))

        c = Service("C")
        stack.callback(c.close)
        rc = proxy_for(c)
        b = Service("B", rc.port("web"))
        stack.callback(b.close)
        rb = proxy_for(b)
        a = Service("A", rb.port("web"))
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
