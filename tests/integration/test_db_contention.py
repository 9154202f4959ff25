#!/usr/bin/env python3
"""The database under contention (DESIGN §4, issue 5): another process that
holds the write lock for seconds only delays the writer; a reader process
querying all through a backfill sees consistent snapshots and no error, and
the WAL stays bounded; a lock held longer than the writer's patience stops the
run with exit 3 and a message naming the database, and the same command
completes after the lock is gone, with nothing lost and nothing twice.

The lock is taken at a known point: half the documents come through the
fault server's /gate/ mode, which holds them until the test opens the gate,
so the run is certainly still going (with finished jobs waiting for the
writer) while the lock is held.

Needs $RINGFILL (the binary; meson sets it) and nginx; exits 77 without them.
Run alone: RINGFILL=build/engine/ringfill python3 tests/integration/test_db_contention.py
"""

import json
import os
import shutil
import signal
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

LOCK_HOLD_S = 4.0        # "several seconds", well inside the default patience (60 s)
SHORT_PATIENCE_S = "2"   # --db-timeout for the give-up case
WAIT_S = 60.0            # every wait for a process or a state is bounded by this
WAL_BOUND_BYTES = 64 * 1024 * 1024  # journal_size_limit (docs/store.md)

# A separate process that takes the write lock and writes a row of its own,
# says "locked", and commits when a line arrives on stdin (or after WAIT_S).
LOCKER = r"""
import sqlite3, sys, select
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
con.execute("BEGIN IMMEDIATE")
con.execute("CREATE TABLE IF NOT EXISTS other_app (note TEXT)")
con.execute("INSERT INTO other_app VALUES ('written while ringfill ran')")
print("locked", flush=True)
select.select([sys.stdin], [], [], float(sys.argv[2]))
con.execute("COMMIT")
con.close()
print("released", flush=True)
"""

# A reader that keeps one connection open and queries until STOP exists:
# in each read transaction the rows of the table must be exactly the rows of
# the jobs marked done (exactly once, seen from outside), and counts never
# go down. It records the largest -wal size it saw, and its errors.
READER = r"""
import json, os, sqlite3, sys, time
db, expect_path, stop, out = sys.argv[1:5]
expect = json.load(open(expect_path))
con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, isolation_level=None, timeout=30)
res = {"queries": 0, "errors": [], "inconsistent": [], "decreasing": 0, "wal_max": 0,
       "last_rows": 0, "last_done": 0}
deadline = time.monotonic() + float(sys.argv[5])
while not os.path.exists(stop) and time.monotonic() < deadline:
    try:
        con.execute("BEGIN")
        done = [r[0] for r in con.execute(
            "SELECT url FROM _ringfill_jobs WHERE state='done'")]
        have = con.execute("SELECT count(*) FROM sqlite_master WHERE name='following'"
                           ).fetchone()[0]
        rows = con.execute("SELECT count(*) FROM following").fetchone()[0] if have else 0
        con.execute("COMMIT")
    except sqlite3.Error as e:
        res["errors"].append(str(e))
        try:
            con.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        continue
    res["queries"] += 1
    if res["queries"] == 1:
        open(stop + ".ready", "w").close()  # the test starts the run only now
    want = sum(expect[u] for u in done)
    if rows != want:
        res["inconsistent"].append([len(done), rows, want])
    if rows < res["last_rows"] or len(done) < res["last_done"]:
        res["decreasing"] += 1
    res["last_rows"], res["last_done"] = rows, len(done)
    try:
        res["wal_max"] = max(res["wal_max"], os.path.getsize(db + "-wal"))
    except OSError:
        pass
json.dump(res, open(out, "w"))
con.close()
"""


def setUpModule():
    harness.skip_unless_ringfill()


def wait_for(pred, what, proc=None):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError("ringfill exited (%s) while waiting for %s" %
                                 (proc.returncode, what))
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def done_count(db):
    try:
        with harness.open_db(db) as con:
            return con.execute("SELECT count(*) FROM _ringfill_jobs WHERE state='done'"
                               ).fetchone()[0]
    except Exception:  # the database or its tables do not exist yet
        return 0


class DbContention(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rf-contention-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.data = os.path.join(cls.tmp, "data")
        cls.manifest = harness.gen_dataset(cls.data, 300, 21)
        cls.pki = harness.make_pki(os.path.join(cls.tmp, "pki"))

    def setUp(self):
        self.cwd = tempfile.mkdtemp(prefix="case-", dir=self.tmp)
        self.db = os.path.join(self.cwd, "rf.db")

    def start(self, args, env=None):
        full = dict(os.environ)
        full.update(env or {})
        proc = subprocess.Popen([harness.ringfill_path()] + args, cwd=self.cwd, env=full,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(harness.stop_process, proc)
        return proc

    def finish(self, proc):
        out, err = proc.communicate(timeout=WAIT_S * 2)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def locker(self, hold_s):
        p = subprocess.Popen([sys.executable, "-c", LOCKER, self.db, str(hold_s)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(harness.stop_process, p)
        self.assertEqual(p.stdout.readline().strip(), "locked")
        return p

    def release(self, locker):
        out, _ = locker.communicate("go\n", timeout=WAIT_S)
        self.assertEqual(out.strip(), "released")

    def gated_run(self):
        """40 documents, the second half behind the gate. Returns the fault
        server, the run's arguments, the gated paths and the expected rows."""
        fs = faultserver.FaultServer(self.data, self.pki).start()
        self.addCleanup(fs.stop)
        files = self.manifest["files"][:40]
        urls, gated = [], []
        for i, f in enumerate(files):
            mode = "keepalive" if i < 20 else "gate"
            urls.append(fs.url("%s/%s" % (mode, f["path"])))
            if mode == "gate":
                gated.append("/gate/" + f["path"])
        path = harness.write_lines(os.path.join(self.cwd, "urls.txt"), urls)
        args = ["run", "--urls", path, "--db", self.db, "--rows", "$.following[*]",
                "--table", "following", "--cacert", self.pki.ca_cert, "--quiet",
                "--timeout", "60", "--retry-base", "0.05", "--retry-max", "0.2"]
        return fs, args, gated, sum(f["following"] for f in files)

    def lock_after_first_half(self, fs, proc, gated, hold_s):
        """Waits until the ungated half is committed, takes the lock, lets
        the gated half through and waits until the server has sent it all."""
        wait_for(lambda: done_count(self.db) == 20, "the first 20 jobs", proc)
        locker = self.locker(hold_s)
        fs.open_gate()
        wait_for(lambda: all(fs.hits.get(p, 0) >= 1 for p in gated), "the gated requests",
                 proc)
        return locker

    def check_complete(self, rows_expected, n_jobs=40):
        """Every job done, and each job's rows exactly its document's."""
        jobs = harness.jobs(self.db)
        self.assertEqual(len(jobs), n_jobs)
        self.assertTrue(all(j["state"] == "done" for j in jobs), jobs)
        self.assertEqual(harness.count_rows(self.db, "following"), rows_expected)
        by_path = {f["path"]: f["following"] for f in self.manifest["files"]}
        with harness.open_db(self.db) as con:
            per_job = dict(con.execute("SELECT _job, count(*) FROM following GROUP BY _job"))
        for j in jobs:
            path = j["url"].split("/", 4)[4]
            self.assertEqual(per_job.get(j["id"], 0), by_path[path], j)

    def test_lock_held_for_seconds_only_delays(self):
        fs, args, gated, rows = self.gated_run()
        proc = self.start(args)
        locker = self.lock_after_first_half(fs, proc, gated, WAIT_S)
        t0 = time.monotonic()
        while time.monotonic() - t0 < LOCK_HOLD_S and proc.poll() is None:
            time.sleep(0.1)
        # The gated jobs cannot be committed while we hold the lock: the run
        # must still be going, waiting, not failing.
        if proc.poll() is not None:
            self.fail("ringfill ended while the lock was held: " + describe(self.finish(proc)))
        self.assertEqual(done_count(self.db), 20)
        self.release(locker)
        res = self.finish(proc)
        self.assertEqual(res.returncode, 0, describe(res))
        self.check_complete(rows)
        with harness.open_db(self.db) as con:
            self.assertEqual(con.execute("SELECT count(*) FROM other_app").fetchone()[0], 1)

    def test_lock_beyond_patience_is_fatal_then_resumes(self):
        fs, args, gated, rows = self.gated_run()
        # The flag wins over the environment's longer patience.
        proc = self.start(args + ["--db-timeout", SHORT_PATIENCE_S],
                          env={"RINGFILL_DB_TIMEOUT": "600"})
        locker = self.lock_after_first_half(fs, proc, gated, WAIT_S)
        try:
            res = self.finish(proc)
        finally:
            self.release(locker)
        self.assertEqual(res.returncode, 3, describe(res))
        self.assertIn("rf.db", res.stderr, describe(res))
        self.assertRegex(res.stderr, r"(?i)locked", describe(res))
        self.assertIn("--db-timeout", res.stderr, describe(res))
        jobs = harness.jobs(self.db)
        states = sorted(j["state"] for j in jobs)
        self.assertEqual(states.count("done"), 20, jobs)
        self.assertEqual(states.count("pending"), 20, jobs)
        with harness.open_db(self.db) as con:
            done_rows = con.execute("SELECT count(*) FROM following").fetchone()[0]
        self.assertEqual(done_rows, sum(f["following"] for f in self.manifest["files"][:20]))

        res = run_ringfill(args, cwd=self.cwd)
        self.assertEqual(res.returncode, 0, describe(res))
        self.check_complete(rows)

    def test_signal_while_waiting_for_the_lock_stops_at_once(self):
        """SIGINT while the writer waits (patience 60 s) for a lock that is
        held far longer: ringfill stops waiting and exits 130 while the other
        process still holds the lock; nothing half-written, and the same
        command completes once the lock is gone."""
        fs, args, gated, rows = self.gated_run()
        proc = self.start(args)
        locker = self.lock_after_first_half(fs, proc, gated, WAIT_S)
        try:
            time.sleep(0.5)  # the writer is in its lock wait by now, or soon
            self.assertIsNone(proc.poll(), "ringfill ended while the lock was held")
            proc.send_signal(signal.SIGINT)
            res = self.finish(proc)
            self.assertIsNone(locker.poll(), "the lock was released before ringfill exited")
        finally:
            self.release(locker)
        self.assertEqual(res.returncode, 130, describe(res))
        self.assertRegex(res.stderr, r"(?i)locked", describe(res))
        states = sorted(j["state"] for j in harness.jobs(self.db))
        self.assertEqual(states.count("done"), 20, states)
        self.assertEqual(states.count("pending"), 20, states)
        st = json.loads(run_ringfill(["status", "--json", self.db], cwd=self.cwd).stdout)
        # Its end could not be recorded (the lock was still held): status
        # shows it as not finished, with what it committed.
        self.assertEqual(st["last_run"]["finished"], False, st)
        self.assertEqual(st["last_run"]["jobs_done"], 20, st)

        res = run_ringfill(args, cwd=self.cwd)
        self.assertEqual(res.returncode, 0, describe(res))
        self.check_complete(rows)

    def test_reader_sees_consistent_data_and_wal_stays_bounded(self):
        ng = harness.Nginx(self.data, self.pki).start()
        self.addCleanup(ng.stop)
        files = self.manifest["files"]
        expect = {ng.url(f["path"]): f["following"] for f in files}
        expect_path = os.path.join(self.cwd, "expect.json")
        with open(expect_path, "w", encoding="utf-8") as f:
            json.dump(expect, f)
        urls = harness.write_lines(os.path.join(self.cwd, "urls.txt"), list(expect))
        # Many small transactions, so the reader sees many states.
        args = ["run", "--urls", urls, "--db", self.db, "--rows", "$.following[*]",
                "--table", "following", "--cacert", self.pki.ca_cert, "--quiet",
                "--commit-rows", "200", "--concurrency", "8"]
        # The database exists (WAL mode, empty tables) before the reader opens it.
        stop = os.path.join(self.cwd, "stop")
        out = os.path.join(self.cwd, "reader.json")
        empty = harness.write_lines(os.path.join(self.cwd, "none.txt"), [])
        res = run_ringfill(["run", "--urls", empty, "--db", self.db, "--quiet"], cwd=self.cwd)
        self.assertEqual(res.returncode, 0, describe(res))
        reader = subprocess.Popen([sys.executable, "-c", READER, self.db, expect_path, stop,
                                   out, str(WAIT_S * 2)])
        self.addCleanup(harness.stop_process, reader)
        # A backfill can finish in a fraction of a second: start it only
        # once the reader is querying, so that it reads during the run.
        wait_for(lambda: os.path.exists(stop + ".ready"), "the reader's first query")
        res = run_ringfill(args, cwd=self.cwd)
        wal = os.path.getsize(self.db + "-wal") if os.path.exists(self.db + "-wal") else 0
        with open(stop, "w"):
            pass
        reader.wait(timeout=WAIT_S)
        self.assertEqual(res.returncode, 0, describe(res))
        with open(out, encoding="utf-8") as f:
            seen = json.load(f)
        self.assertGreater(seen["queries"], 0, seen)
        self.assertEqual(seen["errors"], [], seen)
        self.assertEqual(seen["inconsistent"], [], "snapshots where rows != rows of done jobs")
        self.assertEqual(seen["decreasing"], 0, seen)
        self.assertEqual(seen["last_done"], len(files), seen)
        self.assertEqual(seen["last_rows"], sum(expect.values()), seen)
        self.assertLessEqual(seen["wal_max"], WAL_BOUND_BYTES, seen)
        # With the reader still connected, the writer's final checkpoint has
        # copied everything into the database file and cut the WAL back.
        self.assertLessEqual(wal, WAL_BOUND_BYTES, wal)
        print("reader: %d queries, largest WAL %d bytes, WAL at the end %d bytes" %
              (seen["queries"], seen["wal_max"], wal), file=sys.stderr)


if __name__ == "__main__":
    harness.main_or_skip(need_nginx=True)
