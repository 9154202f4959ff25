#!/usr/bin/env python3
"""tests/integration/test_recv_path.py: the receive path (docs/engine.md,
"Receiving"): provided buffer rings with one multishot recv per connection,
a ring so small that it runs dry all the time (ENOBUFS: the recv is armed
again later, the connection is never dropped, no attempt is wasted), and
the fallback without a ring (a buffer per connection), and --direct's
writes from registered buffers, also when RLIMIT_MEMLOCK refuses some.
Against a real nginx
over TLS; every body is checked byte for byte (--download-only --raw) or
row for row (parsed), and every job must be done in its first attempt.

$RINGFILL_RECV_BUFS sets the ring's size (0: no ring). ringfill writes its
receive counters to $RINGFILL_COPY_STATS, and the test also checks that the
path it meant to run did run."""

import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import describe, run_ringfill  # noqa: E402

SANITIZED = bool(os.environ.get("RINGFILL_SANITIZED"))
FILES = 24 if SANITIZED else 40
ARCHIVES = 40 if SANITIZED else 120


def setUpModule():
    harness.skip_unless_ringfill()


class RecvPath(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rf-recv-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        root = os.path.join(cls.tmp, "www")
        # Bodies from 0 bytes to 3 MB, random bytes: a record boundary, a
        # buffer boundary and a chunk boundary fall everywhere.
        rng = random.Random(4)
        os.makedirs(os.path.join(root, "bin"))
        sizes = [0, 1, 511, 512, 4095, 4096, 4097, 16383, 16384, 16385, 262143, 262144,
                 262145, 3 * 1024 * 1024, 3 * 1024 * 1024 + 100]
        sizes += [rng.randint(1, 2 * 1024 * 1024) for _ in range(FILES - len(sizes))]
        cls.bins = {}
        for i, n in enumerate(sizes):
            body = rng.randbytes(n)
            rel = "bin/f%03d.dat" % i
            with open(os.path.join(root, rel), "wb") as f:
                f.write(body)
            cls.bins[rel] = (n, hashlib.sha256(body).hexdigest())
        cls.manifest = harness.gen_dataset(os.path.join(root, "ar"), ARCHIVES, 11)
        cls.pki = harness.make_pki(os.path.join(cls.tmp, "pki"))
        cls.nginx = harness.Nginx(root, cls.pki, work=os.path.join(cls.tmp, "nginx"))
        cls.nginx.start()
        cls.addClassCleanup(cls.nginx.stop)

    def workdir(self):
        return tempfile.mkdtemp(dir=self.tmp)

    def run_ok(self, cwd, args, bufs, prefix=(), chunks=None):
        stats = os.path.join(cwd, "copy-stats.json")
        env = {"RINGFILL_COPY_STATS": stats}
        if chunks is not None:
            env["RINGFILL_STREAM_CHUNKS"] = str(chunks)
        if bufs is not None:
            env["RINGFILL_RECV_BUFS"] = str(bufs)
        proc = run_ringfill(["run"] + args + ["--cacert", self.pki.ca_cert, "--quiet",
                                              "--retries", "3", "--retry-base", "0.05",
                                              "--retry-max", "0.1"], cwd=cwd, env=env,
                            prefix=prefix)
        self.assertEqual(proc.returncode, 0, describe(proc))
        self.assertTrue(os.path.exists(stats), "no $RINGFILL_COPY_STATS written" + describe(proc))
        with open(stats, encoding="ascii") as f:
            return json.load(f)

    def check_jobs_first_try(self, db, count):
        jobs = harness.jobs(db)
        self.assertEqual(len(jobs), count)
        for j in jobs:
            self.assertEqual(j["state"], "done", j)
            # A dropped connection would have been retried: every job must
            # have needed exactly one attempt.
            self.assertEqual(j["attempts"], 1, j)

    def download(self, bufs, concurrency=16, extra=(), prefix=()):
        cwd = self.workdir()
        urls = harness.write_lines(os.path.join(cwd, "urls.txt"),
                                   [self.nginx.url(rel) for rel in sorted(self.bins)])
        db = os.path.join(cwd, "rf.db")
        stats = self.run_ok(cwd, ["--urls", urls, "--db", db, "--raw", "raw", "--download-only",
                                  "--concurrency", str(concurrency), "--per-host",
                                  str(concurrency)] + list(extra), bufs, prefix)
        self.check_jobs_first_try(db, len(self.bins))
        for j in harness.jobs(db):
            rel = j["url"].split("/", 3)[3]
            n, digest = self.bins[rel]
            with open(os.path.join(cwd, j["raw_path"]), "rb") as f:
                body = f.read()
            self.assertEqual(len(body), n, rel)
            self.assertEqual(hashlib.sha256(body).hexdigest(), digest, rel)
            self.assertEqual(j["sha256"], digest, rel)
        for dirpath, _, names in os.walk(os.path.join(cwd, "raw")):
            self.assertEqual([n for n in names if n.endswith(".part")], [], dirpath)
        return stats

    def test_default_ring_multishot(self):
        stats = self.download(None)
        self.assertGreaterEqual(stats["recv_bufs"], 64, stats)
        self.assertTrue(stats["multishot"], stats)
        self.assertEqual(stats["body_bytes"], sum(n for n, _ in self.bins.values()))
        # Decrypted straight into the chunks that are written: only the
        # body bytes that share a TLS record with the head are copied.
        self.assertLess(stats["plain"], 16 * 1024 * len(self.bins), stats)
        self.assertEqual(stats["fixed_writes"], 0, stats)  # only with --direct

    def test_tiny_ring_runs_dry(self):
        # 2 buffers for 16 connections: nearly every recv ends on ENOBUFS.
        stats = self.download(2)
        self.assertEqual(stats["recv_bufs"], 2, stats)
        self.assertGreater(stats["nobufs"], 0, stats)

    def test_tiny_ring_parsed_rows(self):
        cwd = self.workdir()
        files = self.manifest["files"]
        urls = harness.write_lines(os.path.join(cwd, "urls.txt"),
                                   [self.nginx.url("ar/" + f["path"]) for f in files])
        db = os.path.join(cwd, "rf.db")
        stats = self.run_ok(cwd, ["--urls", urls, "--db", db, "--rows", "$.following[*]",
                                  "--table", "following", "--concurrency", "32",
                                  "--per-host", "32"], 4)
        self.check_jobs_first_try(db, len(files))
        by_url = {self.nginx.url("ar/" + f["path"]): f for f in files}
        for j in harness.jobs(db):
            self.assertEqual(j["sha256"], by_url[j["url"]]["sha256"], j)
        self.assertEqual(harness.count_rows(db, "following"),
                         self.manifest["totals"]["following"])
        self.assertGreater(stats["nobufs"], 0, stats)

    def test_more_streams_than_chunks(self):
        # 300 bodies in flight and fewer chunks in the pool: the bodies that
        # start when it is empty wait (their first bytes in the connection's
        # head buffer) instead of taking a chunk past the pool's size. The
        # first pass shrinks the pool to 16 chunks ($RINGFILL_STREAM_CHUNKS),
        # so that bodies surely start while it is empty: with the pool's 192
        # a fast disk could hand chunks back before any body found it empty
        # (no stash, and a failed run, seen once in about 10 loaded runs).
        cwd = self.workdir()
        root = os.path.join(self.tmp, "www", "many")
        os.makedirs(root, exist_ok=True)
        rng = random.Random(7)
        want = {}
        for i in range(300):
            body = rng.randbytes(rng.randint(300 * 1024, 600 * 1024))
            with open(os.path.join(root, "m%03d.bin" % i), "wb") as f:
                f.write(body)
            want[self.nginx.url("many/m%03d.bin" % i)] = hashlib.sha256(body).hexdigest()
        urls = harness.write_lines(os.path.join(cwd, "urls.txt"), sorted(want))
        # First with a ring of 512 buffers (the default is 256 since the
        # 512-connection RSS work: with 300 connections on 256 buffers the
        # first bytes come later and no body start was stashed), then with
        # 64: a starved connection gives its buffers back, or the
        # connections that hold the chunks could never fill them (every
        # buffer on a starved connection: no progress).
        for bufs in (512, 64):
            db = os.path.join(cwd, "rf-%s.db" % bufs)
            raw = "raw-%s" % bufs
            stats = self.run_ok(cwd, ["--urls", urls, "--db", db, "--raw", raw,
                                      "--download-only", "--concurrency", "300",
                                      "--per-host", "300"], bufs,
                                chunks=16 if bufs == 512 else None)
            self.check_jobs_first_try(db, len(want))
            for j in harness.jobs(db):
                with open(os.path.join(cwd, j["raw_path"]), "rb") as f:
                    self.assertEqual(hashlib.sha256(f.read()).hexdigest(), want[j["url"]], j)
            if bufs == 512:
                self.assertGreater(stats["stashes"], 0, stats)

    def test_direct(self):
        # O_DIRECT writes of whole alignment units, the last bytes of each
        # file through a second descriptor without O_DIRECT: every size
        # around 512, 4096, a chunk (256 KiB) and a TLS record.
        for bufs, conc in ((None, 16), (2, 4)):
            stats = self.download(bufs, concurrency=conc, extra=["--direct"])
            # every chunk came from the registered buffers (write_fixed)
            self.assertGreaterEqual(stats["fixed_writes"], len(self.bins), stats)

    def test_direct_when_memlock_refuses_buffers(self):
        # Without CAP_IPC_LOCK, registered buffers count against
        # RLIMIT_MEMLOCK: at 1 MiB the kernel takes the ring and a few chunks,
        # then refuses; the refused chunks are written without write_fixed
        # and the run is complete all the same.
        if os.geteuid() != 0 or not (shutil.which("setpriv") and shutil.which("prlimit")):
            self.skipTest("needs root, setpriv and prlimit to drop CAP_IPC_LOCK")
        limit = str(1 << 20)
        prefix = ["setpriv", "--bounding-set=-ipc_lock", "--inh-caps=-ipc_lock",
                  "prlimit", "--memlock=%s:%s" % (limit, limit)]
        # The kernel counts pinned pages per user, across processes: another
        # process of ours holding some (a `perf record` does) can leave too
        # little for the ring itself, which is not what this test is about.
        probe = run_ringfill(["run", "--urls", os.devnull, "--db",
                              os.path.join(self.workdir(), "probe.db"), "--quiet"], prefix=prefix)
        if probe.returncode == 3 and "io_uring: Cannot allocate memory" in probe.stderr:
            self.skipTest("RLIMIT_MEMLOCK is used up by other processes of this user")
        self.assertEqual(probe.returncode, 0, describe(probe))
        self.download(None, extra=["--direct"], prefix=prefix)

    def test_direct_needs_download_only(self):
        cwd = self.workdir()
        urls = harness.write_lines(os.path.join(cwd, "urls.txt"), [self.nginx.url("bin/f001.dat")])
        proc = run_ringfill(["run", "--urls", urls, "--db", os.path.join(cwd, "rf.db"), "--raw",
                             "raw", "--direct", "--cacert", self.pki.ca_cert, "--quiet"], cwd=cwd)
        self.assertEqual(proc.returncode, 2, describe(proc))
        self.assertIn("--direct needs --download-only", proc.stderr)

    def test_without_ring(self):
        stats = self.download(0)
        self.assertEqual(stats["recv_bufs"], 0, stats)
        self.assertEqual(stats["nobufs"], 0, stats)


if __name__ == "__main__":
    harness.main_or_skip(need_nginx=True)
