"""A hop of a synchronous service chain (client -> remora -> A -> remora -> B -> ...), for the
deadline tests and the cascading-failure bench: a small threaded HTTP/1.1 service on 127.0.0.1.

With `next_port` it calls that port (the next hop's remora), passing `x-remora-deadline-ms` on
as an application using the header would, and answers with the status (and any
x-remora-reason) it got. Without, it is the last hop: it sleeps `stall` seconds, watching its
caller's connection, and ends early (recording when) if the caller closes it; with `begin_body`
it first sends a response head and 3 bytes of a 10-byte body.

Recorded: `seen` (time, deadline header) per request; `got` (time, status, reason) per call to
the next hop; `closed_at` per caller that went away; `active`, `peak` (concurrent requests) and
`busy_seconds` (the sum of request durations).
"""

import http.client
import select
import socket
import threading
import time

from harness import BackgroundServer, QuietHandler

DEADLINE = "x-remora-deadline-ms"


class ChainService(BackgroundServer):
    def __init__(self, name, next_port=None, stall=5.0, begin_body=False):
        self.name = name
        self.seen = []
        self.got = []
        self.closed_at = []
        self.active = 0
        self.peak = 0
        self.busy_seconds = 0.0
        self.lock = threading.Lock()
        svc = self

        class Handler(QuietHandler):
            def do_GET(self):
                start = time.monotonic()
                with svc.lock:
                    svc.seen.append((start, self.headers.get(DEADLINE)))
                    svc.active += 1
                    svc.peak = max(svc.peak, svc.active)
                try:
                    if next_port is None:
                        self.stall()
                    else:
                        self.relay()
                except OSError:
                    pass  # our caller gave up first
                finally:
                    with svc.lock:
                        svc.active -= 1
                        svc.busy_seconds += time.monotonic() - start

            def relay(self):
                conn = http.client.HTTPConnection("127.0.0.1", next_port, timeout=30)
                headers = {}
                if self.headers.get(DEADLINE) is not None:
                    headers[DEADLINE] = self.headers[DEADLINE]
                try:
                    conn.request("GET", self.path, headers=headers)
                    resp = conn.getresponse()
                    body = resp.read()
                    reason = resp.getheader("x-remora-reason")
                    svc.got.append((time.monotonic(), resp.status, reason))
                finally:
                    conn.close()
                self.send_response(resp.status)
                # Passed on, as an app reporting its dependency's failure would: the hops'
                # deadlines are a millisecond or two apart, so the next hop's 504 can come back
                # through this service before this hop's own remora gives up.
                if reason:
                    self.send_header("x-remora-reason", reason)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def stall(self):
                if begin_body:
                    self.send_response(200)
                    self.send_header("content-length", "10")
                    self.end_headers()
                    self.wfile.write(b"abc")
                    self.wfile.flush()
                end = time.monotonic() + stall
                while time.monotonic() < end:
                    readable, _, _ = select.select([self.connection], [], [], 0.01)
                    if readable and not self.connection.recv(1, socket.MSG_PEEK):
                        svc.closed_at.append(time.monotonic())
                        self.close_connection = True
                        return
                if begin_body:
                    self.wfile.write(b"defghij")
                    return
                self.send_response(200)
                self.send_header("content-length", "4")
                self.end_headers()
                self.wfile.write(b"late")

        self.serve(Handler)
