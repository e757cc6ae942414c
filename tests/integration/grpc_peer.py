#!/usr/bin/env python3
"""A gRPC upstream for the integration tests: service `remora.test.Echo` on grpcio, without
protoc. Messages are raw bytes (generic handlers, no serializers), so any client that frames
bytes as gRPC messages can call it: `channel.unary_unary("/remora.test.Echo/Unary")(b"hi")`.

Methods:
  Unary         echoes the request. Initial metadata: `x-echo-initial`, plus every `x-client-*`
                field of the request echoed back. Trailing metadata: `x-echo-trailer` (the
                request's sha256) and `x-echo-trailer-bin` (binary).
                b"fail:CODE:message"       aborts with StatusCode.CODE and `message` before
                                           sending anything (a trailers-only response);
                b"fail-late:CODE:message"  sends initial metadata first, then aborts;
                b"flaky:N:CODE"            the first N calls with this call's `x-call-id` abort
                                           with StatusCode.CODE (trailers-only); later ones
                                           answer b"ok";
                b"sleep:SECONDS"           waits that long before sending anything, headers
                                           included (ends early if the call is cancelled),
                                           then answers b"slept".
  ServerStream  the request is JSON {"count", "size", "seed", "interval", "stall_after",
                "stall"}: streams `count` messages payload(seed, i, size), `interval` seconds
                apart; after `stall_after` messages it waits `stall` seconds (ends early if the
                call is cancelled). Trailing `x-echo-trailer` is the sha256 of all it sent.
  ClientStream  answers JSON {"count", "bytes", "sha256"} of every message received.
  Bidi          sends initial metadata at once, then echoes each message as it arrives;
                trailing `x-echo-count` is how many it echoed.

Each call is recorded (`peer.calls`, a list of Call) with its method, its `x-call-id` request
field, and whether it ended with the client cancelling it (a reset from a proxy looks like that).

Run by hand:
  /usr/bin/python3 tests/integration/grpc_peer.py [--port N]       # serve until Ctrl-C
  /usr/bin/python3 tests/integration/grpc_peer.py --call HOST:PORT # call every method, print
"""

import argparse
import hashlib
import json
import random
import sys
import threading
import time
from concurrent import futures

import grpc

SERVICE = "remora.test.Echo"
METHODS = ("Unary", "ServerStream", "ClientStream", "Bidi")
TRAILER_BIN = b"\x00\x01remora\xfe\xff"


def method_path(method, service=SERVICE):
    return f"/{service}/{method}"


def payload(seed, index, size):
    """Message `index` of a stream: `size` pseudo-random bytes, the same for the same arguments."""
    return random.Random(f"{seed}:{index}").randbytes(size)


class Call:
    """One call the peer served."""

    def __init__(self, method, metadata, time_remaining=None):
        self.method = method
        self.time_remaining = time_remaining  # the call's deadline as it arrived (grpc-timeout)
        self.metadata = metadata
        self.call_id = metadata.get("x-call-id")
        self.started = time.monotonic()
        self.ended = None  # monotonic time the RPC terminated, any way
        self.cancelled = False  # terminated while the handler was still running
        self.finished = False  # the handler returned (or raised) on its own
        self.terminated = threading.Event()

    def __repr__(self):
        return (f"Call({self.method}, id={self.call_id}, finished={self.finished}, "
                f"cancelled={self.cancelled})")


class EchoPeer:
    """A grpcio server on `host`:`port` (0 picks one) with a bounded thread pool. Use as a
    context manager, or call stop()."""

    def __init__(self, host="127.0.0.1", port=0, max_workers=64):
        self.calls = []
        self._lock = threading.Lock()
        self._pool = futures.ThreadPoolExecutor(max_workers=max_workers,
                                                thread_name_prefix="grpc-peer")
        # Past max_workers concurrent calls the server answers RESOURCE_EXHAUSTED at once
        # instead of queueing them behind stuck handlers.
        self.server = grpc.server(self._pool, handlers=[_Handler(self)],
                                  maximum_concurrent_rpcs=max_workers)
        self.port = self.server.add_insecure_port(f"{host}:{port}")
        if not self.port:
            raise RuntimeError(f"cannot bind {host}:{port}")
        self.host = host
        self.address = f"{host}:{self.port}"
        self.server.start()

    def _begin(self, method, context):
        call = Call(method, dict(context.invocation_metadata()), context.time_remaining())

        def on_termination():
            call.ended = time.monotonic()
            # grpcio hands a client's RST_STREAM to a handler as the end of its requests (the
            # handler may return as if the client had half-closed) and records the cancel when
            # the call's close arrives, before this callback runs; its call state is the only
            # place that tells the two apart (grpcio 1.51, Debian's; no public API has it).
            state = getattr(context, "_state", None)
            call.cancelled = getattr(state, "client", None) == "cancelled" or not call.finished
            call.terminated.set()

        with self._lock:
            self.calls.append(call)
        if not context.add_callback(on_termination):  # already terminated
            on_termination()
        return call

    def calls_with_id(self, call_id):
        with self._lock:
            return [c for c in self.calls if c.call_id == call_id]

    def call_count(self):
        with self._lock:
            return len(self.calls)

    def stop(self, grace=0):
        self.server.stop(grace).wait(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ---- methods ------------------------------------------------------------------------------

    def unary(self, request, context):
        call = self._begin("Unary", context)
        try:
            initial = [("x-echo-initial", f"unary {len(request)}")]
            initial += [(k, v) for k, v in context.invocation_metadata()
                        if k.startswith("x-client-")]
            trailing = [("x-echo-trailer", hashlib.sha256(request).hexdigest()),
                        ("x-echo-trailer-bin", TRAILER_BIN)]
            context.set_trailing_metadata(trailing)
            for prefix, late in ((b"fail:", False), (b"fail-late:", True)):
                if request.startswith(prefix):
                    code, _, message = request[len(prefix):].partition(b":")
                    if late:
                        context.send_initial_metadata(initial)
                    context.abort(grpc.StatusCode[code.decode()], message.decode())
            if request.startswith(b"flaky:"):
                n, _, code = request[len(b"flaky:"):].partition(b":")
                if len(self.calls_with_id(call.call_id)) <= int(n):
                    context.abort(grpc.StatusCode[code.decode()], "flaky")
                request = b"ok"
            if request.startswith(b"sleep:"):  # before any response byte, headers included
                call.terminated.wait(float(request[len(b"sleep:"):]))
                request = b"slept"
            context.send_initial_metadata(initial)
            return request
        finally:
            call.finished = True

    def server_stream(self, request, context):
        call = self._begin("ServerStream", context)
        try:
            spec = json.loads(request)
            count, size = int(spec["count"]), int(spec["size"])
            seed = spec.get("seed", 0)
            interval = float(spec.get("interval", 0))
            stall_after = spec.get("stall_after")
            context.send_initial_metadata([("x-echo-initial", f"server-stream {count}x{size}")])
            digest = hashlib.sha256()
            for i in range(count):
                if i == stall_after and call.terminated.wait(float(spec.get("stall", 0))):
                    return
                if i and interval and call.terminated.wait(interval):
                    return
                message = payload(seed, i, size)
                digest.update(message)
                yield message
            context.set_trailing_metadata([("x-echo-trailer", digest.hexdigest())])
        finally:
            call.finished = True

    def client_stream(self, request_iterator, context):
        call = self._begin("ClientStream", context)
        try:
            digest, count, total = hashlib.sha256(), 0, 0
            for message in request_iterator:
                digest.update(message)
                count += 1
                total += len(message)
            context.send_initial_metadata([("x-echo-initial", "client-stream")])
            context.set_trailing_metadata([("x-echo-trailer", digest.hexdigest())])
            return json.dumps({"count": count, "bytes": total,
                               "sha256": digest.hexdigest()}).encode()
        finally:
            call.finished = True

    def bidi(self, request_iterator, context):
        call = self._begin("Bidi", context)
        try:
            context.send_initial_metadata([("x-echo-initial", "bidi")])
            count = 0
            for message in request_iterator:
                count += 1
                yield message
            context.set_trailing_metadata([("x-echo-count", str(count))])
        finally:
            call.finished = True


class _Handler(grpc.GenericRpcHandler):
    """Routes `/remora.test.Echo/<Method>`; anything else is UNIMPLEMENTED (counted as a call
    too, so a test can tell that nothing at all reached the peer)."""

    def __init__(self, peer):
        self.peer = peer
        self.handlers = {
            method_path("Unary"): grpc.unary_unary_rpc_method_handler(peer.unary),
            method_path("ServerStream"): grpc.unary_stream_rpc_method_handler(peer.server_stream),
            method_path("ClientStream"): grpc.stream_unary_rpc_method_handler(peer.client_stream),
            method_path("Bidi"): grpc.stream_stream_rpc_method_handler(peer.bidi),
        }

    def service(self, handler_call_details):
        handler = self.handlers.get(handler_call_details.method)
        if handler is None:
            with self.peer._lock:
                self.peer.calls.append(Call(handler_call_details.method,
                                            dict(handler_call_details.invocation_metadata)))
        return handler


# ---- a client for manual runs ---------------------------------------------------------------

def call_everything(address, timeout=10):
    """Calls each method once through `address` and prints what came back."""
    with grpc.insecure_channel(address) as channel:
        unary = channel.unary_unary(method_path("Unary"))
        reply, call = unary.with_call(b"hello", timeout=timeout,
                                      metadata=[("x-client-demo", "1")])
        print(f"Unary: {reply!r} {call.code()} initial={call.initial_metadata()} "
              f"trailing={call.trailing_metadata()}")
        try:
            unary(b"fail:NOT_FOUND:no such thing", timeout=timeout)
        except grpc.RpcError as e:
            print(f"Unary fail: {e.code()} {e.details()!r} trailing={e.trailing_metadata()}")
        spec = json.dumps({"count": 4, "size": 1024, "seed": 1}).encode()
        stream = channel.unary_stream(method_path("ServerStream"))(spec, timeout=timeout)
        sizes = [len(m) for m in stream]
        print(f"ServerStream: {sizes} {stream.code()} trailing={stream.trailing_metadata()}")
        reply = channel.stream_unary(method_path("ClientStream"))(
            iter([b"a" * 10, b"b" * 20]), timeout=timeout)
        print(f"ClientStream: {reply.decode()}")
        bidi = channel.stream_stream(method_path("Bidi"))(iter([b"one", b"two", b"three"]),
                                                           timeout=timeout)
        print(f"Bidi: {list(bidi)} {bidi.code()} trailing={bidi.trailing_metadata()}")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--call", metavar="HOST:PORT", help="call every method at this address")
    args = parser.parse_args(argv)
    if args.call:
        call_everything(args.call)
        return 0
    peer = EchoPeer(args.host, args.port)
    print(f"{SERVICE} listening on {peer.address}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        peer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
