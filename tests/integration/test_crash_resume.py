#!/usr/bin/env python3
"""Exactly once across crashes (DESIGN §4, issue 5): `kill -9` at seeded
random points during a backfill, then the same command again, gives the same
tables as an uninterrupted run: no lost row, no duplicate, every done job's
raw file complete (its sha256) and no done job without its file, no `.part`
file left behind. Two workloads: 300 documents from nginx with many rows each,
and a large NDJSON stream.

Kill points are drawn uniformly over the uninterrupted run's length, measured
first on this machine (so they land inside the run under ASan too); the seed
and the point are printed with every failure. RINGFILL_CRASH_TRIALS (default
20) and RINGFILL_CRASH_SEED change the trials.

Needs $RINGFILL (the binary; meson sets it) and nginx; exits 77 without them.
Run alone: RINGFILL=build/engine/ringfill python3 tests/integration/test_crash_resume.py
"""

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import describe, run_ringfill  # noqa: E402

TRIALS = int(os.environ.get("RINGFILL_CRASH_TRIALS", "20"))
NDJSON_TRIALS = max(3, TRIALS // 4)
SEED = int(os.environ.get("RINGFILL_CRASH_SEED", "20240605"))
DOCS = 300
NDJSON_LINES = 150000
WAIT_S = 120.0


def setUpModule():
    harness.skip_unless_ringfill()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def table_rows(db, table):
    """Every row (with _job: job ids are stable for one source), sorted."""
    with harness.open_db(db) as con:
        cols = sorted(r[1] for r in con.execute('PRAGMA table_info("%s")' % table))
        sel = ", ".join('"%s"' % c.replace('"', '""') for c in cols)
        rows = sorted(tuple(repr(v) for v in r)
                      for r in con.execute('SELECT %s FROM "%s"' % (sel, table)))
    return cols, rows


def job_outcomes(db):
    with harness.open_db(db) as con:
        return [tuple(r) for r in con.execute(
            "SELECT id, key, state, bytes, sha256 FROM _ringfill_jobs ORDER BY id")]


def write_ndjson(path, lines, seed):
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "δέλτα", "東京", "emoji 🚀", 'quote "q"', "back\\slash"]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(lines):
            rec = {"id": i, "name": rng.choice(words) + str(rng.randrange(10**6)),
                   "score": round(rng.uniform(-1e6, 1e6), 3), "ok": rng.random() < 0.5,
                   "tags": rng.sample(words, rng.randrange(4)),
                   "user": {"id": rng.randrange(10**12), "lang": rng.choice(["en", "ja"])}}
            if i % 97 == 0:
                rec["late_key"] = "only on some lines"
            f.write(json.dumps(rec, ensure_ascii=(i % 3 == 0)) + "\n")


class CrashResume(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rf-crash-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.data = os.path.join(cls.tmp, "data")
        cls.manifest = harness.gen_dataset(cls.data, DOCS, 33)
        os.makedirs(os.path.join(cls.data, "streams"))
        write_ndjson(os.path.join(cls.data, "streams", "big.ndjson"), NDJSON_LINES, 5)
        for i in range(3):
            write_ndjson(os.path.join(cls.data, "streams", "small%d.ndjson" % i), 500, 6 + i)
        cls.pki = harness.make_pki(os.path.join(cls.tmp, "pki"))
        cls.ng = harness.Nginx(cls.data, cls.pki).start()
        cls.addClassCleanup(cls.ng.stop)

    def command(self, cwd, urls, rows, table, extra=()):
        path = harness.write_lines(os.path.join(cwd, "urls.txt"), urls)
        return ["run", "--urls", path, "--db", os.path.join(cwd, "rf.db"), "--rows", rows,
                "--table", table, "--raw", "raw", "--cacert", self.pki.ca_cert, "--quiet",
                "--retry-base", "0.05", "--retry-max", "0.5"] + list(extra)

    def reference(self, urls, rows, table, extra):
        cwd = tempfile.mkdtemp(prefix="ref-", dir=self.tmp)
        args = self.command(cwd, urls, rows, table, extra)
        t0 = time.monotonic()
        proc = run_ringfill(args, cwd=cwd)
        length_s = time.monotonic() - t0
        self.assertEqual(proc.returncode, 0, describe(proc))
        db = os.path.join(cwd, "rf.db")
        return table_rows(db, table), job_outcomes(db), length_s

    def check_raw_files(self, cwd, db, what):
        with harness.open_db(db) as con:
            done = list(con.execute(
                "SELECT key, raw_path, sha256, bytes FROM _ringfill_jobs WHERE state='done'"))
        for key, raw_path, sha, size in done:
            self.assertTrue(raw_path, "%s: done job %s has no raw_path" % (what, key))
            path = os.path.join(cwd, raw_path)
            self.assertTrue(os.path.isfile(path), "%s: done job %s lacks %s" % (what, key, path))
            self.assertEqual(os.path.getsize(path), size, "%s: %s" % (what, path))
            self.assertEqual(sha256_file(path), sha, "%s: %s" % (what, path))
        parts = [os.path.join(d, n) for d, _, names in os.walk(os.path.join(cwd, "raw"))
                 for n in names if n.endswith(".part")]
        self.assertEqual(parts, [], "%s: .part files left after a complete run" % what)

    def crash_trials(self, name, urls, rows, table, trials, extra=()):
        (cols, ref_rows), ref_jobs, length_s = self.reference(urls, rows, table, extra)
        rng = random.Random("%s-%d" % (name, SEED))
        mid_run = 0
        for trial in range(trials):
            cwd = tempfile.mkdtemp(prefix="%s-%02d-" % (name, trial), dir=self.tmp)
            args = self.command(cwd, urls, rows, table, extra)
            db = os.path.join(cwd, "rf.db")
            kill_at = rng.uniform(0.0, length_s * 1.1)
            what = "%s trial %d (seed %d, kill -9 at %.3f s of %.3f s)" % (
                name, trial, SEED, kill_at, length_s)
            proc = subprocess.Popen([harness.ringfill_path()] + args, cwd=cwd,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                try:
                    proc.wait(timeout=kill_at)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                _, err = proc.communicate(timeout=WAIT_S)
            finally:
                harness.stop_process(proc)
            if proc.returncode == -signal.SIGKILL and os.path.exists(db):
                try:
                    done = sum(1 for j in job_outcomes(db) if j[2] == "done")
                except sqlite3.OperationalError:  # killed before the schema was made
                    done = 0
                mid_run += 0 < done < len(ref_jobs)
            else:
                self.assertIn(proc.returncode, (0, -signal.SIGKILL),
                              "%s: %s" % (what, err.decode(errors="replace")[-2000:]))
            again = run_ringfill(args, cwd=cwd)
            self.assertEqual(again.returncode, 0, what + describe(again))
            got_cols, got_rows = table_rows(db, table)
            self.assertEqual(got_cols, cols, what)
            self.assertEqual(len(got_rows), len(ref_rows), what + ": row count")
            self.assertEqual(got_rows, ref_rows, what + ": table contents")
            self.assertEqual(job_outcomes(db), ref_jobs, what + ": jobs")
            self.check_raw_files(cwd, db, what)
        print("%s: %d trials, %d killed with part of the jobs done (run %.2f s)" %
              (name, trials, mid_run, length_s), file=sys.stderr)
        return mid_run

    def test_kill_during_document_backfill(self):
        urls = [self.ng.url(f["path"]) for f in self.manifest["files"]]
        # Small commits and few requests at a time, so the run's jobs finish
        # spread over its length: a kill meets committed, uncommitted and
        # half-downloaded jobs.
        mid = self.crash_trials("docs", urls, "$.following[*]", "following", TRIALS,
                                ["--commit-rows", "300", "--concurrency", "4"])
        self.assertGreater(mid, 0, "no kill landed while jobs were partly done")

    def test_kill_during_ndjson_stream(self):
        urls = [self.ng.url("streams/big.ndjson")] + [
            self.ng.url("streams/small%d.ndjson" % i) for i in range(3)]
        self.crash_trials("ndjson", urls, "$", "events", NDJSON_TRIALS)


if __name__ == "__main__":
    harness.main_or_skip(need_nginx=True)
