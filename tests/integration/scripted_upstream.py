"""A scripted HTTP/1.1 upstream for the resilience tests: a test server of ours that, on
command, fails the next N requests, stalls, resets before or after its response head, answers
slowly, or returns a given status and headers (Retry-After). Every request is recorded, so a
test can tell how many attempts reached which endpoint and when.

    up = ScriptedUpstream("a")
    up.script([fail(503)] * 2)          # the next two requests get 503, then the default
    up.default = fail(503, retry_after="1")   # every request from now on
    up.requests                         # [Seen(...)], in arrival order

Actions (one per request, taken from the script's front, else `default`):
    ok()                   200, JSON {server, n, length, sha256} of the request body
    fail(status, ...)      that status, optional Retry-After and body
    fail_early(status, ...) that status as soon as the head is read, before any of the body
                           (the connection then closes)
    reset()                reads the request, then closes with RST (no response byte)
    reset_after_head()     sends a 200 head (content-length 10) and 3 bytes, then RST
    stall(seconds)         waits (ends early when the client goes away), then ok()
"""

import hashlib
import http
import json
import socket
import struct
import threading
import time

from harness import BackgroundServer, QuietHandler, ServersTest


def ok():
    return ("ok",)


def fail(status, retry_after=None):
    return ("status", status, retry_after)


def fail_early(status, retry_after=None):
    return ("early", status, retry_after)


def reset():
    return ("reset",)


def reset_after_head():
    return ("reset_after_head",)


def stall(seconds):
    return ("stall", seconds)


class Seen:
    """One request as the upstream saw it."""

    def __init__(self, server, method, path, headers, length, sha256, arrived):
        self.server = server
        self.method = method
        self.path = path
        self.headers = headers
        self.length = length
        self.sha256 = sha256
        self.arrived = arrived      # time.monotonic() when its head was read
        # When its response (or reset) went out: taken just before the write, so that a next
        # request the proxy sends at once cannot be seen arriving "before" it.
        self.answered = None
        self.action = None

    def __repr__(self):
        return f"Seen({self.server} {self.method} {self.path} {self.action})"


class ScriptedUpstream(BackgroundServer):
    def __init__(self, name="up", host="127.0.0.1"):
        self.name = name
        self.default = ok()
        self.requests = []
        self._script = []
        self._lock = threading.Lock()
        up = self

        class Handler(QuietHandler):
            def handle_one(self):
                arrived = time.monotonic()
                with up._lock:
                    early = up._script and up._script[0][0] == "early"
                    action = up._script.pop(0) if early else None
                if early:
                    seen = Seen(up.name, self.command, self.path, {}, 0, "", arrived)
                    seen.action = "early"
                    with up._lock:
                        up.requests.append(seen)
                    _, status, retry_after = action
                    extra = [] if retry_after is None else [("retry-after", retry_after)]
                    self.respond(status, b"fail", extra + [("connection", "close")])
                    self.close_connection = True
                    seen.answered = time.monotonic()
                    return
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(up.name, self.command, self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            len(body), hashlib.sha256(body).hexdigest(), arrived)
                with up._lock:
                    up.requests.append(seen)
                    action = up._script.pop(0) if up._script else up.default
                    n = len(up.requests)
                seen.action = action[0]
                kind = action[0]
                if kind == "reset":
                    self.rst()
                elif kind == "reset_after_head":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
                    self.wfile.flush()
                    time.sleep(0.05)
                    self.rst()
                elif kind == "status":
                    _, status, retry_after = action
                    extra = [] if retry_after is None else [("retry-after", retry_after)]
                    seen.answered = time.monotonic()
                    self.respond(status, b"fail", extra)
                    return
                else:
                    if kind == "stall" and self.wait_or_gone(action[1]):
                        seen.answered = time.monotonic()
                        self.close_connection = True
                        return
                    out = json.dumps({"server": up.name, "n": n, "length": len(body),
                                      "sha256": seen.sha256}).encode()
                    seen.answered = time.monotonic()
                    self.respond(200, out)
                    return
                seen.answered = time.monotonic()

            def respond(self, status, body, extra=()):
                # Head and body in one write, as a real server's would be: two small writes
                # would meet Nagle and delayed ACKs and make every answer 40 ms late.
                head = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
                        f"x-served-by: {up.name}", f"content-length: {len(body)}"]
                head += [f"{k}: {v}" for k, v in extra]
                self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)

            def wait_or_gone(self, seconds):
                """Sleeps up to `seconds`; True if the client closed meanwhile."""
                end = time.monotonic() + seconds
                self.connection.settimeout(0.01)
                try:
                    while time.monotonic() < end:
                        try:
                            if not self.connection.recv(1, socket.MSG_PEEK):
                                return True
                        except socket.timeout:
                            pass
                        except OSError:
                            return True
                finally:
                    self.connection.settimeout(None)
                return False

            def rst(self):
                # SO_LINGER 0: close sends RST, as a crashed or overloaded server would.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

            do_GET = do_POST = do_PUT = do_DELETE = handle_one

        self.serve(Handler, host)

    def script(self, actions):
        with self._lock:
            self._script.extend(actions)

    def count(self):
        with self._lock:
            return len(self.requests)


class ScriptedUpstreamTest(ServersTest):
    """A test case whose upstreams (self.upstream(name)) are closed after each test."""

    def upstream(self, name):
        return self.keep(ScriptedUpstream(name))
