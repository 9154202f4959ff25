#!/usr/bin/env python3
"""tests/integration/faultserver.py: a small HTTPS server that misbehaves on
purpose, for ringfill's HTTP framing and failure-handling tests.

It serves the files under a root directory through a mode prefix in the path:

  /keepalive/FILE   200, Content-Length, connection kept open (HTTP/1.1)
  /chunked/FILE     200, Transfer-Encoding: chunked with odd chunk sizes, chunk
                    extensions (";ext=v") and a trailer field
  /closefin/FILE    like /close/ but half the body and a plain TCP FIN without
                    close_notify: a truncation the client cannot tell from the
                    end, so it must not take it for one
  /close/FILE       200, no Content-Length, "Connection: close": the body ends
                    when the server closes
  /truncated/FILE   200, Content-Length 100 bytes larger than the file, half the
                    file sent, then the connection is closed
  /once429/FILE     429 with "Retry-After: 1" on the first request for this
                    path, then like /keepalive/
  /status/CODE      that status (e.g. 500, 404), a short JSON error body;
                    429 and 503 carry "Retry-After: 1"
  /notjson          200, application/json, a body that is not JSON
  /gzipgzip/FILE    the file gzip-compressed twice, "Content-Encoding: gzip,
                    gzip" (a coding the client does not undo)
  /gzipcut/FILE     gzip, chunked with a proper last chunk, and only the first
                    half of the gzip data: cut on the way
  /gzipcutonce/FILE the same on the first request for the path; later ones
                    get all of the gzip data
  /idle408/FILE     the file on a connection's first request; any later request
                    on the same connection gets 408 and "Connection: close", as
                    from a server that times out idle keep-alive connections
  /slowstart/FILE   Content-Length, the body's first 4 bytes one at a time (a
                    flush and a pause after each, so each comes in a TLS record
                    of its own), then the rest
  /manyheaders/FILE 200 with 150 header fields, past the client's limit of 100
  /bighead/FILE     200 with a 20 KB header field, past the 16 KiB head limit

Failure modes for tests/integration/test_faults.py (issue 5):

  /once429date/FILE 429 with "Retry-After: <HTTP-date 2 s ahead>" on the first
                    request for this path, then the file
  /reset/FILE       Content-Length, half the body, then a TCP reset (RST, no
                    close_notify)
  /shortnotify/FILE Content-Length, half the body, a TLS close_notify, close
  /shortnoclose/FILE Content-Length, half the body, a plain TCP FIN without
                    close_notify
  /badchunk/FILE    chunked, the second chunk size is not hex ("zz")
  /nofinalchunk/FILE chunked, every chunk but the final 0-size one, then close
  /stall/FILE       Content-Length, a third of the body, then silence for
                    STALL_S (a deadline must end it); released at stop()
  /stallhead/FILE   no answer at all for STALL_S
  /trickle/FILE     Content-Length, the body in TRICKLE_PIECES pieces with
                    TRICKLE_GAP_S between them: slow, but never idle long
  /closecl/FILE     Content-Length and "Connection: close"
  /badjson/KIND     200 and an invalid JSON body of that kind (BAD_JSON)
  /outage/FILE      500 while FaultServer.outage is true (the default), then
                    the file: a server that recovers when the test says so
  /gate/FILE        holds the request until the test calls
                    FaultServer.open_gate() (at most STALL_S), then the file
  /limit/FILE       the host-wide rate limiter: the first /limit/ request
                    gets 429 with Retry-After (limit_retry_after: seconds, or
                    "date" for an HTTP-date); every /limit/ request arriving
                    until that moment is answered 429 too, and those arriving
                    more than LIMIT_GRACE_S after the first 429 was sent are
                    counted in FaultServer.early (a client that paused the
                    host sends none). After the pause the files are served.

Resuming streamed NDJSON bodies (tests/integration/test_ndjson_checkpoint.py):

  /norange/FILE     200 with the whole file whatever the request's Range; no
                    Accept-Ranges, no validator: a client must re-download and
                    skip
  /etagflip/FILE    Accept-Ranges: bytes and a strong ETag that changes on
                    every request, so an If-Range never matches: 200, whole
  /badrange/FILE    Accept-Ranges: bytes, a stable ETag; a Range request gets
                    206 with a Content-Range one byte off what was asked
  /gzipped/FILE     the file gzip-compressed (Content-Encoding: gzip), with
                    Accept-Ranges and a strong ETag; Range ignored (200)
  /halfgate/FILE    Accept-Ranges, a stable strong ETag, Range with a matching
                    If-Range honoured (206, sent as set_partial says; 416 from
                    the body's end on); a whole answer sends half the file,
                    then waits for open_gate() before the rest
These serve FILE as application/json when its name ends in .json, else as
application/x-ndjson.

Resuming streamed single documents (tests/integration/test_docstream.py):

  /resetonce/FILE   the first request for this path: Content-Length, half the
                    body, then a TCP reset (as /reset/); every later one: 200
                    and the whole file, no ranges
  /flipct/json2nd/FILE, /flipct/nd2json/FILE
                    the first request: Content-Type application/json (json2nd)
                    or application/x-ndjson (nd2json), all but the last MiB of
                    the body, then a wait for release_flip() (at most STALL_S),
                    then a TCP reset; every later one: the other type and the
                    whole file. A body read as one kind, checkpointed, then
                    answered as the other

The Range header of every request is kept per path in FaultServer.ranges
(None for a request without one).

Every request is counted per path (FaultServer.hits, reset with
FaultServer.reset()), and accepted connections in FaultServer.connections.
TLS uses the harness's server certificate (localhost, 127.0.0.1), so clients
trust it with the test CA.

    with FaultServer(root, pki) as fs:
        fs.url("chunked/archives/x.json")

As a CLI: python3 faultserver.py ROOT [--work DIR] serves until Ctrl-C.
"""

import argparse
import collections
import email.utils
import gzip
import math
import os
import socket
import ssl
import struct
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
STALL_S = 30.0            # longer than any --timeout the tests use; stop() ends it
TRICKLE_PIECES = 8
TRICKLE_GAP_S = 0.2       # well inside the tests' --timeout
LIMIT_GRACE_S = 0.25      # requests already in flight when the 429 went out
BAD_JSON = {              # invalid JSON, one kind per name
    "truncated": b'{"a": [1, 2, {"b": "c"',
    "trailing": b'{"a": 1} {"b": 2}',
    "badescape": b'{"a": "x\\q"}',
    "badutf8": b'{"a": "\xff\xfe"}',
    "nan": b'{"a": NaN}',
    "empty": b'',
    "html": b'<html><body>Service Unavailable</body></html>',
    "doublecomma": b'[1,,2]',
    "control": b'{"a": "tab\there"}',
    "unquoted": b'{a: 1}',
}


class Handler(harness.TlsHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless a mode says otherwise
    timeout = SOCKET_TIMEOUT_S
    server_version = "faultserver/1"

    def setup(self):
        super().setup()  # the TLS handshake, in this thread
        self.served_here = 0  # requests answered on this connection so far
        with self.server.lock:
            self.server.connections += 1

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

    def _head(self, length=None, chunked=False, close=False):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if length is not None:
            self.send_header("Content-Length", str(length))
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()

    def _reset(self):
        """Ends the connection with a TCP RST: no close_notify, no FIN."""
        self.wfile.flush()
        raw = self.request
        try:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # Linger 0 and the descriptor closed now (not when the handler's
            # files let go of it): the kernel sends RST, never a FIN.
            os.close(raw.detach())
        except OSError:
            pass
        self.close_connection = True

    def _close_notify(self):
        """Sends a TLS close_notify, then closes."""
        self.wfile.flush()
        try:
            self.request.unwrap()
        except (OSError, ssl.SSLError):
            pass
        self.close_connection = True

    def _fin(self):
        """A plain TCP FIN, no close_notify."""
        self.wfile.flush()
        try:
            self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close_connection = True

    def _limit(self, body):
        srv = self.server
        now = time.time()
        with srv.lock:
            if srv.limit_until is None:
                if srv.limit_retry_after == "date":
                    until = math.ceil(now) + 2
                    value = email.utils.formatdate(until, usegmt=True)
                else:
                    until = now + float(srv.limit_retry_after)
                    value = str(srv.limit_retry_after)
                srv.limit_first, srv.limit_until, srv.limit_value = now, until, value
                throttled = True
            else:
                throttled = now < srv.limit_until
                if throttled and now > srv.limit_first + LIMIT_GRACE_S:
                    srv.early += 1
            value = srv.limit_value
        if throttled:
            return self._simple(429, b'{"error": "rate limited"}', extra=[("Retry-After", value)])
        return self._simple(200, body)

    def _stop_wait(self, seconds):
        """Sleeps, but returns at once when the server is being stopped."""
        self.server.stopping.wait(seconds)

    def _gzip_cut(self, body, cut):
        """200, gzip, chunked with a proper last chunk; when cut, only the
        first half of the gzip data (a compressing proxy whose upstream
        died)."""
        coded = gzip.compress(body, 6, mtime=0)
        if cut:
            coded = coded[: len(coded) // 2]
        self.send_response(200)
        self.send_header("Content-Type", "application/json" if self.path.endswith(".json")
                         else "application/x-ndjson")
        self.send_header("Content-Encoding", "gzip")
        self._chunked_rest(coded)

    def _chunked_rest(self, data):
        """Transfer-Encoding: chunked, the end of the head, then data in
        64 KiB chunks and a proper last chunk."""
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for pos in range(0, len(data), 1 << 16):
            part = data[pos: pos + (1 << 16)]
            self.wfile.write(b"%x\r\n" % len(part) + part + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _partial(self, headers, body, first):
        """206: body[first:] with its Content-Range, the way
        FaultServer.set_partial says."""
        how, last = self.server.partial, len(body) - 1
        # A cut at a line's end, so that what comes parses: only the range
        # (or its absence) can tell it is not the rest.
        half = body.find(b"\n", first + (len(body) - first) // 2) + 1 or len(body)
        if how == "short":
            last = half - 1
        piece = body[first:last + 1]
        if how == "cutchunked":  # the whole rest announced, half of it sent
            piece = body[first:half]
        if how == "longchunked":  # the whole rest announced, more sent
            piece += b'{"id": -1, "extra": "not in the body"}\n' * 50
        if how == "otheretag":
            headers = [(n, '"other-version"' if n == "ETag" else v) for n, v in headers]
        self.send_response(206)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Range", "bytes %d-%d/%s" % (
            first, last, "*" if how == "star" else len(body)))
        if how in ("chunked", "cutchunked", "longchunked"):
            return self._chunked_rest(piece)
        self.send_header("Content-Length", str(len(piece)))
        self.end_headers()
        self.wfile.write(piece)

    def _flipct(self, way, body, hits):
        """/flipct/json2nd|nd2json/FILE (see the module's text)."""
        types = ["application/json", "application/x-ndjson"]
        if way == "nd2json":
            types.reverse()
        if hits > 1:
            return self._simple(200, body, ctype=types[1])
        self.send_response(200)
        self.send_header("Content-Type", types[0])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: max(0, len(body) - (1 << 20))])
        self.wfile.flush()
        self.server.flip.wait(STALL_S)  # the test saw what it waits for
        self.server.flip.clear()        # the next /flipct/ waits again
        return self._reset()

    def _resumable(self, mode, body, hits):
        """The /norange/, /etagflip/, /badrange/ and /gzipped/ modes."""
        ctype = "application/json" if self.path.endswith(".json") else "application/x-ndjson"
        headers = [("Content-Type", ctype)]
        rng = self.headers.get("Range")
        if mode == "gzipped":
            with self.server.lock:
                if rng is None or self.server.gz_cache[0] != len(body):
                    self.server.gz_cache = (len(body), gzip.compress(body, 6, mtime=0))
                body = self.server.gz_cache[1]
            headers += [("Content-Encoding", "gzip"), ("Accept-Ranges", "bytes"),
                        ("ETag", '"gz-%d"' % len(body))]
        elif mode == "etagflip":
            headers += [("Accept-Ranges", "bytes"), ("ETag", '"flip-%d"' % hits)]
        elif mode == "badrange":
            headers += [("Accept-Ranges", "bytes"), ("ETag", '"stable-%d"' % len(body))]
            if rng and rng.startswith("bytes=") and rng.endswith("-"):
                return self._partial(headers, body, int(rng[6:-1]) + 1)  # one byte off

        elif mode == "halfgate":
            etag = '"half-%d"' % len(body)
            headers += [("Accept-Ranges", "bytes"), ("ETag", etag)]
            if (rng and rng.startswith("bytes=") and rng.endswith("-")
                    and self.headers.get("If-Range") == etag):
                if int(rng[6:-1]) >= len(body):  # nothing from there: RFC 9110's 416
                    return self._simple(416, b"", extra=[("Content-Range",
                                                          "bytes */%d" % len(body))])
                return self._partial(headers, body, int(rng[6:-1]))
        self.send_response(200)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        half = len(body) // 2 if mode == "halfgate" else len(body)
        for pos in range(0, len(body), 1 << 20):
            if pos >= half and not self.server.gate.is_set():
                self.wfile.flush()
                self.server.gate.wait(STALL_S)
            self.wfile.write(body[pos: pos + (1 << 20)])
        return None

    def do_GET(self):
        self.served_here += 1
        path = self.path.split("?", 1)[0]
        with self.server.lock:
            self.server.hits[path] += 1
            hits = self.server.hits[path]
            self.server.ranges[path].append(self.headers.get("Range"))
        mode, _, rest = path.lstrip("/").partition("/")
        if mode == "badjson":
            return self._simple(200, BAD_JSON.get(rest, NOT_JSON))
        if mode == "stallhead":
            self._stop_wait(STALL_S)
            self.close_connection = True
            return None
        if mode == "status":
            code = int(rest) if rest.isdigit() else 500
            extra = [("Retry-After", "1")] if code in (429, 503) else []
            body = b'{"error": "status %d on purpose"}' % code
            return self._simple(code, body, extra=extra)
        if mode == "notjson":
            return self._simple(200, NOT_JSON)
        way = None
        if mode == "flipct":
            way, _, rest = rest.partition("/")
        body = self._file(rest)
        if body is None:
            return self._simple(404, b'{"error": "no such file"}')
        if mode == "keepalive":
            return self._simple(200, body)
        if mode == "idle408":
            if self.served_here > 1:  # as a server that timed out the idle connection
                self.close_connection = True
                return self._simple(408, b'{"error": "idle too long"}',
                                    extra=[("Connection", "close")])
            return self._simple(200, body)
        if mode == "slowstart":
            self._head(length=len(body))
            for i in range(min(4, len(body))):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                self._stop_wait(0.05)
            self.wfile.write(body[4:])
            return None
        if mode == "manyheaders":
            return self._simple(200, body, extra=[("X-Filler-%d" % i, "v") for i in range(150)])
        if mode == "bighead":
            return self._simple(200, body, extra=[("X-Filler", "v" * 20000)])
        if mode in ("gzipcut", "gzipcutonce"):
            return self._gzip_cut(body, mode == "gzipcut" or hits == 1)
        if mode == "gzipgzip":
            twice = gzip.compress(gzip.compress(body, 6, mtime=0), 6, mtime=0)
            return self._simple(200, twice, extra=[("Content-Encoding", "gzip, gzip")])
        if mode in ("norange", "etagflip", "badrange", "gzipped", "halfgate"):
            return self._resumable(mode, body, hits)
        if mode == "once429":
            if hits == 1:
                return self._simple(429, b'{"error": "slow down"}', extra=[("Retry-After", "1")])
            return self._simple(200, body)
        if mode == "chunked":
            return self._chunked(body)
        if mode == "once429date":
            if hits == 1:
                date = email.utils.formatdate(math.ceil(time.time()) + 2, usegmt=True)
                return self._simple(429, b'{"error": "slow down"}', extra=[("Retry-After", date)])
            return self._simple(200, body)
        if mode == "limit":
            return self._limit(body)
        if mode == "gate":
            self.server.gate.wait(STALL_S)
            return self._simple(200, body)
        if mode == "outage":
            if self.server.outage:
                return self._simple(500, b'{"error": "down for maintenance"}')
            return self._simple(200, body)
        if mode == "resetonce" and hits > 1:
            return self._simple(200, body)
        if mode == "flipct":
            return self._flipct(way, body, hits)
        if mode in ("reset", "resetonce", "shortnotify", "shortnoclose"):
            self._head(length=len(body))
            self.wfile.write(body[: len(body) // 2])
            return {"reset": self._reset, "resetonce": self._reset,
                    "shortnotify": self._close_notify,
                    "shortnoclose": self._fin}[mode]()
        if mode == "badchunk":
            self._head(chunked=True)
            self.wfile.write(b"10\r\n" + body[:16] + b"\r\nzz\r\n" + body[16:32] + b"\r\n")
            self.wfile.flush()
            self._stop_wait(0.5)  # let the client see the bad size, not a close
            return self._fin()
        if mode == "nofinalchunk":
            self._head(chunked=True)
            for pos in range(0, len(body), 4096):
                piece = body[pos: pos + 4096]
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            return self._fin()
        if mode == "stall":
            self._head(length=len(body))
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self._stop_wait(STALL_S)
            self.close_connection = True
            return None
        if mode == "trickle":
            self._head(length=len(body))
            step = -(-len(body) // TRICKLE_PIECES)
            for pos in range(0, len(body), step):
                self.wfile.write(body[pos: pos + step])
                self.wfile.flush()
                if pos + step < len(body):
                    self._stop_wait(TRICKLE_GAP_S)
            return None
        if mode == "closecl":
            self._head(length=len(body), close=True)
            self.wfile.write(body)
            self.close_connection = True
            return None
        if mode in ("close", "closefin"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            if mode == "close":  # the whole body, then a proper TLS close
                self.wfile.write(body)
                return self._close_notify()
            self.wfile.write(body[: len(body) // 2])
            return self._fin()
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


class FaultServer(harness.TlsServer):
    """A threaded HTTPS server on a free loopback port; a context manager."""
    handler = Handler
    name = "faultserver"

    def __init__(self, root, pki, verbose=False, limit_retry_after=2):
        super().__init__(pki)
        self.root = os.path.realpath(root)
        self.verbose = verbose
        self.limit_retry_after = limit_retry_after  # seconds, or "date"

    @property
    def ranges(self):
        """Per path, the Range header of each request (None when absent)."""
        with self.httpd.lock:
            return {k: list(v) for k, v in self.httpd.ranges.items()}

    @property
    def connections(self):
        with self.httpd.lock:
            return self.httpd.connections

    @property
    def early(self):
        """Requests to /limit/ that arrived while the limiter's pause was on
        (after the grace for requests already in flight)."""
        with self.httpd.lock:
            return self.httpd.early

    @property
    def outage(self):
        return self.httpd.outage

    @outage.setter
    def outage(self, down):
        self.httpd.outage = bool(down)

    def open_gate(self):
        """Lets every /gate/ request through, now and later."""
        self.httpd.gate.set()

    def release_flip(self):
        """Lets the /flipct/ request waiting (or the next one) reset its
        connection."""
        self.httpd.flip.set()

    def set_partial(self, how):
        """How a 206 is sent (until reset()): "length" (the default: the rest
        of the file with its Content-Length), "chunked" (the same, chunked,
        no Content-Length), "short" (only the first half of the rest, with
        a Content-Range and Content-Length that say so), "star" (the rest,
        its Content-Range's length "*"), "cutchunked" (the whole rest
        announced, chunked, and half of it sent with a proper last chunk),
        "longchunked" (the whole rest announced, chunked, and more lines
        after it), or "otheretag" (the rest, with another ETag than
        If-Range asked). The halves end at a line's end."""
        assert how in ("length", "chunked", "short", "star", "cutchunked", "longchunked",
                       "otheretag")
        self.httpd.partial = how

    def reset(self):
        """Forgets hit counts, once429 history, the limiter's pause and
        set_partial's choice."""
        with self.httpd.lock:
            self.httpd.partial = "length"
            self.httpd.hits.clear()
            self.httpd.ranges.clear()
            self.httpd.connections = 0
            self.httpd.early = 0
            self.httpd.limit_until = None
            self.httpd.gate.clear()

    def prepare(self, httpd):
        httpd.root = self.root
        httpd.verbose = self.verbose
        httpd.hits = collections.Counter()
        httpd.ranges = collections.defaultdict(list)
        httpd.gz_cache = (-1, b"")
        httpd.partial = "length"
        httpd.connections = 0
        httpd.stopping = threading.Event()
        httpd.early = 0
        httpd.outage = True
        httpd.gate = threading.Event()
        httpd.flip = threading.Event()
        httpd.limit_retry_after = self.limit_retry_after
        httpd.limit_first = httpd.limit_until = httpd.limit_value = None

    def release(self, httpd):
        httpd.stopping.set()  # releases stalled handlers
        httpd.gate.set()
        httpd.flip.set()


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
