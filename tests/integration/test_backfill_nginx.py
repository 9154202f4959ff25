#!/usr/bin/env python3
"""A whole backfill against a real nginx over TLS: 300 generated account
archives land as rows, raw bodies are byte-exact, and re-running resumes
without duplicating anything.

Needs $RINGFILL (the binary; meson sets it); exits 77 (skip) without it.
Run alone: RINGFILL=build/engine/ringfill python3 tests/integration/test_backfill_nginx.py
"""

import hashlib
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import describe, run_ringfill  # noqa: E402

COUNT = 300
SEED = 42


def setUpModule():
    harness.skip_unless_ringfill()


class BackfillNginx(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rf-backfill-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.data = os.path.join(cls.tmp, "data")
        cls.manifest = harness.gen_dataset(cls.data, COUNT, SEED)
        cls.pki = harness.make_pki(os.path.join(cls.tmp, "pki"))
        cls.nginx = harness.Nginx(cls.data, cls.pki, work=os.path.join(cls.tmp, "nginx"))
        cls.nginx.start()
        cls.addClassCleanup(cls.nginx.stop)
        cls.files = cls.manifest["files"]
        cls.by_url = {cls.nginx.url(f["path"]): f for f in cls.files}

    def workdir(self, name):
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        return d

    def url_list(self, cwd, name):
        return harness.write_lines(os.path.join(cwd, name),
                                   ["# %d generated archives" % COUNT]
                                   + [self.nginx.url(f["path"]) for f in self.files])

    def run_ok(self, args, cwd):
        proc = run_ringfill(["run"] + args + ["--cacert", self.pki.ca_cert, "--quiet"], cwd=cwd)
        self.assertEqual(proc.returncode, 0, describe(proc))
        return proc

    def check_raw_files(self, cwd, db, raw):
        """Every job's raw file is the served file, byte for byte, and inside
        --raw; no .part file is left behind."""
        raw_abs = os.path.realpath(os.path.join(cwd, raw))
        for job in harness.jobs(db):
            src = self.by_url[job["url"]]
            self.assertEqual(job["sha256"], src["sha256"], job)
            self.assertEqual(job["bytes"], src["bytes"], job)
            self.assertTrue(job["raw_path"], job)
            path = os.path.join(cwd, job["raw_path"])
            self.assertTrue(os.path.realpath(path).startswith(raw_abs + os.sep), path)
            with open(path, "rb") as f:
                body = f.read()
            self.assertEqual(len(body), src["bytes"], path)
            self.assertEqual(hashlib.sha256(body).hexdigest(), src["sha256"], path)
        for dirpath, _, names in os.walk(raw_abs):
            parts = [n for n in names if n.endswith(".part")]
            self.assertEqual(parts, [], "left-over .part files in %s" % dirpath)

    def test_following_backfill_and_rerun(self):
        cwd = self.workdir("following")
        urls = self.url_list(cwd, "urls.txt")
        db = os.path.join(cwd, "rf.db")
        args = ["--urls", urls, "--db", db, "--rows", "$.following[*]",
                "--table", "following", "--raw", "raw"]
        self.run_ok(args, cwd)

        jobs = harness.jobs(db)
        self.assertEqual(len(jobs), COUNT)
        self.assertEqual([j for j in jobs if j["state"] != "done"], [])
        self.assertEqual({j["url"] for j in jobs}, set(self.by_url))
        for j in jobs:
            self.assertEqual(j["http_status"], 200, j)
            self.assertIsNone(j["error_class"], j)
        want = self.manifest["totals"]["following"]
        self.assertEqual(harness.count_rows(db, "following"), want)
        self.check_per_job_rows(db, "following", "following")
        self.check_raw_files(cwd, db, "raw")

        with harness.open_db(db) as con:
            cols = [r[1] for r in con.execute('PRAGMA table_info("following")')]
        self.assertIn("accountId", cols)
        self.assertIn("_job", cols)

        # The same command again: everything is done already, nothing doubles.
        self.run_ok(args, cwd)
        self.assertEqual(len(harness.jobs(db)), COUNT)
        self.assertEqual(harness.count_rows(db, "following"), want)
        self.check_raw_files(cwd, db, "raw")

    def check_per_job_rows(self, db, table, field):
        with harness.open_db(db) as con:
            got = dict(con.execute('SELECT _job, count(*) FROM "%s" GROUP BY _job' % table))
            for j in con.execute("SELECT id, url FROM _ringfill_jobs"):
                want = self.by_url[j["url"]][field]
                self.assertEqual(got.get(j["id"], 0), want, "rows of job %d (%s)" % tuple(j))

    def test_tweets_round_trip(self):
        cwd = self.workdir("tweets")
        # An NDJSON URL list with keys, the other list format of DESIGN §3.
        urls = harness.write_lines(
            os.path.join(cwd, "tweets-urls.ndjson"),
            [json.dumps({"url": self.nginx.url(f["path"]), "key": f["username"]})
             for f in self.files])
        db = os.path.join(cwd, "rf.db")
        self.run_ok(["--urls", urls, "--db", db, "--rows", "$.tweets[*]",
                     "--table", "tweets", "--raw", "raw"], cwd)
        jobs = harness.jobs(db)
        self.assertEqual(len(jobs), COUNT)
        self.assertEqual({j["state"] for j in jobs}, {"done"})
        for j in jobs:
            self.assertEqual(j["key"], self.by_url[j["url"]]["username"], j)
        self.assertEqual(harness.count_rows(db, "tweets"), self.manifest["totals"]["tweets"])
        self.check_per_job_rows(db, "tweets", "tweets")
        self.check_raw_files(cwd, db, "raw")

        with harness.open_db(db) as con:
            cols = {r[1] for r in con.execute('PRAGMA table_info("tweets")')}
            for c in ("id", "full_text", "favorite_count", "retweet_count", "created_at",
                      "entities_hashtags", "lang", "_job"):
                self.assertIn(c, cols)
            checked = 0
            for j in jobs[::7]:  # a sample, including files written with \u escapes
                src = self.by_url[j["url"]]
                with open(os.path.join(self.data, src["path"]), encoding="utf-8") as f:
                    doc = json.load(f)
                rows = {r["id"]: r for r in
                        con.execute("SELECT * FROM tweets WHERE _job = ?", (j["id"],))}
                self.assertEqual(set(rows), {t["id"] for t in doc["tweets"]})
                for t in doc["tweets"]:
                    r = rows[t["id"]]
                    msg = "job %d tweet %s" % (j["id"], t["id"])
                    self.assertEqual(r["full_text"], t["full_text"], msg)
                    self.assertEqual(r["favorite_count"], t["favorite_count"], msg)
                    self.assertEqual(r["retweet_count"], t["retweet_count"], msg)
                    self.assertEqual(r["created_at"], t["created_at"], msg)
                    self.assertEqual(r["lang"], t["lang"], msg)
                    self.assertIsInstance(r["entities_hashtags"], str, msg)
                    self.assertEqual(json.loads(r["entities_hashtags"]),
                                     t["entities"]["hashtags"], msg)
                    checked += 1
            self.assertGreater(checked, 50)

    def test_two_sources_share_one_db(self):
        """Jobs belong to the URL list that made them: a copy of the list is a
        second source with its own 300 jobs, and neither run takes the
        other's jobs."""
        cwd = self.workdir("two-sources")
        db = os.path.join(cwd, "rf.db")
        first = self.url_list(cwd, "following-urls.txt")
        second = self.url_list(cwd, "followers-urls.txt")
        self.run_ok(["--urls", first, "--db", db, "--rows", "$.following[*]",
                     "--table", "following"], cwd)
        self.run_ok(["--urls", second, "--db", db, "--rows", "$.followers[*]",
                     "--table", "followers"], cwd)
        with harness.open_db(db) as con:
            per_source = sorted(n for (n,) in con.execute(
                "SELECT count(*) FROM _ringfill_jobs WHERE state = 'done' GROUP BY source"))
            self.assertEqual(per_source, [COUNT, COUNT])
            self.assertEqual(con.execute("SELECT count(*) FROM _ringfill_jobs").fetchone()[0],
                             2 * COUNT)
        totals = self.manifest["totals"]
        self.assertEqual(harness.count_rows(db, "following"), totals["following"])
        self.assertEqual(harness.count_rows(db, "followers"), totals["followers"])

    def test_keys_sharing_a_url_share_its_raw_file(self):
        """Manifest lines may give one URL under several keys (one document,
        several job variables): their raw files have one name. Each job
        writes its own .part (the second and later NAME.ID.part), so none
        writes or renames another's: one run, every job done, one raw file
        equal to the served one. On 2c0659b every run stopped (exit 3,
        `.part: cannot rename`), each finishing about one more job."""
        cwd = self.workdir("shared-url")
        f = max(self.files, key=lambda f: f["bytes"])
        keys = ["k%d" % i for i in range(8)]
        urls = harness.write_lines(os.path.join(cwd, "urls.txt"), [
            '{"url": "%s", "key": "%s", "who": "%s"}' % (self.nginx.url(f["path"]), k, k)
            for k in keys])
        db = os.path.join(cwd, "rf.db")
        self.run_ok(["--urls", urls, "--db", db, "--rows", "$.following[*]",
                     "--table", "following", "--raw", "raw", "--concurrency", "8"], cwd)
        jobs = harness.jobs(db)
        self.assertEqual(sorted((j["key"], j["state"]) for j in jobs),
                         [(k, "done") for k in keys])
        self.assertEqual(len({j["raw_path"] for j in jobs}), 1, jobs)
        self.check_raw_files(cwd, db, "raw")
        self.assertEqual(harness.count_rows(db, "following"), len(keys) * f["following"])


if __name__ == "__main__":
    harness.main_or_skip(need_nginx=True)
