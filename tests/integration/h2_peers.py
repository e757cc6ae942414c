"""HTTP/2 peers for the integration tests, on python3-h2 (Debian's; it imports only under
/usr/bin/python3):

  * H2Upstream: an HTTP/2 cleartext (prior knowledge) upstream that answers like
    harness.Upstream does over HTTP/1.1 (GET /bytes, POST /sha with trailers, GET /echo), so one
    scenario runs against either protocol; it can also hand HTTP/1.1 connections to a
    harness.Upstream, so that one address speaks both (for `protocol: auto` clusters);
  * H2Client: a scripted HTTP/2 client over one connection (headers, data and trailers on several
    streams, flow control honoured both ways, responses read with their trailers);
  * Http1Client: one keep-alive HTTP/1.1 connection whose responses keep their trailers (which
    http.client drops);
  * read_frames: raw HTTP/2 frames, for the inputs no well-behaved library would send.

Every wait has a deadline; a peer that never answers fails the test instead of hanging it.
"""

import hashlib
import json
import select
import socket
import struct
import threading
import time
import urllib.parse

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack

from harness import KiB, payload

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types and error codes (RFC 9113 6 and 7) the tests use.
DATA, HEADERS, SETTINGS, PING = 0x0, 0x1, 0x4, 0x6
GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x7, 0x8, 0x9
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
PROTOCOL_ERROR, INTERNAL_ERROR, REFUSED_STREAM, CANCEL = 0x1, 0x2, 0x7, 0x8


def _settings(client, values):
    """h2 Settings with h2's own defaults, overridden by `values` ({SettingCodes: int}).
    Installed before the first SETTINGS frame, they are in force from the first stream on (the
    peer applies them before it reads any stream)."""
    initial = {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
               h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE:
                   h2.connection.H2Connection.DEFAULT_MAX_HEADER_LIST_SIZE}
    initial.update(values)
    return h2.settings.Settings(client=client, initial_values=initial)


# --------------------------------------------------------------------------------------------
# Upstream
# --------------------------------------------------------------------------------------------

class H2Upstream:
    """An HTTP/2 cleartext server on 127.0.0.1, port 0: a thread per connection, each a select
    loop around one h2 connection. Request bodies are acknowledged as they arrive; responses are
    sent as the peer's flow-control windows allow.

    GET /bytes?n=N  -> payload(N), with content-length
    POST /sha       -> JSON {length, sha256, content_length} of the request body (with or without
                       content-length), then the trailers `x-sha256: <hex>` and `x-echo-NAME:
                       value` for each request trailer NAME
    GET /echo...    -> JSON {path, headers, protocol: "HTTP/2"} (headers: regular fields only)
    GET /refuse-once-NAME -> the first request for a NAME: RST_STREAM REFUSED_STREAM (never
                       processed); later ones: 200 "ok"
    GET /goaway     -> 200 "bye", then GOAWAY naming this stream as the last, then close
    other           -> 404

    Counts requests (request heads), connections (peer addresses), body_bytes (request body bytes
    received) and resets (streams the peer reset). With `http1` (a harness.Upstream), a
    connection that does not open with the HTTP/2 preface is served by it instead.
    """

    def __init__(self, http1=None, max_concurrent_streams=1000):
        self.http1 = http1
        self.max_concurrent_streams = max_concurrent_streams
        self.requests = 0
        self.connections = set()
        self.body_bytes = 0
        self.resets = 0
        self.refused = set()  # the NAMEs of /refuse-once-NAME refused so far
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._open = set()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self.sock], [], [], 0.1)
            if not r:
                continue
            try:
                conn, addr = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, addr), daemon=True).start()

    def _serve(self, conn, addr):
        handed_over = False
        try:
            if not _opens_with_preface(conn):
                if self.http1 is not None:
                    self.http1.serve_connection(conn, addr)
                    handed_over = True
                return
            with self.lock:
                self.connections.add(addr)
                self._open.add(conn)
            _ServerSession(self, conn).run()
        except OSError:
            pass
        finally:
            with self.lock:
                self._open.discard(conn)
            if not handed_over:
                conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()
        with self.lock:
            for conn in self._open:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _opens_with_preface(conn, timeout=5.0):
    """Whether the first bytes on `conn` are the HTTP/2 client preface (peeked, not consumed)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([conn], [], [], left)[0]:
            return False
        data = conn.recv(len(PREFACE), socket.MSG_PEEK)
        if not data or not PREFACE.startswith(data):
            return False
        if len(data) == len(PREFACE):
            return True
        time.sleep(0.005)  # part of the preface so far: wait for the rest


class _ServerSession:
    """One HTTP/2 connection of an H2Upstream."""

    def __init__(self, upstream, sock):
        self.up = upstream
        self.sock = sock
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config)
        self.h2.local_settings = _settings(False, {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: upstream.max_concurrent_streams})
        self.h2.initiate_connection()
        self.requests = {}  # stream id -> {headers, sha, length, trailers}
        self.pending = {}   # stream id -> [body, offset, trailers]: response not yet sent
        self.out = bytearray()
        self.closing = False

    def run(self):
        self.sock.setblocking(False)
        while not self.up._stop.is_set():
            self.out += self.h2.data_to_send()
            if self.out:
                try:
                    del self.out[:self.sock.send(self.out)]
                except BlockingIOError:
                    pass
            if self.closing and not self.out:
                return
            r, _, _ = select.select([self.sock], [self.sock] if self.out else [], [], 0.1)
            if not r:
                continue
            try:
                data = self.sock.recv(256 * KiB)
            except BlockingIOError:
                continue
            if not data:
                return
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError:
                self.closing = True  # h2 queued a GOAWAY: send it, then close
                continue
            # A stream the peer reset later in this same batch is gone from h2 already: it
            # gets no response.
            reset = {e.stream_id for e in events if isinstance(e, h2.events.StreamReset)}
            for event in events:
                self.handle(event, reset)
            self.flush()

    def handle(self, event, reset):
        ev = h2.events
        sid = getattr(event, "stream_id", None)
        if isinstance(event, ev.RequestReceived):
            self.requests[sid] = {"headers": event.headers, "sha": hashlib.sha256(),
                                  "length": 0, "trailers": []}
            with self.up.lock:
                self.up.requests += 1
        elif isinstance(event, ev.DataReceived):
            req = self.requests.get(sid)
            if req is not None:
                req["sha"].update(event.data)
                req["length"] += len(event.data)
            with self.up.lock:
                self.up.body_bytes += len(event.data)
            self.h2.acknowledge_received_data(event.flow_controlled_length, sid)
        elif isinstance(event, ev.TrailersReceived):
            self.requests[sid]["trailers"] = event.headers
        elif isinstance(event, ev.StreamEnded):
            req = self.requests.pop(sid)
            if sid not in reset:
                self.respond(sid, req)
        elif isinstance(event, ev.StreamReset):
            self.requests.pop(sid, None)
            self.pending.pop(sid, None)
            with self.up.lock:
                self.up.resets += 1
        elif isinstance(event, ev.ConnectionTerminated):
            self.closing = True

    def respond(self, sid, req):
        head = dict(req["headers"])
        url = urllib.parse.urlsplit(head.get(":path", ""))
        method = head.get(":method")
        headers = [(":status", "200")]
        trailers = None
        if method == "GET" and url.path == "/bytes":
            body = payload(int(urllib.parse.parse_qs(url.query)["n"][0]))
            headers.append(("content-length", str(len(body))))
        elif method == "POST" and url.path == "/sha":
            digest = req["sha"].hexdigest()
            body = json.dumps({"length": req["length"], "sha256": digest,
                               "content_length": head.get("content-length")}).encode()
            headers.append(("content-type", "application/json"))
            trailers = [("x-sha256", digest)] + [("x-echo-" + k, v) for k, v in req["trailers"]]
        elif url.path.startswith("/refuse-once-"):
            with self.up.lock:
                first = url.path not in self.up.refused
                self.up.refused.add(url.path)
            if first:
                self.h2.reset_stream(sid, error_code=REFUSED_STREAM)
                return
            body = b"ok"
        elif method == "GET" and url.path == "/goaway":
            self.h2.send_headers(sid, headers)
            self.h2.send_data(sid, b"bye", end_stream=True)
            self.h2.close_connection(last_stream_id=sid)
            self.closing = True
            return
        elif method == "GET" and url.path.startswith("/echo"):
            fields = [[k, v] for k, v in req["headers"] if not k.startswith(":")]
            body = json.dumps({"path": head[":path"], "headers": fields,
                               "protocol": "HTTP/2"}).encode()
            headers.append(("content-type", "application/json"))
        else:
            body = b"upstream has no " + head.get(":path", "").encode()
            headers = [(":status", "404")]
        self.h2.send_headers(sid, headers, end_stream=not body and not trailers)
        if body or trailers:
            self.pending[sid] = [memoryview(body), 0, trailers]

    def flush(self):
        """Sends what the flow-control windows allow of the pending responses."""
        for sid in list(self.pending):
            body, offset, trailers = self.pending[sid]
            while offset < len(body):
                n = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size,
                        len(body) - offset)
                if n <= 0:
                    break
                end = offset + n == len(body) and not trailers
                self.h2.send_data(sid, bytes(body[offset:offset + n]), end_stream=end)
                offset += n
            self.pending[sid][1] = offset
            if offset == len(body):
                if trailers:
                    self.h2.send_headers(sid, trailers, end_stream=True)
                del self.pending[sid]


# --------------------------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------------------------

class Response:
    """What one request got back: the final head, body, trailers; for HTTP/2 also whether the
    stream was reset (the RST_STREAM error code) and when."""

    def __init__(self, stream_id=None):
        self.stream_id = stream_id
        self.status = None
        self.headers = []  # [(name, value)], names lower case, pseudo-headers left out
        self.data = bytearray()
        self.trailers = []
        self.ended = False
        self.reset = None
        self.opened_at = time.monotonic()
        self.reset_at = None

    @property
    def done(self):
        return self.ended or self.reset is not None

    def header(self, name):
        return next((v for k, v in self.headers if k == name), None)

    def trailer(self, name):
        return next((v for k, v in self.trailers if k == name), None)

    def json(self):
        return json.loads(bytes(self.data))

    def __repr__(self):
        return (f"Response(stream={self.stream_id}, status={self.status}, "
                f"body={len(self.data)} bytes, trailers={self.trailers}, ended={self.ended}, "
                f"reset={self.reset})")


class GoAway:
    def __init__(self, error_code, last_stream_id):
        self.error_code = error_code
        self.last_stream_id = last_stream_id

    def __repr__(self):
        return f"GoAway(error_code={self.error_code}, last_stream_id={self.last_stream_id})"


class H2Client:
    """A scripted HTTP/2 cleartext client (prior knowledge) on one connection to 127.0.0.1:port.

    request() opens a stream; its body and trailers are queued and sent as the peer's windows
    allow while run()/response() wait. Received DATA is acknowledged at once (the windows stay
    open) except on streams in `stalled`. settings: {h2.settings.SettingCodes: value} sent in the
    first SETTINGS frame. validate=False lets malformed header blocks through.
    """

    def __init__(self, port, settings=None, validate=True, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                           validate_outbound_headers=validate,
                                           normalize_outbound_headers=validate)
        self.h2 = h2.connection.H2Connection(config)
        self.h2.local_settings = _settings(True, {h2.settings.SettingCodes.ENABLE_PUSH: 0,
                                                  **(settings or {})})
        self.h2.initiate_connection()
        self.streams = {}
        self.stalled = set()
        self.goaway = None
        self.closed = False  # the peer closed the TCP connection
        self.remote_settings_seen = False
        self.settings_acked = 0
        self._out = {}  # stream id -> [unsent body bytearray, trailers, end after them]
        self.flush()

    # ---- sending --------------------------------------------------------------------------

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def open_stream(self, headers, end_stream=True):
        """Sends one HEADERS frame carrying exactly `headers` on a new stream; returns its id."""
        sid = self.h2.get_next_available_stream_id()
        self.streams[sid] = Response(sid)
        self.h2.send_headers(sid, headers, end_stream=end_stream)
        self.flush()
        return sid

    def request(self, method, path, headers=(), body=b"", trailers=None, end=True,
                authority="remora.test"):
        """Opens a stream for a request. `body`, then `trailers`, follow as flow control allows;
        end=False leaves the request open for send()."""
        head = [(":method", method), (":scheme", "http"), (":authority", authority),
                (":path", path)] + list(headers)
        only_head = end and not body and not trailers
        sid = self.open_stream(head, end_stream=only_head)
        if not only_head:
            self._out[sid] = [bytearray(), None, False]
            self.send(sid, body, trailers=trailers, end=end)
        return sid

    def send(self, sid, data=b"", trailers=None, end=False):
        """Queues body bytes (then trailers, which end the stream) on a stream still open."""
        out = self._out[sid]
        out[0] += data
        out[1] = trailers
        out[2] = end or bool(trailers)
        self._send_queued()

    def unsent(self, sid):
        """Body bytes queued on `sid` and not yet sent."""
        out = self._out.get(sid)
        return len(out[0]) if out else 0

    def _send_queued(self):
        for sid, (buf, trailers, end) in list(self._out.items()):
            if self.streams[sid].reset is not None:
                del self._out[sid]
                continue
            ended = False
            while buf:
                n = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size,
                        len(buf))
                if n <= 0:
                    break
                ended = n == len(buf) and end and not trailers
                self.h2.send_data(sid, bytes(buf[:n]), end_stream=ended)
                del buf[:n]
            if buf or not end:
                continue
            if trailers:
                self.h2.send_headers(sid, trailers, end_stream=True)
            elif not ended:
                self.h2.end_stream(sid)
            del self._out[sid]
        self.flush()

    def grant(self, sid, n):
        """Opens the receive window of `sid` (0: the connection's) by `n` bytes."""
        self.h2.increment_flow_control_window(n, stream_id=sid or None)
        self.flush()

    def reset(self, sid, code=CANCEL):
        self._out.pop(sid, None)
        self.h2.reset_stream(sid, error_code=code)
        self.flush()

    # ---- receiving ------------------------------------------------------------------------

    def pump(self, timeout):
        """Handles what arrives within `timeout` (one read at most); then sends what the windows
        now allow."""
        if self.closed or not select.select([self.sock], [], [], max(0.0, timeout))[0]:
            return
        try:
            data = self.sock.recv(256 * KiB)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return
        for event in self.h2.receive_data(data):
            self._handle(event)
        self._send_queued()

    def run(self, until, timeout=10.0, what="the condition"):
        """Pumps until `until()` is true; fails after `timeout` s or if the peer closes first."""
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            if self.closed:
                raise AssertionError(f"connection closed while waiting for {what}")
            self.pump(min(0.05, left))

    def handshake(self, timeout=5.0):
        """Waits for the server's SETTINGS and its acknowledgement of ours."""
        self.run(lambda: self.remote_settings_seen and self.settings_acked, timeout,
                 "the SETTINGS exchange")

    def response(self, sid, timeout=10.0):
        stream = self.streams[sid]
        self.run(lambda: stream.done, timeout, f"the response on stream {sid}")
        return stream

    def responses(self, sids, timeout=10.0):
        self.run(lambda: all(self.streams[s].done for s in sids), timeout,
                 f"responses on {len(sids)} streams")
        return [self.streams[s] for s in sids]

    def _handle(self, event):
        ev = h2.events
        stream = self.streams.get(getattr(event, "stream_id", None))
        if isinstance(event, ev.ResponseReceived):
            stream.status = int(dict(event.headers)[":status"])
            stream.headers = [(k, v) for k, v in event.headers if not k.startswith(":")]
        elif isinstance(event, ev.DataReceived):
            if stream is not None:
                stream.data += event.data
            if event.stream_id not in self.stalled:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, ev.TrailersReceived):
            stream.trailers = list(event.headers)
        elif isinstance(event, ev.StreamEnded):
            stream.ended = True
        elif isinstance(event, ev.StreamReset):
            if stream is not None:
                stream.reset = event.error_code
                stream.reset_at = time.monotonic()
            self._out.pop(event.stream_id, None)
        elif isinstance(event, ev.ConnectionTerminated):
            self.goaway = GoAway(event.error_code, event.last_stream_id)
        elif isinstance(event, ev.RemoteSettingsChanged):
            self.remote_settings_seen = True
        elif isinstance(event, ev.SettingsAcknowledged):
            self.settings_acked += 1

    def close(self):
        try:
            self.h2.close_connection()
            self.flush()
        except (OSError, h2.exceptions.ProtocolError):
            pass
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Http1Client:
    """One HTTP/1.1 connection to 127.0.0.1:port, reading whole responses (content-length,
    chunked with trailers, or until close); interim 1xx heads are skipped."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(256 * KiB)
        if not chunk:
            raise EOFError("connection closed mid-response")
        self.buf += chunk

    def _line(self):
        while (i := self.buf.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buf[:i])
        del self.buf[:i + 2]
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _fields(self):
        fields = []
        while line := self._line():
            name, _, value = line.decode().partition(":")
            fields.append((name.strip().lower(), value.strip()))
        return fields

    def read_response(self):
        resp = Response()
        while True:
            resp.status = int(self._line().split(b" ")[1])
            resp.headers = self._fields()
            if not 100 <= resp.status < 200:
                break
        if resp.status in (204, 304):
            pass
        elif (resp.header("transfer-encoding") or "").lower() == "chunked":
            while size := int(self._line().split(b";")[0], 16):
                resp.data += self._exact(size)
                self._line()
            resp.trailers = self._fields()
        elif resp.header("content-length") is not None:
            resp.data += self._exact(int(resp.header("content-length")))
        else:
            try:
                while True:
                    self._fill()
            except EOFError:
                resp.data += self.buf
                self.buf.clear()
        resp.ended = True
        return resp

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def http1_head(method, path, headers=()):
    """The bytes of an HTTP/1.1 request head (Host: remora.test, then `headers`)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: remora.test"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def http1_request(method, path, headers=(), body=b"", chunked=False, trailers=(),
                  chunk_size=64 * KiB):
    """The bytes of one HTTP/1.1 request. chunked=True sends `body` in `chunk_size` chunks, then
    `trailers`; otherwise a body gets a Content-Length."""
    headers = list(headers)
    if chunked:
        headers.append(("Transfer-Encoding", "chunked"))
        data = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + chunk_size]), body[i:i + chunk_size])
                        for i in range(0, len(body), chunk_size))
        data += b"0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in trailers).encode() + b"\r\n"
    else:
        if body or method in ("POST", "PUT"):
            headers.append(("Content-Length", len(body)))
        data = body
    return http1_head(method, path, headers) + data


def read_frames(sock, timeout=5.0):
    """Raw HTTP/2 frames [(type, flags, stream id, payload)] read from `sock` until the peer
    closes or `timeout` s pass, and whether the peer closed."""
    deadline = time.monotonic() + timeout
    data = b""
    closed = False
    while not closed:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            break
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        closed = not chunk
        data += chunk
    frames = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        kind, flags, sid = struct.unpack("!BBI", data[3:9])
        if len(data) < 9 + length:
            break
        frames.append((kind, flags, sid & 0x7FFFFFFF, data[9:9 + length]))
        data = data[9 + length:]
    return frames, closed


def frame(kind, flags, sid, body=b""):
    """The bytes of one raw HTTP/2 frame."""
    return len(body).to_bytes(3, "big") + struct.pack("!BBI", kind, flags, sid) + body


class RawH2:
    """Frames by hand on one connection, for what a conforming client library will not send or
    will not read (many CONTINUATIONs; frames after a GOAWAY). Header blocks are HPACK-encoded
    here; received frames come back raw."""

    def __init__(self, port, settings=b"", timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.encoder = hpack.Encoder()
        self.buf = b""
        self.closed = False
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0, settings))

    def headers_block(self, headers):
        return self.encoder.encode(headers)

    def send(self, data):
        self.sock.sendall(data)

    def next_frame(self, timeout=5.0):
        """The next (type, flags, stream id, payload), or None when the peer closed or `timeout`
        passed first."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + length:
                    kind, flags, sid = struct.unpack("!BBI", self.buf[3:9])
                    f = (kind, flags, sid & 0x7FFFFFFF, self.buf[9:9 + length])
                    self.buf = self.buf[9 + length:]
                    return f
            left = deadline - time.monotonic()
            if self.closed or left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return None
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            self.closed = not chunk
            self.buf += chunk

    def wait_for(self, kind, timeout=5.0):
        """Frames up to the first of `kind`: (that frame or None, the frames before it)."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            f = self.next_frame(max(0.0, deadline - time.monotonic()))
            if f is None or f[0] == kind:
                return f, seen
            seen.append(f)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

