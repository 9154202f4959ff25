#!/usr/bin/env python3
"""A single JSON document of several hundred MB, served by a real nginx over
TLS, is streamed into two tables in bounded memory (engine/docstream.c):
the tables hold exactly what the generator wrote, a `$.meta.x` column before
the records and a `$.tail.y` column after them are right in every row, and
the process's peak RSS stays far below the document's size. An invalid
document fails its job permanently, with the whole-body parser's byte
offset and line, and leaves no row.

Needs $RINGFILL (the binary; meson sets it); exits 77 (skip) without it.
Run alone: RINGFILL=build/engine/ringfill python3 tests/integration/test_docstream.py
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SANITIZED = bool(os.environ.get("RINGFILL_SANITIZED"))
# The document: 320 MB (48 MB under sanitizers, which run several times slower).
DOC_BYTES = (48 if SANITIZED else 320) << 20
# Peak RSS allowed for the whole ringfill process, in KiB. The body buffer the
# whole-body path needed (the document, plus 4 bytes of index per byte and a
# tape) would be gigabytes; what remains is the row batch (about 40 bytes per
# item row here, ~11 MB), SQLite's cache, the stream's buffers (a window of
# 256 KiB, 1 MiB of index) and the program itself. ASan's shadow and
# quarantine need more.
RSS_MAX_KIB = (400 if SANITIZED else 100) << 10
BLOB = "lorem ipsum dolor sit amet, " * 36  # ~1 KB a record, not extracted
EVENTS = 1000


def gen_document(path, size):
    """{"meta":{...},"items":[...],"events":[...],"tail":{...}}, one record a
    line, written in pieces (never held whole). Returns what the tables must
    hold: per table the row count and a SHA-256 of its rows in order."""
    items_sha, events_sha = hashlib.sha256(), hashlib.sha256()
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"meta": {"x": "run-7", "n": 3},\n "items": [\n')
        written = f.tell()
        buf = []
        while written < size:
            name = 'item \\"%d\\" \\u00e9' % n  # as JSON text: an escaped quote and é
            rec = '{"id": %d, "name": "%s", "blob": "%s", "tags": [%d, %d]}' % (
                n, name, BLOB, n % 7, n % 11)
            buf.append(("" if n == 0 else ",\n") + rec)
            items_sha.update(("%d|item \"%d\" \u00e9|run-7\n" % (n, n)).encode())
            written += len(rec) + 2
            n += 1
            if len(buf) == 4096:
                f.write("".join(buf))
                buf = []
        f.write("".join(buf))
        f.write('\n ],\n "events": [\n')
        f.write(",\n".join('{"k": %d}' % k for k in range(EVENTS)))
        for k in range(EVENTS):
            events_sha.update(("%d|5|run-7\n" % k).encode())
        f.write('\n ],\n "tail": {"y": 5}}\n')
    return {"items": (n, items_sha.hexdigest()), "events": (EVENTS, events_sha.hexdigest())}


JOB = """{
  "source": %s,
  "db": "out.db",
  "http": { "cacert": "%s", "retries": 2 },
  "tables": [
    { "name": "items", "rows": "$.items[*]",
      "columns": { "id": { "path": "@.id", "type": "integer" }, "name": "@.name",
                   "x": "$.meta.x" } },
    { "name": "events", "rows": "$.events[*]",
      "columns": { "k": "@.k", "y": "$.tail.y", "x": "$.meta.x" } },
    { "name": "docs", "rows": "$",
      "columns": { "n": "@.meta.n", "y": "$.tail.y", "missing": "$.nowhere" } }
  ]
}
"""


class MeasuredPopen(subprocess.Popen):
    """Popen that keeps the child's own rusage (wait4) when it is reaped."""
    maxrss = None

    def _try_wait(self, wait_flags):
        pid, sts, ru = os.wait4(self.pid, wait_flags)
        if pid == self.pid:
            self.maxrss = ru.ru_maxrss
        return (pid, sts)


def setUpModule():
    harness.skip_unless_ringfill()


class DocStream(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rf-docstream-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.data = os.path.join(cls.tmp, "data")
        os.makedirs(cls.data)
        cls.want = gen_document(os.path.join(cls.data, "big.json"), DOC_BYTES)
        cls.pki = harness.make_pki(os.path.join(cls.tmp, "pki"))
        cls.nginx = harness.Nginx(cls.data, cls.pki, work=os.path.join(cls.tmp, "nginx"))
        cls.nginx.start()
        cls.addClassCleanup(cls.nginx.stop)

    def run_job(self, name, path, local=False, job=None):
        """Runs the job file (JOB, or job) on data/PATH, fetched from nginx or
        (local) read by the files source."""
        cwd = os.path.join(self.tmp, name)
        os.makedirs(cwd)
        harness.write_lines(os.path.join(cwd, "urls.txt"), [self.nginx.url(path)])
        source = {"files": os.path.join(self.data, path)} if local else {"urls": "urls.txt"}
        with open(os.path.join(cwd, "job.json"), "w", encoding="utf-8") as f:
            f.write((job or JOB) % (json.dumps(source), self.pki.ca_cert))
        # Without meson's MALLOC_PERTURB_: it writes every byte malloc hands
        # out, so the peak would count the unused tail of every grown buffer.
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_PERTURB_"}
        proc = MeasuredPopen([harness.ringfill_path(), "run", "job.json", "--quiet"], cwd=cwd,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=harness.RUN_TIMEOUT_S)
        self.assertIsNotNone(proc.maxrss)
        return cwd, proc.returncode, out + err, proc.maxrss

    def table_digest(self, db, sql):
        h = hashlib.sha256()
        n = 0
        with harness.open_db(db) as con:
            for row in con.execute(sql):
                h.update(("|".join(str(v) for v in row) + "\n").encode())
                n += 1
        return n, h.hexdigest()

    def test_big_document_streams_in_bounded_memory(self):
        self.check_big("big", local=False)

    def test_big_local_file_streams_in_bounded_memory(self):
        self.check_big("big-local", local=True)

    def check_big(self, name, local):
        cwd, rc, log, rss_kib = self.run_job(name, "big.json", local)
        self.assertEqual(rc, 0, log)
        db = os.path.join(cwd, "out.db")
        jobs = harness.jobs(db)
        self.assertEqual([j["state"] for j in jobs], ["done"], jobs)
        self.assertEqual(jobs[0]["bytes"], os.path.getsize(os.path.join(self.data, "big.json")))
        self.assertEqual(self.table_digest(db, "SELECT id, name, x FROM items ORDER BY rowid"),
                         self.want["items"])
        self.assertEqual(self.table_digest(db, "SELECT k, y, x FROM events ORDER BY rowid"),
                         self.want["events"])
        with harness.open_db(db) as con:
            self.assertEqual([tuple(r) for r in con.execute("SELECT n, y, missing FROM docs")],
                             [(3, 5, None)])
        print("\n%d MB document (%s), %d item rows: peak RSS %d KiB" % (
            DOC_BYTES >> 20, "file" if local else "https", self.want["items"][0], rss_kib),
            file=sys.stderr)
        self.assertLess(rss_kib, RSS_MAX_KIB,
                        "peak RSS %d KiB for a %d MB document" % (rss_kib, DOC_BYTES >> 20))

    def test_streamed_rows_equal_whole_body_rows(self):
        """The same job file plus an inferred `$` table, which cannot stream
        (docs/engine.md), so the body is held whole: every other table gets
        the same rows, in the same order, both ways."""
        want = gen_document(os.path.join(self.data, "mid.json"), 3 << 20)
        whole_job = JOB.replace('"tables": [', '"tables": [\n    { "name": "whole", "rows": "$" },')
        self.assertNotEqual(whole_job, JOB)
        got = {}
        for name, job in (("streamed", JOB), ("whole", whole_job)):
            cwd, rc, log, _ = self.run_job("mid-" + name, "mid.json", job=job)
            self.assertEqual(rc, 0, log)
            db = os.path.join(cwd, "out.db")
            got[name] = [
                self.table_digest(db, "SELECT id, name, x FROM items ORDER BY rowid"),
                self.table_digest(db, "SELECT k, y, x FROM events ORDER BY rowid"),
                self.table_digest(db, "SELECT n, y, missing FROM docs ORDER BY rowid")]
        self.assertEqual(got["streamed"], got["whole"])
        self.assertEqual(got["streamed"][:2], [want["items"], want["events"]])

    def test_invalid_document_fails_with_offset_and_no_rows(self):
        items = ",\n".join('{"id": %d, "name": "n%d"}' % (i, i) for i in range(5000))
        text = '{"meta": {"x": "a"},\n "items": [\n' + items + ',\n{"id": 5000,}\n]}\n'
        with open(os.path.join(self.data, "bad.json"), "w", encoding="utf-8") as f:
            f.write(text)
        offset = text.index(",}")
        line = text.count("\n", 0, offset) + 1
        cwd, rc, log, _ = self.run_job("bad", "bad.json")
        self.assertEqual(rc, 1, log)  # the run finished, a job failed for good
        db = os.path.join(cwd, "out.db")
        jobs = harness.jobs(db)
        self.assertEqual(len(jobs), 1)
        self.assertEqual((jobs[0]["state"], jobs[0]["error_class"]), ("failed", "permanent"))
        self.assertEqual(jobs[0]["error"], "invalid JSON at byte offset %d (line %d): "
                         "trailing comma" % (offset, line))
        with harness.open_db(db) as con:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in ("items", "events", "docs"):
            if table in tables:  # tables are made with their first row
                self.assertEqual(harness.count_rows(db, table), 0, table)


if __name__ == "__main__":
    harness.main_or_skip(need_nginx=True)
