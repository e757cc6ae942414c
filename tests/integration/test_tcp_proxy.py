#!/usr/bin/env python3
"""Integration tests for the L4 (`kind: tcp`) data path: the real remora binary relays real
loopback connections to real upstreams.

What is covered:
  * many concurrent connections, byte-exact (sha256) echo with half-close, and the byte/connection
    counters that account for them;
  * backpressure: a slow reader on either side must stop the proxy from reading the fast side, so
    the proxy's peak memory (VmHWM) stays far below the bytes pushed through it;
  * an upstream that refuses connections: prompt close of the client, exact failure counters, and
    no effect on a healthy listener next to it;
  * round robin across a cluster's endpoints;
  * after every failure (refused, slow reader, client RST mid-transfer, upstream RST mid-transfer)
    the proxy returns to its baseline: file descriptors and connection gauges within 1 s, and a
    fresh connection still echoes (assert_back_to_baseline);
  * an IPv6 listener and endpoint.

Run (from the source tree):
  REMORA_BIN=build/asan/remora REMORA_SOURCE_DIR=. /usr/bin/python3 \
      tests/integration/test_tcp_proxy.py -v
Every wait is bounded; a proxy that hangs makes a test fail, not stall.
"""

import contextlib
import hashlib
import os
import resource
import selectors
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import EchoServer, Remora, free_port_refused, render_config, wait_until  # noqa: E402

KiB = 1 << 10
MiB = 1 << 20

# Gauges that must read 0 when no connection is open.
ACTIVE_GAUGES = ("remora_listener_connections_active", "remora_cluster_upstream_connections_active")

# Errors that mean "the peer closed the connection hard" from a client's point of view.
RESET_ERRORS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

def series(family, **labels):
    """The exposition key of one series, labels in the order given (the order remora renders)."""
    if not labels:
        return family
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{family}{{{inner}}}"


def value(m, family, **labels):
    """One series from a metrics dict; a missing series is a test failure, not a silent 0."""
    key = series(family, **labels)
    if key not in m:
        raise AssertionError(f"series {key} missing from /metrics; have: "
                             f"{sorted(k for k in m if k.startswith(family))}")
    return m[key]


def active_gauges(m):
    return {k: v for k, v in m.items() if k.startswith(ACTIVE_GAUGES)}


def sha(data):
    return hashlib.sha256(data).hexdigest()


def set_linger_reset(sock):
    """Make close() send RST instead of FIN (SO_LINGER on, timeout 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def echo_check(port, nbytes=256 * KiB, host="127.0.0.1", timeout=10.0):
    """One fresh connection through the proxy: send nbytes, half-close, read the echo to EOF."""
    payload = os.urandom(nbytes)
    s = Stream(harness.connect(port, host=host), payload)
    try:
        drive([s], timeout=timeout)
        s.assert_echoed(sha(payload), "fresh connection")
    finally:
        s.close()


def assert_back_to_baseline(r, baseline_fds, listener=None, host="127.0.0.1", timeout=1.0):
    """The proxy has released everything a finished (or failed) connection held.

    Within `timeout` (1 s): every listener's connections_active and every cluster's
    upstream_connections_active gauge is 0, and the process has no more file descriptors than
    `baseline_fds` (taken while nothing was open). Then, if `listener` is given, a fresh
    connection through it still echoes 256 KiB intact (and the gauges go back to 0 after it).
    """
    deadline = time.monotonic() + timeout
    last = {}
    while True:
        # fds first: the scrape below opens an admin connection of its own.
        fds = r.fd_count()
        gauges = active_gauges(r.metrics())
        last = {"fds": fds, "baseline_fds": baseline_fds, "gauges": gauges}
        if fds <= baseline_fds and gauges and all(v == 0 for v in gauges.values()):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"proxy not back to baseline within {timeout}s: {last}")
        time.sleep(0.02)
    if listener is not None:
        echo_check(r.port(listener), host=host)
        wait_until(lambda: all(v == 0 for v in active_gauges(r.metrics()).values()),
                   timeout=timeout, what="gauges to return to 0 after the fresh connection")


def start_fds(r, workers=1):
    """The fd baseline of a proxy with no connection open, taken right after start.

    libuv opens one reserve descriptor (/dev/null, for its EMFILE trick) per event loop when that
    loop creates its first stream, i.e. lazily on the first admin request (main loop) and on each
    worker's first connection. Those are one per loop for the life of the process, not per
    connection, so they are part of the baseline: fds at start + one per loop (main + workers).
    """
    return r.fd_count() + workers + 1


# --------------------------------------------------------------------------------------------
# A client-side driver: many non-blocking connections on one selector
# --------------------------------------------------------------------------------------------

class Stream:
    """One client connection: sends `payload`, then (optionally) half-closes with
    shutdown(SHUT_WR), and reads whatever comes back until EOF, hashing it as it arrives."""

    def __init__(self, sock, payload, half_close=True, chunk=256 * KiB):
        self.sock = sock
        sock.setblocking(False)
        self.payload = memoryview(payload)
        self.half_close = half_close
        self.chunk = chunk
        self.sent = 0
        self.shut = False
        self.received = 0
        self.hasher = hashlib.sha256()
        self.eof = False
        self.eof_before_shut = False
        self.error = None
        self._registered = 0

    @property
    def done(self):
        return self.eof or self.error is not None

    def events(self):
        ev = selectors.EVENT_READ
        if self.sent < len(self.payload) or (self.half_close and not self.shut):
            ev |= selectors.EVENT_WRITE
        return ev

    def on_writable(self):
        try:
            if self.sent < len(self.payload):
                self.sent += self.sock.send(self.payload[self.sent:self.sent + self.chunk])
            if self.sent == len(self.payload) and self.half_close and not self.shut:
                self.sock.shutdown(socket.SHUT_WR)
                self.shut = True
        except BlockingIOError:
            pass
        except OSError as e:
            self.error = e

    def on_readable(self):
        try:
            data = self.sock.recv(256 * KiB)
        except BlockingIOError:
            return
        except OSError as e:
            self.error = e
            return
        if not data:
            self.eof = True
            self.eof_before_shut = not self.shut
            return
        self.hasher.update(data)
        self.received += len(data)

    def assert_echoed(self, expected_sha, what):
        """Everything sent came back byte for byte, then EOF (after our own half-close)."""
        if self.error is not None:
            raise AssertionError(f"{what}: error {self.error!r} after sending {self.sent} and "
                                 f"receiving {self.received} bytes")
        if not self.eof:
            raise AssertionError(f"{what}: no EOF (received {self.received})")
        if self.eof_before_shut:
            raise AssertionError(f"{what}: EOF arrived before the client half-closed")
        if self.received != len(self.payload):
            raise AssertionError(f"{what}: echoed {self.received} bytes, sent {len(self.payload)}")
        if self.hasher.hexdigest() != expected_sha:
            raise AssertionError(f"{what}: echoed bytes differ from the bytes sent (sha256)")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def drive(streams, timeout, until=None):
    """Runs `streams` on one selector until all are done (EOF or error) or `until()` is true.
    Raises AssertionError after `timeout` seconds."""
    sel = selectors.DefaultSelector()
    try:
        for s in streams:
            if not s.done:
                s._registered = s.events()
                sel.register(s.sock, s._registered, s)
        pending = sum(1 for s in streams if not s.done)
        deadline = time.monotonic() + timeout
        while pending:
            if until is not None and until():
                return
            if time.monotonic() > deadline:
                stuck = [s for s in streams if not s.done]
                sample = [(s.sent, s.shut, s.received) for s in stuck[:5]]
                raise AssertionError(f"{len(stuck)} of {len(streams)} connections unfinished "
                                     f"after {timeout}s; (sent, shut, received) e.g. {sample}")
            for key, ev in sel.select(0.2):
                s = key.data
                if ev & selectors.EVENT_WRITE and not s.done:
                    s.on_writable()
                if ev & selectors.EVENT_READ and not s.done:
                    s.on_readable()
                if s.done:
                    sel.unregister(s.sock)
                    pending -= 1
                elif s.events() != s._registered:
                    s._registered = s.events()
                    sel.modify(s.sock, s._registered, s)
    finally:
        sel.close()


# --------------------------------------------------------------------------------------------
# Upstreams with deliberately bad manners
# --------------------------------------------------------------------------------------------

def push_in_background(client, payload, result, then=None, chunk=256 * KiB):
    """Sends `payload` in chunks from a thread, half-closes, then runs `then`. Returns the
    thread and a one-element list with the bytes pushed so far; an OSError lands in
    result["error"]."""
    pushed = [0]

    def push():
        try:
            view = memoryview(payload)
            for off in range(0, len(payload), chunk):
                client.sendall(view[off:off + chunk])
                pushed[0] = min(off + chunk, len(payload))
            client.shutdown(socket.SHUT_WR)
            if then is not None:
                then()
        except OSError as e:
            result["error"] = e

    sender = threading.Thread(target=push, daemon=True)
    sender.start()
    return sender, pushed


def report_peak_memory(test, reader, hwm_before, hwm_slow, hwm_after, pushed_slow, read_slow):
    """Prints the VmHWM figures of a backpressure test and asserts the proxy's peak memory grew by
    far less than the 64 MiB pushed through it."""
    growth = hwm_after - hwm_before
    print(f"\n  slow {reader}: VmHWM before {hwm_before} KiB, after 2 s trickle {hwm_slow} KiB, "
          f"after 64 MiB {hwm_after} KiB (growth {growth} KiB); client pushed "
          f"{pushed_slow // KiB} KiB while the {reader} read {read_slow // KiB} KiB",
          file=sys.stderr)
    test.assertLess(growth, 16 * 1024, f"proxy peak memory grew {growth} KiB for 64 MiB")


@contextlib.contextmanager
def proxy_with_echo(listener, upstream):
    """Remora with `listener` in front of `upstream` (cluster "u") and an "echo" listener in front
    of a healthy echo server, to show that one upstream's failure stays with its connections."""
    with EchoServer() as echo, Remora(render_config(
            [(listener, "u"), ("echo", "e")], {"u": [upstream.address], "e": [echo.address]})) as r:
        yield r


class LoopbackUpstream:
    """A listening socket on 127.0.0.1 served by `_run` on a daemon thread; subclasses set their
    own fields, then call _start()."""

    def __init__(self, backlog=8, rcvbuf=None):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # inherited on accept
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = False

    def _start(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        raise NotImplementedError

    def close(self, timeout=5):
        self._stop = True
        self._thread.join(timeout=timeout)
        self.sock.close()


class SlowSink(LoopbackUpstream):
    """An upstream that accepts one connection and reads it at a trickle (4 KiB per 5 ms, about
    0.8 MiB/s, with a 64 KiB receive buffer) until `fast` is set, then at full speed until EOF.
    It hashes everything it reads, and half-closes back when it sees EOF."""

    def __init__(self):
        super().__init__(rcvbuf=64 * KiB)
        self.fast = threading.Event()
        self.done = threading.Event()
        self.read = 0
        self.hasher = hashlib.sha256()
        self.error = None
        self._start()

    def _run(self):
        try:
            self.sock.settimeout(30)
            conn, _ = self.sock.accept()
            conn.settimeout(30)
            with conn:
                while True:
                    if self.fast.is_set():
                        data = conn.recv(1 * MiB)
                    else:
                        data = conn.recv(4 * KiB)
                        time.sleep(0.005)  # the trickle (workload shape, not an assertion)
                    if not data:
                        break
                    self.hasher.update(data)
                    self.read += len(data)
                conn.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.error = e
        finally:
            self.done.set()

    def close(self):
        self.fast.set()
        super().close()


class AbruptUpstream(LoopbackUpstream):
    """An upstream that reads `after` bytes of each connection without answering, then resets
    it (SO_LINGER 0 + close: RST, not FIN)."""

    def __init__(self, after):
        super().__init__(backlog=64)
        self.sock.settimeout(0.1)
        self.after = after
        self.accepted = 0
        self.resets = 0
        self._start()

    def _run(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.settimeout(10)
            got = 0
            try:
                while got < self.after:
                    data = conn.recv(64 * KiB)
                    if not data:
                        break
                    got += len(data)
                set_linger_reset(conn)
                self.resets += 1
            except OSError:
                pass
            finally:
                conn.close()


class EchoThenResetOnStall(LoopbackUpstream):
    """An upstream that echoes one connection, but gives up on a stuck peer: when a read or the
    send of one echo chunk (up to 64 KiB) makes no progress for `stall` seconds, it resets the
    connection (SO_LINGER 0 + close), like a server with an I/O timeout."""

    def __init__(self, stall=0.5):
        super().__init__()
        self.stall = stall
        self.echoed = 0
        self.reset_at = None  # time.monotonic() of the reset
        self._start()

    def _run(self):
        try:
            self.sock.settimeout(30)
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(self.stall)
            try:
                while True:
                    data = conn.recv(64 * KiB)
                    if not data:
                        return
                    conn.sendall(data)
                    self.echoed += len(data)
            except socket.timeout:
                set_linger_reset(conn)
                self.reset_at = time.monotonic()
            except OSError:
                pass


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------

class TcpProxyTest(unittest.TestCase):

    # 1 ---------------------------------------------------------------------------------------
    def test_concurrent_echo_200_connections_1mib_each(self):
        """200 connections are open through the proxy at the same time (both gauges reach 200);
        each sends 1 MiB of distinct random bytes, half-closes, and gets exactly those bytes
        back (sha256) followed by EOF. Afterwards the listener and cluster byte counters account
        for exactly 200 MiB each way, and 200 connections were accepted and established. Two
        workers, so the counters and gauges are summed across threads.

        VmHWM is printed, not asserted: on an ASan build it includes the allocator's quarantine
        (freed memory kept resident, 256 MiB by default), which dominates here."""
        n, size = 200, 1 * MiB
        pool = os.urandom(2 * MiB)
        with EchoServer() as echo, \
                Remora(render_config([("a", "c")], {"c": [echo.address]}, workers=2)) as r:
            baseline_fds = start_fds(r, workers=2)
            hwm_before = r.vm_hwm_kib()
            port = r.port("a")
            streams, expected = [], []
            try:
                for i in range(n):
                    off = i * 5227  # distinct windows of one random pool: cross-talk shows
                    payload = pool[off:off + size]
                    streams.append(Stream(harness.connect(port), payload))
                    expected.append(sha(payload))

                def all_open():
                    m = r.metrics()
                    return (value(m, "remora_listener_connections_active", listener="a") == n
                            and value(m, "remora_cluster_upstream_connections_active",
                                      cluster="c") == n)
                wait_until(all_open, timeout=15, what=f"{n} concurrent proxied connections")

                t0 = time.monotonic()
                drive(streams, timeout=60)
                elapsed = time.monotonic() - t0
                errors = []
                for i, s in enumerate(streams):
                    try:
                        s.assert_echoed(expected[i], f"connection {i}")
                    except AssertionError as e:
                        errors.append(str(e))
                self.assertEqual(errors, [], f"{len(errors)} of {n} connections failed")
            finally:
                for s in streams:
                    s.close()
            print(f"\n  200 x 1 MiB echoed in {elapsed:.1f}s; VmHWM {hwm_before} -> "
                  f"{r.vm_hwm_kib()} KiB", file=sys.stderr)

            total = n * size
            wait_until(lambda: value(r.metrics(), "remora_listener_connections_active",
                                     listener="a") == 0, timeout=5, what="connections to close")
            m = r.metrics()
            self.assertEqual(value(m, "remora_listener_connections_total", listener="a"), n)
            self.assertEqual(value(m, "remora_cluster_upstream_connections_total", cluster="c"), n)
            self.assertEqual(value(m, "remora_listener_received_bytes_total", listener="a"), total)
            self.assertEqual(value(m, "remora_listener_sent_bytes_total", listener="a"), total)
            self.assertEqual(value(m, "remora_cluster_upstream_sent_bytes_total", cluster="c"),
                             total)
            self.assertEqual(
                value(m, "remora_cluster_upstream_received_bytes_total", cluster="c"), total)
            self.assertEqual(echo.accepted, n)
            assert_back_to_baseline(r, baseline_fds, listener="a")

    # 2 ---------------------------------------------------------------------------------------
    def test_slow_upstream_reader_backpressure(self):
        """A client pushes 64 MiB toward an upstream that reads at a trickle (~0.8 MiB/s) for 2 s.
        The proxy must stop reading the client once its upstream write buffer passes the
        listener's buffer limit (default 256 KiB): the proxy's peak RSS (VmHWM) grows by far
        less than the bytes pushed (< 16 MiB), and the client cannot push all 64 MiB while the
        upstream trickles. Once the upstream reads at full speed, all 64 MiB arrive intact, the
        client's EOF reaches the upstream and the upstream's EOF reaches the client. Then the
        proxy is back to baseline.

        (Read memory comes from the worker's slab pool and is recycled, so on an ASan build the
        allocator's quarantine does not inflate VmHWM here.)"""
        total = 64 * MiB
        payload = os.urandom(total)
        sink = SlowSink()
        self.addCleanup(sink.close)
        with EchoServer() as echo, Remora(render_config(
                [("slow", "sink"), ("echo", "e")],
                {"sink": [sink.address], "e": [echo.address]})) as r:
            baseline_fds = start_fds(r)
            echo_check(r.port("echo"))  # warm the worker's pools before measuring
            hwm_before = r.vm_hwm_kib()

            client = harness.connect(r.port("slow"), timeout=60)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * KiB)
            client_result = {}
            sender, pushed = push_in_background(
                client, payload, client_result,
                then=lambda: client_result.update(eof=client.recv(1) == b""))
            try:
                time.sleep(2.0)  # phase 1: the upstream trickles (workload shape)
                pushed_slow, read_slow = pushed[0], sink.read
                hwm_slow = r.vm_hwm_kib()
                sink.fast.set()  # phase 2: the reader speeds up
                self.assertTrue(sink.done.wait(60), "upstream did not get all bytes and EOF")
                sender.join(30)
                self.assertFalse(sender.is_alive(), "client did not finish")
            finally:
                client.close()
            report_peak_memory(self, "upstream", hwm_before, hwm_slow, r.vm_hwm_kib(),
                               pushed_slow, read_slow)

            self.assertIsNone(sink.error)
            self.assertEqual(sink.read, total)
            self.assertEqual(sink.hasher.hexdigest(), sha(payload), "bytes changed in transit")
            self.assertEqual(client_result, {"eof": True}, "client did not get a clean EOF")
            self.assertLess(pushed_slow, total,
                            "the client pushed everything while the upstream trickled: "
                            "the proxy did not apply backpressure")
            assert_back_to_baseline(r, baseline_fds, listener="echo")

    def test_slow_client_reader_backpressure(self):
        """A client pushes 64 MiB to an echo upstream but reads its echo at a trickle for 2 s.
        Backpressure must run all the way round: the proxy stops reading the upstream when the
        client's write buffer is full, the echo server then stops reading, and the proxy stops
        reading the client. Peak RSS grows by far less than the bytes pushed (< 16 MiB). Once the
        client reads at full speed, the whole 64 MiB echo arrives intact, then EOF."""
        total = 64 * MiB
        payload = os.urandom(total)
        with EchoServer() as echo, Remora(render_config([("a", "c")],
                                                        {"c": [echo.address]})) as r:
            baseline_fds = start_fds(r)
            echo_check(r.port("a"))
            hwm_before = r.vm_hwm_kib()

            client = harness.connect(r.port("a"), timeout=60)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * KiB)
            sender_result = {}
            sender, pushed = push_in_background(client, payload, sender_result)
            hasher, received, eof = hashlib.sha256(), 0, False
            try:
                slow_until = time.monotonic() + 2.0
                while time.monotonic() < slow_until:  # phase 1: trickle (workload shape)
                    data = client.recv(4 * KiB)
                    if not data:
                        break
                    hasher.update(data)
                    received += len(data)
                    time.sleep(0.005)
                pushed_slow, received_slow = pushed[0], received
                hwm_slow = r.vm_hwm_kib()
                while True:  # phase 2: full speed; the socket timeout (60 s) bounds it
                    data = client.recv(1 * MiB)
                    if not data:
                        eof = True
                        break
                    hasher.update(data)
                    received += len(data)
                sender.join(30)
            finally:
                client.close()
            report_peak_memory(self, "client", hwm_before, hwm_slow,
                               r.vm_hwm_kib(), pushed_slow, received_slow)

            self.assertEqual(sender_result, {})
            self.assertTrue(eof)
            self.assertEqual(received, total)
            self.assertEqual(hasher.hexdigest(), sha(payload), "echo differs from bytes sent")
            assert_back_to_baseline(r, baseline_fds, listener="a")

    # 3 ---------------------------------------------------------------------------------------
    def test_upstream_refused_closes_client_and_spares_other_listener(self):
        """A listener whose only endpoint refuses connections: each client is closed promptly
        (EOF or reset within 2 s, no data), remora_cluster_upstream_connect_failures_total
        {reason="refused"} rises by exactly the number of attempts (timeouts by 0), and no
        upstream connection is counted as established. Meanwhile an 8 MiB echo on a second
        listener, in flight the whole time, completes intact. Then the proxy is back to
        baseline."""
        attempts = 5
        refused = free_port_refused()
        with EchoServer() as echo, Remora(render_config(
                [("good", "echo"), ("bad", "dead")],
                {"echo": [echo.address], "dead": [refused]})) as r:
            baseline_fds = start_fds(r)
            m0 = r.metrics()

            # A healthy transfer that stays in flight while the refused attempts happen.
            payload = os.urandom(8 * MiB)
            good = Stream(harness.connect(r.port("good")), payload, chunk=64 * KiB)
            drive([good], timeout=10, until=lambda: good.received >= 256 * KiB)
            self.assertFalse(good.done, "the healthy transfer ended before the refused attempts")

            outcomes = []
            for i in range(attempts):
                c = harness.connect(r.port("bad"))
                try:
                    c.sendall(b"hello\n")
                    c.settimeout(2.0)
                    t0 = time.monotonic()
                    try:
                        data = c.recv(4096)
                        outcomes.append(("eof" if data == b"" else f"data {data!r}",
                                         time.monotonic() - t0))
                    except RESET_ERRORS:
                        outcomes.append(("reset", time.monotonic() - t0))
                    except socket.timeout:
                        outcomes.append(("still open after 2s", 2.0))
                finally:
                    c.close()
                # The healthy connection keeps moving between attempts.
                target = good.received + 64 * KiB
                drive([good], timeout=5, until=lambda: good.received >= target)
            for what, took in outcomes:
                self.assertIn(what, ("eof", "reset"), f"refused attempts: {outcomes}")
                self.assertLess(took, 2.0)

            drive([good], timeout=30)
            good.close()
            good.assert_echoed(sha(payload), "healthy connection next to the refused one")

            m1 = r.metrics()

            def delta(family, **labels):
                return value(m1, family, **labels) - value(m0, family, **labels)
            fam = "remora_cluster_upstream_connect_failures_total"
            self.assertEqual(delta(fam, cluster="dead", reason="refused"), attempts)
            self.assertEqual(delta(fam, cluster="dead", reason="timeout"), 0)
            self.assertEqual(delta(fam, cluster="echo", reason="refused"), 0)
            self.assertEqual(delta("remora_listener_connections_total", listener="bad"), attempts)
            self.assertEqual(delta("remora_cluster_upstream_connections_total", cluster="dead"), 0)
            self.assertEqual(delta("remora_cluster_upstream_connections_total", cluster="echo"), 1)
            self.assertEqual(delta("remora_listener_sent_bytes_total", listener="bad"), 0)
            assert_back_to_baseline(r, baseline_fds, listener="good")

    # 4 ---------------------------------------------------------------------------------------
    def test_round_robin_splits_connections_evenly(self):
        """With one worker, a `round_robin` cluster of two echo endpoints gets 10 sequential
        connections split 5/5, alternating, and every connection's echo is intact."""
        with EchoServer() as e1, EchoServer() as e2, Remora(render_config(
                [("a", "c")], {"c": [e1.address, e2.address]}, workers=1).replace(
                    "  - name: c\n", "  - name: c\n    lb_policy: round_robin\n")) as r:
            seen = []
            for i in range(10):
                echo_check(r.port("a"), nbytes=4 * KiB)
                wait_until(lambda: e1.accepted + e2.accepted == i + 1, timeout=2,
                           what="the upstream accept")
                seen.append((e1.accepted, e2.accepted))
            self.assertEqual((e1.accepted, e2.accepted), (5, 5), f"progression: {seen}")
            picks = [0 if (a, b) == (pa + 1, pb) else 1
                     for (pa, pb), (a, b) in zip([(0, 0)] + seen[:-1], seen)]
            self.assertTrue(all(picks[i] != picks[i + 1] for i in range(9)),
                            f"not alternating: {picks}")
            m = r.metrics()
            self.assertEqual(value(m, "remora_cluster_upstream_connections_total", cluster="c"),
                             10)

    # 5 ---------------------------------------------------------------------------------------
    def test_client_reset_while_streaming(self):
        """A client streaming 8 MiB (reading its echo as it goes) resets the connection
        (SO_LINGER 0) after 2 MiB have come back. The proxy closes the upstream side and is back
        to baseline (fds, gauges) within 1 s; a fresh connection still echoes."""
        with EchoServer() as echo, Remora(render_config([("a", "c")],
                                                        {"c": [echo.address]})) as r:
            baseline_fds = start_fds(r)
            s = Stream(harness.connect(r.port("a")), os.urandom(8 * MiB), chunk=64 * KiB)
            drive([s], timeout=10, until=lambda: s.received >= 2 * MiB)
            self.assertFalse(s.done)
            set_linger_reset(s.sock)
            s.close()
            assert_back_to_baseline(r, baseline_fds, listener="a")
            wait_until(lambda: echo.accepted == 2, timeout=2, what="the fresh upstream connection")

    def test_client_reset_with_stalled_pipeline(self):
        """A client pushes data without reading its echo until nothing more goes in (every
        buffer on the path is full and the proxy has stopped reading both sides), then resets
        (SO_LINGER 0). The proxy must drop the session: upstream closed, fds and gauges back to
        baseline within 1 s, and a fresh connection still echoes."""
        # Regression: the session used to stop reading the upstream after the client's reset and
        # then wait forever for an upstream backlog that the blocked echo server never took.
        with EchoServer() as echo, Remora(render_config([("a", "c")],
                                                        {"c": [echo.address]})) as r:
            baseline_fds = start_fds(r)
            c = harness.connect(r.port("a"))
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * KiB)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * KiB)
            c.settimeout(0.5)
            chunk = os.urandom(256 * KiB)
            pushed = 0
            try:
                while pushed < 256 * MiB:  # until a send makes no progress for 0.5 s
                    pushed += c.send(chunk)
            except socket.timeout:
                pass
            print(f"\n  stalled pipeline after {pushed // KiB} KiB pushed", file=sys.stderr)
            self.assertLess(pushed, 256 * MiB, "the pipeline never filled")
            m = r.metrics()
            self.assertGreater(value(m, "remora_listener_received_bytes_total", listener="a"), 0)
            self.assertEqual(value(m, "remora_listener_connections_active", listener="a"), 1)
            set_linger_reset(c)
            c.close()
            assert_back_to_baseline(r, baseline_fds, listener="a")

    def test_upstream_reset_toward_a_client_that_never_reads(self):
        """The upstream floods a client that never reads, then resets while the client is still
        sending. The bytes queued for the client can never be delivered, so the proxy gives up
        after its failure flush timeout (1 s): the session is gone 1 s after the proxy saw the
        reset (measured from the upstream's reset: between 0.8 s and 1.8 s), and the proxy is
        back to baseline."""
        sink = socket.socket()
        sink.bind(("127.0.0.1", 0))
        sink.listen(4)
        self.addCleanup(sink.close)
        address = f"127.0.0.1:{sink.getsockname()[1]}"
        with Remora(render_config([("a", "c")], {"c": [address]})) as r:
            baseline_fds = start_fds(r)
            c = harness.connect(r.port("a"))
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * KiB)
            self.addCleanup(c.close)
            sink.settimeout(5)
            up, _ = sink.accept()
            up.settimeout(0.5)
            chunk = os.urandom(256 * KiB)
            flooded = 0
            try:
                while flooded < 256 * MiB:  # until the client side stops taking bytes
                    flooded += up.send(chunk)
            except socket.timeout:
                pass
            self.assertLess(flooded, 256 * MiB, "the path to the client never filled")
            set_linger_reset(up)
            up.close()
            reset_at = time.monotonic()
            # The proxy learns of the reset when it next writes upstream: the client sends.
            c.sendall(b"x" * 1024)

            def session_gone():
                m = r.metrics()
                return value(m, "remora_listener_connections_active", listener="a") == 0
            harness.wait_until(session_gone, timeout=3, what="the session to close")
            gone_after = time.monotonic() - reset_at
            print(f"\n  session closed {gone_after:.2f}s after the upstream reset", file=sys.stderr)
            self.assertGreater(gone_after, 0.8, "closed before the flush timeout")
            self.assertLess(gone_after, 1.8)
            assert_back_to_baseline(r, baseline_fds)  # the sink is no echo server

    def test_upstream_reset_mid_transfer(self):
        """An upstream that resets (RST) the connection after reading 1 MiB while the client is
        streaming 16 MiB: the client's connection is closed promptly (EOF or reset, not a hang),
        without the full echo, and the proxy is back to baseline within 1 s; a fresh connection
        through a healthy listener still echoes."""
        abrupt = AbruptUpstream(after=1 * MiB)
        self.addCleanup(abrupt.close)
        with proxy_with_echo("bad", abrupt) as r:
            baseline_fds = start_fds(r)
            s = Stream(harness.connect(r.port("bad")), os.urandom(16 * MiB), chunk=64 * KiB)
            try:
                drive([s], timeout=5)  # done = EOF or error; a hang fails here
            finally:
                s.close()
            self.assertEqual(abrupt.resets, 1)
            self.assertTrue(s.eof or isinstance(s.error, RESET_ERRORS), f"{s.error!r}")
            self.assertLess(s.received, 16 * MiB)
            assert_back_to_baseline(r, baseline_fds, listener="echo")

    def test_upstream_reset_with_stalled_pipeline(self):
        """A naive client writes 64 MiB with one blocking sendall() before reading anything, to
        an upstream that echoes but resets the connection once its echo stalls for 0.5 s. Once
        the upstream has reset, the proxy must not keep the client hanging: the client's
        sendall() (or its read after it) ends with a reset or EOF within 2 s of the upstream's
        reset, and the proxy is back to baseline (fds, gauges) within 1 s."""
        # Regression: the mirror image of test_client_reset_with_stalled_pipeline (the session
        # stopped reading the client and waited for it to take the queued echo).
        upstream = EchoThenResetOnStall(stall=0.5)
        self.addCleanup(upstream.close)
        with proxy_with_echo("a", upstream) as r:
            baseline_fds = start_fds(r)
            c = harness.connect(r.port("a"))
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * KiB)
            c.settimeout(5.0)
            outcome = None
            try:
                c.sendall(os.urandom(64 * MiB))
                c.shutdown(socket.SHUT_WR)
                while c.recv(1 * MiB):
                    pass
                outcome = "eof"
            except RESET_ERRORS as e:
                outcome = f"reset ({e.__class__.__name__})"
            except socket.timeout:
                outcome = "hung"
            finally:
                ended = time.monotonic()
                c.close()
            self.assertIsNotNone(upstream.reset_at, "the upstream never stalled and reset")
            print(f"\n  upstream echoed {upstream.echoed // KiB} KiB, reset; client outcome "
                  f"{outcome} {ended - upstream.reset_at:.2f}s after the reset", file=sys.stderr)
            self.assertNotEqual(outcome, "hung",
                                "client still stuck 5 s after connecting, "
                                f"{ended - upstream.reset_at:.1f}s after the upstream reset")
            self.assertLess(ended - upstream.reset_at, 2.0)
            assert_back_to_baseline(r, baseline_fds, listener="echo")

    def test_upstream_reset_while_client_idle(self):
        """An upstream resets a connection on which the client has sent 1 MiB and is simply
        waiting (not sending, reading normally): the client sees EOF or a reset within 2 s and
        the proxy is back to baseline within 1 s."""
        abrupt = AbruptUpstream(after=1 * MiB)
        self.addCleanup(abrupt.close)
        with proxy_with_echo("bad", abrupt) as r:
            baseline_fds = start_fds(r)
            s = Stream(harness.connect(r.port("bad")), os.urandom(1 * MiB), half_close=False)
            try:
                drive([s], timeout=5)
            finally:
                s.close()
            self.assertTrue(s.eof or isinstance(s.error, RESET_ERRORS), f"{s.error!r}")
            self.assertEqual(s.received, 0)
            assert_back_to_baseline(r, baseline_fds, listener="echo")

    # 6 ---------------------------------------------------------------------------------------
    def test_descriptor_exhaustion_backs_off_and_recovers(self):
        """With RLIMIT_NOFILE capped, more clients than the proxy has descriptors for: accepts
        fail with EMFILE, the listener backs off instead of spinning (the proxy uses well under
        half a core while saturated), the clients it did accept keep working, a client accepted
        with no descriptor left for its upstream waits and is retried rather than dropped, and
        once the first clients close, every waiting one is served. Nothing is lost; the
        failures show in remora_listener_accept_errors_total and reason="local"."""
        with EchoServer() as echo:
            # connect_timeout bounds how long a client waits for a descriptor for its upstream:
            # longer than the saturated phase below, so no client has to be given up.
            config = render_config([("a", "c")], {"c": [echo.address]}).replace(
                "connect_timeout: 1s", "connect_timeout: 5s")
            with Remora(config) as r:
                # One full echo first. Besides the loops' reserve fds, this fills UBSan's
                # dynamic-type cache: its vptr check probes memory with pipe(), which fails under
                # EMFILE, so a first-ever check made while the table is full reports a valid
                # object as "invalid vptr" (confirmed in gdb). Production processes have long
                # since made those checks; so does this one, before it runs out.
                echo_check(r.port("a"))
                r.http("GET", "/live")  # main loop's reserve fd, before the table fills
                # Cap the running process's descriptors just above what it holds idle: room for
                # 12 sessions, then one accept with no descriptor left for its upstream socket.
                wait_until(lambda: all(v == 0 for v in active_gauges(r.metrics()).values()),
                           what="the warm-up connections to close")
                idle = []
                for _ in range(5):  # the metrics scrape's own connection may still be closing
                    idle.append(r.fd_count())
                    time.sleep(0.05)
                cap = min(idle) + 25
                resource.prlimit(r.proc.pid, resource.RLIMIT_NOFILE, (cap, cap))
                clients = []
                for _ in range(30):
                    c = harness.connect(r.port("a"))  # completes in the kernel backlog
                    c.settimeout(5)
                    clients.append(c)
                # Sessions that got both descriptors echo; find them. Any client closed here
                # would be a lost one (asserted below).
                served, closed_early = [], []
                for c in clients:
                    c.sendall(b"ping")
                time.sleep(0.5)  # let the proxy accept what it can (workload, not an assertion)
                for c in clients:
                    c.setblocking(False)
                    try:
                        got = c.recv(4)
                        (served if got == b"ping" else closed_early).append(c)
                        self.assertIn(got, (b"ping", b""))
                    except BlockingIOError:
                        pass
                    except ConnectionResetError:
                        closed_early.append(c)
                    c.setblocking(True)
                    c.settimeout(5)
                print(f"\n  nofile {cap}: {len(served)} of {len(clients)} served at once",
                      file=sys.stderr)
                self.assertGreater(len(served), 0)
                self.assertLess(len(served), len(clients), "the cap never bit")
                ticks = os.sysconf("SC_CLK_TCK")

                def cpu():
                    with open(f"/proc/{r.proc.pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    return (int(fields[11]) + int(fields[12])) / ticks
                before = cpu()
                time.sleep(1.0)
                busy = cpu() - before
                print(f"  CPU while saturated: {busy:.2f}s per 1s", file=sys.stderr)
                self.assertLess(busy, 0.5, "accept loop spins on EMFILE")
                for c in served:
                    c.sendall(b"more")
                    self.assertEqual(c.recv(4), b"more")
                    c.close()
                waiting = [c for c in clients if c not in served and c not in closed_early]
                # A waiting client gets its echo once the proxy can accept and connect it.
                echoed, closed = 0, 0
                for c in waiting:
                    try:
                        got = c.recv(4)
                    except ConnectionResetError:
                        got = b""
                    if got == b"ping":
                        echoed += 1
                    else:
                        self.assertEqual(got, b"", "a waiting client got garbage")
                        closed += 1
                    c.close()
                print(f"  waiting clients: {echoed} echoed, {closed} closed "
                      f"({len(closed_early)} closed early)", file=sys.stderr)
                self.assertEqual(len(closed_early) + closed, 0, "a client was given up")
                m = r.metrics()
                self.assertGreater(value(m, "remora_listener_accept_errors_total", listener="a"), 0)
                # 30 clients and the warm-up echo.
                self.assertEqual(value(m, "remora_listener_connections_total", listener="a"), 31)
                self.assertIn("pausing accepts", r.log())
                # The client accepted into the last free descriptor had none for its upstream
                # socket: that is the proxy's shortage, not the upstream's, so each attempt counts
                # as reason="local", never "refused"; the client waited and was retried.
                failures = "remora_cluster_upstream_connect_failures_total"
                self.assertEqual(value(m, failures, cluster="c", reason="refused"), 0)
                self.assertGreater(value(m, failures, cluster="c", reason="local"), 0)
                self.assertIn("pausing accepts", r.log())
                echo_check(r.port("a"))

    def test_ipv6_listener_and_endpoint(self):
        """A listener on [::1]:0 relaying to an IPv6 echo endpoint: the bound address is logged
        as [::1], 1 MiB echoes intact, and the counters see it."""
        try:
            probe = socket.socket(socket.AF_INET6)
            probe.bind(("::1", 0))
            probe.close()
        except OSError as e:
            self.skipTest(f"no IPv6 loopback here: {e}")
        with EchoServer(host="::1") as echo:
            config = "\n".join([
                "admin:", "  address: 127.0.0.1:0", "workers: 1", "drain_timeout: 5s",
                "listeners:", "  - name: v6", '    address: "[::1]:0"', "    kind: tcp",
                "    cluster: c6",
                "clusters:", "  - name: c6", "    connect_timeout: 1s", "    endpoints:",
                f'      - address: "{echo.address}"', ""])
            with Remora(config) as r:
                self.assertEqual(r.listeners["v6"][0], "[::1]")
                baseline_fds = start_fds(r)
                echo_check(r.port("v6"), nbytes=1 * MiB, host="::1")
                m = r.metrics()
                self.assertEqual(value(m, "remora_listener_received_bytes_total", listener="v6"),
                                 1 * MiB)
                self.assertEqual(value(m, "remora_cluster_upstream_connections_total",
                                       cluster="c6"), 1)
                self.assertEqual(echo.accepted, 1)
                assert_back_to_baseline(r, baseline_fds, listener="v6", host="::1")


if __name__ == "__main__":
    unittest.main()
