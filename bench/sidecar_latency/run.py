#!/usr/bin/python3
"""What mutual TLS between two sidecars adds to a request's latency: h2load (HTTP/1.1, paced at
--rate requests/s over --conns keep-alive connections) -> outbound remora -> inbound remora ->
nginx (`return 200`), once with mTLS between the two remoras (SPIFFE IDs checked both ways, the
inbound listener requiring client certificates) and once in plaintext, and once straight to
nginx for the floor. Reports p50/p90/p99 per path from h2load's per-request log, and the
difference mTLS makes. The remoras run one worker each on --proxy-core; h2load and nginx on
--load-core. On demand, never in CI.

  /usr/bin/python3 bench/sidecar_latency/run.py [--rate 1000] [--duration 10] [--conns 10]
      [--reps 3] [--remora build/release/remora]
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
from benchlib import (free_port, issue_certs, require, start_nginx, stop_all,  # noqa: E402
                     wait_port)
ID_OUT, ID_IN = "spiffe://bench.test/ns/b/sa/order", "spiffe://bench.test/ns/b/sa/payment"


def percentile(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--conns", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--remora", default=os.path.join(ROOT, "build/release/remora"))
    ap.add_argument("--proxy-core", default="1")
    ap.add_argument("--load-core", default="0")
    args = ap.parse_args()
    require("h2load", "nginx", "taskset")
    work = tempfile.mkdtemp(prefix="remora-latency-bench-")
    procs = []
    nginx = None
    try:
        issue_certs(args.remora, work, {"out": ID_OUT, "in": ID_IN})
        up = free_port()
        nginx = start_nginx(work, up, core=args.load_core)
        procs.append(nginx)

        def start(name, text, port):
            with open(f"{work}/{name}.yaml", "w") as f:
                f.write(text)
            p = subprocess.Popen(["taskset", "-c", args.proxy_core, args.remora, "proxy", "-c",
                                  f"{work}/{name}.yaml"],
                                 stdout=subprocess.DEVNULL,
                                 stderr=open(f"{work}/{name}.err", "w"))
            procs.append(p)
            try:
                wait_port(port, p)
            except RuntimeError:
                sys.exit(open(f"{work}/{name}.err").read())
            return p

        def pair(mtls):
            """An outbound and an inbound remora; the outbound's listening port."""
            inp, outp = free_port(), free_port()
            i, o = f"{work}/in", f"{work}/out"
            in_tls = (f"tls: {{cert: {i}/cert.pem, key: {i}/key.pem, ca: {i}/ca.pem}},"
                      if mtls else "")
            out_tls = (f'tls: {{cert: {o}/cert.pem, key: {o}/key.pem, ca: {o}/ca.pem, '
                       f'spiffe_id: "{ID_IN}"}},' if mtls else "")
            common = 'admin: {address: "127.0.0.1:0"}\nworkers: 1\nlog_level: error\n'
            a = start("in", common + f"""listeners:
  - {{name: in, address: 127.0.0.1:{inp}, kind: http, direction: inbound, {in_tls}
     routes: [{{cluster: app}}]}}
clusters:
  - {{name: app, protocol: http1, endpoints: [{{address: "127.0.0.1:{up}"}}]}}
""", inp)
            b = start("out", common + f"""listeners:
  - {{name: out, address: 127.0.0.1:{outp}, kind: http, routes: [{{cluster: payment}}]}}
clusters:
  - {{name: payment, protocol: http1, {out_tls}
     endpoints: [{{address: "127.0.0.1:{inp}"}}]}}
""", outp)
            return outp, (a, b)

        def measure(port):
            log = f"{work}/h2load.log"
            if os.path.exists(log):
                os.unlink(log)
            per_conn = max(1, args.rate // args.conns)
            r = subprocess.run(
                ["taskset", "-c", args.load_core, "h2load", "--h1", f"-c{args.conns}",
                 f"--rps={per_conn}", f"-D{args.duration}", f"--log-file={log}",
                 f"http://127.0.0.1:{port}/"],
                capture_output=True, text=True, timeout=args.duration + 60)
            if "0 failed" not in r.stdout or "0 errored" not in r.stdout:
                print(r.stdout, r.stderr, file=sys.stderr)
            lat = []
            with open(log) as f:
                for line in f:
                    fields = line.split()
                    if len(fields) >= 3 and fields[1] == "200":
                        lat.append(int(fields[2]))  # microseconds
            lat.sort()
            warm = lat[len(lat) // 20:] if len(lat) > 100 else lat  # drop the first 5%
            warm.sort()
            return {p: percentile(warm, p) for p in (50, 90, 99)}, len(lat)

        rows = {"direct": [], "plaintext": [], "mtls": []}
        for rep in range(args.reps):
            rows["direct"].append(measure(up))
            for mode in (("mtls", "plaintext") if rep % 2 else ("plaintext", "mtls")):
                port, pair_procs = pair(mode == "mtls")
                subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/"],
                               timeout=10)  # connections and TLS sessions up
                rows[mode].append(measure(port))
                for p in pair_procs:
                    p.send_signal(signal.SIGTERM)
                    p.wait(timeout=10)
                    procs.remove(p)
            print(f"rep {rep + 1}: " + ", ".join(
                f"{k} p50 {v[-1][0][50]} us p99 {v[-1][0][99]} us ({v[-1][1]} requests)"
                for k, v in rows.items()), file=sys.stderr)
        print(f"\n{args.rate} requests/s over {args.conns} keep-alive HTTP/1.1 connections, "
              f"{args.duration} s x {args.reps} reps (median of reps, microseconds)\n")
        print("| path | p50 | p90 | p99 |")
        print("|---|---:|---:|---:|")
        med = {}
        for k, v in rows.items():
            med[k] = {p: statistics.median(r[0][p] for r in v) for p in (50, 90, 99)}
            print(f"| {k} | {med[k][50]:.0f} | {med[k][90]:.0f} | {med[k][99]:.0f} |")
        print(f"\nmTLS adds p50 {med['mtls'][50] - med['plaintext'][50]:+.0f} us, "
              f"p99 {med['mtls'][99] - med['plaintext'][99]:+.0f} us over plaintext sidecars")
    finally:
        stop_all(procs, nginx)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
