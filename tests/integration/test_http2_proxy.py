#!/usr/bin/env python3
"""Integration tests for HTTP/2 on `kind: http` listeners: the real remora binary between real
HTTP/2 and HTTP/1.1 clients (curl, nghttp, h2load, python3-h2 scripts, raw sockets) and real
upstreams (python3-h2 and python http.server peers from h2_peers.py and harness.py, nghttpd).

What is covered:
  * the four pairings, downstream HTTP/1.1 or HTTP/2 (prior knowledge, on the same listener)
    times a cluster with `protocol: http1` or `protocol: http2`, each with: a 1 MiB download; a
    1 MiB upload with a length, seen arriving upstream while the client still sends it; an upload
    without a length (chunked from an HTTP/1.1 client, DATA frames without content-length from an
    HTTP/2 one); request and response trailers; 100 concurrent requests (one HTTP/2 connection
    with 100 streams, or 10 HTTP/1.1 connections). Bodies are compared by sha256 end to end;
  * `protocol: auto` (the downstream's protocol), nghttpd as an HTTP/2 upstream, `Upgrade: h2c`
    ignored, cookie crumbs joined for an HTTP/1.1 upstream, a short h2load run;
  * malformed HTTP/2: a connection-specific field or a bad pseudo-header resets that stream only
    (PROTOCOL_ERROR, nothing sent upstream); a broken connection preface gets GOAWAY
    PROTOCOL_ERROR;
  * rapid reset (CVE-2023-44487): a HEADERS+RST_STREAM flood gets a GOAWAY (libnghttp2's
    reset limiter sends INTERNAL_ERROR) before it ends and reaches the upstream only about
    `http2_reset_burst` times; resets within the burst are fine;
  * a header block over the limits gets 431, CONNECT 405, a CONTINUATION flood GOAWAY; an
    upstream's REFUSED_STREAM is retried once (not with a body), its GOAWAY sends new requests to
    a new connection; drain is the two-step GOAWAY and the stream in flight finishes;
  * `stream_idle_timeout`: a stream whose client never opens its window is reset on time while
    the other streams of its connection complete; a stalled HTTP/1.1 upload is closed on time;
    `http2_max_concurrent_streams` is what SETTINGS advertises.

Run (from the source tree):
  REMORA_BIN=build/asan/remora REMORA_SOURCE_DIR=. /usr/bin/python3 \\
      tests/integration/test_http2_proxy.py -v
Needs curl (with HTTP/2), nghttp and h2load (nghttp2-client), nghttpd (nghttp2-server) and
python3-h2. Every wait is bounded.
"""

import concurrent.futures
import contextlib
import hashlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from h2.settings import SettingCodes  # noqa: E402

from harness import (KiB, MiB, Remora, Upstream, curl, free_port_refused,  # noqa: E402
                     http_config, listening_port, payload, split_response, wait_until)
from h2_peers import (ACK, CANCEL, CONTINUATION, DATA, END_HEADERS, END_STREAM,  # noqa: E402
                      GOAWAY, HEADERS, INTERNAL_ERROR, PING, PREFACE, PROTOCOL_ERROR, SETTINGS,
                      WINDOW_UPDATE, H2Client, H2Upstream, Http1Client, RawH2, frame,
                      http1_head, http1_request, read_frames)

NGHTTPD = "/usr/sbin/nghttpd"
NGHTTPD_TRAILER = ("x-nghttpd-trailer", "yes")


def sha(data):
    return hashlib.sha256(data).hexdigest()


# Every listener here routes on one request header, x-upstream: CLUSTER.
def route_to(cluster):
    """The routing header as a (name, value) field."""
    return ("x-upstream", cluster)


def route_arg(cluster):
    """The routing header as a curl/nghttp/h2load -H argument."""
    return f"x-upstream: {cluster}"


def header_routes(*clusters):
    return [(f"{{prefix: /, headers: [{{name: x-upstream, value: {c}}}]}}", c) for c in clusters]


PROTOCOL_LINES = {"http1": ["protocol: http1"], "http2": ["protocol: http2"]}


def run_tool(cmd, timeout=30):
    p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"{cmd} exited {p.returncode}: {p.stderr.decode()[-2000:]}")
    return p.stdout


# --------------------------------------------------------------------------------------------
# The shared fixture: one proxy, one upstream per cluster
# --------------------------------------------------------------------------------------------

class Fixture:
    """Upstreams for every cluster and one remora routing on the x-upstream header:
    http1 (protocol: http1) -> harness.Upstream; http2 (protocol: http2) -> H2Upstream;
    auto (no protocol) -> an H2Upstream that hands HTTP/1.1 connections to a harness.Upstream;
    nghttpd (protocol: http2) -> nghttpd serving a 1 MiB file /big and echoing uploads."""

    def __init__(self):
        self.stack = contextlib.ExitStack()
        try:
            self.h1 = self.stack.enter_context(Upstream())
            self.h2 = self.stack.enter_context(H2Upstream())
            self.auto_h1 = self.stack.enter_context(Upstream())
            self.auto = self.stack.enter_context(H2Upstream(http1=self.auto_h1))
            self.docroot = self.stack.enter_context(tempfile.TemporaryDirectory())
            with open(os.path.join(self.docroot, "big"), "wb") as f:
                f.write(payload(MiB))
            self.nghttpd = subprocess.Popen(
                [NGHTTPD, "--no-tls", "-a", "127.0.0.1", "-d", self.docroot, "--echo-upload",
                 "--trailer", ": ".join(NGHTTPD_TRAILER), "0"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.stack.callback(self._stop_nghttpd)
            nghttpd = f"127.0.0.1:{listening_port(self.nghttpd.pid)}"
            config = http_config(
                header_routes("http1", "http2", "auto", "nghttpd"),
                {"http1": [self.h1.address], "http2": [self.h2.address],
                 "auto": [self.auto.address], "nghttpd": [nghttpd]},
                cluster_extra={**PROTOCOL_LINES, "nghttpd": ["protocol: http2"]})
            self.remora = Remora(config)
            self.port = self.remora.port("web")
        except BaseException:
            self.stack.close()
            raise

    def upstream(self, cluster):
        return {"http1": self.h1, "http2": self.h2}[cluster]

    def _stop_nghttpd(self):
        self.nghttpd.terminate()
        try:
            self.nghttpd.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.nghttpd.kill()
            self.nghttpd.wait()

    def close(self):
        try:
            self.remora.close()  # asserts a clean exit (no sanitizer report)
        finally:
            self.stack.close()


FIX = None


def setUpModule():
    global FIX
    FIX = Fixture()


def tearDownModule():
    if FIX is not None:
        FIX.close()


# --------------------------------------------------------------------------------------------
# The four pairings
# --------------------------------------------------------------------------------------------

class Pairing:
    """The scenarios every (downstream protocol, cluster protocol) pairing runs; the concrete
    classes below set `downstream` ("h1" or "h2") and `cluster` ("http1" or "http2")."""

    downstream = None
    cluster = None

    def setUp(self):
        self.up = FIX.upstream(self.cluster)
        self.route = route_to(self.cluster)
        self.route_arg = route_arg(self.cluster)
        self.url = f"http://127.0.0.1:{FIX.port}"
        self.curl_proto = "--http2-prior-knowledge" if self.downstream == "h2" else "--http1.1"
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def file_of(self, data):
        path = os.path.join(self.tmp.name, f"body-{len(data)}")
        with open(path, "wb") as f:
            f.write(data)
        return path

    def curl_body(self, *args):
        return curl(self.curl_proto, "-f", "-H", self.route_arg, *args, head=False)

    def assert_sha_json(self, body_json, data):
        self.assertEqual((body_json["length"], body_json["sha256"]), (len(data), sha(data)))

    # ---- GET 1 MiB -------------------------------------------------------------------------

    def test_get_1mib(self):
        want = sha(payload(MiB))
        got = self.curl_body(f"{self.url}/bytes?n={MiB}")
        self.assertEqual((len(got), sha(got)), (MiB, want))
        if self.downstream == "h2":
            out = run_tool(["nghttp", "-H", self.route_arg, f"{self.url}/bytes?n={MiB}"])
            self.assertEqual((len(out), sha(out)), (MiB, want))

    # ---- an upload with a length, streamed ------------------------------------------------

    def test_post_1mib_streams_through(self):
        data = payload(MiB)
        got = json.loads(self.curl_body("--data-binary", "@" + self.file_of(data),
                                        f"{self.url}/sha"))
        self.assert_sha_json(got, data)
        # The first half must reach the upstream while the second is still unsent: the proxy
        # streams bodies, it does not collect them.
        half = len(data) // 2
        before = self.up.body_bytes

        def arrived():
            return self.up.body_bytes - before >= half // 2

        if self.downstream == "h1":
            with Http1Client(FIX.port) as c:
                c.send(http1_head("POST", "/sha", [self.route, ("Content-Length", len(data))]))
                c.send(data[:half])
                wait_until(arrived, timeout=5, what="the first half upstream")
                c.send(data[half:])
                resp = c.read_response()
        else:
            with H2Client(FIX.port) as c:
                sid = c.request("POST", "/sha", [self.route, ("content-length", str(len(data)))],
                                body=data[:half], end=False)
                c.run(lambda: c.unsent(sid) == 0, what="the first half sent")
                c.run(arrived, timeout=5, what="the first half upstream")
                c.send(sid, data[half:], end=True)
                resp = c.response(sid)
        self.assertEqual(resp.status, 200, resp)
        self.assert_sha_json(resp.json(), data)
        self.assertEqual(resp.trailer("x-sha256"), sha(data))

    # ---- an upload without a length -------------------------------------------------------

    def test_upload_without_length(self):
        data = payload(MiB + 123)
        # curl -T - reads stdin, of unknown size: chunked over HTTP/1.1, DATA frames without
        # content-length over HTTP/2.
        with open(self.file_of(data), "rb") as stdin:
            p = subprocess.run(["curl", "-s", "-S", "-f", "--max-time", "20", self.curl_proto,
                                "-X", "POST", "-T", "-", "-H", self.route_arg,
                                f"{self.url}/sha"], stdin=stdin, capture_output=True, timeout=25)
        self.assertEqual(p.returncode, 0, p.stderr)
        got = json.loads(p.stdout)
        self.assert_sha_json(got, data)
        self.assertIsNone(got["content_length"], "the proxy waited for the body to count it")
        # A scripted client: small chunks, or DATA frames without content-length.
        if self.downstream == "h1":
            with Http1Client(FIX.port) as c:
                c.send(http1_request("POST", "/sha", [self.route], data, chunked=True,
                                     chunk_size=1000))
                resp = c.read_response()
        else:
            with H2Client(FIX.port) as c:
                resp = c.response(c.request("POST", "/sha", [self.route], body=data))
        self.assertEqual(resp.status, 200, resp)
        self.assert_sha_json(resp.json(), data)
        self.assertIsNone(resp.json()["content_length"])

    # ---- trailers both ways ---------------------------------------------------------------

    def test_request_and_response_trailers(self):
        data = payload(300 * KiB)
        trailers = [("x-client-trailer", "t1"), ("x-other-trailer", "t2")]
        if self.downstream == "h1":
            with Http1Client(FIX.port) as c:
                c.send(http1_request("POST", "/sha", [self.route, ("TE", "trailers"),
                                                      ("Trailer", "x-client-trailer, "
                                                                  "x-other-trailer")],
                                     data, chunked=True, trailers=trailers))
                resp = c.read_response()
        else:
            with H2Client(FIX.port) as c:
                resp = c.response(c.request("POST", "/sha", [self.route, ("te", "trailers")],
                                            body=data, trailers=trailers))
        self.assertEqual(resp.status, 200, resp)
        self.assert_sha_json(resp.json(), data)
        got = dict(resp.trailers)
        self.assertEqual(got.get("x-sha256"), sha(data), resp)
        self.assertEqual(got.get("x-echo-x-client-trailer"), "t1", resp)
        self.assertEqual(got.get("x-echo-x-other-trailer"), "t2", resp)

    # ---- 100 at once ------------------------------------------------------------------------

    def test_100_concurrent_requests(self):
        bodies = [b"%03d" % i + payload(16 * KiB + i) for i in range(100)]
        if self.downstream == "h2":
            with H2Client(FIX.port) as c:
                c.handshake()
                self.assertEqual(c.h2.remote_settings.max_concurrent_streams, 100)
                # All 100 streams are open before any body byte is sent, so none can have
                # finished: the proxy holds 100 concurrent streams on one connection.
                sids = [c.request("POST", "/sha", [self.route], end=False) for _ in bodies]
                for sid, body in zip(sids, bodies):
                    c.send(sid, body, end=True)
                resps = c.responses(sids, timeout=20)
                self.assertIsNone(c.goaway)
        else:
            def one_connection(chunk):
                out = []
                with Http1Client(FIX.port) as c:
                    for body in chunk:
                        c.send(http1_request("POST", "/sha", [self.route], body))
                        out.append(c.read_response())
                return out

            with concurrent.futures.ThreadPoolExecutor(10) as pool:
                futures = [pool.submit(one_connection, bodies[i::10]) for i in range(10)]
                by_conn = [f.result(timeout=30) for f in futures]
            resps = [by_conn[i % 10][i // 10] for i in range(100)]
        for body, resp in zip(bodies, resps):
            self.assertEqual(resp.status, 200, resp)
            self.assert_sha_json(resp.json(), body)
            self.assertEqual(resp.trailer("x-sha256"), sha(body))


class H1ToHttp1(Pairing, unittest.TestCase):
    downstream, cluster = "h1", "http1"


class H1ToHttp2(Pairing, unittest.TestCase):
    downstream, cluster = "h1", "http2"


class H2ToHttp1(Pairing, unittest.TestCase):
    downstream, cluster = "h2", "http1"


class H2ToHttp2(Pairing, unittest.TestCase):
    downstream, cluster = "h2", "http2"


# --------------------------------------------------------------------------------------------
# Protocol selection, real HTTP/2 peers, header handling
# --------------------------------------------------------------------------------------------

class ProtocolTest(unittest.TestCase):
    def setUp(self):
        self.url = f"http://127.0.0.1:{FIX.port}"

    def echo(self, cluster, *curl_args):
        raw = curl(*curl_args, "-H", route_arg(cluster), f"{self.url}/echo/p")
        head, body = split_response(raw)
        return head, json.loads(body)

    def test_auto_cluster_speaks_the_downstream_protocol(self):
        _, got = self.echo("auto", "--http1.1")
        self.assertEqual(got["protocol"], "HTTP/1.1")
        _, got = self.echo("auto", "--http2-prior-knowledge")
        self.assertEqual(got["protocol"], "HTTP/2")

    def test_upgrade_h2c_is_ignored(self):
        # curl --http2 on http:// asks for Upgrade: h2c; the proxy answers over HTTP/1.1 and the
        # upgrade fields never reach the upstream.
        head, got = self.echo("http1", "--http2")
        self.assertTrue(head.startswith("HTTP/1.1 200"), head)
        names = {k.lower() for k, _ in got["headers"]}
        self.assertFalse(names & {"upgrade", "http2-settings", "connection"}, names)

    def test_cookie_crumbs_are_joined_for_http1(self):
        with H2Client(FIX.port) as c:
            resp = c.response(c.request("GET", "/echo/cookies", [
                route_to("http1"), ("cookie", "a=1"), ("cookie", "b=2")]))
        self.assertEqual(resp.status, 200, resp)
        cookies = [v for k, v in resp.json()["headers"] if k.lower() == "cookie"]
        self.assertEqual(cookies, ["a=1; b=2"])

    def test_head_local_reply_over_http2_has_no_body(self):
        # No x-upstream header: no route. A body after a HEAD response's head would be a
        # protocol error to the client (nghttp2 resets the stream), so curl would fail.
        raw = curl("-I", "--http2-prior-knowledge", f"{self.url}/nowhere")
        head, body = split_response(raw)
        self.assertTrue(head.startswith("HTTP/2 404"), head)
        self.assertIn("x-remora-reason: no_route", head)
        self.assertEqual(body, b"")

    def test_grpc_web_is_not_grpc(self):
        # gRPC-Web is HTTP/1-compatible: it goes to an HTTP/1.1 upstream like any request.
        head, got = self.echo("http1", "--http1.1", "-H",
                              "content-type: application/grpc-web+proto")
        self.assertTrue(head.startswith("HTTP/1.1 200"), head)
        self.assertNotIn("x-remora-reason", head)

    def test_nghttpd_upstream(self):
        want = payload(MiB)
        route = route_arg("nghttpd")
        for proto in ("--http1.1", "--http2-prior-knowledge"):
            with self.subTest(proto):
                got = curl(proto, "-f", "-H", route, f"{self.url}/big", head=False)
                self.assertEqual((len(got), sha(got)), (MiB, sha(want)))
        got = run_tool(["nghttp", "-H", route, f"{self.url}/big"])
        self.assertEqual((len(got), sha(got)), (MiB, sha(want)))
        # nghttpd's response trailer reaches an HTTP/2 client as a trailer.
        with H2Client(FIX.port) as c:
            resp = c.response(c.request("GET", "/big", [route_to("nghttpd")]))
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(sha(resp.data), sha(want))
        self.assertIn(NGHTTPD_TRAILER, resp.trailers)
        # Uploads: nghttpd echoes them.
        with tempfile.NamedTemporaryFile() as f:
            f.write(want)
            f.flush()
            for proto in ("--http1.1", "--http2-prior-knowledge"):
                with self.subTest(proto):
                    got = curl(proto, "-f", "-H", route, "--data-binary", "@" + f.name,
                               f"{self.url}/big", head=False)
                    self.assertEqual((len(got), sha(got)), (MiB, sha(want)))

    def test_h2load(self):
        for cluster in ("http2", "http1"):
            with self.subTest(cluster):
                out = run_tool(["h2load", "-n", "2000", "-c", "4", "-m", "16",
                                "-H", route_arg(cluster), f"{self.url}/bytes?n=1024"],
                               timeout=60).decode()
                m = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, "
                              r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
                self.assertIsNotNone(m, out)
                self.assertEqual(m.groups(), ("2000", "2000", "0", "0", "0"), out)
                self.assertRegex(out, r"status codes: 2000 2xx")


# --------------------------------------------------------------------------------------------
# Malformed HTTP/2
# --------------------------------------------------------------------------------------------

PSEUDO = [(":method", "GET"), (":scheme", "http"), (":authority", "remora.test"),
          (":path", "/bytes?n=10")]
REGULAR = [route_to("http1")]


def without(name):
    return [h for h in PSEUDO if h[0] != name]


MALFORMED_HEADERS = [
    ("connection: keep-alive", PSEUDO + REGULAR + [("connection", "keep-alive")]),
    ("keep-alive", PSEUDO + REGULAR + [("keep-alive", "timeout=5")]),
    ("proxy-connection", PSEUDO + REGULAR + [("proxy-connection", "keep-alive")]),
    ("transfer-encoding", PSEUDO + REGULAR + [("transfer-encoding", "chunked")]),
    ("upgrade", PSEUDO + REGULAR + [("upgrade", "h2c")]),
    ("te other than trailers", PSEUDO + REGULAR + [("te", "gzip")]),
    ("upper-case field name", PSEUDO + REGULAR + [("X-Upper", "1")]),
    ("no :method", without(":method") + REGULAR),
    ("no :path", without(":path") + REGULAR),
    ("no :scheme", without(":scheme") + REGULAR),
    ("empty :path", without(":path") + [(":path", "")] + REGULAR),
    ("two :path", PSEUDO + [(":path", "/other")] + REGULAR),
    ("unknown pseudo-header", PSEUDO + [(":foo", "bar")] + REGULAR),
    ("response pseudo-header", PSEUDO + [(":status", "200")] + REGULAR),
    ("pseudo-header after a regular field", without(":path") + REGULAR + [(":path", "/")]),
]


class MalformedTest(unittest.TestCase):
    def assert_still_serves(self, c):
        resp = c.response(c.request("GET", "/bytes?n=1000", [route_to("http2")]))
        self.assertEqual((resp.status, sha(resp.data)), (200, sha(payload(1000))), resp)

    def test_malformed_request_resets_only_its_stream(self):
        with H2Client(FIX.port, validate=False) as c:
            for name, headers in MALFORMED_HEADERS:
                with self.subTest(name):
                    before = FIX.h1.requests
                    resp = c.response(c.open_stream(headers))
                    self.assertEqual((resp.reset, resp.status), (PROTOCOL_ERROR, None), resp)
                    self.assertEqual(FIX.h1.requests, before, "the upstream saw the request")
                    self.assert_still_serves(c)
            with self.subTest("DATA shorter than content-length"):
                resp = c.response(c.request("POST", "/sha", REGULAR + [("content-length", "10")],
                                            body=b"abc"))
                self.assertEqual((resp.reset, resp.status), (PROTOCOL_ERROR, None), resp)
                self.assert_still_serves(c)
            self.assertIsNone(c.goaway)

    def test_broken_preface_gets_goaway_protocol_error(self):
        data_on_stream_0 = frame(DATA, 0, 0, b"garbage!")
        cases = [("a DATA frame where SETTINGS must come", PREFACE + data_on_stream_0),
                 ("DATA on stream 0 after SETTINGS", PREFACE + frame(SETTINGS, 0, 0)
                  + data_on_stream_0)]
        for name, data in cases:
            with self.subTest(name), socket.create_connection(("127.0.0.1", FIX.port),
                                                              timeout=5) as s:
                s.sendall(data)
                frames, closed = read_frames(s, timeout=5)
                goaways = [f for f in frames if f[0] == GOAWAY]
                self.assertEqual(len(goaways), 1, frames)
                self.assertEqual(int.from_bytes(goaways[0][3][4:8], "big"), PROTOCOL_ERROR)
                self.assertTrue(closed, "connection left open after GOAWAY")


# --------------------------------------------------------------------------------------------
# Limits, rejections and GOAWAY, both sides
# --------------------------------------------------------------------------------------------

class Http2EdgeTest(unittest.TestCase):
    def test_header_block_over_the_limit_gets_431(self):
        before = FIX.h2.requests
        with H2Client(FIX.port) as c:  # 70 KiB in one field: over the 60 KiB default
            resp = c.response(c.request("GET", "/bytes?n=10",
                                        [route_to("http2"), ("x-big", "b" * (70 * KiB))]))
            self.assertEqual(resp.status, 431, resp)
            self.assertEqual(resp.header("x-remora-reason"), "headers_too_large")
            self.assertIsNone(c.goaway)  # the stream is answered, the connection goes on
        self.assertEqual(FIX.h2.requests, before, "the upstream saw the request")

    def test_connect_gets_405(self):
        with H2Client(FIX.port, validate=False) as c:
            resp = c.response(c.open_stream([(":method", "CONNECT"),
                                             (":authority", "example.test:443")]))
            self.assertEqual(resp.status, 405, resp)

    def test_continuation_flood_gets_goaway(self):
        # More than 8 CONTINUATION frames after one HEADERS: the connection ends.
        with RawH2(FIX.port) as raw:
            block = raw.headers_block(PSEUDO + REGULAR + [(f"x-{i}", "v") for i in range(40)])
            pieces = [block[i:i + 8] for i in range(0, len(block), 8)]
            self.assertGreater(len(pieces), 10)
            raw.send(frame(HEADERS, END_STREAM, 1, pieces[0]) + b"".join(
                frame(CONTINUATION, END_HEADERS if i == len(pieces) - 1 else 0, 1, p)
                for i, p in enumerate(pieces[1:], 1)))
            goaway, _ = raw.wait_for(GOAWAY)
            self.assertIsNotNone(goaway, "no GOAWAY")
            self.assertIsNone(raw.wait_for(-1, timeout=3)[0])
            self.assertTrue(raw.closed, "connection left open after GOAWAY")

    def test_stream_refused_unprocessed_is_retried_once(self):
        before = FIX.h2.requests
        raw = curl("--http2-prior-knowledge", "-H", route_arg("http2"),
                   f"http://127.0.0.1:{FIX.port}/refuse-once-get")
        head, body = split_response(raw)
        self.assertTrue(head.startswith("HTTP/2 200"), head)
        self.assertEqual(body, b"ok")
        self.assertEqual(FIX.h2.requests - before, 2)
        # A route without a retry policy still says when a built-in retry was made.
        self.assertIn("x-remora-attempts: 2", head)

    def test_refused_stream_with_a_body_is_not_retried(self):
        # Its body went to the refused stream; the proxy keeps no copy to send again.
        before = FIX.h2.requests
        raw = curl("--http2-prior-knowledge", "-H", route_arg("http2"), "--data-binary", "x",
                   f"http://127.0.0.1:{FIX.port}/refuse-once-post")
        head, _ = split_response(raw)
        self.assertTrue(head.startswith("HTTP/2 502"), head)
        self.assertIn("x-remora-reason: upstream_reset", head)
        self.assertEqual(FIX.h2.requests - before, 1)

    def test_upstream_goaway_moves_new_requests_to_a_new_connection(self):
        url = f"http://127.0.0.1:{FIX.port}"
        head, body = split_response(curl("--http2-prior-knowledge", "-H", route_arg("http2"),
                                         f"{url}/goaway"))
        self.assertEqual((head.split()[1], body), ("200", b"bye"), head)
        connections = len(FIX.h2.connections)
        head, body = split_response(curl("--http2-prior-knowledge", "-H", route_arg("http2"),
                                         f"{url}/bytes?n=10"))
        self.assertEqual((head.split()[1], body), ("200", payload(10)), head)
        self.assertEqual(len(FIX.h2.connections), connections + 1)


class DrainTest(unittest.TestCase):
    def test_two_step_goaway_lets_the_stream_in_flight_finish(self):
        config = http_config([("{prefix: /}", "up")], {"up": [FIX.h2.address]},
                             cluster_extra={"up": ["protocol: http2"]})
        with Remora(config) as r:
            # A client that opens no window: its stream stays in flight until it does.
            no_window = (4).to_bytes(2, "big") + (0).to_bytes(4, "big")
            with RawH2(r.port("web"), settings=no_window) as raw:
                raw.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, raw.headers_block(
                    [(":method", "GET"), (":scheme", "http"), (":authority", "remora.test"),
                     (":path", "/bytes?n=1000")])))
                response, _ = raw.wait_for(HEADERS)
                self.assertIsNotNone(response, "no response head")
                r.signal(signal.SIGTERM)
                # The shutdown notice (last stream 2^31-1) and a PING, in either order (nghttp2
                # sends PINGs first).
                notice, before = raw.wait_for(GOAWAY)
                self.assertIsNotNone(notice, "no shutdown notice")
                self.assertEqual(int.from_bytes(notice[3][:4], "big"), 2**31 - 1)
                ping = next((f for f in before if f[0] == PING), None) or raw.wait_for(PING)[0]
                self.assertIsNotNone(ping, "no PING with the notice")
                raw.send(frame(PING, ACK, 0, ping[3]))
                final, _ = raw.wait_for(GOAWAY)
                self.assertIsNotNone(final, "no final GOAWAY")
                self.assertEqual(int.from_bytes(final[3][:4], "big"), 1)  # the last stream taken
                raw.send(frame(WINDOW_UPDATE, 0, 1, (1 << 20).to_bytes(4, "big")))
                data = b""
                while True:
                    f = raw.next_frame()
                    self.assertIsNotNone(f, f"stream cut after {len(data)} bytes")
                    if f[0] == DATA and f[2] == 1:
                        data += f[3]
                        if f[1] & END_STREAM:
                            break
                self.assertEqual(data, payload(1000))
                self.assertIsNone(raw.wait_for(-1, timeout=5)[0])
                self.assertTrue(raw.closed, "connection left open after the last stream")
            r.wait_exit()


# --------------------------------------------------------------------------------------------
# Rapid reset
# --------------------------------------------------------------------------------------------

class OwnProxy(unittest.TestCase):
    """A remora of the test case's own, its listener given the fields LISTENER, in front of an
    HTTP/1.1 upstream (cluster http1) and an HTTP/2 one (cluster http2): `ups`, by cluster."""

    LISTENER = ()

    @classmethod
    def setUpClass(cls):
        cls.stack = contextlib.ExitStack()
        try:
            cls.ups = {"http1": cls.stack.enter_context(Upstream()),
                       "http2": cls.stack.enter_context(H2Upstream())}
            config = http_config(header_routes(*cls.ups),
                                 {name: [up.address] for name, up in cls.ups.items()},
                                 listener_extra=cls.LISTENER, cluster_extra=PROTOCOL_LINES)
            cls.r = cls.stack.enter_context(Remora(config))
        except BaseException:
            cls.stack.close()
            raise
        cls.port = cls.r.port("web")

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()


@contextlib.contextmanager
def unanswered_endpoint():
    """An address whose connects hang: a listener with a backlog of one, held full."""
    with socket.socket() as listener, socket.socket() as holder:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        holder.connect(listener.getsockname())
        yield "127.0.0.1:%d" % listener.getsockname()[1]


class UploadToDeadUpstreamTest(unittest.TestCase):
    def test_upload_held_for_a_connect_gets_its_window_back_after_the_reply(self):
        # The body waits for a connect that never completes, goes over the buffer limit, and
        # the stream stops taking bytes. The 504 ends the stream's filter chain: the rest of
        # the upload must still be taken (and dropped), or the client stalls on its window.
        with unanswered_endpoint() as address:
            config = http_config([("{prefix: /}", "down")], {"down": [address]},
                                 listener_extra=["buffer_limit_bytes: 16384"])
            with Remora(config) as r, H2Client(r.port("web")) as c:
                sid = c.request("POST", "/up", body=payload(MiB))
                resp = c.response(sid, timeout=5)
                self.assertEqual(resp.status, 504, resp)
                self.assertEqual(resp.header("x-remora-reason"), "connect_timeout")
                self.assertGreater(c.unsent(sid), 0, "the whole body went before the reply")
                c.run(lambda: c.unsent(sid) == 0, timeout=3, what="the rest of the upload")

    def test_http2_upload_to_refused_upstream_gets_502_and_completes(self):
        # A refused connect fails before the body backs up (the test above holds it back):
        # curl gets the 502 and finishes its upload.
        config = http_config([("{prefix: /}", "down")], {"down": [free_port_refused()]},
                             listener_extra=["buffer_limit_bytes: 16384"])
        with Remora(config) as r, tempfile.NamedTemporaryFile() as body:
            body.write(payload(MiB))
            body.flush()
            start = time.monotonic()
            raw = curl("--http2-prior-knowledge", "--data-binary", f"@{body.name}",
                       f"http://127.0.0.1:{r.port('web')}/up", timeout=15)
            head, _ = split_response(raw)
            self.assertTrue(head.startswith("HTTP/2 502"), head)
            self.assertIn("x-remora-reason: connect_failure", head)
            self.assertLess(time.monotonic() - start, 10)


class RapidResetTest(OwnProxy):
    BURST, RATE = 100, 10
    LISTENER = [f"http2_reset_burst: {BURST}", f"http2_reset_rate: {RATE}"]
    FLOOD = 10_000
    # Pairs the proxy may forward beyond the bucket: it reads frames in batches, so a few
    # HEADERS after the one that empties the bucket can be on their way upstream already.
    SLACK = 20

    def normal_request(self, c, cluster):
        resp = c.response(c.request("GET", "/bytes?n=5000", [route_to(cluster)]))
        self.assertEqual((resp.status, sha(resp.data)), (200, sha(payload(5000))), resp)

    def test_flood_gets_goaway_and_spares_the_upstream(self):
        for cluster in ("http2", "http1"):
            with self.subTest(cluster):
                self.flood(cluster)

    def flood(self, cluster):
        up = self.ups[cluster]
        head = PSEUDO[:3] + [(":path", "/bytes?n=1"), route_to(cluster)]
        before = up.requests
        sent = 0
        sent_at_goaway = None
        with H2Client(self.port) as c:
            c.handshake()
            start = time.monotonic()
            try:
                while sent < self.FLOOD and not c.closed and c.goaway is None:
                    for _ in range(50):
                        sid = c.h2.get_next_available_stream_id()
                        c.h2.send_headers(sid, head, end_stream=True)
                        c.h2.reset_stream(sid, CANCEL)
                        sent += 1
                    c.flush()
                    c.pump(0.005)  # read while sending
                    if c.goaway is not None:
                        sent_at_goaway = sent
            except (BrokenPipeError, ConnectionResetError):
                pass  # the proxy closed while we were writing: read what it said first
            elapsed = time.monotonic() - start
            deadline = time.monotonic() + 3
            while not c.closed and time.monotonic() < deadline:  # the GOAWAY, then the close
                c.pump(0.05)
            self.assertIsNotNone(c.goaway, f"no GOAWAY after {sent} HEADERS+RST_STREAM pairs")
            # libnghttp2's stream-reset limiter ends the session with INTERNAL_ERROR.
            self.assertEqual(c.goaway.error_code, INTERNAL_ERROR, c.goaway)
            self.assertLess(sent_at_goaway or sent, self.FLOOD, "GOAWAY only after the flood")
            self.assertTrue(c.closed, "connection left open after GOAWAY")
        time.sleep(0.5)  # requests the proxy forwarded before the GOAWAY land upstream
        seen = up.requests - before
        allowed = self.BURST + math.ceil(self.RATE * elapsed) + self.SLACK
        print(f"\n{cluster}: GOAWAY after {sent_at_goaway or sent} pairs; upstream saw {seen} "
              f"requests (at most {allowed})", file=sys.stderr)
        self.assertLessEqual(seen, allowed)
        with H2Client(self.port) as c:
            self.normal_request(c, cluster)

    def test_resets_within_the_burst_are_allowed(self):
        with H2Client(self.port) as c:
            for _ in range(self.BURST // 2):
                sid = c.request("GET", "/bytes?n=100000", [route_to("http2")])
                c.reset(sid)
            self.normal_request(c, "http2")
            self.assertIsNone(c.goaway)


class HeaderReadTimeoutTest(OwnProxy):
    """request_header_timeout holds for HTTP/2 too: a connection with no stream whose client
    begins a header block and does not finish it (or dribbles it) is closed at that timeout,
    long before the idle timeout."""
    HEADER = 0.5
    LISTENER = [f"request_header_timeout: {HEADER:g}s", "idle_timeout: 30s"]

    def closed_within(self, raw, start):
        goaway, _ = raw.wait_for(GOAWAY, timeout=5)
        self.assertIsNotNone(goaway, "no GOAWAY")
        self.assertIsNone(raw.wait_for(-1, timeout=3)[0])
        self.assertTrue(raw.closed, "connection left open")
        elapsed = time.monotonic() - start
        print(f"\nclosed after {elapsed:.3f}s (request_header_timeout {self.HEADER:g}s)",
              file=sys.stderr)
        self.assertTrue(self.HEADER * 0.9 <= elapsed <= self.HEADER + 1.0, elapsed)

    def test_an_unfinished_header_block(self):
        # Before: such a client held the connection until the idle timeout at best.
        with RawH2(self.port) as raw:
            block = raw.headers_block(PSEUDO + REGULAR)
            raw.send(frame(HEADERS, END_STREAM, 1, block[:4]))  # no END_HEADERS, no CONTINUATION
            self.closed_within(raw, time.monotonic())
        # The listener is still fine.
        head, _ = split_response(curl("--http2-prior-knowledge", "-H", route_arg("http1"),
                                      f"http://127.0.0.1:{self.port}/bytes?n=10"))
        self.assertTrue(head.startswith("HTTP/2 200"), head)

    def test_a_dribbled_header_frame(self):
        with RawH2(self.port) as raw:
            block = raw.headers_block(PSEUDO + REGULAR)
            whole = frame(HEADERS, END_STREAM | END_HEADERS, 1, block)
            start = time.monotonic()
            raw.send(whole[:12])  # the frame header and 3 bytes of the block
            for b in whole[12:20]:  # then a byte every 100 ms, never the whole block
                time.sleep(0.1)
                try:
                    raw.send(bytes([b]))
                except OSError:
                    break
            self.closed_within(raw, start)

    def test_a_connection_between_requests_keeps_the_idle_timeout(self):
        with RawH2(self.port) as raw:
            block = raw.headers_block(PSEUDO + REGULAR)
            raw.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, block))
            self.assertIsNotNone(raw.wait_for(HEADERS, timeout=5)[0], "no response")
            # Whole requests, then quiet: nothing closes it at the header timeout.
            self.assertIsNone(raw.wait_for(GOAWAY, timeout=self.HEADER * 3)[0])
            self.assertFalse(raw.closed)


class HeaderBlockWithinIdleTest(OwnProxy):
    """A header block begun on an idle connection does not extend it past idle_timeout."""
    IDLE = 1.0
    LISTENER = ["request_header_timeout: 10s", f"idle_timeout: {IDLE:g}s"]

    def test_the_idle_deadline_still_holds(self):
        with RawH2(self.port) as raw:
            start = time.monotonic()
            time.sleep(0.5)
            block = raw.headers_block(PSEUDO + REGULAR)
            raw.send(frame(HEADERS, END_STREAM, 1, block[:4]))  # begun at 0.5 s, never ended
            goaway, _ = raw.wait_for(GOAWAY, timeout=5)
            self.assertIsNotNone(goaway, "no GOAWAY")
            self.assertIsNone(raw.wait_for(-1, timeout=3)[0])
            self.assertTrue(raw.closed)
            elapsed = time.monotonic() - start
            self.assertTrue(self.IDLE * 0.9 <= elapsed <= self.IDLE + 0.5, elapsed)


# --------------------------------------------------------------------------------------------
# Stalled streams
# --------------------------------------------------------------------------------------------

class StreamIdleTimeoutTest(OwnProxy):
    IDLE = 2.0
    TOLERANCE = 0.2  # of IDLE, either way
    MAX_STREAMS = 8
    LISTENER = [f"stream_idle_timeout: {IDLE:g}s", f"http2_max_concurrent_streams: {MAX_STREAMS}"]

    def assert_on_time(self, what, elapsed):
        print(f"\n{what} after {elapsed:.3f}s (stream_idle_timeout {self.IDLE:g}s)",
              file=sys.stderr)
        low, high = self.IDLE * (1 - self.TOLERANCE), self.IDLE * (1 + self.TOLERANCE)
        self.assertTrue(low <= elapsed <= high, f"after {elapsed:.3f}s, not in [{low}, {high}]")

    def test_stream_without_window_is_reset_others_complete(self):
        for cluster in ("http2", "http1"):
            with self.subTest(cluster):
                self.stall(cluster)

    def stall(self, cluster):
        route = [route_to(cluster)]
        up = self.ups[cluster]
        resets_before = getattr(up, "resets", 0)
        small = payload(256 * KiB)

        def open_good(c):
            sids = [c.request("GET", f"/bytes?n={MiB}", route),
                    c.request("POST", "/sha", route, body=small)]
            for sid in sids:
                c.grant(sid, 2 * MiB)
            return sids

        def check_good(c, sids):
            get, post = c.responses(sids, timeout=10)
            self.assertEqual((get.status, get.reset, sha(get.data)),
                             (200, None, sha(payload(MiB))), get)
            self.assertEqual((post.status, post.reset), (200, None), post)
            self.assertEqual(post.json()["sha256"], sha(small))

        with H2Client(self.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: 0}) as c:
            c.handshake()
            self.assertEqual(c.h2.remote_settings.max_concurrent_streams, self.MAX_STREAMS)
            stalled = c.request("GET", f"/bytes?n={8 * MiB}", route)
            c.stalled.add(stalled)
            first = open_good(c)
            check_good(c, first)
            start = c.streams[stalled].opened_at
            c.run(lambda: time.monotonic() - start >= self.IDLE / 2, timeout=self.IDLE)
            check_good(c, open_good(c))  # mid-stall, the connection still carries streams
            c.run(lambda: c.streams[stalled].done, timeout=2 * self.IDLE,
                  what="the stalled stream to be reset")
            s = c.streams[stalled]
            self.assertIsNotNone(s.reset, s)
            self.assert_on_time(f"{cluster}: stalled stream reset", s.reset_at - s.opened_at)
            self.assertEqual(len(s.data), 0)
            check_good(c, open_good(c))  # and after the reset too
            self.assertIsNone(c.goaway)
        if cluster == "http2":  # the upstream stream is cancelled as well
            wait_until(lambda: up.resets > resets_before, timeout=1,
                       what="the upstream stream to be reset")

    def test_whole_response_waiting_for_window_is_reset(self):
        # A response small enough to be queued whole: the stream's filter chain is done, only
        # the client's window keeps it open. It must not hold its slot forever.
        route = [route_to("http1")]
        with H2Client(self.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: 0}) as c:
            c.handshake()
            stalled = c.request("GET", f"/bytes?n={16 * KiB}", route)
            c.stalled.add(stalled)
            c.run(lambda: c.streams[stalled].done, timeout=2 * self.IDLE,
                  what="the stalled stream to be reset")
            s = c.streams[stalled]
            self.assertIsNotNone(s.reset, s)
            # Its clock starts when the response is queued, just after the request.
            self.assert_on_time("queued response reset", s.reset_at - s.opened_at)

    def test_stalled_http1_upload_is_closed(self):
        with Http1Client(self.port) as c:
            c.send(http1_head("POST", "/sha", [route_to("http1"), ("Content-Length", MiB)]))
            c.send(payload(64 * KiB))
            start = time.monotonic()
            c.sock.settimeout(2 * self.IDLE)
            got = b""
            try:
                while chunk := c.sock.recv(65536):
                    got += chunk
            except ConnectionResetError:
                pass
            except socket.timeout:
                self.fail(f"connection still open after {2 * self.IDLE}s")
            self.assert_on_time("stalled HTTP/1.1 upload closed", time.monotonic() - start)
        # Nothing of the response had begun: the request, unfinished, gets 408.
        self.assertTrue(got.startswith(b"HTTP/1.1 408"), got[:200])
        self.assertIn(b"x-remora-reason: stream_idle_timeout", got.lower())

    def test_silent_upstream_gets_504(self):
        # A whole request and an upstream that answers nothing (its /slow takes 3 s): 504.
        start = time.monotonic()
        head, _ = split_response(curl("-H", route_arg("http1"),
                                      f"http://127.0.0.1:{self.port}/slow"))
        self.assert_on_time("silent upstream answered", time.monotonic() - start)
        self.assertTrue(head.startswith("HTTP/1.1 504"), head)
        self.assertIn("x-remora-reason: stream_idle_timeout", head.lower())


if __name__ == "__main__":
    unittest.main()
