#!/usr/bin/env python3
"""A full disk (DESIGN §5, issue 5): the raw directory, or the database, on a
small tmpfs that fills up during a backfill → the run stops with exit 3 and a
message that says what is full; what was committed is right (each done job
has exactly its rows); after the file system is grown (`mount -o remount`),
the same command completes with nothing lost and nothing twice.

Needs root (to mount a tmpfs), $RINGFILL and nginx; exits 77 (skip) without
them, or when the mount is refused (a container without CAP_SYS_ADMIN). Every
mount is unmounted by the test, also on failure.
Run alone: RINGFILL=build/engine/ringfill python3 tests/integration/test_full_disk.py
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import describe, run_ringfill  # noqa: E402

MOUNT = "/bin/mount" if os.path.exists("/bin/mount") else "mount"
UMOUNT = "/bin/umount" if os.path.exists("/bin/umount") else "umount"
# About a third of what the 300 documents need: raw bodies 1.4 MB, the
# database (with its WAL) a little over 1 MB.
SMALL_RAW = "512k"
SMALL_DB = "448k"
LARGE = "64m"
FULL_WORDS = r"(?i)no space|disk.*full|full"


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run([MOUNT, "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", path],
                       capture_output=True, text=True, timeout=30, check=False)
    return r.returncode == 0, r.stderr.strip()


def remount(path, size):
    subprocess.run([MOUNT, "-o", "remount,size=%s" % size, path], capture_output=True,
                   timeout=30, check=True)


def unmount(path):
    r = subprocess.run([UMOUNT, path], capture_output=True, timeout=30, check=False)
    if r.returncode != 0:
        subprocess.run([UMOUNT, "-l", path], capture_output=True, timeout=30, check=False)


def can_mount():
    if os.geteuid() != 0:
        return False, "not root"
    probe = tempfile.mkdtemp(prefix="rf-mount-probe-")
    try:
        ok, why = mount_tmpfs(probe, "1m")
        if ok:
            unmount(probe)
        return ok, why
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def setUpModule():
    harness.skip_unless_ringfill()


class FullDisk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rf-disk-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.data = os.path.join(cls.tmp, "data")
        cls.manifest = harness.gen_dataset(cls.data, 300, 44)
        cls.pki = harness.make_pki(os.path.join(cls.tmp, "pki"))
        cls.ng = harness.Nginx(cls.data, cls.pki).start()
        cls.addClassCleanup(cls.ng.stop)
        cls.expect = {cls.ng.url(f["path"]): f for f in cls.manifest["files"]}

    def setUp(self):
        self.cwd = tempfile.mkdtemp(prefix="case-", dir=self.tmp)
        self.fs = os.path.join(self.cwd, "small")
        self.urls = harness.write_lines(os.path.join(self.cwd, "urls.txt"), list(self.expect))

    def mount_small(self, size):
        ok, why = mount_tmpfs(self.fs, size)
        if not ok:
            self.skipTest("cannot mount a tmpfs: " + why)
        self.addCleanup(unmount, self.fs)

    def command(self, db, raw):
        return ["run", "--urls", self.urls, "--db", db, "--rows", "$.following[*]",
                "--table", "following", "--raw", raw, "--cacert", self.ng.pki.ca_cert,
                "--quiet", "--concurrency", "16", "--commit-rows", "500"]

    def check_committed(self, db, complete):
        """Each done job has exactly its document's rows and a raw file with
        its bytes; with complete, every job is done."""
        jobs = harness.jobs(db)
        with harness.open_db(db) as con:
            have = con.execute("SELECT count(*) FROM sqlite_master WHERE name='following'"
                               ).fetchone()[0]
            per_job = dict(con.execute("SELECT _job, count(*) FROM following GROUP BY _job")
                           ) if have else {}
        done = 0
        for j in jobs:
            f = self.expect[j["url"]]
            if j["state"] != "done":
                self.assertFalse(complete, j)
                self.assertEqual(j["state"], "pending", j)
                self.assertEqual(per_job.get(j["id"], 0), 0, j)
                continue
            done += 1
            self.assertEqual(per_job.get(j["id"], 0), f["following"], j)
            self.assertEqual(j["sha256"], f["sha256"], j)
            path = os.path.join(self.cwd, j["raw_path"])
            with open(path, "rb") as fh:
                self.assertEqual(hashlib.sha256(fh.read()).hexdigest(), f["sha256"], path)
        if complete:
            self.assertEqual(done, len(self.expect))
        return done

    def test_raw_directory_fills_up(self):
        self.mount_small(SMALL_RAW)
        db = os.path.join(self.cwd, "rf.db")
        args = self.command(db, os.path.join(self.fs, "raw"))
        proc = run_ringfill(args, cwd=self.cwd)
        self.assertEqual(proc.returncode, 3, describe(proc))
        self.assertRegex(proc.stderr, FULL_WORDS, describe(proc))
        self.assertIn("small", proc.stderr, "the message should name the raw directory" +
                      describe(proc))
        done = self.check_committed(db, complete=False)
        self.assertLess(done, len(self.expect))
        print("stopped with %d of %d jobs done: %s" % (done, len(self.expect),
              proc.stderr.strip().splitlines()[0]), file=sys.stderr)

        remount(self.fs, LARGE)
        proc = run_ringfill(args, cwd=self.cwd)
        self.assertEqual(proc.returncode, 0, describe(proc))
        self.check_committed(db, complete=True)
        self.assertEqual(harness.count_rows(db, "following"),
                         sum(f["following"] for f in self.expect.values()))

    def test_database_fills_up(self):
        self.mount_small(SMALL_DB)
        db = os.path.join(self.fs, "rf.db")
        args = self.command(db, os.path.join(self.cwd, "raw"))
        proc = run_ringfill(args, cwd=self.cwd)
        self.assertEqual(proc.returncode, 3, describe(proc))
        self.assertRegex(proc.stderr, FULL_WORDS, describe(proc))
        self.assertIn("rf.db", proc.stderr, describe(proc))
        done = self.check_committed(db, complete=False)
        self.assertLess(done, len(self.expect))
        print("stopped with %d of %d jobs done: %s" % (done, len(self.expect),
              proc.stderr.strip().splitlines()[0]), file=sys.stderr)

        remount(self.fs, LARGE)
        proc = run_ringfill(args, cwd=self.cwd)
        self.assertEqual(proc.returncode, 0, describe(proc))
        self.check_committed(db, complete=True)
        self.assertEqual(harness.count_rows(db, "following"),
                         sum(f["following"] for f in self.expect.values()))


if __name__ == "__main__":
    ok, why = (False, "RINGFILL is not set") if not harness.ringfill_path() else can_mount()
    if not ok:
        print("SKIP: cannot mount a tmpfs (%s)" % why, file=sys.stderr)
        sys.exit(harness.SKIP_EXIT)
    harness.main_or_skip(need_nginx=True)
