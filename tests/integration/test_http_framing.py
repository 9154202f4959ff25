#!/usr/bin/env python3
"""HTTP/1.1 framing and server faults, against tests/integration/faultserver.py:
chunked bodies (odd sizes, extensions, trailers), close-delimited bodies and
keep-alive sequences land exactly the right rows; a truncated body and a 500
are retried and end failed/transient; a 429 with Retry-After is waited out;
`ringfill status` reports the same counts as text and as JSON.

Needs $RINGFILL (the binary; meson sets it); exits 77 (skip) without it.
Run alone: RINGFILL=build/engine/ringfill python3 tests/integration/test_http_framing.py
"""

import json
import os
import re
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import faultserver  # noqa: E402
import harness  # noqa: E402
from harness import describe, run_ringfill  # noqa: E402

RETRIES = 3


def setUpModule():
    harness.skip_unless_ringfill()


def find_key(obj, key):
    """The first value stored under key anywhere in a parsed JSON value."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        obj = list(obj.values())
    if isinstance(obj, list):
        for v in obj:
            found = find_key(v, key)
            if found is not None:
                return found
    return None


def status_numbers(text, word):
    """Numbers the text output of `ringfill status` gives for word: in prose
    ("2 done", "done: 2") or in a table whose header row names the column
    (values aligned from the right, so a first column may be a path)."""
    found = set()
    for m in re.finditer(r"\b(\d+)\s*%s\b|\b%s\b[\s:=]*(\d+)\b" % (word, word), text, re.I):
        found.add(int(m.group(1) or m.group(2)))
    lines = text.splitlines()
    for i, line in enumerate(lines):
        head = line.lower().split()
        if word not in head:
            continue
        from_right = len(head) - head.index(word)
        for row in lines[i + 1:]:
            cells = row.split()
            if not cells:
                break
            if len(cells) >= from_right and cells[-from_right].isdigit():
                found.add(int(cells[-from_right]))
    return found


class HttpFraming(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rf-framing-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.data = os.path.join(cls.tmp, "data")
        manifest = harness.gen_dataset(cls.data, 40, 11)
        # Documents with rows, the biggest first: several TLS records each.
        cls.files = sorted((f for f in manifest["files"] if f["following"] > 0),
                           key=lambda f: -f["bytes"])[:6]
        cls.pki = harness.make_pki(os.path.join(cls.tmp, "pki"))
        cls.fs = faultserver.FaultServer(cls.data, cls.pki).start()
        cls.addClassCleanup(cls.fs.stop)

    def setUp(self):
        self.cwd = tempfile.mkdtemp(prefix="case-", dir=self.tmp)
        self.db = os.path.join(self.cwd, "rf.db")

    def run_list(self, urls, per_host=None):
        path = harness.write_lines(os.path.join(self.cwd, "urls.txt"), urls)
        args = ["run", "--urls", path, "--db", self.db, "--rows", "$.following[*]",
                "--table", "following", "--cacert", self.pki.ca_cert, "--quiet",
                "--retries", str(RETRIES), "--retry-base", "0.05", "--retry-max", "0.2",
                "--timeout", "10"]
        if per_host:
            args += ["--per-host", str(per_host)]
        return run_ringfill(args, cwd=self.cwd)

    def check_done_with_rows(self, expect, proc):
        """expect: url -> manifest entry. Each job done, body sha256 equal to
        the file's, and exactly its rows. proc: the run, shown on failure."""
        jobs = {j["url"]: j for j in harness.jobs(self.db)}
        for url in expect:
            self.assertEqual(jobs[url]["state"], "done", "%r%s" % (jobs[url], describe(proc)))
        with harness.open_db(self.db) as con:
            got = dict(con.execute("SELECT _job, count(*) FROM following GROUP BY _job"))
        for url, f in expect.items():
            j = jobs[url]
            self.assertEqual(j["state"], "done", j)
            self.assertEqual(j["sha256"], f["sha256"], j)
            self.assertEqual(j["bytes"], f["bytes"], j)
            self.assertEqual(got.get(j["id"], 0), f["following"], url)
        return jobs

    def test_framings_land_the_right_rows(self):
        expect = {}
        for mode in ("chunked", "close", "keepalive"):
            for f in self.files:
                expect[self.fs.url("%s/%s" % (mode, f["path"]))] = f
        proc = self.run_list(list(expect))
        self.assertEqual(proc.returncode, 0, describe(proc))
        self.check_done_with_rows(expect, proc)
        self.assertEqual(harness.count_rows(self.db, "following"),
                         sum(f["following"] for f in expect.values()))

    def test_keepalive_sequence_on_one_connection(self):
        # --per-host 1: one connection at a time, so the responses follow one
        # another on a kept-alive connection (when the client reuses it).
        expect = {self.fs.url("keepalive/%s?n=%d" % (f["path"], i)): f
                  for i in range(3) for f in self.files}
        proc = self.run_list(list(expect), per_host=1)
        self.assertEqual(proc.returncode, 0, describe(proc))
        self.check_done_with_rows(expect, proc)

    def test_faults_are_retried_and_classified(self):
        good = {self.fs.url("chunked/" + self.files[0]["path"]): self.files[0]}
        truncated = self.fs.url("truncated/" + self.files[1]["path"])
        status500 = self.fs.url("status/500")
        once429 = self.fs.url("once429/" + self.files[2]["path"])
        proc = self.run_list(list(good) + [truncated, status500, once429])
        self.assertEqual(proc.returncode, 1, describe(proc))

        jobs = self.check_done_with_rows(dict(good, **{once429: self.files[2]}), proc)
        hits = self.fs.hits
        self.assertEqual(hits["/once429/" + self.files[2]["path"]], 2, hits)

        t = jobs[truncated]
        self.assertEqual((t["state"], t["error_class"]), ("failed", "transient"), t)
        self.assertEqual(t["attempts"], RETRIES, t)
        self.assertRegex(t["error"].lower(), r"truncat|closed|short|incomplete|eof|premature")
        self.assertEqual(hits["/truncated/" + self.files[1]["path"]], RETRIES, hits)

        s = jobs[status500]
        self.assertEqual((s["state"], s["error_class"]), ("failed", "transient"), s)
        self.assertEqual(s["http_status"], 500, s)
        self.assertEqual(s["attempts"], RETRIES, s)
        self.assertIn("500", s["error"])
        self.assertEqual(hits["/status/500"], RETRIES, hits)

        with harness.open_db(self.db) as con:
            rows_of_failed = con.execute(
                "SELECT count(*) FROM following WHERE _job IN (?, ?)",
                (t["id"], s["id"])).fetchone()[0]
        self.assertEqual(rows_of_failed, 0)

        self.check_status(done=2, failed=2)

    def check_status(self, done, failed):
        proc = run_ringfill(["status", self.db], cwd=self.cwd)
        self.assertEqual(proc.returncode, 0, describe(proc))
        out = proc.stdout
        for word, n in (("done", done), ("failed", failed)):
            self.assertIn(n, status_numbers(out, word),
                          "%s count %d not in status output:\n%s" % (word, n, out))

        proc = run_ringfill(["status", "--json", self.db], cwd=self.cwd)
        self.assertEqual(proc.returncode, 0, describe(proc))
        doc = json.loads(proc.stdout)
        self.assertEqual(find_key(doc, "done"), done, doc)
        self.assertEqual(find_key(doc, "failed"), failed, doc)


if __name__ == "__main__":
    harness.main_or_skip()
