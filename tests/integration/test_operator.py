#!/usr/bin/env python3
"""The operator's commands after a mixed run: `ringfill status` explains every
failure in words (no empty reason, each class shown), `ringfill retry DB`
requeues only the transient failures and `--all` every failed job that has a
URL, and a re-run after the server recovered completes them.

Needs $RINGFILL (the binary; meson sets it); exits 77 (skip) without it.
Run alone: RINGFILL=build/engine/ringfill python3 tests/integration/test_operator.py
"""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import faultserver  # noqa: E402
import harness  # noqa: E402
from harness import describe, run_ringfill  # noqa: E402

RETRIES = 2


def setUpModule():
    harness.skip_unless_ringfill()


class Operator(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rf-operator-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.data = os.path.join(cls.tmp, "data")
        manifest = harness.gen_dataset(cls.data, 12, 8)
        cls.files = [f for f in manifest["files"] if f["following"] > 0][:4]
        cls.pki = harness.make_pki(os.path.join(cls.tmp, "pki"))

    def setUp(self):
        self.cwd = tempfile.mkdtemp(prefix="case-", dir=self.tmp)
        self.db = os.path.join(self.cwd, "rf.db")
        self.fs = faultserver.FaultServer(self.data, self.pki).start()
        self.addCleanup(self.fs.stop)
        f = self.files
        self.good = [self.fs.url("keepalive/" + f[0]["path"]), self.fs.url("chunked/" + f[1]["path"])]
        self.outage = [self.fs.url("outage/" + f[2]["path"]), self.fs.url("outage/" + f[3]["path"])]
        self.missing = self.fs.url("status/404")
        self.notjson = self.fs.url("notjson")
        self.refused = "https://127.0.0.1:%d/gone.json" % harness.free_port()
        self.malformed = "ftp://example.invalid/x.json"
        self.urls = harness.write_lines(
            os.path.join(self.cwd, "urls.txt"),
            self.good + self.outage + [self.missing, self.notjson, self.refused, self.malformed])

    def run_cmd(self):
        return run_ringfill(["run", "--urls", self.urls, "--db", self.db, "--rows",
                             "$.following[*]", "--table", "following", "--cacert",
                             self.pki.ca_cert, "--quiet", "--retries", str(RETRIES),
                             "--retry-base", "0.05", "--retry-max", "0.2", "--timeout", "5"],
                            cwd=self.cwd)

    def jobs(self):
        return {j["url"] or j["key"]: j for j in harness.jobs(self.db)}

    def test_status_explains_every_failure(self):
        proc = self.run_cmd()
        self.assertEqual(proc.returncode, 1, describe(proc))
        jobs = self.jobs()
        failed = [j for j in jobs.values() if j["state"] == "failed"]
        self.assertEqual(len(failed), 6, jobs)  # 2 outage, 404, not JSON, refused, malformed
        st = run_ringfill(["status", self.db], cwd=self.cwd)
        self.assertEqual(st.returncode, 0, describe(st))
        for j in failed:
            self.assertTrue(j["error"] and j["error"].strip(), j)
            self.assertIn(j["error"], st.stdout, "reason of %r not in status" % j)
            self.assertIn(j["error_class"], ("transient", "permanent"), j)
        for word in ("transient", "permanent"):
            self.assertRegex(st.stdout, r"\b%s\b" % word, st.stdout)
        # Words a person understands, per kind of failure.
        self.assertRegex(jobs[self.missing]["error"], r"404")
        self.assertRegex(jobs[self.notjson]["error"], r"(?i)json.*offset|offset.*json")
        self.assertRegex(jobs[self.refused]["error"], r"(?i)refused")
        self.assertRegex(jobs[self.malformed]["error"], r"urls\.txt:\d+")
        self.assertRegex(jobs[self.outage[0]]["error"], r"500")
        doc = json.loads(run_ringfill(["status", "--json", self.db], cwd=self.cwd).stdout)
        self.assertEqual(sum(f["count"] for f in doc["failures"]), 6, doc)
        self.assertTrue(all(f["reason"] for f in doc["failures"]), doc)
        # The last run's figures: what it committed (the malformed line failed
        # at import, not in the run), and how it ended.
        run = doc["last_run"]
        done = [j for j in jobs.values() if j["state"] == "done"]
        self.assertEqual((run["finished"], run["exit_code"]), (True, 1), run)
        self.assertEqual((run["jobs_done"], run["jobs_failed"]), (2, 5), run)
        self.assertEqual(run["rows"], harness.count_rows(self.db, "following"), run)
        self.assertEqual(run["bytes"], sum(j["bytes"] for j in done), run)
        self.assertIn("urls.txt", run["source"], run)
        self.assertRegex(st.stdout, r"last run: #1 of .*urls\.txt.*exit 1", st.stdout)
        self.assertRegex(st.stdout, r"rows\s+%d\s+[\d.]+ rows/s" % run["rows"], st.stdout)
        # A second run is the last run now, with nothing new to commit.
        self.run_cmd()
        run2 = json.loads(run_ringfill(["status", "--json", self.db], cwd=self.cwd).stdout)
        self.assertEqual(run2["last_run"]["id"], run["id"] + 1, run2)

    def test_retry_transient_then_all(self):
        proc = self.run_cmd()
        self.assertEqual(proc.returncode, 1, describe(proc))
        before = self.jobs()
        transient = {u for u, j in before.items() if j["error_class"] == "transient"}
        self.assertEqual(transient, set(self.outage) | {self.refused})

        self.fs.outage = False  # the server recovered
        r = run_ringfill(["retry", self.db], cwd=self.cwd)
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertRegex(r.stdout, r"urls:.*urls\.txt\s+3\b", r.stdout)
        self.assertRegex(r.stdout, r"\b3\b")
        after = self.jobs()
        for u, j in after.items():
            if u in transient:
                self.assertEqual((j["state"], j["attempts"], j["error_class"]),
                                 ("pending", 0, None), j)
            else:
                self.assertEqual(j, before[u], "retry touched a job it must not")

        proc = self.run_cmd()
        self.assertEqual(proc.returncode, 1, describe(proc))  # refused still fails
        jobs = self.jobs()
        for u, f in zip(self.outage, self.files[2:]):
            self.assertEqual(jobs[u]["state"], "done", jobs[u])
            self.assertIsNone(jobs[u]["error"], jobs[u])
            with harness.open_db(self.db) as con:
                n = con.execute("SELECT count(*) FROM following WHERE _job=?",
                                (jobs[u]["id"],)).fetchone()[0]
            self.assertEqual(n, f["following"], u)
        self.assertEqual((jobs[self.refused]["state"], jobs[self.refused]["attempts"]),
                         ("failed", RETRIES), jobs[self.refused])

        hits_404 = self.fs.hits.get("/status/404", 0)
        r = run_ringfill(["retry", "--all", self.db], cwd=self.cwd)
        self.assertEqual(r.returncode, 0, describe(r))
        self.assertRegex(r.stdout, r"\b3\b", r.stdout)  # 404, not JSON, refused
        jobs = self.jobs()
        for u in (self.missing, self.notjson, self.refused):
            self.assertEqual((jobs[u]["state"], jobs[u]["attempts"]), ("pending", 0), jobs[u])
        # A malformed line cannot succeed: it stays failed, with its reason.
        self.assertEqual(jobs[self.malformed]["state"], "failed", jobs[self.malformed])
        proc = self.run_cmd()
        self.assertEqual(proc.returncode, 1, describe(proc))
        self.assertEqual(self.fs.hits.get("/status/404", 0), hits_404 + 1)
        jobs = self.jobs()
        self.assertEqual((jobs[self.missing]["state"], jobs[self.missing]["error_class"]),
                         ("failed", "permanent"))
        self.assertEqual(sum(j["state"] == "done" for j in jobs.values()), 4, jobs)

    def test_a_coding_not_decoded_is_named_in_the_reason(self):
        """A body sent with codings ringfill does not undo ("gzip, gzip")
        is parsed as sent and fails as JSON at byte 0, permanent; the
        reason names the coding, not only the byte."""
        url = self.fs.url("gzipgzip/" + self.files[0]["path"])
        urls = harness.write_lines(os.path.join(self.cwd, "coded.txt"), [url])
        proc = run_ringfill(["run", "--urls", urls, "--db", self.db, "--rows",
                             "$.following[*]", "--table", "following", "--cacert",
                             self.pki.ca_cert, "--quiet"], cwd=self.cwd)
        self.assertEqual(proc.returncode, 1, describe(proc))
        job = self.jobs()[url]
        self.assertEqual((job["state"], job["error_class"]), ("failed", "permanent"), job)
        self.assertRegex(job["error"], r"^invalid JSON at byte offset 0 .*Content-Encoding "
                         r"\"gzip, gzip\", which ringfill does not decode", job)

    def test_retry_all_during_a_run_is_said_as_pending(self):
        """`ringfill retry --all` while a run still waits for a response:
        the job it requeues is behind the ones the run fetched, so the run
        ends with it pending, exits 1, and says so. Before, it said "0 jobs
        failed"."""
        gated = self.fs.url("gate/" + self.files[0]["path"])
        urls = harness.write_lines(os.path.join(self.cwd, "two.txt"), [self.missing, gated])
        proc = subprocess.Popen(
            [harness.ringfill_path(), "run", "--urls", urls, "--db", self.db, "--rows",
             "$.following[*]", "--table", "following", "--cacert", self.pki.ca_cert,
             "--retries", "1", "--commit-ms", "50"],
            cwd=self.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    state = {j["url"]: j["state"] for j in harness.jobs(self.db)}
                except sqlite3.Error:
                    state = {}
                if state.get(self.missing) == "failed":
                    break
                time.sleep(0.02)
            self.assertIsNone(proc.poll(), "the run ended before the gate opened")
            r = run_ringfill(["retry", "--all", self.db], cwd=self.cwd)
            self.assertEqual(r.returncode, 0, describe(r))
            self.fs.open_gate()
            _, err = proc.communicate(timeout=60)
        finally:
            harness.stop_process(proc)
        self.assertEqual(proc.returncode, 1, err)
        jobs = self.jobs()
        self.assertEqual((jobs[self.missing]["state"], jobs[gated]["state"]),
                         ("pending", "done"), jobs)
        self.assertIn("1 jobs became pending while this run went", err)
        self.assertNotIn("jobs failed", err)

    def test_retry_refuses_a_missing_database(self):
        missing = os.path.join(self.cwd, "nope.db")
        r = run_ringfill(["retry", missing], cwd=self.cwd)
        self.assertEqual(r.returncode, 2, describe(r))
        self.assertIn("nope.db", r.stderr)
        self.assertFalse(os.path.exists(missing), "retry created the database")
        r = run_ringfill(["retry"], cwd=self.cwd)
        self.assertEqual(r.returncode, 2, describe(r))
        r = run_ringfill(["retry", "--bogus", self.db], cwd=self.cwd)
        self.assertEqual(r.returncode, 2, describe(r))
        other = os.path.join(self.cwd, "other.db")
        sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
        r = run_ringfill(["retry", other], cwd=self.cwd)
        self.assertEqual(r.returncode, 3, describe(r))
        self.assertTrue(re.search(r"not a ringfill database", r.stderr), describe(r))

    def test_retry_waits_for_a_short_lock(self):
        """A writer holding the lock for a moment delays retry; it does not fail."""
        self.run_cmd()
        con = sqlite3.connect(self.db, isolation_level=None, timeout=10)
        self.addCleanup(con.close)
        con.execute("BEGIN IMMEDIATE")
        p = subprocess.Popen([harness.ringfill_path(), "retry", self.db], cwd=self.cwd,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(harness.stop_process, p)
        try:
            out, err = p.communicate(timeout=1.0)
            self.fail("retry did not wait for the lock: exit %s %s" % (p.returncode, err))
        except subprocess.TimeoutExpired:
            pass
        finally:
            con.execute("COMMIT")
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 0, err)
        self.assertRegex(out, r"\b3\b")


# io_uring_setup on x86-64 (asm/unistd_64.h).
NR_IO_URING_SETUP = 425


class NoIoUring(unittest.TestCase):
    """Where io_uring is switched off (Docker's default seccomp profile fails
    io_uring_setup with EPERM; kernels without it give ENOSYS), the run stops
    with exit 3 and says what to look at, and its jobs stay pending for a
    run where io_uring works."""

    def setUp(self):
        self.deny = os.environ.get("RINGFILL_DENY_SYSCALL", "")
        if not self.deny or not os.access(self.deny, os.X_OK):
            self.skipTest("no deny_syscall wrapper (x86-64 builds only)")
        self.cwd = tempfile.mkdtemp(prefix="rf-nouring-")
        self.addCleanup(shutil.rmtree, self.cwd, True)
        self.db = os.path.join(self.cwd, "rf.db")
        self.urls = harness.write_lines(os.path.join(self.cwd, "urls.txt"),
                                        ["https://127.0.0.1:%d/a.json" % harness.free_port()])

    def run_denied(self, err):
        return run_ringfill(["run", "--urls", self.urls, "--db", self.db, "--quiet"],
                            cwd=self.cwd, prefix=[self.deny, str(NR_IO_URING_SETUP), str(err)])

    def test_each_reason_is_named(self):
        cases = [(1, r"io_uring: not allowed for this process .*io_uring_disabled.*seccomp"),
                 (38, r"io_uring: not in this kernel .*Linux 5\.19"),
                 (12, r"io_uring: cannot allocate the ring .*(ulimit -l|Cannot allocate)")]
        for err, message in cases:
            with self.subTest(errno=err):
                proc = self.run_denied(err)
                self.assertEqual(proc.returncode, 3, describe(proc))
                self.assertRegex(proc.stderr, message, describe(proc))
                with harness.open_db(self.db) as con:
                    states = [r[0] for r in con.execute("SELECT state FROM _ringfill_jobs")]
                self.assertEqual(states, ["pending"], describe(proc))


if __name__ == "__main__":
    harness.main_or_skip()
