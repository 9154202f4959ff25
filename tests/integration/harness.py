#!/usr/bin/env python3
"""tests/integration/harness.py: what the integration tests stand on.

A throw-away PKI made with the openssl CLI (a CA, a server certificate for
localhost/127.0.0.1 and one whose only name is wrong.invalid), free loopback
ports, a real nginx serving a directory over TLS (gzip on when asked), the
start and stop of the Python test servers (TlsServer: faultserver.py,
pageserver.py), and small helpers to run the ringfill binary and read its
database. Standard library only.

Used by tests/integration/test_*.py and scripts/demo.py. As a CLI:
    python3 harness.py serve DIR [--work W]   serve DIR over TLS until Ctrl-C
    python3 harness.py pki DIR                 write the certificates into DIR
"""

import argparse
import contextlib
import http.server
import os
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
NGINX = os.environ.get("RINGFILL_TEST_NGINX", "/usr/sbin/nginx")
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
RUN_TIMEOUT_S = 240.0  # one ringfill invocation; meson kills the whole test at 300 s
SKIP_EXIT = 77  # meson's (and automake's) "skipped"


# ---------------------------------------------------------------- the PKI --

class Pki:
    """Paths of the test CA and server certificates (PEM). Keys are EC P-256:
    quick to make, and every TLS stack we meet speaks them."""

    def __init__(self, directory):
        self.dir = directory
        self.ca_key = os.path.join(directory, "ca.key")
        self.ca_cert = os.path.join(directory, "ca.pem")
        self.server_key = os.path.join(directory, "server.key")
        self.server_cert = os.path.join(directory, "server.pem")
        self.wrong_key = os.path.join(directory, "wrong.key")
        self.wrong_cert = os.path.join(directory, "wrong.pem")


def _openssl(args, cwd):
    proc = subprocess.run([OPENSSL] + args, cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], proc.stderr.strip()))


def _leaf(pki, key, cert, cn, san, serial):
    csr = cert + ".csr"
    ext = cert + ".ext"
    with open(ext, "w", encoding="ascii") as f:
        f.write("subjectAltName=%s\n" % san)
        f.write("basicConstraints=critical,CA:FALSE\n")
        f.write("keyUsage=critical,digitalSignature,keyEncipherment\n")
        f.write("extendedKeyUsage=serverAuth\n")
    _openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + cn], pki.dir)
    _openssl(["x509", "-req", "-in", csr, "-CA", pki.ca_cert, "-CAkey", pki.ca_key,
              "-set_serial", str(serial), "-days", "825", "-sha256", "-extfile", ext,
              "-out", cert], pki.dir)
    os.unlink(csr)
    os.unlink(ext)


def make_pki(directory):
    """Creates the CA and both server certificates in directory; returns a Pki."""
    os.makedirs(directory, exist_ok=True)
    pki = Pki(directory)
    _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes", "-keyout", pki.ca_key, "-out", pki.ca_cert, "-days", "3650",
              "-sha256", "-subj", "/CN=ringfill test CA",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], directory)
    _leaf(pki, pki.server_key, pki.server_cert, "localhost",
          "DNS:localhost,IP:127.0.0.1", 1001)
    _leaf(pki, pki.wrong_key, pki.wrong_cert, "wrong.invalid", "DNS:wrong.invalid", 1002)
    return pki


# ---------------------------------------------------------------- ports --

def free_port():
    """A loopback TCP port that was free a moment ago (bind 0, read, close).
    Another process may take it before we do; Nginx.start retries on that."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout_s=START_TIMEOUT_S, proc=None):
    """Waits until 127.0.0.1:port accepts a connection. False on timeout or
    when proc (if given) exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_process(proc, timeout_s=STOP_TIMEOUT_S):
    """SIGTERM, wait, then SIGKILL. Safe to call twice."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)


# ---------------------------------------------------------------- nginx --

NGINX_CONF = """\
# Written by tests/integration/harness.py; every path lives under {work}.
{user_line}
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log info;
events {{ worker_connections 1024; }}
http {{
    types {{
        application/json json;
        application/x-ndjson ndjson jsonl;
        text/plain txt;
    }}
    default_type application/octet-stream;
    access_log {work}/access.log;
    client_body_temp_path {work}/tmp/body;
    proxy_temp_path {work}/tmp/proxy;
    fastcgi_temp_path {work}/tmp/fastcgi;
    uwsgi_temp_path {work}/tmp/uwsgi;
    scgi_temp_path {work}/tmp/scgi;
    sendfile on;
    {gzip}
    keepalive_timeout 65s;
    keepalive_requests 100000;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:rfssl:1m;

    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {server_cert};
        ssl_certificate_key {server_key};
        root {root};
        location / {{ }}
    }}

    # Same files, but a certificate naming only wrong.invalid: host-name
    # verification must refuse it.
    server {{
        listen 127.0.0.1:{wrong_port} ssl;
        server_name wrong.invalid;
        ssl_certificate {wrong_cert};
        ssl_certificate_key {wrong_key};
        root {root};
        location / {{ }}
    }}
}}
"""


class Nginx:
    """A private nginx serving root over TLS on 127.0.0.1:port (good
    certificate) and 127.0.0.1:wrong_port (wrong-name certificate).

        with Nginx(root, pki) as ng:
            ng.url("archives/x.json")

    gzip=True makes nginx gzip JSON and NDJSON bodies for clients that ask.

    work (a directory for config, logs, pid and temp files) defaults to a new
    temporary directory that stop() removes."""

    def __init__(self, root, pki, work=None, gzip=False):
        self.root = os.path.abspath(root)
        self.pki = pki
        self.gzip = gzip  # gzip every JSON/NDJSON response (Content-Encoding: gzip)
        self._own_work = work is None
        self.work = os.path.abspath(work) if work else tempfile.mkdtemp(prefix="rf-nginx-")
        self.port = None
        self.wrong_port = None
        self.proc = None
        self._stderr = None

    def url(self, path, wrong=False):
        port = self.wrong_port if wrong else self.port
        return "https://127.0.0.1:%d/%s" % (port, path.lstrip("/"))

    def _write_conf(self):
        # When we run as root, nginx's worker would switch to user "nobody",
        # who cannot read a 0700 temp dir (mkdtemp's mode) or files made with
        # a tight umask. "user root;" keeps the worker as root: this nginx
        # only listens on loopback and lives for one test. As non-root the
        # directive is ignored by nginx anyway, so we leave it out.
        user_line = "user root root;" if os.geteuid() == 0 else ""
        for sub in ("tmp", "tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            os.makedirs(os.path.join(self.work, sub), exist_ok=True)
        gzip = ("gzip on; gzip_min_length 0; gzip_types application/json application/x-ndjson;"
                if self.gzip else "gzip off;")
        conf = NGINX_CONF.format(user_line=user_line, work=self.work, root=self.root, gzip=gzip,
                                 port=self.port, wrong_port=self.wrong_port,
                                 server_cert=self.pki.server_cert,
                                 server_key=self.pki.server_key,
                                 wrong_cert=self.pki.wrong_cert,
                                 wrong_key=self.pki.wrong_key)
        path = os.path.join(self.work, "nginx.conf")
        with open(path, "w", encoding="utf-8") as f:
            f.write(conf)
        return path

    def start(self, attempts=3):
        """Starts nginx and waits (bounded) until both ports accept. Retries
        with new ports when one was taken between free_port() and nginx."""
        last = ""
        for _ in range(attempts):
            self.port, self.wrong_port = free_port(), free_port()
            while self.wrong_port == self.port:
                self.wrong_port = free_port()
            conf = self._write_conf()
            stderr_path = os.path.join(self.work, "stderr.log")
            self._stderr = open(stderr_path, "ab")
            self.proc = subprocess.Popen(
                [NGINX, "-p", self.work + "/", "-c", conf, "-e", stderr_path,
                 "-g", "daemon off;"],
                stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr)
            if (wait_port(self.port, proc=self.proc)
                    and wait_port(self.wrong_port, proc=self.proc)):
                return self
            stop_process(self.proc)
            self._stderr.close()
            with open(stderr_path, "r", encoding="utf-8", errors="replace") as f:
                last = f.read()[-2000:]
        raise RuntimeError("nginx did not start:\n" + last)

    def stop(self):
        stop_process(self.proc)
        self.proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._own_work:
            shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


# ------------------------------------------------- Python test servers --

class TlsHandler(http.server.BaseHTTPRequestHandler):
    """A request handler on a TlsServer: HTTP/1.1 (keep-alive), a socket
    timeout, and the TLS handshake done here, in the connection's thread."""
    protocol_version = "HTTP/1.1"
    timeout = 10.0

    def setup(self):
        # The listening socket does not handshake in accept() (that would let
        # one slow client stall every other); do it here, in this thread.
        self.request.settimeout(self.timeout)
        self.request.do_handshake()
        super().setup()


class _ThreadingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops SYNs when a client opens many
    # connections at once, which looks like a connect timeout.
    request_queue_size = 256
    verbose = False

    def handle_error(self, request, client_address):
        # A client that rejects our certificate or hangs up mid-body is part
        # of the tests, not a server bug: say so only when asked.
        if self.verbose:
            super().handle_error(request, client_address)


class TlsServer:
    """A threaded HTTPS server on a free loopback port with the PKI's server
    certificate; a context manager. Subclasses set `handler` (a TlsHandler)
    and `name`, put their state on the server in prepare(httpd) (handlers
    read it as self.server.X) and free waiting handlers in release(httpd)."""
    handler = TlsHandler
    name = "test server"

    def __init__(self, pki):
        self.pki = pki
        self.httpd = None
        self.thread = None
        self.port = None

    def url(self, path):
        return "https://127.0.0.1:%d/%s" % (self.port, path.lstrip("/"))

    @property
    def hits(self):
        """Requests per path (with its query), for servers that count them
        in httpd.hits."""
        with self.httpd.lock:
            return dict(self.httpd.hits)

    def prepare(self, httpd):
        pass

    def release(self, httpd):
        pass

    def start(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.pki.server_cert, self.pki.server_key)
        httpd = _ThreadingServer(("127.0.0.1", 0), self.handler)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True,
                                       do_handshake_on_connect=False)
        httpd.lock = threading.Lock()
        self.prepare(httpd)
        self.httpd = httpd
        self.port = httpd.server_address[1]
        self.thread = threading.Thread(target=httpd.serve_forever,
                                       kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        if not wait_port(self.port):
            self.stop()
            raise RuntimeError("%s did not start" % self.name)
        return self

    def stop(self):
        if self.httpd is not None:
            self.release(self.httpd)
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=STOP_TIMEOUT_S)
            self.httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


# ------------------------------------------------------ ringfill helpers --

def ringfill_path():
    """The binary under test ($RINGFILL), or None."""
    path = os.environ.get("RINGFILL", "")
    return path or None


def main_or_skip(need_nginx=False):
    """Entry point of every test file: exit 77 (skip) with a message when the
    binary or a tool is missing, else run unittest and exit with its verdict."""
    if not ringfill_path():
        print("SKIP: RINGFILL is not set (meson sets it to the built binary)", file=sys.stderr)
        sys.exit(SKIP_EXIT)
    if not os.access(ringfill_path(), os.X_OK):
        print("SKIP: RINGFILL=%s is not an executable" % ringfill_path(), file=sys.stderr)
        sys.exit(SKIP_EXIT)
    if need_nginx and not os.access(NGINX, os.X_OK):
        print("SKIP: %s not found (apt-get install nginx-light)" % NGINX, file=sys.stderr)
        sys.exit(SKIP_EXIT)
    if not os.access(OPENSSL, os.X_OK):
        print("SKIP: openssl CLI not found", file=sys.stderr)
        sys.exit(SKIP_EXIT)
    prog = unittest.main(exit=False, verbosity=2)
    sys.exit(0 if prog.result.wasSuccessful() else 1)


def skip_unless_ringfill():
    """For setUpModule: skip (not fail) when run by a plain unittest runner."""
    if not ringfill_path():
        raise unittest.SkipTest("RINGFILL is not set")


def run_ringfill(args, cwd=None, env=None, drop_env=(), timeout_s=RUN_TIMEOUT_S, prefix=()):
    """Runs ringfill with args (a list; never through a shell), in our
    environment plus env minus the names in drop_env, behind the command
    prefix (e.g. prlimit) if given. Returns the CompletedProcess with text
    stdout/stderr."""
    full_env = {k: v for k, v in os.environ.items() if k not in drop_env}
    if env:
        full_env.update(env)
    return subprocess.run(list(prefix) + [ringfill_path()] + list(args), cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout_s, check=False)


def describe(proc):
    """Command, exit code and output, for assertion messages."""
    return "\n$ %s\nexit %s\n--- stdout\n%s\n--- stderr\n%s" % (
        " ".join(proc.args), proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:])


@contextlib.contextmanager
def open_db(path):
    """Read-only connection to a ringfill database, closed on exit."""
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        yield con
    finally:
        con.close()


def jobs(path):
    """All rows of _ringfill_jobs as dicts, in id order."""
    with open_db(path) as con:
        return [dict(r) for r in con.execute("SELECT * FROM _ringfill_jobs ORDER BY id")]


def new_dir(parent):
    """A new, empty directory under parent for one test's files."""
    return tempfile.mkdtemp(prefix="w", dir=parent)


def count_rows(path, table):
    with open_db(path) as con:
        return con.execute('SELECT count(*) FROM "%s"' % table.replace('"', '""')).fetchone()[0]


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
    return path


def load_manifest(dataset_dir):
    import json
    with open(os.path.join(dataset_dir, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)


def gen_dataset(out, count, seed):
    """Runs scripts/gen_dataset.py (the same generator the demo uses)."""
    script = os.path.join(HERE, "..", "..", "scripts", "gen_dataset.py")
    subprocess.run([sys.executable, script, "--out", out, "--count", str(count),
                    "--seed", str(seed)], check=True, timeout=120,
                   capture_output=True)
    return load_manifest(out)


# ---------------------------------------------------------------- CLI --

def _cli():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pki", help="write the test CA and certificates into DIR")
    p.add_argument("dir")
    s = sub.add_parser("serve", help="serve DIR over TLS with nginx until Ctrl-C")
    s.add_argument("dir")
    s.add_argument("--work", help="directory for the PKI, config and logs (default: temp)")
    a = ap.parse_args()
    if a.cmd == "pki":
        pki = make_pki(a.dir)
        print("CA certificate:", pki.ca_cert)
        return 0
    work = os.path.abspath(a.work) if a.work else tempfile.mkdtemp(prefix="rf-serve-")
    pki = make_pki(os.path.join(work, "pki"))
    with Nginx(a.dir, pki, work=os.path.join(work, "nginx")) as ng:
        print("serving %s" % os.path.abspath(a.dir))
        print("  %s   (trusted with --cacert %s)" % (ng.url(""), pki.ca_cert))
        print("  %s   (certificate for wrong.invalid only)" % ng.url("", wrong=True))
        print("Ctrl-C to stop", flush=True)
        try:
            while ng.proc.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
