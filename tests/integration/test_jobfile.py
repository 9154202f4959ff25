#!/usr/bin/env python3
"""A job file against a real nginx over TLS: a URL template over a list of
usernames fills four tables from one parse of each archive (following with a
two-column key in upsert mode, tweets with a typed favorite_count and
null_if, one profile row per archive in ignore mode, followers inferred), and
every table holds exactly what the served documents say. Re-running changes
nothing. A broken job file exits 2 naming FILE:LINE and creates no database.

Needs $RINGFILL (the binary; meson sets it); exits 77 (skip) without it.
Run alone: RINGFILL=build/engine/ringfill python3 tests/integration/test_jobfile.py
"""

import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import describe, run_ringfill  # noqa: E402

COUNT = 60
SEED = 7
NULL_IF = ["N/A", "Not On File", ""]


def setUpModule():
    harness.skip_unless_ringfill()


def to_int(v):
    """The documented rule for an integer column (docs/jobfile.md)."""
    if v is None or isinstance(v, (dict, list)):
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v) if v.is_integer() else None
    try:
        return int(v, 10)
    except ValueError:
        return None


def cleaned(v):
    return None if isinstance(v, str) and v in NULL_IF else v


def dirty(data, files):
    """Rewrites some served archives with the values a scrape export holds:
    "N/A" and numbers as strings where a count should be, "Not On File" and
    empty strings, so the typed columns and null_if have work to do."""
    for i, f in enumerate(files):
        if i % 3:
            continue
        path = os.path.join(data, f["path"])
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        for k, t in enumerate(doc["tweets"][:5]):
            t["favorite_count"] = ["N/A", str(t["favorite_count"]), 3.0, "x12", None][k]
            if k == 1:
                t["full_text"] = ""
            if k == 2:
                t["lang"] = "Not On File"
        doc["profile"]["location"] = "Not On File"
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, ensure_ascii=False)


class JobFileNginx(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rf-jobfile-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.data = os.path.join(cls.tmp, "data")
        cls.manifest = harness.gen_dataset(cls.data, COUNT, SEED)
        cls.files = cls.manifest["files"]
        dirty(cls.data, cls.files)
        cls.pki = harness.make_pki(os.path.join(cls.tmp, "pki"))
        cls.nginx = harness.Nginx(cls.data, cls.pki, work=os.path.join(cls.tmp, "nginx"))
        cls.nginx.start()
        cls.addClassCleanup(cls.nginx.stop)
        cls.docs = {}
        for f in cls.files:
            with open(os.path.join(cls.data, f["path"]), encoding="utf-8") as fh:
                cls.docs[f["username"]] = json.load(fh)

    def job_file(self, cwd):
        harness.write_lines(os.path.join(cwd, "users.txt"),
                            ["# one username per line"] + sorted(self.docs))
        template = self.nginx.url("archives/{username}.json")
        text = """{
  // the issue's example, with a template source over a usernames file
  "source": { "template": "%s", "keys": "users.txt" },
  "db": "out.db",
  "http": { "concurrency": 16, "per_host": 8, "retries": 2, "timeout_s": 30,
            "cacert": "%s" },
  "tables": [
    { "name": "archive_following", "rows": "$.following[*]",
      "columns": { "account_id": "$.account.accountId", "following_id": "@.accountId",
                   "username": "{username}" },
      "key": ["account_id", "following_id"], "mode": "upsert" },
    { "name": "archive_tweets", "rows": "$.tweets[*]",
      "columns": { "tweet_id": "@.id", "account_id": "$.account.accountId",
                   "full_text": "@.full_text", "lang": "@.lang",
                   "favorite_count": { "path": "@.favorite_count", "type": "integer" },
                   "hashtags": { "path": "@.entities.hashtags", "type": "json" } },
      "key": ["tweet_id"], "mode": "upsert", "null_if": %s },
    { "name": "archive_profile", "rows": "$",   // one row per archive
      "columns": { "account_id": "$.account.accountId", "username": "{username}",
                   "bio": "$.profile.bio", "location": "$.profile.location" },
      "key": ["account_id"], "mode": "ignore", "null_if": %s },
    { "name": "archive_followers", "rows": "$.followers[*]" }
  ]
}
""" % (template, self.pki.ca_cert, json.dumps(NULL_IF), json.dumps(NULL_IF))
        path = os.path.join(cwd, "archives.json")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return path

    def expected(self):
        following, tweets, profile, followers = {}, {}, {}, []
        for user, doc in self.docs.items():
            acc = doc["account"]["accountId"]
            for f in doc["following"]:
                following[(acc, f["accountId"])] = user
            for t in doc["tweets"]:
                tweets[t["id"]] = (acc, cleaned(t["full_text"]), cleaned(t["lang"]),
                                   to_int(cleaned(t["favorite_count"])),
                                   t["entities"]["hashtags"])
            p = doc["profile"]
            profile.setdefault(acc, (user, cleaned(p["bio"]), cleaned(p["location"])))
            followers += [f["accountId"] for f in doc["followers"]]
        return following, tweets, profile, sorted(followers)

    def check_tables(self, db):
        following, tweets, profile, followers = self.expected()
        with harness.open_db(db) as con:
            users = {r["id"]: r["key"] for r in con.execute("SELECT id, key FROM _ringfill_jobs")}
            got = {}
            for r in con.execute("SELECT * FROM archive_following"):
                got[(r["account_id"], r["following_id"])] = r["username"]
                self.assertEqual(users[r["_job"]], r["username"])
            self.assertEqual(got, following)
            n = con.execute("SELECT count(*) FROM archive_following").fetchone()[0]
            self.assertEqual(n, len(following))
            got = {}
            for r in con.execute("SELECT * FROM archive_tweets"):
                got[r["tweet_id"]] = (r["account_id"], r["full_text"], r["lang"],
                                      r["favorite_count"], json.loads(r["hashtags"]))
            self.assertEqual(got, tweets)
            got = {r["account_id"]: (r["username"], r["bio"], r["location"])
                   for r in con.execute("SELECT * FROM archive_profile")}
            self.assertEqual(got, profile)
            self.assertEqual(sorted(r[0] for r in con.execute(
                'SELECT "accountId" FROM archive_followers')), followers)
            idx = {r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name LIKE 'archive%'")}
            self.assertEqual(idx, {"_ringfill_key_archive_following",
                                   "_ringfill_key_archive_tweets",
                                   "_ringfill_key_archive_profile"})

    def test_template_job_file_fills_every_table(self):
        cwd = os.path.join(self.tmp, "run")
        os.makedirs(cwd)
        job = self.job_file(cwd)
        # Run from elsewhere: paths in the file are relative to its directory.
        proc = run_ringfill(["run", job, "--quiet"], cwd=self.tmp)
        self.assertEqual(proc.returncode, 0, describe(proc))
        db = os.path.join(cwd, "out.db")
        jobs = harness.jobs(db)
        self.assertEqual(len(jobs), COUNT)
        self.assertEqual({j["state"] for j in jobs}, {"done"})
        self.assertEqual({j["source"] for j in jobs}, {"job:" + os.path.realpath(job)})
        for j in jobs:
            self.assertEqual(j["url"], self.nginx.url("archives/%s.json" % j["key"]))
            self.assertEqual(json.loads(j["vars"]), {"username": j["key"]})
        self.check_tables(db)

        # The same command again: every job is done, no table changes.
        before = {}
        with harness.open_db(db) as con:
            for t in ("archive_following", "archive_tweets", "archive_profile",
                      "archive_followers"):
                before[t] = sorted(map(tuple, con.execute('SELECT * FROM "%s"' % t)))
        proc = run_ringfill(["run", job, "--quiet"], cwd=self.tmp)
        self.assertEqual(proc.returncode, 0, describe(proc))
        with harness.open_db(db) as con:
            for t, rows in before.items():
                self.assertEqual(sorted(map(tuple, con.execute('SELECT * FROM "%s"' % t))), rows)
        self.check_tables(db)

    def test_dry_run_prints_the_plan(self):
        cwd = os.path.join(self.tmp, "dry")
        os.makedirs(cwd)
        job = self.job_file(cwd)
        proc = run_ringfill(["run", job, "--dry-run"], cwd=cwd)
        self.assertEqual(proc.returncode, 0, describe(proc))
        self.assertIn("%d keys" % COUNT, proc.stdout)
        self.assertIn('table "archive_tweets": rows $.tweets[*], mode upsert, key (tweet_id)',
                      proc.stdout)
        self.assertIn("favorite_count", proc.stdout)
        self.assertIn("columns: inferred", proc.stdout)
        self.assertFalse(os.path.exists(os.path.join(cwd, "out.db")))

    def test_errors_name_the_line_and_create_nothing(self):
        cwd = os.path.join(self.tmp, "bad")
        os.makedirs(cwd)
        with open(self.job_file(cwd), encoding="utf-8") as fh:
            good = fh.read()
        # (text, replacement, message); the message names the replaced line.
        cases = [
            ('"mode": "ignore"', '"mode": "ignroe"',
             "tables[2].mode: expected one of append, upsert, ignore"),
            ('"rows": "$.tweets[*]"', '"rows": "$.tweets[*"', "tables[1].rows: bad JSONPath"),
            ('"key": ["tweet_id"]', '"key": ["id"]',
             'tables[1].key: "id" is not one of the table\'s columns'),
            ('"per_host": 8', '"per_hots": 8', "http.per_hots: unknown key"),
            ('{username}.json', '{username}/{x}.json',
             "source.template: expected exactly one {name}"),
            ('"type": "integer"', '"type": "int"',
             "tables[1].columns.favorite_count.type: expected one of text, integer"),
            ('"@.lang"', '"lang"', "tables[1].columns.lang: expected '@.path'"),
            ('"key": ["account_id"], "mode": "ignore"', '"mode": "ignore"',
             "tables[2].key: mode ignore needs a key"),
            ('"username": "{username}",', '"username": "{username}", "Username": "@.x",',
             "tables[2].columns.Username: same name as column username"),
        ]
        for old, new, msg in cases:
            self.assertIn(old, good)
            line = good[:good.index(old)].count("\n") + 1
            path = os.path.join(cwd, "bad.json")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(good.replace(old, new, 1))
            proc = run_ringfill(["run", "bad.json", "--dry-run"], cwd=cwd)
            self.assertEqual(proc.returncode, 2, describe(proc))
            self.assertIn("bad.json:%d: %s" % (line, msg), proc.stderr, describe(proc))
            proc = run_ringfill(["run", "bad.json"], cwd=cwd)
            self.assertEqual(proc.returncode, 2, describe(proc))
            self.assertFalse(os.path.exists(os.path.join(cwd, "out.db")))


if __name__ == "__main__":
    harness.main_or_skip(need_nginx=True)
