#!/usr/bin/env python3
"""The programs test_interception.py runs inside the "pod" network namespace (as the app's uid,
through `ip netns exec ... setpriv ...`): clients whose connections the NAT rules redirect to
remora, and the app that inbound traffic is delivered to. Each prints one JSON line.

  http URL [--h2] [--host H]         GET URL (curl; --h2: HTTP/2 prior knowledge; --host: the
                                     Host header) -> {"status", "body"}
  tcp HOST PORT HEXDATA              sends the bytes (HEXDATA "-": hex on stdin), half-closes,
                                     reads to EOF ->
                                     {"reply": hex, "seconds"}
  banner HOST PORT                   connects and reads the server's first line ->
                                     {"line", "seconds"}
  tls HOST PORT SNI CAFILE [ALPN]    a TLS handshake (SNI, verified against CAFILE; offering
                                     ALPN, comma-separated), then "ping" -> {"reply", "peer_cn"}
  grpc HOST:PORT                     a unary call to remora.test.Echo -> {"reply"}
  serve-http HOST PORT               the app: answers every GET with JSON {"headers", "peer"}
  serve-echo HOST PORT               the app: "peer=IP\n", then echoes to EOF (HOST may be
                                     IPv6)
"""

import http.server
import json
import socket
import ssl
import subprocess
import sys
import time


def out(obj):
    print(json.dumps(obj), flush=True)


def cmd_http(url, *flags):
    args = ["curl", "-s", "-g", "-m", "10", "-w", "\n%{http_code}", url]  # -g: [ipv6] URLs
    if "--h2" in flags:
        args.insert(1, "--http2-prior-knowledge")
    if "--host" in flags:
        args[1:1] = ["-H", "Host: " + flags[flags.index("--host") + 1]]
    p = subprocess.run(args, capture_output=True, text=True, timeout=20)
    body, _, status = p.stdout.rpartition("\n")
    out({"status": int(status or 0), "body": body})


def cmd_tcp(host, port, hexdata):
    if hexdata == "-":
        hexdata = sys.stdin.read().strip()
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(bytes.fromhex(hexdata))
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    out({"reply": data.hex(), "seconds": time.monotonic() - start})


def cmd_banner(host, port):
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        line = s.recv(256).decode(errors="replace")
    out({"line": line, "seconds": time.monotonic() - start})


def cmd_tls(host, port, sni, cafile, alpn=""):
    ctx = ssl.create_default_context(cafile=cafile)
    if alpn:
        ctx.set_alpn_protocols(alpn.split(","))
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            s.sendall(b"ping")
            reply = s.recv(64).decode()
            cert = s.getpeercert()
    cn = dict(x[0] for x in cert["subject"]).get("commonName")
    out({"reply": reply, "peer_cn": cn})


def cmd_grpc(target):
    import grpc
    channel = grpc.insecure_channel(target, options=[("grpc.enable_retries", 0)])
    reply = channel.unary_unary("/remora.test.Echo/Unary")(b"through the mesh", timeout=10)
    out({"reply": reply.decode()})


def cmd_serve_http(host, port):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            body = json.dumps({"headers": {k.lower(): v for k, v in self.headers.items()},
                               "peer": self.client_address[0]}).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    out({"listening": port})
    server.serve_forever()


def cmd_serve_echo(host, port):
    import threading
    srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, int(port)))
    srv.listen(16)
    out({"listening": port})

    def serve(conn, addr):
        with conn:
            conn.sendall(f"peer={addr[0]}\n".encode())
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)

    while True:
        conn, addr = srv.accept()
        threading.Thread(target=serve, args=(conn, addr), daemon=True).start()


if __name__ == "__main__":
    name, *rest = sys.argv[1:]
    globals()["cmd_" + name.replace("-", "_")](*rest)
