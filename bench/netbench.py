#!/usr/bin/env python3
"""bench/netbench.py: the `net` and `e2e` suites of `ringfill bench`
(docs/benchmarks.md). bench/suite_net.c starts it with python3 (no shell) and
reads its stdout: one JSON object per line, and nothing else on stdout.

    {"progress": "net small_10000x20KB: ringfill run 2/5"}
    {"env": {"cipher": "..."}}                          a line for the environment
    {"record": {"suite", "case", "metric", "unit", "direction", "runs",
                "peer": null | {"name", "runs"}}}      one result, every timed run
                [, "subject": "curl"]                  (the value is not ringfill's)
    {"error": "..."}                                  the suite failed (exit 1 too)

Messages for people go to stderr. Standard library only.

net: nginx over TLS on a free loopback port serves generated files; for each
case `ringfill run --download-only --raw` and `curl --parallel` fetch every
file, in alternating runs, and every file each of them wrote is checked
against the sha256 it was generated with. Then `openssl speed -evp` of
aes-128-gcm and of the cipher nginx logged for the clients.

e2e: three workloads served the same way, scripts/gen_dataset.py's
social-network archives (tables `tweets`, `following`), the same generator's
edge-heavy archives (`graph`: tables `following`, `followers` keyed by two
columns, `tweets`) and bench/gen_events.py's GitHub-event-like NDJSON pages
(tables `events`, `actors`, `repos`, `commits`), every table keyed in upsert
mode; the archives and the graph are also loaded from local files (the
`files` source, timed against the C loop only). ringfill runs one job file per
workload; bench/peer_importer.py does the same with a thread pool of urllib
downloads, and both databases must hold the same rows. After each ringfill
run, rf_peer_insert_loop (bench/peer_insert_loop.c) times a minimal C loop
inserting into a fresh database with ringfill's schema every row the documents
hold, in document order (the issues' naive loop), and again only the rows
ringfill stored (the tighter reference).

Every measured client runs under the launcher rf_bench_exec (--exec-helper),
which reports its wall time and wait4 rusage (see bench/rf_bench_exec.c for
why ru_maxrss needs it).
"""

import argparse
import base64
import collections
import fnmatch
import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile

NGINX = os.environ.get("RINGFILL_BENCH_NGINX", "/usr/sbin/nginx")
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
CURL = shutil.which("curl")
HERE = os.path.dirname(os.path.abspath(__file__))
STOP_TIMEOUT_S = 10.0
CLIENT_TIMEOUT_S = 600.0  # one client run; the large case moves a gigabyte
SEED = 20261124

# The PKI and the loopback port helpers are the integration tests' own; the
# nginx here is configured for measuring (one worker, a log of ciphers, a
# deep backlog, SIGQUIT so that the log is flushed), so it keeps its own class.
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402
sys.path.insert(0, HERE)
import peer_importer  # noqa: E402


class BenchError(Exception):
    """The suite cannot go on; the message says why."""


# ------------------------------------------------------------- protocol --

def emit(obj):
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def progress(msg):
    emit({"progress": msg})


def note(msg):
    print("netbench: " + msg, file=sys.stderr, flush=True)


def selected(a, *names):
    """Whether --case selects any of the case names (all without --case)."""
    return not a.case or any(fnmatch.fnmatchcase(n, g) for n in names for g in a.case)


def record(suite, case, metric, unit, direction, runs, peer_name=None, peer_runs=None,
           subject=None):
    peer = {"name": peer_name, "runs": peer_runs} if peer_name and peer_runs else None
    rec = {"suite": suite, "case": case, "metric": metric, "unit": unit,
           "direction": direction, "runs": runs, "peer": peer}
    if subject:  # the value is not ringfill's (the result's "subject")
        rec["subject"] = subject
    emit({"record": rec})


# ------------------------------------------------------- PKI and nginx --

def run_tool(args, timeout=120, **kw):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False,
                       **kw)
    if p.returncode != 0:
        raise BenchError("%s failed (exit %d): %s" % (" ".join(args[:3]), p.returncode,
                                                       p.stderr.strip()[-800:]))
    return p.stdout


def make_pki(d):
    """A throw-away CA and a localhost/127.0.0.1 certificate (EC P-256), made
    by tests/integration/harness.py as for the integration tests. Returns
    (ca, cert, key)."""
    try:
        pki = harness.make_pki(d)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        raise BenchError(str(e)) from e
    return pki.ca_cert, pki.server_cert, pki.server_key


# One worker: on a 2-CPU machine the server gets one core and the client the
# other. The access log keeps what each client negotiated (by User-Agent),
# buffered so that it costs little; nothing else is logged.
NGINX_CONF = """\
# Written by bench/netbench.py; every path lives under {work}.
{user_line}
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    default_type application/octet-stream;
    log_format tls '$ssl_protocol $ssl_cipher "$http_user_agent"';
    access_log {work}/access.log tls buffer=256k flush=5s;
    client_body_temp_path {work}/tmp/body;
    proxy_temp_path {work}/tmp/proxy;
    fastcgi_temp_path {work}/tmp/fastcgi;
    uwsgi_temp_path {work}/tmp/uwsgi;
    scgi_temp_path {work}/tmp/scgi;
    sendfile on;
    gzip off;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:rfbench:4m;
    server {{
        listen 127.0.0.1:{port} ssl backlog=4096;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {root};
        location / {{ }}
    }}
}}
"""


class Nginx:
    """A private nginx serving root over TLS on 127.0.0.1:port. stop() is
    safe to call twice and is called on every exit path (see main)."""

    def __init__(self, root, cert, key, work):
        self.root, self.cert, self.key, self.work = root, cert, key, work
        self.proc = None
        self.port = None

    def start(self):
        for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            os.makedirs(os.path.join(self.work, sub), exist_ok=True)
        errlog = os.path.join(self.work, "stderr.log")
        for _ in range(3):
            self.port = harness.free_port()
            conf = os.path.join(self.work, "nginx.conf")
            with open(conf, "w", encoding="utf-8") as f:
                f.write(NGINX_CONF.format(
                    user_line="user root root;" if os.geteuid() == 0 else "",
                    work=self.work, port=self.port, cert=self.cert, key=self.key,
                    root=self.root))
            with open(errlog, "ab") as err:
                self.proc = subprocess.Popen(
                    [NGINX, "-p", self.work + "/", "-c", conf, "-e", errlog,
                     "-g", "daemon off;"],
                    stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            if harness.wait_port(self.port, proc=self.proc):
                return self
            self.stop()
        with open(errlog, encoding="utf-8", errors="replace") as f:
            raise BenchError("nginx did not start:\n" + f.read()[-2000:])

    def url(self, rel):
        return "https://127.0.0.1:%d/%s" % (self.port, rel)

    def cpu_s(self):
        """The CPU seconds nginx (master and workers) has used so far: the
        server shares this machine's CPUs with the client it serves, so its
        time bounds how fast any client can download here (the e2e suite's
        server_cpu_s). From each task's /proc/PID/task/TID/schedstat (time on
        a CPU in nanoseconds; stat's clock ticks are 10 ms)."""
        if self.proc is None:
            return 0.0
        pids = [self.proc.pid]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry, encoding="ascii", errors="replace") as f:
                    # pid (comm) state ppid ...: comm may hold spaces and ')'.
                    ppid = int(f.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile, or not readable
            if ppid == self.proc.pid:
                pids.append(int(entry))
        ns = 0
        for pid in pids:
            try:
                tids = os.listdir("/proc/%d/task" % pid)
            except OSError:
                continue
            for tid in tids:
                try:
                    with open("/proc/%d/task/%s/schedstat" % (pid, tid), encoding="ascii") as f:
                        ns += int(f.read().split()[0])
                except (OSError, ValueError, IndexError):
                    continue
        return ns / 1e9

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        self.proc.send_signal(signal.SIGQUIT)  # graceful: flushes the access log
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.proc = None

    def ciphers(self):
        """{client: "TLSv1.3 TLS_AES_256_GCM_SHA384", ...} from the access log
        (call after stop, which flushes it)."""
        seen = collections.defaultdict(collections.Counter)
        path = os.path.join(self.work, "access.log")
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    head, _, agent = line.rstrip("\n").partition(' "')
                    client = agent.split("/")[0].split(" ")[0] or "unknown"
                    seen[client][head] += 1
        return {c: ", ".join(k for k, _ in cnt.most_common()) for c, cnt in seen.items()}


# ------------------------------------------------------- measured runs --

class Launcher:
    """Runs a client under rf_bench_exec and returns its measurements."""

    def __init__(self, helper, work):
        self.helper, self.work = helper, work
        self.n = 0

    def run(self, args, what, env=None):
        self.n += 1
        out = os.path.join(self.work, "rusage-%d.json" % self.n)
        log = os.path.join(self.work, "client-%d.log" % self.n)
        with open(log, "wb") as lf:
            p = subprocess.run([self.helper, out] + list(args), stdin=subprocess.DEVNULL,
                               stdout=lf, stderr=lf, timeout=CLIENT_TIMEOUT_S, env=env,
                               check=False)
        with open(log, encoding="utf-8", errors="replace") as f:
            text = f.read()
        os.unlink(log)
        if p.returncode != 0 or not os.path.exists(out):
            raise BenchError("%s: the launcher failed: %s" % (what, text[-1500:]))
        with open(out, encoding="ascii") as f:
            ru = json.load(f)
        os.unlink(out)
        if ru["exit"] != 0:
            raise BenchError("%s exited %d (signal %d):\n$ %s\n%s" % (
                what, ru["exit"], ru["signal"], " ".join(args), text[-3000:]))
        ru["cpu_s"] = ru["utime_s"] + ru["stime_s"]
        return ru


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def median(v):
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


# ---------------------------------------------------------------- net --

def gen_files(root, sub, count, size, jitter, rng):
    """count JSON documents of size±jitter bytes under root/sub; returns
    [(rel_path, bytes, sha256)]. Deterministic for a given rng state."""
    os.makedirs(os.path.join(root, sub), exist_ok=True)
    out = []
    width = max(4, len(str(count - 1)))
    for i in range(count):
        n = size + (rng.randint(-jitter, jitter) if jitter else 0)
        head = b'{"id": %d, "pad": "' % i
        tail = b'"}\n'
        pad_len = max(0, n - len(head) - len(tail))
        raw = rng.randbytes(pad_len * 3 // 4 + 3)
        pad = base64.b64encode(raw)[:pad_len]
        body = head + pad + tail
        rel = "%s/d%0*d.json" % (sub, width, i)
        with open(os.path.join(root, rel), "wb") as f:
            f.write(body)
        out.append((rel, len(body), hashlib.sha256(body).hexdigest()))
    return out


def verify_dir(files, directory, name_of, who):
    """Every expected file is in directory with its sha256; nothing else is.
    Returns the count; raises BenchError naming the first mismatches."""
    bad = []
    for rel, size, digest in files:
        path = os.path.join(directory, name_of(rel))
        if not os.path.exists(path):
            bad.append("%s: missing" % rel)
        elif os.path.getsize(path) != size:
            bad.append("%s: %d bytes, expected %d" % (rel, os.path.getsize(path), size))
        elif sha256_file(path) != digest:
            bad.append("%s: sha256 differs" % rel)
        if len(bad) >= 5:
            break
    extra = len(os.listdir(directory)) - len(files) if not bad else 0
    if bad or extra:
        raise BenchError("%s: downloaded files differ from the served ones: %s" % (
            who, "; ".join(bad) if bad else "%d unexpected files" % extra))
    return len(files)


# Deleting thousands of files makes the next thousands of creates on the same
# file system slow: ext4 will not reuse an inode deleted less than 60 s ago
# (360 s while its inode table block is dirty), and each create scans past
# every such inode again (`recently_deleted` under `__ext4_new_inode`: 35% of
# the samples of a ringfill run right after the other client's files were
# deleted, and 0.35 -> 2.1 s of system time between runs of one binary). So a
# case with this many files keeps each run's output until the suite ends,
# when the disk allows (OUTPUT_KEEP_BYTES_MAX for all its runs together).
DEFER_DELETE_FILES = 1000
OUTPUT_KEEP_BYTES_MAX = 8 * 10**9


class NetCase:
    def __init__(self, name, files, parallel):
        self.name, self.files, self.parallel = name, files, parallel
        self.bytes = sum(f[1] for f in files)
        self.kept = []  # output directories deleted when the suite ends

    def done_with(self, out, runs):
        """Deletes a run's output now, or keeps it for later (see above)."""
        if (len(self.files) >= DEFER_DELETE_FILES
                and self.bytes * 2 * (runs + 1) <= OUTPUT_KEEP_BYTES_MAX):
            self.kept.append(out)
        else:
            shutil.rmtree(out, ignore_errors=True)


def ringfill_net_run(a, launcher, ng, ca, case, urls, work):
    out = tempfile.mkdtemp(prefix="rf-", dir=work)
    try:
        raw = os.path.join(out, "raw")
        # A build with asserts counts the bytes it copies on the body path
        # and writes them here at exit (docs/engine.md, "Copies").
        stats = os.path.join(out, "copy-stats.json")
        env = dict(os.environ, RINGFILL_COPY_STATS=stats)
        ru = launcher.run([a.ringfill, "run", "--urls", urls, "--db",
                           os.path.join(out, "rf.db"), "--raw", raw, "--download-only",
                           "--cacert", ca, "--concurrency", str(case.parallel),
                           "--per-host", str(case.parallel), "--quiet"],
                          "ringfill (%s)" % case.name, env=env)
        if os.path.exists(stats):
            with open(stats, encoding="ascii") as f:
                ru["copies"] = json.load(f)
        hosts = os.listdir(raw)
        if len(hosts) != 1:
            raise BenchError("ringfill (%s): expected one host directory in --raw, found %s"
                             % (case.name, hosts))
        ru["verified"] = verify_dir(case.files, os.path.join(raw, hosts[0]),
                                    lambda rel: rel.replace("/", "_"), "ringfill " + case.name)
        return ru
    finally:
        case.done_with(out, a.runs)


def curl_net_run(a, launcher, ng, ca, case, work):
    out = tempfile.mkdtemp(prefix="curl-", dir=work)
    try:
        cfg = os.path.join(out, "curl.cfg")
        files_dir = os.path.join(out, "files")
        os.makedirs(files_dir)
        with open(cfg, "w", encoding="utf-8") as f:
            f.write('parallel\nparallel-max = %d\ncacert = "%s"\nsilent\nshow-error\nfail\n'
                    % (case.parallel, ca))
            for rel, _, _ in case.files:
                f.write('url = "%s"\noutput = "%s"\n' % (
                    ng.url(rel), os.path.join(files_dir, rel.replace("/", "_"))))
        ru = launcher.run([CURL, "-K", cfg], "curl (%s)" % case.name)
        ru["verified"] = verify_dir(case.files, files_dir, lambda rel: rel.replace("/", "_"),
                                    "curl " + case.name)
        return ru
    finally:
        case.done_with(out, a.runs)


def net_metrics(case, ru):
    gb = case.bytes / 1e9
    return {"requests_per_s": len(case.files) / ru["wall_s"],
            "mb_per_s": case.bytes / 1e6 / ru["wall_s"],
            "cpu_s_per_gb": ru["cpu_s"] / gb,
            "peak_rss_mb": ru["maxrss_kb"] / 1024.0,
            "files_verified": float(ru["verified"])}


def copy_metrics(case, ru):
    """Bytes copied per body byte, per stage, when the build counted them."""
    c = ru.get("copies")
    if not c:
        return {}
    return {"copied_%s_per_byte" % k: c[k] / case.bytes for k in COPY_STAGES}


COPY_STAGES = ("tls_in", "plain", "head")
NET_METRICS = [("requests_per_s", "req/s", "higher"), ("mb_per_s", "MB/s", "higher"),
               ("cpu_s_per_gb", "s/GB", "lower"), ("peak_rss_mb", "MiB", "lower"),
               ("files_verified", "files", "higher")]


def openssl_speed(evp, seconds):
    """MB/s (10^6 bytes/s) of `openssl speed -evp EVP -decrypt` on 16 KiB
    blocks (a TLS record's size), or of encryption if -decrypt is refused."""
    for extra in (["-decrypt"], []):
        p = subprocess.run([OPENSSL, "speed", "-evp", evp] + extra +
                           ["-seconds", str(seconds), "-bytes", "16384"],
                           capture_output=True, text=True, timeout=120, check=False)
        for line in p.stdout.splitlines():
            parts = line.split()
            if (p.returncode == 0 and len(parts) == 2 and parts[1].endswith("k")
                    and parts[0].lower() == evp.lower()):
                return float(parts[1][:-1]) * 1000 / 1e6, "decrypt" if extra else "encrypt"
    raise BenchError("openssl speed -evp %s: no result" % evp)


def evp_of(cipher):
    """The EVP name of a TLS cipher suite name, or None."""
    c = cipher.upper().replace("-", "_")
    if "CHACHA20" in c:
        return "chacha20-poly1305"
    for bits in ("128", "256"):
        if "AES_%s_GCM" % bits in c or "AES%s_GCM" % bits in c:
            return "aes-%s-gcm" % bits
    return None


def suite_net(a, work):
    small_n, large_n, large_size = (500, 4, 5 * 10**6) if a.quick else (10000, 20, 50 * 10**6)
    root = os.path.join(work, "www")
    rng = random.Random(SEED)
    small, large = "small_%dx20KB" % small_n, "large_%dx%dMB" % (large_n, large_size // 10**6)
    if not selected(a, small, large):
        return
    progress("net: generating %d x 20 KB and %d x %d MB files" % (small_n, large_n,
                                                                  large_size // 10**6))
    # Both sets are made whatever --case says: the files of one follow the
    # other's in the same random sequence.
    cases = [NetCase(small, gen_files(root, "s", small_n, 20 * 1024, 4 * 1024, rng), 64),
             NetCase(large, gen_files(root, "l", large_n, large_size, 0, rng),
                     min(64, large_n))]
    cases = [c for c in cases if selected(a, c.name)]
    ca, cert, key = make_pki(os.path.join(work, "pki"))
    launcher = Launcher(a.exec_helper, work)
    if not CURL:
        note("curl not found: the net suite runs without its peer")
    ng = Nginx(root, cert, key, os.path.join(work, "nginx"))
    results = {}
    try:
        ng.start()
        for case in cases:
            urls = os.path.join(work, case.name + ".urls")
            with open(urls, "w", encoding="ascii") as f:
                f.writelines(ng.url(rel) + "\n" for rel, _, _ in case.files)
            rf_runs, curl_runs = [], []
            # A warm-up of each, then the timed runs alternate, so a burst of
            # load on a shared machine hits both sides alike.
            for i in range(a.runs + 1):
                tag = "warm-up" if i == 0 else "run %d/%d" % (i, a.runs)
                progress("net %s: ringfill %s" % (case.name, tag))
                ru = ringfill_net_run(a, launcher, ng, ca, case, urls, work)
                if i:
                    rf_runs.append(dict(net_metrics(case, ru), **copy_metrics(case, ru)))
                if CURL:
                    progress("net %s: curl %s" % (case.name, tag))
                    ru = curl_net_run(a, launcher, ng, ca, case, work)
                    if i:
                        curl_runs.append(net_metrics(case, ru))
            results[case.name] = (rf_runs, curl_runs)
    finally:
        ng.stop()
        for case in cases:
            for out in case.kept:
                shutil.rmtree(out, ignore_errors=True)
    ciphers = ng.ciphers()
    for case in cases:
        rf_runs, curl_runs = results[case.name]
        for metric, unit, direction in NET_METRICS:
            record("net", case.name, metric, unit, direction, [r[metric] for r in rf_runs],
                   "curl" if curl_runs else None, [r[metric] for r in curl_runs])
        for stage in COPY_STAGES:
            metric = "copied_%s_per_byte" % stage
            # A stage that copied nothing is left out: results are above 0.
            if rf_runs and all(r.get(metric, 0) > 0 for r in rf_runs):
                record("net", case.name, metric, "x", "lower", [r[metric] for r in rf_runs])
    if selected(a, large):  # the large case's CPU per GB against the cipher's
        crypto_bound(a, large, results[large][0], ciphers)


def crypto_bound(a, large_case, rf_runs, ciphers):
    """openssl speed for aes-128-gcm and for what ringfill negotiated; the
    large case's CPU per GB over the negotiated cipher's (the issue's target)."""
    desc = "; ".join("%s: %s" % kv for kv in sorted(ciphers.items()))
    emit({"env": {"cipher": desc or "not logged"}})
    negotiated = ciphers.get("ringfill", "").split(", ")[0]
    evps = ["aes-128-gcm"]
    neg_evp = evp_of(negotiated) if negotiated else None
    if neg_evp and neg_evp not in evps:
        evps.append(neg_evp)
    seconds = 1
    speeds = {}
    for evp in evps:
        runs = []
        for i in range(a.runs):
            progress("net crypto: openssl speed -evp %s run %d/%d" % (evp, i + 1, a.runs))
            mbps, mode = openssl_speed(evp, seconds)
            runs.append(mbps)
        speeds[evp] = runs
        record("net", "openssl_" + evp, mode + "_mb_per_s", "MB/s", "higher", runs)
    if neg_evp:
        per_gb = 1000.0 / median(speeds[neg_evp])  # CPU seconds per GB of decryption
        record("net", large_case, "cpu_per_gb_vs_cipher", "x", "lower",
               [r["cpu_s_per_gb"] / per_gb for r in rf_runs])


# ---------------------------------------------------------------- e2e --

# Arrays and objects stored as JSON text: ringfill keeps the source's escapes,
# Python writes UTF-8, so they are compared parsed and re-serialised.
JSON_COLUMNS = {"entities_hashtags", "payload"}


def keyed(name, rows, key, columns=None):
    t = {"name": name, "rows": rows, "key": key if isinstance(key, list) else [key],
         "mode": "upsert"}
    if columns:
        t["columns"] = {c: {"path": p, "type": ty} for c, p, ty in columns}
    return t


# The archives: two inferred tables keyed by their ids (issue 7: primary keys
# in upsert mode), both filled from one parse of each document.
ARCHIVE_TABLES = [keyed("tweets", "$.tweets[*]", "id"),
                  keyed("following", "$.following[*]", "accountId")]
# The graph: the same generator with 50 times longer following/followers
# lists (scripts/gen_dataset.py --edge-scale), loaded by issue 6's job file:
# each edge keyed by the document's account and the other account (a UNIQUE
# key of 2 columns, keys in random order), tweets keyed by their id; inserting
# the rows, not downloading them, is the larger part here.
GRAPH_EDGE_SCALE = 50
GRAPH_TABLES = [
    keyed("following", "$.following[*]", ["account_id", "following_id"], [
        ("account_id", "$.account.accountId", "text"),
        ("following_id", "@.accountId", "text")]),
    keyed("followers", "$.followers[*]", ["account_id", "follower_id"], [
        ("account_id", "$.account.accountId", "text"),
        ("follower_id", "@.accountId", "text")]),
    keyed("tweets", "$.tweets[*]", "tweet_id", [
        ("tweet_id", "@.id", "text"), ("account_id", "$.account.accountId", "text"),
        ("full_text", "@.full_text", "text"),
        ("favorite_count", "@.favorite_count", "integer"),
        ("created_at", "@.created_at", "text")]),
]
# The NDJSON events: four declared tables keyed by their ids. The same actor
# and repository come again in many events, so their rows are upserted over
# and over; bench/peer_importer.py creates the same tables.
EVENT_TABLES = [
    keyed("events", "$", "id", [
        ("id", "@.id", "integer"), ("type", "@.type", "text"),
        ("actor_id", "@.actor.id", "integer"), ("repo_id", "@.repo.id", "integer"),
        ("public", "@.public", "boolean"), ("created_at", "@.created_at", "text"),
        ("payload", "@.payload", "json")]),
    keyed("actors", "$.actor", "id", [
        ("id", "@.id", "integer"), ("login", "@.login", "text"),
        ("display_login", "@.display_login", "text"), ("url", "@.url", "text"),
        ("avatar_url", "@.avatar_url", "text")]),
    keyed("repos", "$.repo", "id", [
        ("id", "@.id", "integer"), ("name", "@.name", "text"), ("url", "@.url", "text")]),
    keyed("commits", "$.payload.commits[*]", "sha", [
        ("sha", "@.sha", "text"), ("event_id", "$.id", "integer"),
        ("author_name", "@.author.name", "text"), ("author_email", "@.author.email", "text"),
        ("message", "@.message", "text"), ("distinct", "@.distinct", "boolean")]),
]


class Workload:
    """One e2e case: the files nginx serves, ringfill's tables, and what the
    tables must hold afterwards. shared: tables whose keys come again in
    several documents; which document wrote a row last depends on arrival
    order, so their _job is not compared (every other column is)."""

    def __init__(self, name, case, root, rels, tables, expected, rows_in_documents,
                 ndjson=False, shared=(), files_case=None):
        self.name, self.case, self.root, self.rels = name, case, root, rels
        self.tables, self.expected = tables, expected
        self.rows_in_documents, self.ndjson, self.shared = rows_in_documents, ndjson, shared
        # files_case: also load the same documents from a local directory
        # with the `files` source, under this case name (None: not done).
        self.files_case = files_case
        # Every row the documents hold, in document order, for the C loop
        # (peer_importer.dump_rows; made by e2e_case).
        self.rows_db = None


def generated_archives(a, work, name, count, tables, edge_scale=1):
    """scripts/gen_dataset.py's archives as the workload `name`, its case
    NAME_COUNT, and the same documents from local files as NAME_files_COUNT."""
    data = os.path.join(work, name + "-data")
    progress("e2e: generating %d archives (scripts/gen_dataset.py, seed 1, edge scale %d)"
             % (count, edge_scale))
    run_tool([sys.executable, a.gen_dataset, "--out", data, "--count", str(count),
              "--seed", "1", "--edge-scale", str(edge_scale)], timeout=600)
    with open(os.path.join(data, "manifest.json"), encoding="utf-8") as f:
        m = json.load(f)
    expected = {t["name"]: m["totals"][t["name"]] for t in tables}
    case, files_case = archive_cases(name, count)
    return Workload(name, case, data, [f["path"] for f in m["files"]], tables, expected,
                    sum(expected.values()), files_case=files_case)


def archive_cases(name, count):
    """An archive workload's HTTPS case and files case."""
    return "%s_%d" % (name, count), "%s_files_%d" % (name, count)


# Accounts of the archive workloads: (full, --quick).
ARCHIVE_COUNTS = {"archives": (4000, 300), "graph": (1000, 40)}


def archive_count(a, name):
    full, quick = ARCHIVE_COUNTS[name]
    return quick if a.quick else full


def archives_workload(a, work):
    return generated_archives(a, work, "archives", archive_count(a, "archives"), ARCHIVE_TABLES)


def graph_workload(a, work):
    return generated_archives(a, work, "graph", archive_count(a, "graph"), GRAPH_TABLES,
                              GRAPH_EDGE_SCALE)


def events_size(a):
    """The events workload's pages and MB per page."""
    return a.ndjson_pages or (2 if a.quick else 3), a.ndjson_page_mb or (2 if a.quick else 20)


def events_case(a):
    return "events_%dx%gMB" % events_size(a)


def workload_cases(a, make):
    """The e2e case names a workload maker's workload will have, before it
    is made (--case)."""
    if make is events_workload:
        return (events_case(a),)
    name = "archives" if make is archives_workload else "graph"
    return archive_cases(name, archive_count(a, name))


def events_workload(a, work):
    pages, page_mb = events_size(a)
    data = os.path.join(work, "events-data")
    progress("e2e: generating %d NDJSON pages of %g MB (bench/gen_events.py, seed 1)"
             % (pages, page_mb))
    run_tool([sys.executable, os.path.join(HERE, "gen_events.py"), "--out", data, "--pages",
              str(pages), "--page-mb", str(page_mb), "--seed", "1"], timeout=1800)
    with open(os.path.join(data, "manifest.json"), encoding="utf-8") as f:
        m = json.load(f)
    expected = {t["name"]: m["totals"][t["name"]] for t in EVENT_TABLES}
    return Workload("events", events_case(a), data,
                    [f["path"] for f in m["files"]], EVENT_TABLES, expected,
                    m["rows_in_documents"], ndjson=True, shared=("actors", "repos"))


def canonical_json(v):
    """JSON text as Python writes it (compact, UTF-8). Only text with a \\u
    escape can differ between ringfill (which keeps the source's escapes) and
    Python, so only that is parsed; any other difference still fails."""
    if isinstance(v, str) and "\\u" in v:
        return json.dumps(json.loads(v), ensure_ascii=False, separators=(",", ":"))
    return v


def quote(name):
    return '"%s"' % name.replace('"', '""')


def table_select(con, schema, table, url_expr, join):
    """SELECT of every row of schema.table as (document URL, then each
    column's value and typeof, in name order), JSON text canonical."""
    cols = [r[1] for r in con.execute("PRAGMA %s.table_info(%s)" % (schema, quote(table)))]
    if not cols:
        raise BenchError("%s: no table %s" % ("ringfill" if schema == "main" else "importer",
                                               table))
    out = [url_expr]
    for c in sorted(c for c in cols if c != "_job"):
        v = "r." + quote(c)
        out += ["canonical_json(%s)" % v if c in JSON_COLUMNS else v, "typeof(%s)" % v]
    return "SELECT %s FROM %s.%s AS r %s" % (", ".join(out), schema, quote(table), join), \
        sorted(cols)


def verify_e2e(rf_db, py_db, urls, expected, shared=(), rf_urls=None):
    """ringfill's and the importer's databases hold the same rows, as many as
    expected ({table: rows}): every table's rows, as (document URL, each
    column's value and type), are the same multiset on both sides (_job
    becomes the URL of its document; for the shared tables it is left out).
    Returns the rows compared. Done in SQLite, which compares 300k rows in
    seconds where Python took half a minute. rf_urls ({ringfill's job url:
    served URL}) maps the jobs of a run that did not download, e.g. the
    `file:` jobs of the files source; a job it does not map compares as NULL
    and so differs."""
    con = sqlite3.connect("file:%s?mode=ro" % rf_db, uri=True)
    try:
        con.execute("ATTACH ? AS py", ("file:%s?mode=ro" % py_db,))
        states = dict(con.execute("SELECT state, count(*) FROM _ringfill_jobs GROUP BY state"))
        if set(states) != {"done"}:
            raise BenchError("ringfill left jobs not done: %s" % states)
        con.create_function("canonical_json", 1, canonical_json, deterministic=True)
        con.execute("CREATE TEMP TABLE py_url (j INTEGER PRIMARY KEY, url TEXT)")
        con.executemany("INSERT INTO py_url VALUES (?, ?)", enumerate(urls, 1))
        rf_url, rf_join = "j.url", "LEFT JOIN main._ringfill_jobs AS j ON j.id = r._job"
        if rf_urls is not None:
            con.execute("CREATE TEMP TABLE rf_url (url TEXT PRIMARY KEY, served TEXT)")
            con.executemany("INSERT INTO rf_url VALUES (?, ?)", rf_urls.items())
            rf_url = "m.served"
            rf_join += " LEFT JOIN temp.rf_url AS m ON m.url = j.url"
        total = 0
        for table, want in expected.items():
            same_job = table not in shared
            a, a_cols = table_select(con, "main", table, rf_url if same_job else "''", rf_join)
            b, b_cols = table_select(con, "py", table, "u.url" if same_job else "''",
                                     "LEFT JOIN temp.py_url AS u ON u.j = r._job")
            if a_cols != b_cols:
                raise BenchError("e2e %s: ringfill has columns %s, the importer %s"
                                 % (table, a_cols, b_cols))
            na = con.execute("SELECT count(*) FROM (%s)" % a).fetchone()[0]
            nb = con.execute("SELECT count(*) FROM (%s)" % b).fetchone()[0]
            if na != want or nb != want:
                raise BenchError("e2e %s: ringfill has %d rows, the importer %d, the generator "
                                 "wrote %d" % (table, na, nb, want))
            # Each distinct row with how often it occurs: equal multisets.
            ga = "SELECT *, count(*) FROM (%s) GROUP BY %s" % (
                a, ", ".join(str(i + 1) for i in range(2 * len(a_cols) - 1)))
            gb = "SELECT *, count(*) FROM (%s) GROUP BY %s" % (
                b, ", ".join(str(i + 1) for i in range(2 * len(b_cols) - 1)))
            only_a = con.execute("%s EXCEPT %s LIMIT 1" % (ga, gb)).fetchone()
            only_b = con.execute("%s EXCEPT %s LIMIT 1" % (gb, ga)).fetchone()
            if only_a or only_b:
                raise BenchError("e2e %s: the databases differ; a row only ringfill has:\n %.600r"
                                 "\n a row only the importer has:\n %.600r"
                                 % (table, only_a, only_b))
            total += want
        return total
    finally:
        con.close()


def ringfill_e2e_run(a, launcher, ca, source, wl, work, what="job file"):
    """One `ringfill run` of a job file with this source ({"urls": FILE} or
    {"files": DIR}): every table filled from one parse of each document, the
    way a real backfill would use it (docs/jobfile.md)."""
    out = tempfile.mkdtemp(prefix="rf-", dir=work)
    try:
        db = os.path.join(out, "rf.db")
        job = os.path.join(out, "e2e.json")
        with open(job, "w", encoding="utf-8") as f:
            json.dump({"source": source, "db": db,
                       "http": {"cacert": ca}, "tables": wl.tables}, f)
        args = [a.ringfill, "run", job, "--quiet"] + (["--ndjson"] if wl.ndjson else [])
        ru = launcher.run(args, "ringfill (e2e %s %s)" % (wl.name, what))
        return ru, out, db
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise


def insert_loop_run(a, rf_db, work, expected_rows, rows_db=None):
    """The minimal C loop inserting into a fresh database, with the schema and
    key indexes of ringfill's, the rows ringfill stored (rows_db None) or
    every row the documents hold in document order (rows_db: peer_importer's
    dump_rows); its seconds, its final close included (bench/peer_insert_loop.c)."""
    out = tempfile.mkdtemp(prefix="loop-", dir=work)
    try:
        p = subprocess.run([a.insert_loop, rf_db, os.path.join(out, "loop.db")] +
                           ([rows_db] if rows_db else []),
                           capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S,
                           check=False)
        if p.returncode != 0:
            raise BenchError("rf_peer_insert_loop exited %d: %s" % (p.returncode,
                                                                    p.stderr[-1500:]))
        res = json.loads(p.stdout)
        if res["rows"] != expected_rows:
            raise BenchError("rf_peer_insert_loop inserted %d rows, %s %d"
                             % (res["rows"], "the documents hold" if rows_db
                                else "ringfill stored", expected_rows))
        return res["insert_s"] + res["close_s"]
    finally:
        shutil.rmtree(out, ignore_errors=True)


def importer_e2e_run(a, launcher, ca, urls_path, wl, work):
    out = tempfile.mkdtemp(prefix="py-", dir=work)
    try:
        db = os.path.join(out, "py.db")
        ru = launcher.run([sys.executable, os.path.join(HERE, "peer_importer.py"),
                           "--workload", wl.name, "--urls", urls_path, "--db", db,
                           "--cacert", ca], "peer_importer.py (%s)" % wl.name)
        return ru, out, db
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise


E2E_METRICS = [("seconds", "s", "lower"), ("rows_per_s", "rows/s", "higher"),
               ("cpu_s", "s", "lower"), ("peak_rss_mb", "MiB", "lower"),
               ("rows_verified", "rows", "higher")]


E2E_CURL_PARALLEL = 64  # ringfill's default --per-host, which its e2e runs use


def curl_download_run(launcher, ca, urls, wl, work):
    """curl --parallel fetching every document of the workload to /dev/null,
    nothing parsed or stored: how long downloading alone takes here, with the
    server on the same CPUs (the e2e suite's curl_download_s)."""
    out = tempfile.mkdtemp(prefix="curl-", dir=work)
    try:
        cfg = os.path.join(out, "curl.cfg")
        with open(cfg, "w", encoding="utf-8") as f:
            f.write('parallel\nparallel-max = %d\ncacert = "%s"\nsilent\nshow-error\nfail\n'
                    % (E2E_CURL_PARALLEL, ca))
            for u in urls:
                f.write('url = "%s"\noutput = "/dev/null"\n' % u)
        return launcher.run([CURL, "-K", cfg], "curl (e2e %s)" % wl.name)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def local_copy(wl, work):
    """The served documents written to one local directory, untimed, for the
    files case: each file byte for byte, named by its path under the web root
    with "/" as "_" (the directory source reads no subdirectories). Returns
    (directory, {the `file:` url ringfill gives its job: the served rel})."""
    d = os.path.realpath(os.path.join(work, wl.name + "-files"))
    os.makedirs(d)
    rf_rel = {}
    for rel in wl.rels:
        path = os.path.join(d, rel.replace("/", "_"))
        shutil.copyfile(os.path.join(wl.root, rel), path)
        rf_rel["file:" + path] = rel
    return d, rf_rel


def e2e_round(a, launcher, ca, urls, urls_path, wl, work, tag, ng, files=None):
    """ringfill, the C loop on ringfill's rows, the importer, and the check;
    returns {"rf": ringfill rusage, "loop_s": loop seconds, "py": importer
    rusage, "verified": rows}, each rusage with "server_cpu_s", the CPU
    seconds nginx (ng) used meanwhile. With files ((directory, {file url: served
    URL}) from local_copy), also ringfill loading that directory with the
    files source and the C loop on its rows ("files", "files_loop_s"), that
    database checked against the importer's like the other one."""
    res = {}
    dirs = []
    try:
        progress("e2e %s: ringfill %s" % (wl.case, tag))
        server0 = ng.cpu_s()
        res["rf"], rf_dir, rf_db = ringfill_e2e_run(
            a, launcher, ca, {"urls": os.path.abspath(urls_path)}, wl, work)
        res["rf"]["server_cpu_s"] = ng.cpu_s() - server0
        dirs.append(rf_dir)
        progress("e2e %s: C insert loop %s" % (wl.case, tag))
        res["loop_s"] = insert_loop_run(a, rf_db, work, wl.rows_in_documents, wl.rows_db)
        res["stored_loop_s"] = insert_loop_run(a, rf_db, work, sum(wl.expected.values()))
        if files:
            progress("e2e %s: ringfill from local files %s" % (wl.files_case, tag))
            res["files"], files_dir, files_db = ringfill_e2e_run(
                a, launcher, ca, {"files": files[0]}, wl, work, "files job file")
            dirs.append(files_dir)
            progress("e2e %s: C insert loop %s" % (wl.files_case, tag))
            res["files_loop_s"] = insert_loop_run(a, files_db, work, wl.rows_in_documents,
                                                  wl.rows_db)
            res["files_stored_loop_s"] = insert_loop_run(a, files_db, work,
                                                         sum(wl.expected.values()))
        if CURL:
            progress("e2e %s: curl, downloading only %s" % (wl.case, tag))
            res["curl"] = curl_download_run(launcher, ca, urls, wl, work)
        progress("e2e %s: python importer %s" % (wl.case, tag))
        server0 = ng.cpu_s()
        res["py"], py_dir, py_db = importer_e2e_run(a, launcher, ca, urls_path, wl, work)
        res["py"]["server_cpu_s"] = ng.cpu_s() - server0
        dirs.append(py_dir)
        progress("e2e %s: comparing the databases (%s)" % (wl.case, tag))
        res["verified"] = verify_e2e(rf_db, py_db, urls, wl.expected, wl.shared)
        if files:
            progress("e2e %s: comparing the databases (%s)" % (wl.files_case, tag))
            res["files_verified"] = verify_e2e(files_db, py_db, urls, wl.expected, wl.shared,
                                               rf_urls=files[1])
    finally:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    return res


def e2e_runs(wl, ru, verified):
    return {"seconds": ru["wall_s"], "rows_per_s": wl.rows_in_documents / ru["wall_s"],
            "cpu_s": ru["cpu_s"], "peak_rss_mb": ru["maxrss_kb"] / 1024.0,
            "rows_verified": float(verified)}


def e2e_case(a, wl, work):
    ca, cert, key = make_pki(os.path.join(work, "pki-" + wl.name))
    launcher = Launcher(a.exec_helper, work)
    ng = Nginx(wl.root, cert, key, os.path.join(work, "nginx-" + wl.name))
    rf_runs, py_runs, loop_runs, files_runs, files_loop_runs = [], [], [], [], []
    stored_loop_runs, files_stored_loop_runs = [], []
    server_runs, py_server_runs, curl_runs = [], [], []
    try:
        ng.start()
        urls = [ng.url(rel) for rel in wl.rels]
        urls_path = os.path.join(work, wl.name + ".urls")
        with open(urls_path, "w", encoding="utf-8") as f:
            f.writelines(u + "\n" for u in urls)
        files = None
        if wl.files_case and selected(a, wl.files_case):
            progress("e2e %s: writing the %d documents to a local directory"
                     % (wl.files_case, len(wl.rels)))
            files_dir, rf_rel = local_copy(wl, work)
            files = (files_dir, {u: ng.url(rel) for u, rel in rf_rel.items()})
        progress("e2e %s: every row of the documents, in order, for the C loop" % wl.case)
        wl.rows_db = os.path.join(work, wl.name + "-rows.db")
        n = peer_importer.dump_rows(wl.name, [os.path.join(wl.root, rel) for rel in wl.rels],
                                    wl.rows_db)
        if n != wl.rows_in_documents:
            raise BenchError("e2e %s: the documents hold %d rows, the generator counted %d"
                             % (wl.case, n, wl.rows_in_documents))
        for i in range(a.runs + 1):
            tag = "warm-up" if i == 0 else "run %d/%d" % (i, a.runs)
            res = e2e_round(a, launcher, ca, urls, urls_path, wl, work, tag, ng, files)
            if i:
                loop_runs.append(res["loop_s"])
                stored_loop_runs.append(res["stored_loop_s"])
                rf_runs.append(e2e_runs(wl, res["rf"], res["verified"]))
                py_runs.append(e2e_runs(wl, res["py"], res["verified"]))
                server_runs.append(res["rf"]["server_cpu_s"])
                if "curl" in res:
                    curl_runs.append(res["curl"]["wall_s"])
                py_server_runs.append(res["py"]["server_cpu_s"])
                if files:
                    files_loop_runs.append(res["files_loop_s"])
                    files_stored_loop_runs.append(res["files_stored_loop_s"])
                    files_runs.append(e2e_runs(wl, res["files"], res["files_verified"]))
    finally:
        ng.stop()
    for metric, unit, direction in E2E_METRICS:
        record("e2e", wl.case, metric, unit, direction, [r[metric] for r in rf_runs],
               "python-importer", [r[metric] for r in py_runs])
    # What serving took: nginx runs on the same CPUs as the client, so
    # (server_cpu_s + the client's least CPU) / CPUs bounds the wall time
    # any client could reach on this machine (docs/benchmarks.md, e2e).
    record("e2e", wl.case, "server_cpu_s", "s", "lower", server_runs,
           "python-importer", py_server_runs)
    if curl_runs:
        # Downloading alone, against the loop's inserting alone: a ratio below
        # seconds_vs_insert_loop's target says that no client, however fast
        # it parses and writes, can meet that target on this machine.
        record("e2e", wl.case, "curl_download_s", "s", "lower", curl_runs,
               "sqlite-c-insert-loop", loop_runs, subject="curl")
    # The issues' naive loop: ringfill's whole backfill against only inserting
    # the same rows, those the documents hold in arrival order; the ratio is
    # the loop's seconds over ringfill's (target >= 1/1.15). A reference, not
    # a floor: ringfill's writer sorts and dedups each transaction's keyed rows.
    record("e2e", wl.case, "seconds_vs_insert_loop", "s", "lower",
           [r["seconds"] for r in rf_runs], "sqlite-c-insert-loop", loop_runs)
    # The tighter reference, shown beside it: only the rows ringfill stored,
    # each key once (seconds_vs_insert_loop's loop until 2026-12-07, then
    # without the close; docs/benchmarks.md).
    record("e2e", wl.case, "seconds_vs_stored_loop", "s", "lower",
           [r["seconds"] for r in rf_runs], "sqlite-c-stored-rows-loop", stored_loop_runs)
    if files:
        # The same documents from local files: no network, so only the C loop
        # is its peer (issue 6's target: ratio >= 1/1.1). The importer, which
        # downloads, is not compared; its database is what the rows are
        # checked against.
        for metric, unit, direction in E2E_METRICS:
            record("e2e", wl.files_case, metric, unit, direction,
                   [r[metric] for r in files_runs])
        record("e2e", wl.files_case, "seconds_vs_insert_loop", "s", "lower",
               [r["seconds"] for r in files_runs], "sqlite-c-insert-loop", files_loop_runs)
        record("e2e", wl.files_case, "seconds_vs_stored_loop", "s", "lower",
               [r["seconds"] for r in files_runs], "sqlite-c-stored-rows-loop",
               files_stored_loop_runs)


def suite_e2e(a, work):
    if not CURL:
        note("curl not found: the e2e suite runs without curl_download_s")
    for make in (archives_workload, graph_workload, events_workload):
        # Made only when --case selects its HTTPS case or its files case; the
        # C side drops the records of the one not selected.
        if not selected(a, *workload_cases(a, make)):
            continue
        wl = make(a, work)
        try:
            e2e_case(a, wl, work)
        finally:
            shutil.rmtree(wl.root, ignore_errors=True)


def peer_versions():
    """The versions of the peers and the server, for the environment line:
    nginx, curl (net's peer) and this Python (e2e's importer)."""
    out = []
    for cmd, name in (([NGINX, "-v"], "nginx"), ([CURL or "curl", "--version"], "curl")):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            text = (p.stdout + p.stderr).strip().splitlines()
            m = re.search(r"%s[ /]([0-9][0-9A-Za-z.\-]*)" % name, text[0] if text else "")
            out.append("%s %s" % (name, m.group(1) if m else "unknown"))
        except (OSError, subprocess.TimeoutExpired):
            out.append("%s not found" % name)
    out.append("Python %s" % platform.python_version())
    return "; ".join(out)


# ---------------------------------------------------------------- main --

def main():
    ap = argparse.ArgumentParser(description="ringfill bench net/e2e driver")
    ap.add_argument("suite", choices=["net", "e2e"])
    ap.add_argument("--ringfill", required=True)
    ap.add_argument("--exec-helper", required=True)
    ap.add_argument("--gen-dataset", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--insert-loop", default=None, help="rf_peer_insert_loop (e2e)")
    ap.add_argument("--ndjson-pages", type=int, default=0, help="e2e: NDJSON pages")
    ap.add_argument("--ndjson-page-mb", type=float, default=0, help="e2e: MB per page")
    ap.add_argument("--tmpdir", default=None)
    ap.add_argument("--case", action="append", default=[],
                    help="run only the cases matching this glob (repeatable)")
    a = ap.parse_args()
    tools = [(NGINX, "nginx (apt-get install nginx-light)"), (OPENSSL, "openssl"),
             (a.exec_helper, "rf_bench_exec (built with ringfill)")]
    if a.suite == "e2e":
        tools.append((a.insert_loop or "", "rf_peer_insert_loop (built with ringfill)"))
    for tool, what in tools:
        if not os.access(tool, os.X_OK):
            emit({"error": "%s not found at %s; nothing was measured" % (what, tool)})
            return 1
    work = tempfile.mkdtemp(prefix="netbench-%s-" % a.suite, dir=a.tmpdir)
    # SIGTERM (the harness stopping us) unwinds through the finally blocks,
    # so nginx is stopped and the temp dir removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        emit({"env": {"peers": peer_versions()}})
        (suite_net if a.suite == "net" else suite_e2e)(a, work)
        return 0
    except (BenchError, subprocess.TimeoutExpired, OSError, sqlite3.Error) as e:
        emit({"error": "%s: %s" % (a.suite, e)})
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
