#!/usr/bin/python3
"""Memory an idle TLS connection costs: --conns mutual-TLS connections (TLS 1.3, ECDSA P-256,
client certificates checked) opened to remora and to haproxy, one keep-alive HTTP/1.1 request
answered on each, then left idle; the proxy's resident memory (VmRSS, with its upstream
connection pool) before and after, divided by the connections. The same with plaintext
connections, so what TLS itself adds shows. One worker/thread each. On demand, never in CI.

  /usr/bin/python3 bench/tls_idle_memory/run.py [--conns 2000] [--remora build/release/remora]
"""

import argparse
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
from benchlib import (free_port, issue_certs, require, rss_kib, start_nginx, stop_all,  # noqa: E402
                     wait_port)


def open_idle(port, n, ctx):
    """`n` connections, each with one request answered; returned open."""
    conns = []
    for _ in range(n):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname="localhost") if ctx else raw
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while b"ok\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("closed before the response")
            got += chunk
        conns.append(s)
    return conns


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--remora", default=os.path.join(ROOT, "build/release/remora"))
    args = ap.parse_args()
    require("haproxy", "nginx")
    want = 2 * args.conns + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(want, hard)), hard))
    work = tempfile.mkdtemp(prefix="remora-mem-bench-")
    procs = []
    nginx = None
    try:
        issue_certs(args.remora, work, {"srv": "spiffe://bench.test/ns/b/sa/server",
                                           "cli": "spiffe://bench.test/ns/b/sa/client"})
        with open(f"{work}/srv/cert_key.pem", "w") as f:
            f.write(open(f"{work}/srv/cert.pem").read() + open(f"{work}/srv/key.pem").read())
        up = free_port()
        nginx = start_nginx(work, up, extra_main="worker_rlimit_nofile 20000;",
                            extra_server="keepalive_timeout 600s;")
        procs.append(nginx)
        ctx = ssl.create_default_context(cafile=f"{work}/srv/ca.pem")
        ctx.load_cert_chain(f"{work}/cli/cert.pem", f"{work}/cli/key.pem")
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        s = f"{work}/srv"
        results = {}
        for tls in (False, True):
            port = free_port()
            with open(f"{work}/remora.yaml", "w") as f:
                f.write(f"""admin: {{address: "127.0.0.1:0"}}
workers: 1
log_level: error
listeners:
  - name: in
    address: 127.0.0.1:{port}
    kind: http
    idle_timeout: 600s
    {f"tls: {{cert: {s}/cert.pem, key: {s}/key.pem, ca: {s}/ca.pem}}" if tls else ""}
    routes: [{{cluster: up}}]
clusters:
  - {{name: up, protocol: http1, endpoints: [{{address: "127.0.0.1:{up}"}}]}}
""")
            with open(f"{work}/haproxy.cfg", "w") as f:
                bind = (f"ssl crt {s}/cert_key.pem ca-file {s}/ca.pem verify required "
                        "alpn http/1.1") if tls else ""
                f.write(f"""global
  nbthread 1
  maxconn {want}
defaults
  mode http
  timeout connect 5s
  timeout client 600s
  timeout server 600s
  timeout http-keep-alive 600s
  http-reuse always
frontend in
  bind 127.0.0.1:{port + 1 if port < 65535 else port - 1} {bind}
  default_backend up
backend up
  server s1 127.0.0.1:{up}
""")
            hport = port + 1 if port < 65535 else port - 1
            for name, cmd, p_port in (
                    ("remora", [args.remora, "proxy", "-c", f"{work}/remora.yaml"], port),
                    ("haproxy", ["haproxy", "-f", f"{work}/haproxy.cfg", "-db"], hport)):
                p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                procs.append(p)
                wait_port(p_port, p)
                open_idle(p_port, 20, ctx if tls else None)  # pools and caches warm
                time.sleep(0.5)
                before = rss_kib(p.pid)
                conns = open_idle(p_port, args.conns, ctx if tls else None)
                time.sleep(1)
                after = rss_kib(p.pid)
                results[(name, tls)] = (after - before) * 1024 / args.conns
                print(f"{name} {'mTLS' if tls else 'plaintext'}: {before} -> {after} KiB RSS, "
                      f"{results[(name, tls)]:,.0f} bytes per idle connection", file=sys.stderr)
                for c in conns:
                    c.close()
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=20)
                procs.remove(p)
        print(f"\nIdle keep-alive connections after one request each, {args.conns} at once "
              "(resident memory per connection, bytes)\n")
        print("| proxy | plaintext | mutual TLS 1.3 | TLS adds |")
        print("|---|---:|---:|---:|")
        for name in ("haproxy", "remora"):
            plain, tls = results[(name, False)], results[(name, True)]
            print(f"| {name} | {plain:,.0f} | {tls:,.0f} | {tls - plain:,.0f} |")
    finally:
        stop_all(procs, nginx)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
