#!/usr/bin/env python3
"""A job file's "db_timeout_s": how long ringfill waits for another
process's write lock, like --db-timeout (which overrides it) and over
$RINGFILL_DB_TIMEOUT.

Another process holds the database's write lock (BEGIN IMMEDIATE, the
LOCKER of test_db_contention.py) for far longer than the job file allows:
ringfill gives up with exit 3 ("database is locked") while the lock is still
held, although the environment asks for 600 s; with the file asking for 600 s
and --db-timeout 0.5 it gives up the same way. Once the lock is gone the same
job file runs (exit 0).

Needs $RINGFILL (the binary; meson sets it); exits 77 (skip) without it.
Run alone: RINGFILL=build/engine/ringfill python3 tests/integration/test_jobfile_db_timeout.py
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import describe, run_ringfill  # noqa: E402
from test_db_contention import LOCKER  # noqa: E402

HOLD_S = 200  # the lock's hold: longer than a run may take (RUN_TIMEOUT_S 240)


def setUpModule():
    harness.skip_unless_ringfill()


class DbTimeout(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="rf-dbtimeout-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.db = os.path.join(self.dir, "out.db")
        harness.write_lines(os.path.join(self.dir, "urls.txt"), [])

    def job(self, db_timeout_s):
        path = os.path.join(self.dir, "job.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"source": {"urls": "urls.txt"}, "db": "out.db",
                       "db_timeout_s": db_timeout_s, "tables": [{"name": "t"}]}, f)
        return path

    def locker(self):
        p = subprocess.Popen([sys.executable, "-c", LOCKER, self.db, str(HOLD_S)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(harness.stop_process, p)
        self.assertEqual(p.stdout.readline().strip(), "locked")
        return p

    def check_gave_up(self, res, locker):
        self.assertEqual(res.returncode, 3, describe(res))
        self.assertIn("locked", res.stderr, describe(res))
        self.assertIsNone(locker.poll(), "the lock was released before ringfill gave up")

    def test_job_file_patience_then_flag_over_it(self):
        job = self.job(1)
        res = run_ringfill(["run", job, "--quiet"])  # makes the database (WAL)
        self.assertEqual(res.returncode, 0, describe(res))
        locker = self.locker()
        # The file's 1 s wins over the environment's 600 s.
        self.check_gave_up(run_ringfill(["run", job, "--quiet"],
                                        env={"RINGFILL_DB_TIMEOUT": "600"}), locker)
        # --db-timeout wins over the file's 600 s.
        job = self.job(600)
        self.check_gave_up(run_ringfill(["run", job, "--quiet", "--db-timeout", "0.5"]),
                           locker)
        out, _ = locker.communicate("go\n", timeout=30)
        self.assertEqual(out.strip(), "released")
        res = run_ringfill(["run", job, "--quiet"])
        self.assertEqual(res.returncode, 0, describe(res))


if __name__ == "__main__":
    harness.main_or_skip()
