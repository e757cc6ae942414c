#!/usr/bin/env python3
"""Integration tests for gRPC through remora: a grpcio client (insecure channel, HTTP/2 with
prior knowledge) -> a `kind: http` listener -> a grpcio server (grpc_peer.py, service
`remora.test.Echo`, raw-bytes messages, no protoc).

What is covered:
  * the four call types (unary, server stream, client stream, bidi) through clusters with
    `protocol: http2` and `protocol: auto`, and straight to the peer (which checks the peer
    itself): payloads byte-exact (sha256 for 1 MiB sent as 64 KiB messages), an empty message,
    status OK, initial and trailing metadata (text and -bin) intact, request metadata forwarded,
    32 concurrent calls on one connection;
  * application errors pass through unchanged: code, details (with `%` and non-ASCII) and
    trailing metadata, both trailers-only and after initial metadata;
  * `stream_idle_timeout`: a bidi stream moving every 200 ms lives 3x the timeout; a bidi or
    server stream that goes silent, and a unary call whose upstream stays silent, are ended by
    the proxy within the timeout plus slack (not by the client's deadline), and the upstream
    call is cancelled too;
  * errors the proxy makes: no route -> UNIMPLEMENTED, refused upstream -> UNAVAILABLE, route
    `timeout` -> DEADLINE_EXCEEDED, a gRPC request for an HTTP/1 cluster -> answered by the proxy
    (the HTTP/1 upstream never sees a connection); each with `x-remora-reason`, and on the wire
    (nghttp) a trailers-only response: one HEADERS frame with END_STREAM, :status 200,
    content-type application/grpc, grpc-status, grpc-message.

Run (from the source tree):
  REMORA_BIN=build/asan/remora REMORA_SOURCE_DIR=. /usr/bin/python3 \
      tests/integration/test_grpc_proxy.py -v
/usr/bin/python3, because Debian's python3-grpcio imports only there. Every call has a deadline
and every wait is bounded; a proxy that hangs makes a test fail, not stall.
"""

import hashlib
import json
import os
import queue
import re
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from grpc_peer import TRAILER_BIN, EchoPeer, method_path, payload  # noqa: E402
from harness import EchoServer, Remora, free_port_refused  # noqa: E402

KiB = 1 << 10
MiB = 1 << 20
TIMEOUT = 10  # every call's deadline, seconds
IDLE_TIMEOUT = 1.0  # the `idle` listener's stream_idle_timeout, seconds
SILENT_DEADLINE = 6  # deadline of calls the proxy should end after IDLE_TIMEOUT
# What a gRPC request routed to a `protocol: http1` cluster gets from the proxy.
HTTP1_CLUSTER_STATUS = grpc.StatusCode.UNAVAILABLE
CHANNEL_OPTIONS = [("grpc.enable_retries", 0)]  # a transparent retry would hide a reset


# --------------------------------------------------------------------------------------------
# Config and fixture
# --------------------------------------------------------------------------------------------

def grpc_config(listeners, clusters, workers=1):
    """YAML for `kind: http` listeners and clusters with a `protocol`.

    listeners: [(name, [(match_yaml, cluster[, route_lines])][, listener_lines])];
    clusters: {name: (protocol, [address, ...][, cluster_lines])}.
    """
    out = ["admin:", "  address: 127.0.0.1:0", f"workers: {workers}", "drain_timeout: 5s",
           "listeners:"]
    for name, routes, *extra in listeners:
        out += [f"  - name: {name}", "    address: 127.0.0.1:0", "    kind: http"]
        out += ["    " + line for line in (extra[0] if extra else [])]
        out.append("    routes:")
        for match, cluster, *route_extra in routes:
            out += [f"      - match: {match}", f"        cluster: {cluster}"]
            out += ["        " + line for line in (route_extra[0] if route_extra else [])]
    out.append("clusters:")
    for name, (protocol, addrs, *extra) in clusters.items():
        out += [f"  - name: {name}", f"    protocol: {protocol}", "    connect_timeout: 1s"]
        out += ["    " + line for line in (extra[0] if extra else [])]
        out.append("    endpoints:")
        out += [f"      - address: {a}" for a in addrs]
    return "\n".join(out) + "\n"


class Fixture:
    """One grpc peer, one HTTP/1 sink, one remora with a listener per situation, and a channel
    per listener (created on first use). Shared by every test class; closed by tearDownModule."""

    def __init__(self):
        self.peer = EchoPeer()
        self.channels = {}
        self.remora = None
        self.remora_error = None
        self.h1_sink = None

    def start_remora(self):
        if self.remora is not None:
            return self.remora
        if self.remora_error is not None:
            raise RuntimeError(f"remora did not start (see the first error): {self.remora_error}")
        try:
            self.h1_sink = EchoServer()  # counts connections; no gRPC request may reach it
            everything = [("{prefix: /}", "h2")]
            listeners = [
                ("h2", everything),
                ("auto", [("{prefix: /}", "auto")]),
                ("h1", [("{prefix: /}", "h1")]),
                ("refused", [("{prefix: /}", "refused")]),
                ("broken", [("{prefix: /}", "broken")]),
                ("deadline", [("{prefix: /}", "h2", ["timeout: 500ms"])]),
                ("noroute", [("{prefix: /elsewhere/}", "h2")]),
                ("idle", everything, [f"stream_idle_timeout: {int(IDLE_TIMEOUT * 1000)}ms"]),
                # One call, then none for 1000 s.
                ("limited", [("{prefix: /}", "h2",
                              ["rate_limit: {requests_per_second: 0.001, burst: 1}"])]),
            ]
            clusters = {
                "h2": ("http2", [self.peer.address]),
                "auto": ("auto", [self.peer.address]),
                "h1": ("http1", [self.h1_sink.address]),
                "refused": ("http2", [free_port_refused()]),
                "broken": ("http2", [free_port_refused()],
                           ["circuit_breaker: {consecutive_failures: 1, open_for: 60s}"]),
            }
            self.remora = Remora(grpc_config(listeners, clusters))
        except Exception as e:  # every proxy class reports the same cause, quickly
            self.remora_error = e
            raise
        return self.remora

    def address(self, target):
        if target == "direct":
            return self.peer.address
        return f"127.0.0.1:{self.start_remora().port(target)}"

    def channel(self, target):
        if target not in self.channels:
            self.channels[target] = grpc.insecure_channel(self.address(target),
                                                          options=CHANNEL_OPTIONS)
        return self.channels[target]

    def close(self):
        for channel in self.channels.values():
            channel.close()
        try:
            if self.remora is not None:
                self.remora.close()  # asserts a clean exit without sanitizer reports
        finally:
            if self.h1_sink is not None:
                self.h1_sink.close()
            self.peer.stop()


FIXTURE = None


def setUpModule():
    global FIXTURE
    FIXTURE = Fixture()


def tearDownModule():
    FIXTURE.close()


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def new_call_id():
    return uuid.uuid4().hex


def metadata_dict(metadata):
    return {m.key: m.value for m in (metadata or ())}


def remora_reason(call):
    """x-remora-reason from the trailing metadata (a trailers-only response) or the initial."""
    for md in (call.trailing_metadata(), call.initial_metadata()):
        value = metadata_dict(md).get("x-remora-reason")
        if value:
            return value
    return None


def describe(call):
    return (f"code={call.code()} details={call.details()!r} "
            f"initial={metadata_dict(call.initial_metadata())} "
            f"trailing={metadata_dict(call.trailing_metadata())}")


def sha256(*chunks):
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def grpc_frame(message):
    return b"\x00" + struct.pack(">I", len(message)) + message


def nghttp_exchange(port, path, message, timeout=5):
    """One gRPC request by nghttp; the response as [(frame type, flags, {header: value})] for
    the request's stream, in the order received."""
    with tempfile.NamedTemporaryFile() as body:
        body.write(grpc_frame(message))
        body.flush()
        p = subprocess.run(
            ["nghttp", "-nv", f"--timeout={timeout}", "-H", "content-type: application/grpc",
             "-H", "te: trailers", "-d", body.name, f"http://127.0.0.1:{port}{path}"],
            capture_output=True, timeout=timeout + 5)
    text = p.stdout.decode(errors="replace")
    frames, fields = [], {}
    for line in text.splitlines():
        m = re.search(r"recv \(stream_id=(\d+)\) (:?[^:]+): (.*)$", line)
        if m and m.group(1) != "0":
            fields[m.group(2)] = m.group(3)
            continue
        m = re.search(r"recv (\w+) frame <length=\d+, flags=0x([0-9a-f]+), stream_id=(\d+)>",
                      line)
        if m and m.group(3) != "0" and m.group(1) in ("HEADERS", "DATA", "RST_STREAM"):
            frames.append((m.group(1), int(m.group(2), 16), fields))
            fields = {}
    return frames, text


class Pacer:
    """A request iterator fed by put(); put(None) (or TIMEOUT without a put) half-closes."""

    def __init__(self):
        self.queue = queue.Queue()

    def put(self, message):
        self.queue.put(message)

    def __iter__(self):
        while True:
            try:
                message = self.queue.get(timeout=TIMEOUT)
            except queue.Empty:
                return
            if message is None:
                return
            yield message


# --------------------------------------------------------------------------------------------
# The four call types, straight to the peer and through the proxy
# --------------------------------------------------------------------------------------------

class CallTypes:
    """Mixed into one TestCase per target (a listener name, or "direct" for the peer itself)."""

    target = None

    @classmethod
    def setUpClass(cls):
        if cls.target != "direct":
            FIXTURE.start_remora()

    def channel(self):
        return FIXTURE.channel(self.target)

    def unary(self, request, metadata=()):
        return self.channel().unary_unary(method_path("Unary")).with_call(
            request, timeout=TIMEOUT, metadata=list(metadata))

    def assert_no_remora_reason(self, call):
        self.assertIsNone(remora_reason(call), describe(call))

    def test_unary_echo_and_metadata(self):
        for request in (b"hello", b"", b"\x00\xff" * 100):
            reply, call = self.unary(request, [("x-client-tag", "t-1"), ("x-call-id", "u")])
            self.assertEqual(reply, request)
            self.assertEqual(call.code(), grpc.StatusCode.OK, describe(call))
            initial = metadata_dict(call.initial_metadata())
            self.assertEqual(initial.get("x-echo-initial"), f"unary {len(request)}", initial)
            self.assertEqual(initial.get("x-client-tag"), "t-1", initial)
            trailing = metadata_dict(call.trailing_metadata())
            self.assertEqual(trailing.get("x-echo-trailer"), sha256(request), trailing)
            self.assertEqual(trailing.get("x-echo-trailer-bin"), TRAILER_BIN, trailing)

    def test_unary_1mib(self):
        request = payload("unary", 0, MiB)
        reply, call = self.unary(request)
        self.assertEqual(len(reply), MiB)
        self.assertEqual(sha256(reply), sha256(request))
        self.assertEqual(call.code(), grpc.StatusCode.OK, describe(call))
        self.assertEqual(metadata_dict(call.trailing_metadata()).get("x-echo-trailer"),
                         sha256(request))

    def test_server_stream_1mib_in_64kib_messages(self):
        spec = json.dumps({"count": 16, "size": 64 * KiB, "seed": "ss"}).encode()
        call = self.channel().unary_stream(method_path("ServerStream"))(spec, timeout=TIMEOUT)
        got = list(call)
        expected = [payload("ss", i, 64 * KiB) for i in range(16)]
        self.assertEqual([len(m) for m in got], [64 * KiB] * 16)
        self.assertEqual(sha256(*got), sha256(*expected))
        self.assertEqual(call.code(), grpc.StatusCode.OK, describe(call))
        self.assertEqual(metadata_dict(call.initial_metadata()).get("x-echo-initial"),
                         f"server-stream 16x{64 * KiB}")
        self.assertEqual(metadata_dict(call.trailing_metadata()).get("x-echo-trailer"),
                         sha256(*expected))

    def test_client_stream_1mib_in_64kib_messages(self):
        messages = [payload("cs", i, 64 * KiB) for i in range(16)]
        reply, call = self.channel().stream_unary(method_path("ClientStream")).with_call(
            iter(messages), timeout=TIMEOUT)
        self.assertEqual(json.loads(reply),
                         {"count": 16, "bytes": MiB, "sha256": sha256(*messages)})
        self.assertEqual(call.code(), grpc.StatusCode.OK, describe(call))
        self.assertEqual(metadata_dict(call.initial_metadata()).get("x-echo-initial"),
                         "client-stream")
        self.assertEqual(metadata_dict(call.trailing_metadata()).get("x-echo-trailer"),
                         sha256(*messages))

    def test_bidi_1mib_in_64kib_messages(self):
        messages = [payload("bidi", i, 64 * KiB) for i in range(16)] + [b""]
        call = self.channel().stream_stream(method_path("Bidi"))(iter(messages), timeout=TIMEOUT)
        got = list(call)
        self.assertEqual(len(got), len(messages))
        self.assertEqual(sha256(*got), sha256(*messages))
        self.assertEqual(got[-1], b"")
        self.assertEqual(call.code(), grpc.StatusCode.OK, describe(call))
        self.assertEqual(metadata_dict(call.initial_metadata()).get("x-echo-initial"), "bidi")
        self.assertEqual(metadata_dict(call.trailing_metadata()).get("x-echo-count"),
                         str(len(messages)))

    def test_application_errors_pass_through_unchanged(self):
        details = "not here: 100% sure, \u00fc\u2603"
        cases = [(b"fail:NOT_FOUND:", grpc.StatusCode.NOT_FOUND, False),  # trailers-only
                 (b"fail-late:ALREADY_EXISTS:", grpc.StatusCode.ALREADY_EXISTS, True)]
        for prefix, code, has_initial in cases:
            request = prefix + details.encode()
            with self.assertRaises(grpc.RpcError) as raised:
                self.unary(request)
            e = raised.exception
            self.assertEqual(e.code(), code, describe(e))
            self.assertEqual(e.details(), details, describe(e))
            trailing = metadata_dict(e.trailing_metadata())
            self.assertEqual(trailing.get("x-echo-trailer"), sha256(request), describe(e))
            self.assertEqual(trailing.get("x-echo-trailer-bin"), TRAILER_BIN, describe(e))
            initial = metadata_dict(e.initial_metadata())
            self.assertEqual("x-echo-initial" in initial, has_initial, describe(e))
            self.assert_no_remora_reason(e)

    def test_concurrent_calls_on_one_channel(self):
        stub = self.channel().unary_unary(method_path("Unary"))
        requests = [payload("many", i, 4 * KiB + i) for i in range(32)]
        futures = [stub.future(r, timeout=TIMEOUT) for r in requests]
        stream_spec = json.dumps({"count": 8, "size": 32 * KiB, "seed": "mix"}).encode()
        stream = self.channel().unary_stream(method_path("ServerStream"))(stream_spec,
                                                                          timeout=TIMEOUT)
        for request, future in zip(requests, futures):
            self.assertEqual(future.result(timeout=TIMEOUT), request)
        self.assertEqual(sha256(*stream), sha256(*[payload("mix", i, 32 * KiB)
                                                   for i in range(8)]))


class DirectToPeerTest(CallTypes, unittest.TestCase):
    """The peer on its own: if these fail, the peer or grpcio is at fault, not the proxy."""
    target = "direct"


class ThroughHttp2ClusterTest(CallTypes, unittest.TestCase):
    target = "h2"


class ThroughAutoClusterTest(CallTypes, unittest.TestCase):
    target = "auto"


# --------------------------------------------------------------------------------------------
# stream_idle_timeout
# --------------------------------------------------------------------------------------------

class StreamIdleTimeoutTest(unittest.TestCase):
    """The `idle` listener: stream_idle_timeout 1s, cluster protocol http2."""

    @classmethod
    def setUpClass(cls):
        FIXTURE.start_remora()
        cls.channel = FIXTURE.channel("idle")

    def assert_reset_by_proxy(self, error, waited, call_id):
        """`error` ended the call `waited` seconds after the last byte moved: the proxy's doing
        (not the client's deadline), within the idle timeout plus slack; the upstream call is
        cancelled too."""
        self.assertNotEqual(error.code(), grpc.StatusCode.OK, describe(error))
        self.assertGreaterEqual(waited, IDLE_TIMEOUT * 0.7,
                                f"ended {waited:.2f}s after the last byte moved, before the "
                                f"idle timeout: {describe(error)}")
        self.assertLess(waited, IDLE_TIMEOUT + 3.0,
                        f"not ended by the proxy within the idle timeout + 3 s (waited "
                        f"{waited:.2f}s): {describe(error)}")
        upstream = FIXTURE.peer.calls_with_id(call_id)
        self.assertEqual(len(upstream), 1, upstream)
        self.assertTrue(upstream[0].terminated.wait(3.0),
                        f"the upstream call is still open 3 s after the client's ended: "
                        f"{upstream[0]}")
        self.assertTrue(upstream[0].cancelled, upstream[0])

    def test_busy_bidi_outlives_the_idle_timeout(self):
        pacer = Pacer()
        call_id = new_call_id()
        call = self.channel.stream_stream(method_path("Bidi"))(
            iter(pacer), timeout=TIMEOUT, metadata=[("x-call-id", call_id)])
        start = time.monotonic()
        try:
            for i in range(15):  # one round trip every ~200 ms for ~3 s: 3x the idle timeout
                message = f"tick {i}".encode() * 10
                pacer.put(message)
                self.assertEqual(next(call), message)
                time.sleep(0.2)
        except grpc.RpcError as e:
            self.fail(f"stream ended after {time.monotonic() - start:.2f}s: {describe(e)}")
        finally:
            pacer.put(None)
        self.assertEqual(list(call), [])
        self.assertGreaterEqual(time.monotonic() - start, 3 * IDLE_TIMEOUT)
        self.assertEqual(call.code(), grpc.StatusCode.OK, describe(call))
        self.assertEqual(metadata_dict(call.trailing_metadata()).get("x-echo-count"), "15")
        # The peer tells a call that ended normally from a cancelled one (the silent tests
        # below rely on it).
        upstream = FIXTURE.peer.calls_with_id(call_id)
        self.assertTrue(upstream[0].terminated.wait(3.0), upstream)
        self.assertFalse(upstream[0].cancelled, upstream[0])

    def test_silent_bidi_is_reset(self):
        call_id = new_call_id()
        pacer = Pacer()
        call = self.channel.stream_stream(method_path("Bidi"))(
            iter(pacer), timeout=SILENT_DEADLINE, metadata=[("x-call-id", call_id)])
        try:
            pacer.put(b"first")
            self.assertEqual(next(call), b"first")
            last_moved = time.monotonic()
            with self.assertRaises(grpc.RpcError) as raised:  # neither side sends any more
                next(call)
            waited = time.monotonic() - last_moved
        finally:
            pacer.put(None)
        self.assert_reset_by_proxy(raised.exception, waited, call_id)

    def test_silent_server_stream_is_reset(self):
        call_id = new_call_id()
        spec = json.dumps({"count": 4, "size": 100, "seed": "stall", "stall_after": 2,
                           "stall": 20}).encode()
        call = self.channel.unary_stream(method_path("ServerStream"))(
            spec, timeout=SILENT_DEADLINE, metadata=[("x-call-id", call_id)])
        self.assertEqual(next(call), payload("stall", 0, 100))
        self.assertEqual(next(call), payload("stall", 1, 100))
        last_moved = time.monotonic()
        with self.assertRaises(grpc.RpcError) as raised:
            next(call)
        self.assert_reset_by_proxy(raised.exception, time.monotonic() - last_moved, call_id)

    def test_silent_upstream_on_a_unary_call_is_reset(self):
        call_id = new_call_id()
        start = time.monotonic()
        try:  # the peer sends no response byte, not even a head, for 5 s
            self.channel.unary_unary(method_path("Unary"))(
                b"sleep:5", timeout=SILENT_DEADLINE, metadata=[("x-call-id", call_id)])
        except grpc.RpcError as e:
            self.assert_reset_by_proxy(e, time.monotonic() - start, call_id)
        else:
            self.fail(f"the call succeeded after {time.monotonic() - start:.2f}s: the proxy "
                      f"did not reset it after {IDLE_TIMEOUT}s of silence")


# --------------------------------------------------------------------------------------------
# Errors the proxy makes
# --------------------------------------------------------------------------------------------

class ProxyMadeErrorsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        FIXTURE.start_remora()

    def call_expecting_error(self, target, request=b"hi", kind="unary", call_id=None,
                             timeout=TIMEOUT):
        """(RpcError, seconds) for one call through listener `target`."""
        channel = FIXTURE.channel(target)
        metadata = [("x-call-id", call_id or new_call_id())]
        start = time.monotonic()
        with self.assertRaises(grpc.RpcError) as raised:
            if kind == "unary":
                channel.unary_unary(method_path("Unary"))(request, timeout=timeout,
                                                          metadata=metadata)
            else:
                list(channel.stream_stream(method_path("Bidi"))(iter([request, request]),
                                                                timeout=timeout,
                                                                metadata=metadata))
        return raised.exception, time.monotonic() - start

    def assert_proxy_error(self, e, code, reason):
        self.assertEqual(e.code(), code, describe(e))
        self.assertEqual(remora_reason(e), reason, describe(e))
        self.assertTrue(e.details(), describe(e))

    def test_no_route_is_unimplemented(self):
        before = FIXTURE.peer.call_count()
        for kind in ("unary", "bidi"):
            e, _ = self.call_expecting_error("noroute", kind=kind)
            self.assert_proxy_error(e, grpc.StatusCode.UNIMPLEMENTED, "no_route")
        self.assertEqual(FIXTURE.peer.call_count(), before)

    def test_rate_limited_is_resource_exhausted(self):
        channel = FIXTURE.channel("limited")
        self.assertEqual(channel.unary_unary(method_path("Unary"))(b"one", timeout=TIMEOUT),
                         b"one")
        before = FIXTURE.peer.call_count()
        e, _ = self.call_expecting_error("limited")
        self.assert_proxy_error(e, grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited")
        self.assertEqual(FIXTURE.peer.call_count(), before)

    def test_an_open_circuit_is_unavailable(self):
        e, _ = self.call_expecting_error("broken")  # the failure that opens the breaker
        self.assert_proxy_error(e, grpc.StatusCode.UNAVAILABLE, "connect_failure")
        for kind in ("unary", "bidi"):
            e, took = self.call_expecting_error("broken", kind=kind)
            self.assert_proxy_error(e, grpc.StatusCode.UNAVAILABLE, "circuit_open")
            self.assertLess(took, 1.0)

    def test_refused_upstream_is_unavailable(self):
        for kind in ("unary", "bidi"):
            e, _ = self.call_expecting_error("refused", kind=kind)
            self.assert_proxy_error(e, grpc.StatusCode.UNAVAILABLE, "connect_failure")

    def test_route_timeout_is_deadline_exceeded(self):
        # The client's 10 s budget goes on capped by the route's 500 ms, as the upstream's
        # grpc-timeout (docs/http.md, Deadlines). So the upstream's gRPC library gives up at
        # the same moment as the proxy's timer: whichever ends the call first (the proxy says
        # `upstream_timeout`; the upstream's own DEADLINE_EXCEEDED has no reason), the client
        # sees DEADLINE_EXCEEDED after the route's 500 ms, not its own 10 s, and the upstream
        # call is over.
        # A call first, so the upstream connection is warm: the next call's head then goes
        # upstream before its message has arrived, and must be capped all the same.
        FIXTURE.channel("deadline").unary_unary(method_path("Unary"))(b"warm", timeout=TIMEOUT)
        call_id = new_call_id()
        e, took = self.call_expecting_error("deadline", b"sleep:3", call_id=call_id)
        self.assertEqual(e.code(), grpc.StatusCode.DEADLINE_EXCEEDED, describe(e))
        self.assertIn(remora_reason(e), (None, "upstream_timeout"), describe(e))
        self.assertGreaterEqual(took, 0.4, describe(e))
        self.assertLess(took, 2.5, describe(e))
        upstream = FIXTURE.peer.calls_with_id(call_id)
        self.assertEqual(len(upstream), 1, upstream)
        # The client asked for 10 s; the upstream was given what the route allows.
        self.assertTrue(0.3 < upstream[0].time_remaining <= 0.505, upstream[0].time_remaining)
        self.assertTrue(upstream[0].terminated.wait(3.0), upstream[0])
        self.assertTrue(upstream[0].cancelled, f"the upstream call was not reset: {upstream[0]}")

    def test_the_clients_deadline_travels_shortened_and_cancels_the_upstream(self):
        # A client deadline shorter than the route's 500 ms: the upstream gets what is left of
        # it, and the upstream call ends with the client's.
        call_id = new_call_id()
        e, took = self.call_expecting_error("deadline", b"sleep:3", call_id=call_id,
                                            timeout=0.3)
        self.assertEqual(e.code(), grpc.StatusCode.DEADLINE_EXCEEDED, describe(e))
        self.assertLess(took, 0.45, describe(e))
        upstream = FIXTURE.peer.calls_with_id(call_id)
        self.assertEqual(len(upstream), 1, upstream)
        # (+5 ms: gRPC's core keeps deadlines in whole milliseconds, rounded up.)
        self.assertTrue(0.15 < upstream[0].time_remaining <= 0.305, upstream[0].time_remaining)
        self.assertTrue(upstream[0].terminated.wait(3.0), upstream[0])
        self.assertLess(upstream[0].ended - upstream[0].started, 0.45, upstream[0])

    def test_grpc_for_an_http1_cluster_is_answered_by_the_proxy(self):
        for kind in ("unary", "bidi"):
            e, _ = self.call_expecting_error("h1", kind=kind)
            self.assertIsNotNone(remora_reason(e), f"not answered by the proxy: {describe(e)}")
            self.assertEqual(e.code(), HTTP1_CLUSTER_STATUS, describe(e))
        time.sleep(0.3)  # a connect the proxy started would have been accepted by now
        self.assertEqual(FIXTURE.h1_sink.accepted, 0,
                         "a gRPC request was sent to an HTTP/1 upstream")

    def test_proxy_errors_are_trailers_only_on_the_wire(self):
        remora = FIXTURE.start_remora()
        for target, status, reason in (("noroute", "12", "no_route"),
                                       ("refused", "14", "connect_failure")):
            frames, text = nghttp_exchange(remora.port(target), method_path("Unary"),
                                           b"hello")
            self.assertEqual(len(frames), 1, text)
            kind, flags, fields = frames[0]
            self.assertEqual(kind, "HEADERS", text)
            self.assertTrue(flags & 0x1, f"no END_STREAM on the only HEADERS frame:\n{text}")
            self.assertEqual(fields.get(":status"), "200", text)
            self.assertTrue(fields.get("content-type", "").startswith("application/grpc"), text)
            self.assertEqual(fields.get("grpc-status"), status, text)
            self.assertTrue(fields.get("grpc-message"), text)
            self.assertEqual(fields.get("x-remora-reason"), reason, text)


class NghttpParserTest(unittest.TestCase):
    """nghttp_exchange against the peer itself, so its parsing is known good."""

    def test_trailers_only_and_headers_data_trailers(self):
        port = FIXTURE.peer.port
        frames, text = nghttp_exchange(port, method_path("Unary"), b"fail:NOT_FOUND:nope")
        self.assertEqual([(k, f & 1) for k, f, _ in frames], [("HEADERS", 1)], text)
        self.assertEqual(frames[0][2].get("grpc-status"), "5", text)
        self.assertEqual(frames[0][2].get(":status"), "200", text)
        frames, text = nghttp_exchange(port, method_path("Unary"), b"hello")
        self.assertEqual([k for k, _, _ in frames], ["HEADERS", "DATA", "HEADERS"], text)
        self.assertEqual(frames[-1][2].get("grpc-status"), "0", text)
        self.assertTrue(frames[-1][1] & 1, text)


if __name__ == "__main__":
    unittest.main()
