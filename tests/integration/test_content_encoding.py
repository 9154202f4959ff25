#!/usr/bin/env python3
"""_ringfill_jobs.content_encoding: the coding a body was sent and stored with.

Against a real nginx with gzip on, every done job records "gzip", its raw
file (--raw, parsed run or --download-only) is the body as sent and gunzips
to the served document, and its sha256 and bytes are of the coded body; a
plain nginx records NULL (identity); a database made before the column is
upgraded in place (the column added, old jobs NULL) and then filled.
`ringfill status --json` counts the codings.

Needs $RINGFILL (the binary; meson sets it); exits 77 (skip) without it.
Run alone: RINGFILL=build/engine/ringfill python3 tests/integration/test_content_encoding.py
"""

import gzip
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import describe, run_ringfill  # noqa: E402

COUNT = 12
SEED = 29

# _ringfill_jobs as store/store.c made it before content_encoding.
OLD_SCHEMA = """
CREATE TABLE _ringfill_jobs (
 id INTEGER PRIMARY KEY, source TEXT NOT NULL, key TEXT NOT NULL, url TEXT,
 state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','done','failed')),
 attempts INTEGER NOT NULL DEFAULT 0, http_status INTEGER,
 error_class TEXT CHECK (error_class IN ('transient','permanent')),
 error TEXT, bytes INTEGER, sha256 TEXT, raw_path TEXT, vars TEXT,
 updated_at REAL, ckpt_offset INTEGER, ckpt_records INTEGER, ckpt_validator TEXT,
 UNIQUE(source, key));
CREATE INDEX _ringfill_jobs_source_state ON _ringfill_jobs(source, state, id);
CREATE TABLE _ringfill_columns (tbl TEXT NOT NULL, key TEXT NOT NULL, col TEXT NOT NULL,
 PRIMARY KEY(tbl, key));
INSERT INTO _ringfill_jobs (source, key, url, state, bytes, sha256)
 VALUES ('old.txt', 'https://old/1', 'https://old/1', 'done', 3, 'x');
"""


def setUpModule():
    harness.skip_unless_ringfill()


class ContentEncoding(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rf-coding-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.data = os.path.join(cls.tmp, "data")
        cls.manifest = harness.gen_dataset(cls.data, COUNT, SEED)
        cls.pki = harness.make_pki(os.path.join(cls.tmp, "pki"))
        cls.gz = harness.Nginx(cls.data, cls.pki, work=os.path.join(cls.tmp, "ngz"), gzip=True)
        cls.gz.start()
        cls.addClassCleanup(cls.gz.stop)
        cls.plain = harness.Nginx(cls.data, cls.pki, work=os.path.join(cls.tmp, "nplain"))
        cls.plain.start()
        cls.addClassCleanup(cls.plain.stop)

    def workdir(self):
        return harness.new_dir(self.tmp)

    def run_ok(self, ng, d, extra):
        urls = harness.write_lines(os.path.join(d, "urls.txt"),
                                   [ng.url(f["path"]) for f in self.manifest["files"]])
        db = os.path.join(d, "out.db")
        p = run_ringfill(["run", "--urls", urls, "--db", db, "--raw", "raw",
                          "--cacert", self.pki.ca_cert, "--quiet"] + extra, cwd=d)
        self.assertEqual(p.returncode, 0, describe(p))
        return db

    def served(self, ng):
        """url -> the served file's bytes."""
        out = {}
        for f in self.manifest["files"]:
            with open(os.path.join(self.data, f["path"]), "rb") as fh:
                out[ng.url(f["path"])] = fh.read()
        return out

    def status_codings(self, db):
        p = run_ringfill(["status", "--json", db])
        self.assertEqual(p.returncode, 0, describe(p))
        return json.loads(p.stdout)["content_encodings"]

    def check_gzip_jobs(self, d, db):
        served = self.served(self.gz)
        jobs = [j for j in harness.jobs(db) if j["source"] != "old.txt"]
        self.assertEqual(len(jobs), COUNT)
        for j in jobs:
            self.assertEqual((j["state"], j["content_encoding"]), ("done", "gzip"), j)
            with open(os.path.join(d, j["raw_path"]), "rb") as f:
                raw = f.read()
            self.assertEqual(raw[:2], b"\x1f\x8b", j)  # kept as sent
            self.assertEqual(gzip.decompress(raw), served[j["url"]], j)
            self.assertEqual(j["sha256"], hashlib.sha256(raw).hexdigest(), j)
            self.assertEqual(j["bytes"], len(raw), j)
        self.assertEqual(self.status_codings(db), {"gzip": COUNT})

    def test_gzip_run_records_gzip(self):
        d = self.workdir()
        db = self.run_ok(self.gz, d, ["--rows", "$.following[*]", "--table", "following"])
        self.check_gzip_jobs(d, db)
        # The rows are the decoded documents'.
        self.assertEqual(harness.count_rows(db, "following"),
                         self.manifest["totals"]["following"])

    def test_gzip_download_only_records_gzip(self):
        d = self.workdir()
        db = self.run_ok(self.gz, d, ["--download-only"])
        self.check_gzip_jobs(d, db)

    def test_identity_run_records_null(self):
        d = self.workdir()
        db = self.run_ok(self.plain, d, ["--rows", "$.following[*]", "--table", "following"])
        served = self.served(self.plain)
        jobs = harness.jobs(db)
        self.assertEqual(len(jobs), COUNT)
        for j in jobs:
            self.assertEqual(j["state"], "done", j)
            self.assertIsNone(j["content_encoding"], j)
            with open(os.path.join(d, j["raw_path"]), "rb") as f:
                self.assertEqual(f.read(), served[j["url"]], j)
        self.assertEqual(self.status_codings(db), {})

    def test_old_database_is_upgraded(self):
        d = self.workdir()
        db = os.path.join(d, "out.db")
        con = sqlite3.connect(db)
        con.executescript(OLD_SCHEMA)
        con.close()
        self.run_ok(self.gz, d, ["--rows", "$.following[*]", "--table", "following"])
        with harness.open_db(db) as con:
            cols = [r[1] for r in con.execute("PRAGMA table_info(_ringfill_jobs)")]
            old = con.execute("SELECT state, content_encoding FROM _ringfill_jobs"
                              " WHERE source='old.txt'").fetchall()
        self.assertEqual(cols.count("content_encoding"), 1, cols)
        self.assertEqual([tuple(r) for r in old], [("done", None)])
        self.check_gzip_jobs(d, db)

    def load_files(self, d, pattern, rows, extra=(), env=None):
        """Runs a files job on pattern (under d) into table t; returns the
        database and the run."""
        job = os.path.join(d, "load.json")
        with open(job, "w") as f:
            json.dump({"source": {"files": pattern}, "db": "load.db",
                       "tables": [{"name": "t", "rows": rows}]}, f)
        p = run_ringfill(["run", job, "--quiet"] + list(extra), cwd=d, env=env)
        return os.path.join(d, "load.db"), p

    def test_gzip_raw_files_load_as_the_documents(self):
        """The documented follow-up of --download-only: a files job on the
        kept bodies. From a server that gzips they are gzip (as sent): the
        files source decodes them (small documents, read whole), and its
        jobs record the files as stored (gzip, their bytes and digest)."""
        d = self.workdir()
        self.run_ok(self.gz, d, ["--download-only"])
        db, p = self.load_files(d, "raw/*/*.json", "$.following[*]")
        self.assertEqual(p.returncode, 0, describe(p))
        self.assertEqual(harness.count_rows(db, "t"), self.manifest["totals"]["following"])
        jobs = harness.jobs(db)
        self.assertEqual(len(jobs), COUNT)
        for j in jobs:
            with open(j["raw_path"], "rb") as f:
                raw = f.read()
            self.assertEqual((j["state"], j["content_encoding"], j["bytes"], j["sha256"]),
                             ("done", "gzip", len(raw), hashlib.sha256(raw).hexdigest()), j)
        # An inferred "$" table cannot stream: the files are decoded whole.
        os.unlink(db)
        db, p = self.load_files(d, "raw/*/*.json", "$")
        self.assertEqual(p.returncode, 0, describe(p))
        self.assertEqual(harness.count_rows(db, "t"), COUNT)
        with harness.open_db(db) as con:
            accounts = {r[0] for r in con.execute("SELECT account_accountId FROM t")}
        self.assertEqual(len(accounts), COUNT)

    def test_gzip_local_files_stream_and_fail_cleanly(self):
        """gzip files of 1 MiB or more go the streamed way (a document
        through its json_stream, NDJSON line by line), decoded a piece at a
        time; a small one is read whole. Truncated or corrupt gzip fails its
        job for good, naming the file, with no row; the others load whole."""
        d = self.workdir()
        src = os.path.join(d, "files")
        os.makedirs(src)
        rng = __import__("random").Random(SEED)
        want = 0

        def items(n):
            nonlocal want
            want += n
            return [{"id": want - n + i, "h": "%032x" % rng.getrandbits(128)} for i in range(n)]
        docs = {
            "big.json": json.dumps({"items": items(60000)}).encode(),
            "big.ndjson": "".join(json.dumps({"items": items(3)}) + "\n"
                                  for _ in range(20000)).encode(),
            "small.ndjson": "".join(json.dumps({"items": items(2)}) + "\n"
                                    for _ in range(5)).encode(),
            "small.json": json.dumps({"items": items(7)}).encode(),
        }
        for k in range(6):  # small documents, read again streamed: two at a time
            docs["s%d.json" % k] = json.dumps({"items": items(3)}).encode()
        for name, body in docs.items():
            with open(os.path.join(src, name), "wb") as f:
                f.write(gzip.compress(body, 6, mtime=0))
        for name in ("big.json", "big.ndjson"):
            self.assertGreater(os.path.getsize(os.path.join(src, name)), 1 << 20, name)
        cut = gzip.compress(json.dumps({"items": [{"id": -1}]}).encode() * 1, 6, mtime=0)
        with open(os.path.join(src, "cut.json"), "wb") as f:
            f.write(cut[:len(cut) // 2])
        with open(os.path.join(src, "bad.json"), "wb") as f:
            f.write(b"\x1f\x8b" + b"not gzip at all" * 10)
        stats = os.path.join(d, "stats.json")
        db, p = self.load_files(d, "files", "$.items[*]", env={"RINGFILL_COPY_STATS": stats})
        self.assertEqual(p.returncode, 1, describe(p))
        with open(stats, encoding="ascii") as f:
            s = json.load(f)
        self.assertEqual(s["local_streams_peak"], 2, s)  # never more documents at once
        self.assertGreaterEqual(s["local_stream_waits"], 1, s)
        # Small gzip files are read twice, and counted once.
        self.assertEqual(s["body_bytes"], sum(os.path.getsize(os.path.join(src, n))
                                              for n in os.listdir(src)), s)
        jobs = {j["key"]: j for j in harness.jobs(db)}
        for name in docs:
            self.assertEqual((jobs[name]["state"], jobs[name]["content_encoding"]),
                             ("done", "gzip"), jobs[name])
        for name in ("cut.json", "bad.json"):
            j = jobs[name]
            self.assertEqual((j["state"], j["error_class"]), ("failed", "permanent"), j)
            self.assertIn(os.path.join(src, name), j["error"])
            self.assertIn("bad gzip data at byte", j["error"])
        with harness.open_db(db) as con:
            got = con.execute("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM t")
            self.assertEqual(tuple(got.fetchone()), (want, want, 0, want - 1))


if __name__ == "__main__":
    harness.main_or_skip(need_nginx=True)
