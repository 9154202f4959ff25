#!/usr/bin/env python3
"""tests/integration/faultserver.py: a small HTTPS server that misbehaves on
purpose, for ringfill's HTTP framing and failure-handling tests.

It serves the files under a root directory through a mode prefix in the path:

  /keepalive/FILE   200, Content-Length, connection kept open (HTTP/1.1)
  /chunked/FILE     200, Transfer-Encoding: chunked with odd chunk sizes, chunk
                    extensions (";ext=v") and a trailer field
  /close/FILE       200, no Content-Length, "Connection: close": the body ends
                    when the server closes
  /truncated/FILE   200, Content-Length 100 bytes larger than the file, half the
                    file sent, then the connection is closed
  /once429/FILE     429 with "Retry-After: 1" on the first request for this
                    path, then like /keepalive/
  /status/CODE      that status (e.g. 500, 404), a short JSON error body;
                    429 and 503 carry "Retry-After: 1"
  /notjson          200, application/json, a body that is not JSON

Every request is counted per path (FaultServer.hits), and accepted
connections in FaultServer.connections. TLS uses the harness's server
certificate (localhost, 127.0.0.1), so clients trust it with the test CA.

    with FaultServer(root, pki) as fs:
        fs.url("chunked/archives/x.json")

As a CLI: python3 faultserver.py ROOT [--work DIR] serves until Ctrl-C.
"""

import argparse
import collections
import http.server
import os
import ssl
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

SOCKET_TIMEOUT_S = 10.0
CHUNK_SIZES = (1, 7, 13, 64, 333, 4093)  # cycled; odd on purpose
NOT_JSON = b'{"a": tru}\n'


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless a mode says otherwise
    timeout = SOCKET_TIMEOUT_S
    server_version = "faultserver/1"

    def setup(self):
        # The listening socket does not handshake in accept() (that would let
        # one slow client stall every other); do it here, in this thread.
        self.request.settimeout(SOCKET_TIMEOUT_S)
        self.request.do_handshake()
        with self.server.lock:
            self.server.connections += 1
        super().setup()

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("faultserver: " + (fmt % args) + "\n")

    def _file(self, rel):
        root = self.server.root
        path = os.path.realpath(os.path.join(root, rel))
        if not path.startswith(root + os.sep) or not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return f.read()

    def _simple(self, code, body, ctype="application/json", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        with self.server.lock:
            self.server.hits[path] += 1
            hits = self.server.hits[path]
        mode, _, rest = path.lstrip("/").partition("/")
        if mode == "status":
            code = int(rest) if rest.isdigit() else 500
            extra = [("Retry-After", "1")] if code in (429, 503) else []
            body = b'{"error": "status %d on purpose"}' % code
            return self._simple(code, body, extra=extra)
        if mode == "notjson":
            return self._simple(200, NOT_JSON)
        body = self._file(rest)
        if body is None:
            return self._simple(404, b'{"error": "no such file"}')
        if mode == "keepalive":
            return self._simple(200, body)
        if mode == "once429":
            if hits == 1:
                return self._simple(429, b'{"error": "slow down"}', extra=[("Retry-After", "1")])
            return self._simple(200, body)
        if mode == "chunked":
            return self._chunked(body)
        if mode == "close":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return None
        if mode == "truncated":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) + 100))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return None
        return self._simple(404, b'{"error": "unknown mode"}')

    def _chunked(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Trailer", "X-Checksum")
        self.end_headers()
        pos, i = 0, 0
        while pos < len(body):
            n = CHUNK_SIZES[i % len(CHUNK_SIZES)]
            piece = body[pos: pos + n]
            ext = ";ext=%d" % i if i % 2 else ""
            # Upper-case hex on some chunks: sizes are case-insensitive.
            size = ("%X" if i % 3 == 0 else "%x") % len(piece)
            self.wfile.write(size.encode() + ext.encode() + b"\r\n" + piece + b"\r\n")
            pos += len(piece)
            i += 1
        self.wfile.write(b"0;last=1\r\nX-Checksum: none\r\n\r\n")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that rejects our certificate or hangs up mid-body is part
        # of the tests, not a server bug: say so only when asked.
        if self.verbose:
            super().handle_error(request, client_address)


class FaultServer:
    """A threaded HTTPS server on a free loopback port; a context manager."""

    def __init__(self, root, pki, verbose=False):
        self.root = os.path.realpath(root)
        self.pki = pki
        self.verbose = verbose
        self.httpd = None
        self.thread = None
        self.port = None

    def url(self, path):
        return "https://127.0.0.1:%d/%s" % (self.port, path.lstrip("/"))

    @property
    def hits(self):
        with self.httpd.lock:
            return dict(self.httpd.hits)

    @property
    def connections(self):
        with self.httpd.lock:
            return self.httpd.connections

    def start(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.pki.server_cert, self.pki.server_key)
        httpd = _Server(("127.0.0.1", 0), Handler)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True,
                                       do_handshake_on_connect=False)
        httpd.root = self.root
        httpd.verbose = self.verbose
        httpd.lock = threading.Lock()
        httpd.hits = collections.Counter()
        httpd.connections = 0
        self.httpd = httpd
        self.port = httpd.server_address[1]
        self.thread = threading.Thread(target=httpd.serve_forever,
                                       kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        if not harness.wait_port(self.port):
            self.stop()
            raise RuntimeError("faultserver did not start")
        return self

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=harness.STOP_TIMEOUT_S)
            self.httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def _cli():
    ap = argparse.ArgumentParser(description="Serve ROOT through fault modes over HTTPS.")
    ap.add_argument("root")
    ap.add_argument("--work", help="directory for the test PKI (default: temp)")
    a = ap.parse_args()
    work = os.path.abspath(a.work) if a.work else tempfile.mkdtemp(prefix="rf-fault-")
    pki = harness.make_pki(os.path.join(work, "pki"))
    with FaultServer(a.root, pki, verbose=True) as fs:
        print("faultserver on %s (CA %s); Ctrl-C to stop" % (fs.url(""), pki.ca_cert),
              flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
