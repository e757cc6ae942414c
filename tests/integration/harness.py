"""Shared helpers for integration tests: run the real remora binary on loopback with port 0
everywhere, read the bound ports from its log, and talk to its admin API.

Every helper is bounded in time; a test that hangs fails instead of stalling CI.
"""

import os
import re
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

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


class Remora:
    """A running `remora proxy -c FILE`. Use as a context manager; stop() asserts a clean exit."""

    def __init__(self, config_text, args=None, env=None):
        self.dir = tempfile.TemporaryDirectory(prefix="remora-it-")
        self.config_path = os.path.join(self.dir.name, "remora.yaml")
        self.write_config(config_text)
        self.log_path = os.path.join(self.dir.name, "remora.log")
        self._log = open(self.log_path, "w+b")
        cmd = [REMORA_BIN, "proxy", "-c", self.config_path] + (args or [])
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


def free_port_refused():
    """A loopback address where nothing listens (bound then closed), so connects are refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"127.0.0.1:{port}"


def recv_until_closed(sock, out=b""):
    """Everything `sock` receives until the peer closes it, appended to `out`."""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk


def connect(port, host="127.0.0.1", timeout=5):
    return socket.create_connection((host, port), timeout=timeout)
