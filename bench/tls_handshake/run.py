#!/usr/bin/python3
"""New TLS handshakes per second through remora vs haproxy: every request on a fresh connection
(wrk -H 'Connection: close' over https), TLS 1.3 with the same ECDSA P-256 certificate (made by
`remora cert`), each proxy with one worker pinned to --proxy-core, the load generator and the
upstream (nginx, `return 200`) on --load-core. Reports per proxy the median req/s (= handshakes/s)
and proxy CPU ms per 1,000 handshakes, and remora's paired ratio to haproxy (per rep, A/B order
alternating). Bounded: reps x proxies x duration seconds plus start-up. On demand, never in CI.

  /usr/bin/python3 bench/tls_handshake/run.py [--reps 5] [--duration 5] [--conns 32]
      [--remora build/release/remora] [--workers 1]
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
from benchlib import (cpu_seconds, free_port, issue_certs, require, start_nginx,  # noqa: E402
                     stop_all, wait_port)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--remora", default=os.path.join(ROOT, "build/release/remora"))
    ap.add_argument("--proxy-core", default="1")
    ap.add_argument("--load-core", default="0")
    args = ap.parse_args()
    require("wrk", "haproxy", "nginx", "taskset")
    work = tempfile.mkdtemp(prefix="remora-hs-bench-")
    procs = []
    nginx = None
    try:
        issue_certs(args.remora, work, {"srv": "spiffe://bench.test/proxy"})
        with open(f"{work}/srv/cert_key.pem", "w") as f:
            f.write(open(f"{work}/srv/cert.pem").read() + open(f"{work}/srv/key.pem").read())
        up = free_port()
        nginx = start_nginx(work, up, core=args.load_core)
        procs.append(nginx)
        ports = {"remora": free_port(), "haproxy": free_port()}
        with open(f"{work}/remora.yaml", "w") as f:
            f.write(f"""admin: {{address: "127.0.0.1:0"}}
workers: {args.workers}
log_level: error
listeners:
  - name: tls
    address: 127.0.0.1:{ports['remora']}
    kind: http
    tls: {{cert: {work}/srv/cert.pem, key: {work}/srv/key.pem}}
    routes: [{{cluster: up}}]
clusters:
  - {{name: up, protocol: http1, endpoints: [{{address: "127.0.0.1:{up}"}}]}}
""")
        with open(f"{work}/haproxy.cfg", "w") as f:
            f.write(f"""global
  nbthread {args.workers}
  ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend tls
  bind 127.0.0.1:{ports['haproxy']} ssl crt {work}/srv/cert_key.pem alpn h2,http/1.1
  default_backend up
backend up
  server s1 127.0.0.1:{up}
""")
        cmds = {
            "remora": [args.remora, "proxy", "-c", f"{work}/remora.yaml"],
            "haproxy": ["haproxy", "-f", f"{work}/haproxy.cfg", "-db"],
        }
        results = {"remora": [], "haproxy": []}
        ratios = []
        for rep in range(args.reps):
            order = ["remora", "haproxy"] if rep % 2 == 0 else ["haproxy", "remora"]
            cost = {}
            for name in order:
                p = subprocess.Popen(["taskset", "-c", args.proxy_core, *cmds[name]],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                procs.append(p)
                wait_port(ports[name], p)
                time.sleep(0.5)
                before = cpu_seconds(p.pid)
                w = subprocess.run(
                    ["taskset", "-c", args.load_core, "wrk", "-t1", f"-c{args.conns}",
                     f"-d{args.duration}s", "-H", "Connection: close",
                     f"https://127.0.0.1:{ports[name]}/"],
                    capture_output=True, text=True, timeout=args.duration + 30)
                cpu = cpu_seconds(p.pid) - before
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=10)
                procs.remove(p)
                m = re.search(r"^\s*(\d+) requests in", w.stdout, re.M)
                errors = re.search(r"Non-2xx or 3xx responses: (\d+)", w.stdout)
                n = int(m.group(1)) if m else 0
                if n == 0 or errors:
                    print(f"{name}: bad run\n{w.stdout}{w.stderr}", file=sys.stderr)
                    continue
                cost[name] = 1000 * cpu / n * 1000  # CPU ms per 1,000 handshakes
                results[name].append((n / args.duration, cost[name]))
                print(f"rep {rep + 1} {name}: {n / args.duration:,.0f} handshakes/s, "
                      f"{cost[name]:.1f} CPU ms/1k", file=sys.stderr)
            if len(cost) == 2:
                ratios.append(cost["remora"] / cost["haproxy"])
        print(f"\nTLS 1.3 handshakes (Connection: close), {args.conns} connections, "
              f"{args.workers} worker(s) pinned, {args.reps} reps x {args.duration} s\n")
        print("| proxy | handshakes/s (median) | CPU ms per 1,000 handshakes (median) |")
        print("|---|---:|---:|")
        for name in ("haproxy", "remora"):
            r = results[name]
            if r:
                print(f"| {name} | {statistics.median(x for x, _ in r):,.0f} | "
                      f"{statistics.median(c for _, c in r):.1f} |")
        if ratios:
            print(f"\nremora CPU per handshake vs haproxy: {statistics.median(ratios):.2f} "
                  f"(paired median; min {min(ratios):.2f}, max {max(ratios):.2f})")
    finally:
        stop_all(procs, nginx)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
