#!/usr/bin/env python3
"""Signals (issue 5, DESIGN §3): SIGINT and SIGTERM stop new requests, commit
what is complete and exit 130 / 143; a second signal exits at once; either
way the database stays whole and the same command completes the rest, with
every job's rows exactly once.

The run is held at a known point: half the documents come through the fault
server's /gate/ mode, which keeps them waiting, so the signal arrives with
20 jobs committed and 20 requests in flight.

Needs $RINGFILL (meson sets it); exits 77 without it.
Run alone: RINGFILL=build/engine/ringfill python3 tests/integration/test_signals.py
"""

import os
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
import faultserver  # noqa: E402
import harness  # noqa: E402
from harness import describe, run_ringfill  # noqa: E402

WAIT_S = 60.0  # every wait for a process or a state is bounded by this


def done_count(db):
    try:
        with harness.open_db(db) as con:
            return con.execute(
                "SELECT count(*) FROM _ringfill_jobs WHERE state='done'").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


class Signals(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rf-signals-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.data = os.path.join(cls.tmp, "data")
        cls.manifest = harness.gen_dataset(cls.data, 40, 33)
        cls.pki = harness.make_pki(os.path.join(cls.tmp, "pki"))

    def setUp(self):
        self.cwd = tempfile.mkdtemp(prefix="case-", dir=self.tmp)
        self.db = os.path.join(self.cwd, "rf.db")
        self.fs = faultserver.FaultServer(self.data, self.pki).start()
        self.addCleanup(self.fs.stop)
        files = self.manifest["files"]
        urls = []
        for i, f in enumerate(files):
            urls.append(self.fs.url("%s/%s" % ("keepalive" if i < 20 else "gate", f["path"])))
        self.rows_first = {u: f["following"] for u, f in zip(urls[:20], files[:20])}
        self.rows_all = sum(f["following"] for f in files)
        self.jobs_with_rows = sum(1 for f in files if f["following"])
        lst = harness.write_lines(os.path.join(self.cwd, "urls.txt"), urls)
        self.args = ["run", "--urls", lst, "--db", self.db, "--rows", "$.following[*]",
                     "--table", "following", "--cacert", self.pki.ca_cert, "--quiet",
                     "--raw", "raw", "--timeout", "60"]

    def start_and_wait_for_first_half(self):
        proc = subprocess.Popen([harness.ringfill_path()] + self.args, cwd=self.cwd,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(harness.stop_process, proc)
        t0 = time.monotonic()
        while done_count(self.db) < 20:
            if proc.poll() is not None:
                self.fail("ringfill ended early: %s" % (proc.communicate(),))
            if time.monotonic() - t0 > WAIT_S:
                self.fail("the first 20 jobs never committed")
            time.sleep(0.05)
        return proc

    def check_interrupted_state(self):
        """20 jobs done with exactly their rows, 20 pending, nothing failed,
        the database whole."""
        with harness.open_db(self.db) as con:
            self.assertEqual(con.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            states = dict(con.execute(
                "SELECT state, count(*) FROM _ringfill_jobs GROUP BY state").fetchall())
            self.assertEqual(states, {"done": 20, "pending": 20})
            rows = con.execute("SELECT count(*) FROM following").fetchone()[0]
        self.assertEqual(rows, sum(self.rows_first.values()))

    def resume_completes(self):
        self.fs.open_gate()
        res = run_ringfill(self.args, cwd=self.cwd)
        self.assertEqual(res.returncode, 0, describe(res))
        with harness.open_db(self.db) as con:
            self.assertEqual(con.execute("SELECT count(*) FROM following").fetchone()[0],
                             self.rows_all)
            per_job = con.execute("SELECT count(DISTINCT _job) FROM following").fetchone()[0]
        self.assertEqual(per_job, self.jobs_with_rows)
        for j in harness.jobs(self.db):
            self.assertEqual(j["state"], "done", j)
            self.assertTrue(os.path.isfile(os.path.join(self.cwd, j["raw_path"])), j)

    def interrupt(self, sig, expect_code):
        proc = self.start_and_wait_for_first_half()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=WAIT_S)
        self.assertEqual(proc.returncode, expect_code, err)
        self.check_interrupted_state()
        self.resume_completes()

    def test_sigint_exits_130_and_resumes(self):
        self.interrupt(signal.SIGINT, 130)

    def test_sigterm_exits_143_and_resumes(self):
        self.interrupt(signal.SIGTERM, 143)

    def test_second_signal_exits_at_once_and_nothing_is_lost(self):
        proc = self.start_and_wait_for_first_half()
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT_S)
        self.assertEqual(proc.returncode, 130, err)
        # Whatever the writer had not committed is simply pending again.
        with harness.open_db(self.db) as con:
            self.assertEqual(con.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            done = con.execute("SELECT id FROM _ringfill_jobs WHERE state='done'").fetchall()
            rows = dict(con.execute("SELECT _job, count(*) FROM following GROUP BY _job"))
        self.assertEqual(set(rows), {d[0] for d in done})  # no rows without their done mark
        self.resume_completes()


def setUpModule():
    harness.skip_unless_ringfill()


if __name__ == "__main__":
    harness.main_or_skip()
