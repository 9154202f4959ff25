#!/usr/bin/env python3
"""tests/integration/test_net_features.py: what the HTTP client does beyond a
plain GET, against a real TLS server started here: redirects (relative,
absolute, chains, loops, too many, to http), gzip bodies (good, two members,
corrupt, cut short), --header with $VAR expansion that is never logged,
keep-alive reuse, a server that drops idle keep-alive connections, a connect that
hangs (--timeout through the linked timeout), IPv6
loopback, --download-only bodies streamed to disk in bounded memory (large,
truncated then retried, chunked, gzip kept as sent), and HTTPS_PROXY through a small CONNECT proxy (with and without
Basic auth, and NO_PROXY). Each case checks the job's final state, class, attempts and what the
server saw."""

import collections
import gzip
import hashlib
import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import base64
import select
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

BIG_BYTES = 48 * 1024 * 1024
BIG = (b"[" + b",".join(b'{"i": %d, "pad": "%s"}' % (i, b"z" * 200)
                       for i in range(BIG_BYTES // 215)) + b"]")
DOC = json.dumps([{"n": i, "t": "caf\u00e9 \"%d\"\n" % i} for i in range(2000)]).encode()
SECRET = "s3cr3t-token-never-logged"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, fmt, *args):
        pass

    def _send(self, code, body=b"", headers=(), close=False):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if close:
            self.close_connection = True  # without saying so: a dropped idle connection

    def do_GET(self):
        srv = self.server
        path = self.path
        with srv.lock:
            srv.hits[path] += 1
            srv.auth.append(self.headers.get("Authorization", ""))
            srv.auth_by_host.append((self.headers.get("Host", ""),
                                     self.headers.get("Authorization", "")))
            srv.accept_encoding.append(self.headers.get("Accept-Encoding", ""))
            served = srv.served
            srv.served += 1
        port = srv.server_address[1]
        if path == "/r/abs":
            return self._send(301, headers=[("Location", "https://127.0.0.1:%d/r/dir/rel" % port)])
        if path == "/r/dir/rel":
            return self._send(302, headers=[("Location", "doc.json")])
        if path == "/r/dir/doc.json":
            return self._send(200, DOC, [("Content-Type", "application/json")])
        if path == "/r/loop1":
            return self._send(307, headers=[("Location", "/r/loop2")])
        if path == "/r/loop2":
            return self._send(308, headers=[("Location", "/r/loop1")])
        if path.startswith("/r/chain"):
            n = int(path[len("/r/chain"):])
            return self._send(302, headers=[("Location", "/r/chain%d" % (n + 1))])
        if path == "/r/tohttp":
            return self._send(301, headers=[("Location", "http://127.0.0.1:%d/r/dir/doc.json" % port)])
        if path.startswith("/gz/"):
            kind = path[4:]
            z = gzip.compress(DOC)
            if kind == "two":
                half = len(DOC) // 2
                z = gzip.compress(DOC[:half]) + gzip.compress(DOC[half:])
            elif kind == "corrupt":
                z = z[:40] + b"\xff" * 64 + z[104:]
            elif kind == "short":
                z = z[: len(z) // 2]
            with srv.lock:
                srv.gz_bodies[path] = z
            return self._send(200, z, [("Content-Encoding", "gzip")])
        if path.startswith("/ka/"):
            # Every third answer the server drops the connection afterwards
            # without a Connection: close, as idle-timeout servers do.
            return self._send(200, DOC, close=srv.drop_idle and served % 3 == 2)
        if path == "/auth":
            return self._send(200, DOC)
        if path == "/xhost":  # the same server, under another name
            return self._send(302, headers=[("Location", "https://localhost:%d/auth" % port)])
        if path == "/r/query":
            return self._send(302, headers=[("Location", "/r/dir/doc.json?next=https://x.invalid/")])
        if path == "/?x=1":  # an empty path: "r/dir/doc.json" is "/r/dir/doc.json"
            return self._send(302, headers=[("Location", "r/dir/doc.json")])
        if path == "/r/events.ndjson":  # to a storage URL without the suffix
            return self._send(302, headers=[("Location", "/objects/7f3a?sig=abc")])
        if path == "/objects/7f3a?sig=abc":
            lines = b"".join(json.dumps(r).encode() + b"\n" for r in json.loads(DOC))
            return self._send(200, lines, [("Content-Type", "application/octet-stream")])
        if path == "/r/dir/list.json":  # query-only: this path, another query
            return self._send(302, headers=[("Location", "?page=1#top")])
        if path == "/r/dir/list.json?page=1":
            return self._send(200, DOC, [("Content-Type", "application/json")])
        if path == "/r/dir/?page=1":  # where the directory would take it
            return self._send(200, b'[{"n": -1, "t": "the wrong document"}]',
                              [("Content-Type", "application/json")])
        if path.startswith("/r/dir/doc.json?"):
            return self._send(200, DOC, [("Content-Type", "application/json")])
        if path == "/stray":
            # A complete answer, then a second one nobody asked for: it must
            # never be taken for the answer to the next request.
            # Both in one write, so they arrive together: a stray answer that
            # arrives only after the next request went out cannot be told
            # from that request's answer (HTTP/1.1 has no request ids), and
            # separate writes made this test depend on the scheduler.
            stray = json.dumps([{"stray": True}]).encode()
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(DOC) + DOC +
                             b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(stray) + stray)
            self.wfile.flush()
            return None
        if path.startswith("/after-stray/"):
            return self._send(200, json.dumps([{"after": path}]).encode())
        if path.startswith("/big/"):
            return self._send(200, BIG)
        if path == "/trunc-once":
            with srv.lock:
                first = srv.hits[path] == 1
            if first:  # promise it all, send a third, hang up
                self.send_response(200)
                self.send_header("Content-Length", str(len(BIG)))
                self.end_headers()
                self.wfile.write(BIG[: len(BIG) // 3])
                self.close_connection = True
                return None
            return self._send(200, BIG)
        if path == "/big-chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            step = 1000003
            for off in range(0, len(BIG), step):
                piece = BIG[off:off + step]
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return None
        return self._send(404, b"{}")


class Server:
    def __init__(self, pki, host="127.0.0.1", cert=None, key=None, drop_idle=False):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class S(http.server.ThreadingHTTPServer):
            address_family = family
            daemon_threads = True

        self.httpd = S((host, 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert or pki.server_cert, key or pki.server_key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        h = self.httpd
        h.lock = threading.Lock()
        h.hits = collections.Counter()
        h.connections = 0
        h.served = 0
        h.auth = []
        h.auth_by_host = []
        h.accept_encoding = []
        h.gz_bodies = {}
        h.drop_idle = drop_idle
        self.host = host
        self.port = h.server_address[1]
        self.thread = threading.Thread(target=h.serve_forever, daemon=True)

    def url(self, path):
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "https://%s:%d%s" % (host, self.port, path)

    def __enter__(self):
        self.thread.start()
        return self.httpd

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)
        return False


def sanitized_binary():
    """True when $RINGFILL was built with AddressSanitizer or ThreadSanitizer."""
    with open(harness.ringfill_path(), "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__tsan_init" in data


class ConnectProxy:
    """A minimal HTTP CONNECT proxy on loopback: one thread per tunnel,
    tunnels only to 127.0.0.1, optional Basic auth. Counts tunnels and
    remembers their targets."""

    def __init__(self, user=None, password=None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.auth = None
        if user is not None:
            cred = ("%s:%s" % (user, password)).encode()
            self.auth = "Basic " + base64.b64encode(cred).decode()
        self.lock = threading.Lock()
        self.tunnels = 0
        self.refused = 0
        self.targets = set()
        self.stopping = False
        self.threads = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn):
        conn.settimeout(10)
        with conn:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 8192:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.split(b"\r\n")
            method, target, _ = lines[0].decode().split(" ", 2)
            headers = dict(l.decode().split(": ", 1) for l in lines[1:] if b": " in l)
            if self.auth and headers.get("Proxy-Authorization") != self.auth:
                with self.lock:
                    self.refused += 1
                conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                             b"Proxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\n\r\n")
                return
            host, _, port = target.rpartition(":")
            if method != "CONNECT" or host != "127.0.0.1":
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            with self.lock:
                self.tunnels += 1
                self.targets.add(target)
            with socket.create_connection((host, int(port)), timeout=10) as up:
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self._pipe(conn, up)

    def _pipe(self, a, b):
        while not self.stopping:
            ready, _, _ = select.select([a, b], [], [], 0.2)
            for src in ready:
                dst = b if src is a else a
                try:
                    data = src.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                dst.sendall(data)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.thread.join(timeout=10)
        for t in self.threads:
            t.join(timeout=10)
        self.sock.close()
        return False


def setUpModule():
    harness.skip_unless_ringfill()
    global TMP, PKI
    TMP = tempfile.TemporaryDirectory(prefix="rf-netfeat-")
    PKI = harness.make_pki(os.path.join(TMP.name, "pki"))


def tearDownModule():
    TMP.cleanup()


class NetFeatures(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=TMP.name)
        self.db = os.path.join(self.dir, "out.db")

    def run_urls(self, urls, *extra, env=None):
        lst = harness.write_lines(os.path.join(self.dir, "urls.txt"), urls)
        return harness.run_ringfill(
            ["run", "--urls", lst, "--db", self.db, "--rows", "$[*]", "--table", "t",
             "--cacert", PKI.ca_cert, "--retries", "2", "--retry-base", "0.05",
             "--retry-max", "0.2", "--quiet"] + list(extra), cwd=self.dir, env=env)

    def by_key(self):
        return {j["key"]: j for j in harness.jobs(self.db)}

    def test_redirects(self):
        with Server(PKI) as srv:
            base = "https://127.0.0.1:%d" % srv.server_address[1]
            urls = [base + p for p in ("/r/abs", "/r/loop1", "/r/chain0", "/r/tohttp")]
            proc = self.run_urls(urls, "--raw", "raw")
            hits = dict(srv.hits)
        self.assertEqual(proc.returncode, 1, harness.describe(proc))
        j = self.by_key()
        ok = j[base + "/r/abs"]
        self.assertEqual((ok["state"], ok["attempts"], ok["http_status"]), ("done", 1, 200))
        self.assertEqual(harness.count_rows(self.db, "t"), 2000)
        # the raw file is named after the job's own URL and holds the final body
        with open(os.path.join(self.dir, ok["raw_path"]), "rb") as f:
            self.assertEqual(f.read(), DOC)
        loop = j[base + "/r/loop1"]
        self.assertEqual((loop["state"], loop["error_class"]), ("failed", "permanent"))
        self.assertIn("redirect loop", loop["error"])
        chain = j[base + "/r/chain0"]
        self.assertIn("too many redirects", chain["error"])
        self.assertEqual(hits.get("/r/chain5"), 1)
        self.assertNotIn("/r/chain6", hits)  # the sixth redirect is not followed
        tohttp = j[base + "/r/tohttp"]
        self.assertEqual(tohttp["error_class"], "permanent")
        self.assertIn("not an https URL", tohttp["error"])
        self.assertEqual(hits.get("/r/dir/doc.json"), 1)  # only the https chain got there
        for p in ("/r/loop1", "/r/loop2", "/r/tohttp"):
            self.assertEqual(hits[p], 1, p)  # permanent: never retried

    def test_gzip(self):
        with Server(PKI) as srv:
            base = "https://127.0.0.1:%d" % srv.server_address[1]
            kinds = ("good", "two", "corrupt", "short")
            proc = self.run_urls([base + "/gz/" + k for k in kinds], "--raw", "raw")
            sent = dict(srv.gz_bodies)
            hits = dict(srv.hits)
            asked = set(srv.accept_encoding)
        self.assertEqual(proc.returncode, 1, harness.describe(proc))
        self.assertEqual(asked, {"gzip"})
        j = self.by_key()
        for k in ("good", "two"):
            job = j[base + "/gz/" + k]
            self.assertEqual(job["state"], "done", job)
            body = sent["/gz/" + k]
            self.assertEqual(job["bytes"], len(body))  # as sent, not decoded
            self.assertEqual(job["sha256"], hashlib.sha256(body).hexdigest())
            with open(os.path.join(self.dir, job["raw_path"]), "rb") as f:
                self.assertEqual(f.read(), body)
        with harness.open_db(self.db) as con:
            rows = con.execute("SELECT n, t FROM t ORDER BY _job, n").fetchall()
        expect = [(r["n"], r["t"]) for r in json.loads(DOC)]
        self.assertEqual([tuple(r) for r in rows], expect + expect)
        job = j[base + "/gz/corrupt"]
        self.assertEqual((job["state"], job["error_class"]), ("failed", "permanent"))
        self.assertIn("bad gzip data at byte", job["error"])
        self.assertEqual(hits["/gz/corrupt"], 1)
        # kept for inspection, byte for byte as sent
        with open(os.path.join(self.dir, job["raw_path"]), "rb") as f:
            self.assertEqual(f.read(), sent["/gz/corrupt"])
        # gzip data that ends early in a body framed whole was cut on the
        # way (a proxy whose upstream died): a truncation, retried
        job = j[base + "/gz/short"]
        self.assertEqual((job["state"], job["error_class"], job["attempts"]),
                         ("failed", "transient", 2), job)
        self.assertIn("truncated body: its gzip data ends early", job["error"])
        self.assertEqual(hits["/gz/short"], 2)

    def test_header_expansion_is_sent_and_never_logged(self):
        with Server(PKI) as srv:
            url = "https://127.0.0.1:%d/auth" % srv.server_address[1]
            proc = self.run_urls([url], "--header", "Authorization: Bearer ${RF_TEST_TOKEN}",
                                 "--progress", env={"RF_TEST_TOKEN": SECRET})
            auth = list(srv.auth)
        self.assertEqual(proc.returncode, 0, harness.describe(proc))
        self.assertEqual(auth, ["Bearer " + SECRET])
        self.assertNotIn(SECRET, proc.stdout + proc.stderr)
        with open(self.db, "rb") as f:
            self.assertNotIn(SECRET.encode(), f.read())
        # an unset variable is a usage error, and nothing is written
        other = os.path.join(self.dir, "other.db")
        lst = harness.write_lines(os.path.join(self.dir, "u2.txt"), [url])
        proc = harness.run_ringfill(["run", "--urls", lst, "--db", other, "--header",
                                     "Authorization: $RF_TEST_UNSET"], cwd=self.dir,
                                    drop_env=("RF_TEST_UNSET",))
        self.assertEqual(proc.returncode, 2, harness.describe(proc))
        self.assertIn("RF_TEST_UNSET", proc.stderr)
        self.assertFalse(os.path.exists(other))

    def test_job_file_headers_expand_and_are_sent(self):
        # The same as --header, from a job file's "http": {"headers": ...}; an
        # unset variable names the file, the line and the key, and exits 2.
        with Server(PKI) as srv:
            url = "https://127.0.0.1:%d/auth" % srv.server_address[1]
            harness.write_lines(os.path.join(self.dir, "urls.txt"), [url])
            job = os.path.join(self.dir, "job.json")
            with open(job, "w", encoding="utf-8") as f:
                f.write('{\n  "source": {"urls": "urls.txt"},\n  "db": "job.db",\n'
                        '  "tables": [{"name": "t", "rows": "$[*]"}],\n'
                        '  "http": {"cacert": %s, "retries": 2,\n'
                        '    "headers": {"Authorization": "Bearer ${RF_TEST_TOKEN}"}}\n}\n'
                        % json.dumps(PKI.ca_cert))
            proc = harness.run_ringfill(["run", job, "--quiet"], cwd=self.dir,
                                        env={"RF_TEST_TOKEN": SECRET})
            auth = list(srv.auth)
        self.assertEqual(proc.returncode, 0, harness.describe(proc))
        self.assertEqual(auth, ["Bearer " + SECRET])
        self.assertNotIn(SECRET, proc.stdout + proc.stderr)
        self.assertEqual(harness.count_rows(os.path.join(self.dir, "job.db"), "t"), 2000)
        os.remove(os.path.join(self.dir, "job.db"))
        proc = harness.run_ringfill(["run", job, "--quiet"], cwd=self.dir,
                                    drop_env=("RF_TEST_TOKEN",))
        self.assertEqual(proc.returncode, 2, harness.describe(proc))
        self.assertIn("job.json:6: http.headers.Authorization: environment variable "
                      "RF_TEST_TOKEN is not set", proc.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "job.db")))

    def test_credentials_stay_with_their_host(self):
        with Server(PKI) as srv:
            url = "https://127.0.0.1:%d/xhost" % srv.server_address[1]
            proc = self.run_urls([url], "--header", "Authorization: Bearer ${RF_TEST_TOKEN}",
                                 env={"RF_TEST_TOKEN": SECRET})
            seen = list(srv.auth_by_host)
        self.assertEqual(proc.returncode, 0, harness.describe(proc))
        port = url.split(":")[2].split("/")[0]
        self.assertEqual(seen, [("127.0.0.1:" + port, "Bearer " + SECRET),
                                ("localhost:" + port, "")])

    def test_relative_redirect_with_a_url_in_its_query(self):
        with Server(PKI) as srv:
            proc = self.run_urls(["https://127.0.0.1:%d/r/query" % srv.server_address[1]])
        self.assertEqual(proc.returncode, 0, harness.describe(proc))
        self.assertEqual(harness.count_rows(self.db, "t"), 2000)

    def test_query_only_redirect_keeps_the_path(self):
        """Location "?page=1#top" is this path with that query (RFC 3986
        5.2.2), the fragment never sent. Before, it was taken against the
        directory: /r/dir/?page=1, another document, stored as this job's
        rows."""
        with Server(PKI) as srv:
            proc = self.run_urls(["https://127.0.0.1:%d/r/dir/list.json" % srv.server_address[1]])
            hits = dict(srv.hits)
        self.assertEqual(proc.returncode, 0, harness.describe(proc))
        self.assertEqual(hits.get("/r/dir/list.json?page=1"), 1, hits)
        self.assertNotIn("/r/dir/?page=1", hits)
        with harness.open_db(self.db) as con:
            rows = con.execute("SELECT n, t FROM t ORDER BY n").fetchall()
        self.assertEqual([tuple(r) for r in rows], [(r["n"], r["t"]) for r in json.loads(DOC)])

    def test_relative_redirect_from_an_empty_path(self):
        """From "https://host?x=1" (an empty path), Location "r/dir/doc.json"
        is "https://host/r/dir/doc.json" (RFC 3986 5.2.3). Before, the
        authority and the reference ran together: "https://127.0.0.1:PORTr/..."."""
        with Server(PKI) as srv:
            proc = self.run_urls(["https://127.0.0.1:%d?x=1" % srv.server_address[1]])
            hits = dict(srv.hits)
        self.assertEqual(proc.returncode, 0, harness.describe(proc))
        self.assertEqual(hits.get("/r/dir/doc.json"), 1, hits)
        self.assertEqual(harness.count_rows(self.db, "t"), 2000)

    def test_ndjson_by_the_jobs_own_url_after_a_redirect(self):
        """A .ndjson URL that redirects to a storage URL without the suffix,
        served as application/octet-stream (release assets, signed object
        URLs), is NDJSON still: one row per line. Before, the body was
        parsed as one document and failed for good ("trailing data")."""
        with Server(PKI) as srv:
            url = "https://127.0.0.1:%d/r/events.ndjson" % srv.server_address[1]
            lst = harness.write_lines(os.path.join(self.dir, "urls.txt"), [url])
            proc = harness.run_ringfill(
                ["run", "--urls", lst, "--db", self.db, "--table", "t", "--cacert",
                 PKI.ca_cert, "--quiet"], cwd=self.dir)
        self.assertEqual(proc.returncode, 0, harness.describe(proc))
        with harness.open_db(self.db) as con:
            rows = con.execute("SELECT n, t FROM t ORDER BY n").fetchall()
        self.assertEqual([tuple(r) for r in rows], [(r["n"], r["t"]) for r in json.loads(DOC)])

    def test_stray_response_is_never_taken_for_the_next(self):
        with Server(PKI) as srv:
            base = "https://127.0.0.1:%d" % srv.server_address[1]
            urls = [base + "/stray"] + [base + "/after-stray/%d" % i for i in range(5)]
            proc = self.run_urls(urls, "--concurrency", "1", "--per-host", "1")
        self.assertEqual(proc.returncode, 0, harness.describe(proc))
        j = self.by_key()
        with harness.open_db(self.db) as con:
            for i in range(5):
                job = j[base + "/after-stray/%d" % i]
                self.assertEqual(job["attempts"], 1, job)
                got = [tuple(r) for r in con.execute("SELECT after FROM t WHERE _job = ?",
                                                     (job["id"],))]
                self.assertEqual(got, [("/after-stray/%d" % i,)])
            cols = {r[1] for r in con.execute("PRAGMA table_info(t)")}
        self.assertNotIn("stray", cols)  # the stray document was never stored

    def test_keep_alive_reuse(self):
        with Server(PKI) as srv:
            base = "https://127.0.0.1:%d" % srv.server_address[1]
            proc = self.run_urls([base + "/ka/%d" % i for i in range(60)], "--per-host", "2")
            conns = srv.connections
        self.assertEqual(proc.returncode, 0, harness.describe(proc))
        self.assertEqual(harness.count_rows(self.db, "t"), 60 * 2000)
        self.assertLessEqual(conns, 2)  # 60 requests over at most --per-host connections

    def test_server_dropping_idle_connections(self):
        with Server(PKI, drop_idle=True) as srv:
            base = "https://127.0.0.1:%d" % srv.server_address[1]
            proc = self.run_urls([base + "/ka/%d" % i for i in range(30)], "--per-host", "1")
            served = srv.served
            conns = srv.connections
        self.assertEqual(proc.returncode, 0, harness.describe(proc))
        jobs = harness.jobs(self.db)
        self.assertEqual({j["state"] for j in jobs}, {"done"})
        # a request sent on a connection the server had just dropped is sent
        # again without counting an attempt
        self.assertEqual({j["attempts"] for j in jobs}, {1})
        self.assertEqual(served, 30)
        self.assertGreaterEqual(conns, 10)
        self.assertEqual(harness.count_rows(self.db, "t"), 30 * 2000)

    def test_connect_that_hangs_times_out(self):
        # A listener whose accept queue is full (backlog 0, one connection
        # queued, never accepted) drops further SYNs: a connect to it hangs
        # until the kernel gives up (minutes). The timeout linked behind the
        # connect must end each attempt after --timeout.
        with socket.socket() as lst, socket.socket() as filler:
            lst.bind(("127.0.0.1", 0))
            lst.listen(0)
            filler.connect(lst.getsockname())
            url = "https://127.0.0.1:%d/hang" % lst.getsockname()[1]
            proc = self.run_urls([url], "--timeout", "0.3")
        self.assertEqual(proc.returncode, 1, harness.describe(proc))
        job = harness.jobs(self.db)[0]
        self.assertEqual((job["state"], job["error_class"], job["attempts"]),
                         ("failed", "transient", 2))
        self.assertTrue(job["error"].startswith("timed out after 0.3s connecting (--timeout)"),
                        job["error"])

    def test_ipv6_loopback(self):
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 loopback here")
        key = os.path.join(PKI.dir, "v6.key")
        cert = os.path.join(PKI.dir, "v6.pem")
        if not os.path.exists(cert):
            harness._leaf(PKI, key, cert, "ip6-localhost", "IP:::1", 1003)
        with Server(PKI, host="::1", cert=cert, key=key) as srv:
            url = "https://[::1]:%d/ka/v6" % srv.server_address[1]
            proc = self.run_urls([url], "--raw", "raw")
            hits = srv.hits["/ka/v6"]
        self.assertEqual(proc.returncode, 0, harness.describe(proc))
        self.assertEqual(hits, 1)
        job = harness.jobs(self.db)[0]
        self.assertEqual(job["state"], "done")
        self.assertEqual(harness.count_rows(self.db, "t"), 2000)
        self.assertTrue(os.path.isfile(os.path.join(self.dir, job["raw_path"])))


class DownloadOnly(unittest.TestCase):
    """--download-only streams bodies to their raw files through a bounded
    chunk pool: large bodies never sit in memory whole."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=TMP.name)
        self.db = os.path.join(self.dir, "out.db")

    def run_peak(self, urls):
        """Runs ringfill; returns (exit code, stderr, peak RSS in KiB)."""
        lst = harness.write_lines(os.path.join(self.dir, "u.txt"), urls)
        args = [harness.ringfill_path(), "run", "--urls", lst, "--db", self.db,
                "--download-only", "--raw", "raw", "--cacert", PKI.ca_cert, "--retries", "3",
                "--retry-base", "0.05", "--retry-max", "0.2", "--quiet"]
        with open(os.path.join(self.dir, "stderr.txt"), "w+") as err:
            proc = subprocess.Popen(args, cwd=self.dir, stderr=err, stdout=subprocess.DEVNULL)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            return proc.returncode, err.read(), usage.ru_maxrss

    def check_raw(self, job, body):
        self.assertEqual(job["state"], "done", job)
        self.assertEqual(job["bytes"], len(body))
        self.assertEqual(job["sha256"], hashlib.sha256(body).hexdigest())
        with open(os.path.join(self.dir, job["raw_path"]), "rb") as f:
            self.assertTrue(f.read() == body, job["raw_path"])

    def test_large_bodies_in_bounded_memory(self):
        with Server(PKI) as srv:
            base = "https://127.0.0.1:%d" % srv.server_address[1]
            code, err, peak_kib = self.run_peak([base + "/big/%d" % i for i in range(6)]
                                               + [base + "/big-chunked"])
        self.assertEqual(code, 0, err)
        for job in harness.jobs(self.db):
            self.check_raw(job, BIG)
        # 7 bodies of 48 MiB: held whole they would need over 330 MiB; the
        # chunk pool is 48 MiB. A sanitizer's shadow memory and quarantine
        # make RSS say nothing about ours: the normal build checks it.
        if not sanitized_binary():
            self.assertLess(peak_kib, 160 * 1024, "peak RSS %d KiB" % peak_kib)
        self.assertFalse([f for f in os.listdir(os.path.join(self.dir, "raw", os.listdir(
            os.path.join(self.dir, "raw"))[0])) if f.endswith(".part")])

    def test_truncated_stream_is_retried_whole(self):
        with Server(PKI) as srv:
            url = "https://127.0.0.1:%d/trunc-once" % srv.server_address[1]
            code, err, _ = self.run_peak([url])
            hits = srv.hits["/trunc-once"]
        self.assertEqual(code, 0, err)
        self.assertEqual(hits, 2)
        job = harness.jobs(self.db)[0]
        self.assertEqual(job["attempts"], 2)
        self.check_raw(job, BIG)

    def test_gzip_is_kept_as_sent(self):
        with Server(PKI) as srv:
            url = "https://127.0.0.1:%d/gz/good" % srv.server_address[1]
            code, err, _ = self.run_peak([url])
            sent = srv.gz_bodies["/gz/good"]
        self.assertEqual(code, 0, err)
        self.check_raw(harness.jobs(self.db)[0], sent)


class Proxy(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=TMP.name)
        self.db = os.path.join(self.dir, "out.db")

    def fetch(self, srv, n, env, drop=()):
        base = "https://127.0.0.1:%d" % srv.server_address[1]
        lst = harness.write_lines(os.path.join(self.dir, "u.txt"),
                                  [base + "/ka/%d" % i for i in range(n)])
        return harness.run_ringfill(
            ["run", "--urls", lst, "--db", self.db, "--rows", "$[*]", "--table", "t",
             "--cacert", PKI.ca_cert, "--retries", "1", "--quiet"],
            cwd=self.dir, env=env, drop_env=("https_proxy", "no_proxy", "NO_PROXY") + drop)

    def test_tunnel(self):
        with Server(PKI) as srv, ConnectProxy() as proxy:
            proc = self.fetch(srv, 20, {"HTTPS_PROXY": "http://127.0.0.1:%d" % proxy.port})
            served = srv.served
        self.assertEqual(proc.returncode, 0, harness.describe(proc))
        self.assertEqual(served, 20)
        self.assertGreaterEqual(proxy.tunnels, 1)
        self.assertEqual(proxy.targets, {"127.0.0.1:%d" % srv.server_address[1]})
        self.assertEqual(harness.count_rows(self.db, "t"), 20 * 2000)

    def test_auth_and_refusal(self):
        with Server(PKI) as srv, ConnectProxy("user", "pa55-word") as proxy:
            good = "http://user:pa55-word@127.0.0.1:%d" % proxy.port
            proc = self.fetch(srv, 3, {"HTTPS_PROXY": good})
            self.assertEqual(proc.returncode, 0, harness.describe(proc))
            os.unlink(self.db)
            bad = "http://user:wrong-pass@127.0.0.1:%d" % proxy.port
            proc = self.fetch(srv, 3, {"HTTPS_PROXY": bad})
            served = srv.served
        self.assertEqual(proc.returncode, 1, harness.describe(proc))
        self.assertEqual(served, 3)  # nothing got through with the wrong password
        for j in harness.jobs(self.db):
            self.assertEqual((j["state"], j["error_class"]), ("failed", "permanent"))
            self.assertIn("HTTP 407", j["error"])
            self.assertEqual(j["attempts"], 1)  # the proxy's policy is not retried
        self.assertNotIn("wrong-pass", proc.stdout + proc.stderr)
        with open(self.db, "rb") as f:
            self.assertNotIn(b"wrong-pass", f.read())

    def test_no_proxy(self):
        with Server(PKI) as srv, ConnectProxy() as proxy:
            proc = self.fetch(srv, 5, {"HTTPS_PROXY": "http://127.0.0.1:%d" % proxy.port,
                                       "NO_PROXY": "example.com, 127.0.0.1"})
        self.assertEqual(proc.returncode, 0, harness.describe(proc))
        self.assertEqual(proxy.tunnels, 0)

    def test_https_proxy_url_is_refused(self):
        with Server(PKI) as srv:
            proc = self.fetch(srv, 1, {"HTTPS_PROXY": "https://u:hidden@127.0.0.1:1"})
        self.assertEqual(proc.returncode, 2, harness.describe(proc))
        self.assertIn("only http:// proxies", proc.stderr)
        self.assertNotIn("hidden", proc.stderr)
        self.assertFalse(os.path.exists(self.db))


if __name__ == "__main__":
    harness.main_or_skip()
