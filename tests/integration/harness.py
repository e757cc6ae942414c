"""Shared helpers for integration tests: run the real remora binary on loopback with port 0
everywhere, read the bound ports from its log, and talk to its admin API; the real peers the
tests put around it (a TCP echo server, an HTTP/1.1 upstream, curl).

Every helper is bounded in time; a test that hangs fails instead of stalling CI.
"""

import hashlib
import http.server
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

KiB = 1 << 10
MiB = 1 << 20

REMORA_BIN = os.environ.get("REMORA_BIN", "build/dev/remora")
SOURCE_DIR = os.environ.get("REMORA_SOURCE_DIR", os.getcwd())

_LISTENING = re.compile(r"listener (\S+) \(\w+\) listening on (\S+):(\d+)")
_ADMIN = re.compile(r"admin listening on (\S+):(\d+)")


def wait_until(predicate, timeout=5.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def render_config(listeners, clusters, admin_token=None, workers=1, drain_timeout="5s",
                  log_level="info", extra=""):
    """YAML for a config whose listeners and admin bind port 0.

    listeners: list of (name, cluster[, extra_yaml_lines]); clusters: dict name -> [addr, ...].
    """
    out = ["admin:", "  address: 127.0.0.1:0"]
    if admin_token:
        out.append(f"  token: {admin_token}")
    out += [f"workers: {workers}", f"drain_timeout: {drain_timeout}", f"log_level: {log_level}"]
    out.append("listeners:")
    for entry in listeners:
        name, cluster = entry[0], entry[1]
        out += [f"  - name: {name}", "    address: 127.0.0.1:0", "    kind: tcp",
                f"    cluster: {cluster}"]
        for line in (entry[2] if len(entry) > 2 else []):
            out.append("    " + line)
    out.append("clusters:")
    for name, addrs in clusters.items():
        out += [f"  - name: {name}", "    connect_timeout: 1s", "    endpoints:"]
        out += [f"      - address: {a}" for a in addrs]
    return "\n".join(out) + "\n" + extra


def http_config(routes, clusters, listener_extra=(), workers=1, cluster_extra=None):
    """YAML for one http listener `web` with `routes` [(match_yaml, cluster[, extra_lines])].

    clusters: dict name -> [addr, ...]; cluster_extra: dict name -> extra lines for that cluster
    (`protocol: http2`, ...)."""
    out = ["admin:", "  address: 127.0.0.1:0", f"workers: {workers}", "drain_timeout: 5s",
           "listeners:", "  - name: web", "    address: 127.0.0.1:0", "    kind: http"]
    out += ["    " + line for line in listener_extra]
    out.append("    routes:")
    for match, cluster, *extra in routes:
        out += [f"      - match: {match}", f"        cluster: {cluster}"]
        out += ["        " + line for line in (extra[0] if extra else [])]
    out.append("clusters:")
    for name, addrs in clusters.items():
        out += [f"  - name: {name}", "    connect_timeout: 1s"]
        out += ["    " + line for line in (cluster_extra or {}).get(name, [])]
        out.append("    endpoints:")
        out += [f"      - address: {a}" for a in addrs]
    return "\n".join(out) + "\n"


class Remora:
    """A running `remora proxy -c FILE`. Use as a context manager; stop() asserts a clean exit."""

    def __init__(self, config_text, args=None, env=None, prefix=None):
        """prefix: a command remora runs under (`ip netns exec NS setpriv --reuid=...`); the
        config is then readable by every user."""
        self.dir = tempfile.TemporaryDirectory(prefix="remora-it-")
        self.config_path = os.path.join(self.dir.name, "remora.yaml")
        self.write_config(config_text)
        if prefix:
            os.chmod(self.dir.name, 0o755)
            os.chmod(self.config_path, 0o644)
        self.log_path = os.path.join(self.dir.name, "remora.log")
        self._log = open(self.log_path, "w+b")
        cmd = (prefix or []) + [REMORA_BIN, "proxy", "-c", self.config_path] + (args or [])
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        self.listeners = {}
        self.admin = None
        self._wait_started()

    def write_config(self, text):
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)  # a reload never sees half a file

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def _wait_started(self):
        def started():
            if self.proc.poll() is not None:
                raise AssertionError(f"remora exited {self.proc.returncode}:\n{self.log()}")
            return "started:" in self.log()
        wait_until(started, timeout=10, what="remora to start")
        self._parse_ports()

    def _parse_ports(self):
        text = self.log()
        for name, host, port in _LISTENING.findall(text):
            self.listeners[name] = (host, int(port))
        m = _ADMIN.search(text)
        if m:
            self.admin = (m.group(1), int(m.group(2)))

    def port(self, listener):
        self._parse_ports()
        return self.listeners[listener][1]

    def http(self, method, path, token=None, body=None, timeout=5):
        """(status, body text) from the admin API."""
        url = f"http://{self.admin[0]}:{self.admin[1]}{path}"
        req = urllib.request.Request(url, method=method, data=body)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self):
        """{series: value} from GET /metrics, series written as in the exposition."""
        status, text = self.http("GET", "/metrics")
        assert status == 200, text
        return parse_metrics(text)

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def vm_hwm_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise AssertionError("no VmHWM")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=10):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"remora did not exit within {timeout}s:\n{self.log()[-4000:]}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.wait_exit()
        # Sanitizer reports go to the log; a clean shutdown has none.
        text = self.log()
        assert "ERROR: AddressSanitizer" not in text and "runtime error:" not in text \
            and "LeakSanitizer" not in text, text[-8000:]
        assert code == 0, f"remora exited {code}:\n{text[-4000:]}"

    def close(self):
        """stop(), then remove the log and the config directory."""
        self.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.stop()
            else:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()
                print(f"--- remora log (exit {self.proc.returncode}) ---\n{self.log()[-4000:]}")
        finally:
            self._log.close()
            self.dir.cleanup()


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        out[series] = float(value)
    return out


class EchoServer:
    """A threaded TCP echo server on loopback (the real upstream for TCP tests)."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.address = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self.accepted = 0
        self._stop = False
        self._conns = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self):
        while not self._stop:
            r, _, _ = select.select([self.sock], [], [], 0.1)
            if not r:
                continue
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self._conns.append(conn)
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn):
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    conn.shutdown(socket.SHUT_WR)  # mirror the half-close
                    return
                conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self._stop = True
        self._thread.join(timeout=2)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def payload(n):
    """`n` deterministic, non-repeating bytes (SHAKE-256 of a fixed seed): what GET /bytes?n=N
    answers on every test upstream, so a client can check a body by its sha256."""
    return hashlib.shake_256(b"remora").digest(n)


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 (keep-alive) and no request log: the base of every test server's handler.
    TCP_NODELAY: the handler writes a response in pieces, and Nagle's algorithm against the
    proxy's delayed ACK would hold each response about 40 ms."""
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass


class QuietHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops connects when a proxy opens 100 at once

    def handle_error(self, request, client_address):
        # A proxy that hangs up mid-exchange is what several tests do on purpose; anything else
        # (a bug in a handler) is still printed.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class QuietHTTPServer6(QuietHTTPServer):
    address_family = socket.AF_INET6


class BackgroundServer:
    """An HTTP server of a test, run on a daemon thread on 127.0.0.1 (or `host`, IPv6 too);
    `address` is its "host:port" ("[host]:port" for IPv6). A context manager: leaving it shuts
    the server down."""

    def serve(self, handler, host="127.0.0.1"):
        ipv6 = ":" in host
        self.server = (QuietHTTPServer6 if ipv6 else QuietHTTPServer)((host, 0), handler)
        port = self.server.server_address[1]
        self.address = f"[{host}]:{port}" if ipv6 else f"{host}:{port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ServersTest(unittest.TestCase):
    """A test case whose servers (passed through self.keep) are closed after each test."""

    def setUp(self):
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.close()

    def keep(self, server):
        self.servers.append(server)
        return server


class Upstream(BackgroundServer):
    """python's ThreadingHTTPServer with HTTP/1.1 keep-alive, counting requests, connections
    (client addresses) and request body bytes (`body_bytes`: an upload can be seen arriving
    while the client is still sending it).

    GET /echo...      -> JSON {path, headers, protocol} (headers as a list of [name, value])
    GET /bytes?n=N    -> payload(N), with content-length
    POST /sha         -> JSON {length, sha256, content_length} of the body it read (content-length
                         or chunked), sent chunked with the trailers `x-sha256: <hex>` and
                         `x-echo-NAME: value` for each request trailer NAME
    POST/PUT any      -> JSON {length, sha256} of the body it read (content-length or chunked)
    HEAD /head        -> 200 with Content-Length: 1234 and no body
    GET /204, /304    -> bodiless statuses
    GET /noclen       -> a body without length, then close
    GET /sse          -> text/event-stream: one event, a pause, a second event
    GET /delay        -> sleeps 1 s before answering
    GET /slow         -> sleeps 3 s before answering
    GET /big?n=N      -> N bytes (content-length), written as fast as the client takes them
    """

    def __init__(self, host="127.0.0.1"):
        self.requests = 0
        self.connections = set()
        self.body_bytes = 0
        self.lock = threading.Lock()
        upstream = self

        class Handler(QuietHandler):
            def count(self):
                with upstream.lock:
                    upstream.requests += 1
                    upstream.connections.add(self.client_address)

            def reply(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                if status not in (204, 304):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body and self.command != "HEAD":
                    self.wfile.write(body)

            def consume(self, h, left):
                while left:
                    chunk = self.rfile.read(min(left, 256 * KiB))
                    if not chunk:
                        break
                    h.update(chunk)
                    left -= len(chunk)
                    with upstream.lock:
                        upstream.body_bytes += len(chunk)
                return left

            def read_body(self):
                """(length, sha256 hex, trailers [(name, value)]) of the request body."""
                h = hashlib.sha256()
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    n = 0
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            trailers = []
                            while (line := self.rfile.readline()) not in (b"\r\n", b""):
                                name, _, value = line.decode().partition(":")
                                trailers.append((name.strip().lower(), value.strip()))
                            return n, h.hexdigest(), trailers
                        if self.consume(h, size):
                            raise ValueError("chunk cut short")
                        n += size
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length", 0))
                return length - self.consume(h, length), h.hexdigest(), []

            def do_GET(self):
                self.count()
                url = urllib.parse.urlsplit(self.path)
                if self.path.startswith("/echo") or "/api" in self.path:
                    body = json.dumps({"path": self.path,
                                       "headers": [[k, v] for k, v in self.headers.items()],
                                       "protocol": self.request_version})
                    self.reply(200, body.encode(), [("Content-Type", "application/json")])
                elif url.path == "/bytes":
                    body = memoryview(payload(int(urllib.parse.parse_qs(url.query)["n"][0])))
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    for i in range(0, len(body), 256 * KiB):
                        self.wfile.write(body[i:i + 256 * KiB])
                elif self.path == "/204":
                    self.reply(204)
                elif self.path == "/304":
                    self.reply(304, headers=[("ETag", '"v1"')])
                elif self.path == "/noclen":
                    self.send_response(200)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(b"no length here")
                    self.close_connection = True
                elif self.path == "/sse":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i, pause in ((1, 1.5), (2, 0)):
                        event = f"data: event {i}\n\n".encode()
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                        self.wfile.flush()
                        time.sleep(pause)
                    self.wfile.write(b"0\r\n\r\n")
                elif self.path == "/delay":
                    time.sleep(1)
                    self.reply(200, b"delayed")
                elif self.path == "/slow":
                    time.sleep(3)
                    self.reply(200, b"late")
                elif self.path.startswith("/big"):
                    n = int(self.path.split("=")[1])
                    self.send_response(200)
                    self.send_header("Content-Length", str(n))
                    self.end_headers()
                    block = b"b" * (256 * KiB)
                    left = n
                    while left:
                        k = min(left, len(block))
                        self.wfile.write(block[:k])
                        left -= k
                else:
                    self.reply(404, b"upstream has no " + self.path.encode())

            def do_HEAD(self):
                self.count()
                self.send_response(200)
                self.send_header("Content-Length", "1234")
                self.end_headers()

            def do_POST(self):
                self.count()
                try:
                    n, digest, trailers = self.read_body()
                except ValueError:  # the proxy cut a malformed upload short: expected
                    self.close_connection = True
                    return
                if urllib.parse.urlsplit(self.path).path != "/sha":
                    self.reply(200, json.dumps({"length": n, "sha256": digest}).encode())
                    return
                body = json.dumps({"length": n, "sha256": digest,
                                   "content_length": self.headers.get("Content-Length")})
                out = [("x-sha256", digest)] + [("x-echo-" + k, v) for k, v in trailers]
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Trailer", ", ".join(k for k, _ in out))
                self.end_headers()
                self.wfile.write(b"%x\r\n%s\r\n0\r\n" % (len(body), body.encode())
                                 + "".join(f"{k}: {v}\r\n" for k, v in out).encode() + b"\r\n")

            do_PUT = do_POST

        self.serve(Handler, host)

    def serve_connection(self, conn, addr):
        """Serves an already accepted connection (a peer that sniffs the protocol hands
        HTTP/1.1 connections over this way)."""
        self.server.process_request(conn, addr)


def free_port():
    """A loopback port nothing listens on (bound then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_refused():
    """A loopback address where nothing listens, so connects are refused."""
    return f"127.0.0.1:{free_port()}"


def remora_cert(*args, check=True):
    """`remora cert ARGS` (the development CA, docs/tls.md); with `check`, it must succeed."""
    r = subprocess.run([REMORA_BIN, "cert", *args], capture_output=True, text=True, timeout=30)
    assert not check or r.returncode == 0, r.stderr
    return r


class AcceptLoop:
    """A listening TCP socket on `host`:`port` (0 picks one) whose connections are each passed
    to `handle(conn)` on the accepting thread; `address` is "host:port"."""

    def __init__(self, handle, host="127.0.0.1", port=0):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.address = f"{host}:{self.port}"
        self._handle = handle
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                self._handle(conn)
            except OSError:
                pass
            finally:
                conn.close()

    def close(self):
        self.sock.close()


def banner_server(banner, host="127.0.0.1", port=0):
    """A server that speaks first: sends `banner` on accept, then closes."""
    return AcceptLoop(lambda conn: conn.sendall(banner), host, port)


def recv_until_closed(sock, out=b""):
    """Everything `sock` receives until the peer closes it, appended to `out`."""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk


def recv_exactly(sock, n):
    """`n` bytes from `sock`, or fewer if the peer closes first."""
    got = b""
    while len(got) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def connect(port, host="127.0.0.1", timeout=5):
    return socket.create_connection((host, port), timeout=timeout)


def curl(*args, timeout=20, head=True):
    """curl's stdout: the response head and body (-i), or with head=False the body alone (with
    trailers, if any, left out). Fails only on transport errors (add -f to fail on >= 400)."""
    cmd = ["curl", "-s", "-S"] + (["-i"] if head else []) + ["--max-time", str(timeout)]
    p = subprocess.run(cmd + list(args), capture_output=True, timeout=timeout + 5)
    if p.returncode != 0:
        raise AssertionError(f"curl {args} failed ({p.returncode}): {p.stderr.decode()}")
    return p.stdout


def split_response(raw):
    """(final head, body) of `curl -i` output, HTTP/1.x or HTTP/2: interim 1xx heads before the
    final one are skipped (a 101 is final)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    while re.match(rb"HTTP/[\d.]+ 1\d\d ", head) and not re.match(rb"HTTP/[\d.]+ 101", head):
        head, _, body = body.partition(b"\r\n\r\n")
    return head.decode(), body


def listening_port(pid, timeout=5.0):
    """The port a process (one that cannot print it) listens on: its listening TCP socket's
    inode matched in /proc/net/tcp."""
    def find():
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                        return int(fields[1].rsplit(":", 1)[1], 16)
        return None
    return wait_until(find, timeout=timeout, what=f"process {pid} to listen")
