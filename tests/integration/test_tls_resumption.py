#!/usr/bin/env python3
"""tests/integration/test_tls_resumption.py: TLS session resumption across
connections to one host. A small TLS server started here (Python's ssl, server
side) closes the connection after every response, so each URL needs a new
connection; it records, per connection, whether the handshake resumed a
session (SSLSocket.session_reused). With --per-host 1 the first connection is
a full handshake and every later one must be resumed: over TLS 1.3 (tickets)
and TLS 1.2, to an IP literal and to a host name (SNI); with --per-host 4 too,
since the others wait for the first connection's answer."""

import os
import socket
import ssl
import tempfile
import threading
import unittest
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

URLS = 6
BODY = b'{"ok": true}'


class ClosingServer:
    """Loopback HTTPS server: reads one request head per connection, answers
    200 with Connection: close and closes. Records (session_reused, version)
    of every handshake that completed."""

    def __init__(self, pki, max_version=None):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki.server_cert, pki.server_key)
        if max_version is not None:
            self.ctx.maximum_version = max_version
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.handshakes = []  # (session_reused, version), in order
        self.errors = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while not self.stop.is_set():
            try:
                raw, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._accepted(raw)

    def _accepted(self, raw):
        # One at a time: with --per-host 1 the client holds one connection.
        self._one(raw)

    def _one(self, raw):
        raw.settimeout(15)
        try:
            with self.ctx.wrap_socket(raw, server_side=True) as tls:
                with self.lock:
                    self.handshakes.append((tls.session_reused, tls.version()))
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                self._before_answer()
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY)
                            + BODY)
        except (OSError, ssl.SSLError) as e:
            with self.lock:
                self.errors.append(repr(e))
        finally:
            raw.close()

    def _before_answer(self):
        pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)
        self.sock.close()
        return False


class HoldingServer(ClosingServer):
    """Like ClosingServer, but one thread per connection, and the first
    request's answer is held until `want` requests have arrived (or 10 s):
    `all_seen_first` says whether they had when it was sent."""

    def __init__(self, pki, want):
        super().__init__(pki)
        self.want = want
        self.requests = 0
        self.arrived = threading.Condition(self.lock)
        self.all_seen_first = None

    def _accepted(self, raw):
        threading.Thread(target=self._one, args=(raw,), daemon=True).start()

    def _before_answer(self):
        with self.arrived:
            self.requests += 1
            first = self.requests == 1
            self.arrived.notify_all()
            if first:
                self.arrived.wait_for(lambda: self.requests >= self.want, timeout=10)
                self.all_seen_first = self.requests >= self.want


def setUpModule():
    harness.skip_unless_ringfill()
    global TMP, PKI
    TMP = tempfile.TemporaryDirectory(prefix="rf-tlsres-")
    PKI = harness.make_pki(os.path.join(TMP.name, "pki"))


def tearDownModule():
    TMP.cleanup()


class Resumption(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=TMP.name)
        self.db = os.path.join(self.dir, "out.db")

    def fetch(self, srv, host, per_host, count=URLS):
        urls = ["https://%s:%d/r/%d" % (host, srv.port, i) for i in range(count)]
        lst = harness.write_lines(os.path.join(self.dir, "urls.txt"), urls)
        return harness.run_ringfill(
            ["run", "--urls", lst, "--db", self.db, "--download-only",
             "--raw", os.path.join(self.dir, "raw"), "--cacert", PKI.ca_cert,
             "--per-host", str(per_host), "--retries", "1", "--quiet"],
            cwd=self.dir, drop_env=("https_proxy", "HTTPS_PROXY"))

    def check(self, host, max_version=None, version=None, per_host=1):
        with ClosingServer(PKI, max_version) as srv:
            proc = self.fetch(srv, host, per_host)
            with srv.lock:
                handshakes = list(srv.handshakes)
                errors = list(srv.errors)
        self.assertEqual(proc.returncode, 0, harness.describe(proc))
        self.assertEqual(errors, [])
        for j in harness.jobs(self.db):
            self.assertEqual(j["state"], "done", j)
        # One connection per URL (the server closes after each response).
        self.assertEqual(len(handshakes), URLS, handshakes)
        if version is not None:
            self.assertEqual({v for _, v in handshakes}, {version})
        reused = [r for r, _ in handshakes]
        self.assertFalse(reused[0])  # nothing to resume yet
        self.assertEqual(reused[1:], [True] * (URLS - 1), handshakes)

    def test_tls13_ip_literal(self):
        self.check("127.0.0.1", version="TLSv1.3")

    def test_tls13_host_name(self):
        self.check("localhost", version="TLSv1.3")

    def test_tls12_ip_literal(self):
        self.check("127.0.0.1", ssl.TLSVersion.TLSv1_2, version="TLSv1.2")

    # With several connections allowed, the first one still goes alone: the
    # others open once its answer came, and resume its session instead of
    # each making a full handshake.
    def test_tls13_parallel_connections_wait_for_the_first(self):
        self.check("127.0.0.1", version="TLSv1.3", per_host=4)

    def test_tls12_parallel_connections_wait_for_the_first(self):
        self.check("127.0.0.1", ssl.TLSVersion.TLSv1_2, version="TLSv1.2", per_host=4)

    def test_a_slow_first_answer_does_not_hold_the_others(self):
        # The first answer is held until all 4 requests arrived: the others
        # must open after TLS_PROBE_WAIT_MS without it (else the server
        # gives up waiting after 10 s and says so).
        with HoldingServer(PKI, want=4) as srv:
            proc = self.fetch(srv, "127.0.0.1", 4, count=4)
            with srv.lock:
                seen, errors = srv.all_seen_first, list(srv.errors)
        self.assertEqual(proc.returncode, 0, harness.describe(proc))
        self.assertEqual(errors, [])
        self.assertTrue(seen, "the other requests waited for the first answer")
        self.assertEqual({j["state"] for j in harness.jobs(self.db)}, {"done"})


if __name__ == "__main__":
    harness.main_or_skip()
