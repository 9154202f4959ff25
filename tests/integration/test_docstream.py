#!/usr/bin/env python3
"""A single JSON document of several hundred MB, served by a real nginx over
TLS, is streamed into two tables in bounded memory (engine/docstream.c):
the tables hold exactly what the generator wrote, a `$.meta.x` column before
the records and a `$.tail.y` column after them are right in every row, and
the process's peak RSS stays far below the document's size. Rows as large
as the document reach the writer in checkpoints (rows + the count of
records so far), so their memory is bounded too, and a run killed (-9) or a
connection reset after a checkpoint resumes by reading the document again
and skipping the committed records: every row once. An invalid document
fails its job permanently, with the whole-body parser's byte offset and
line, and leaves no row.

Needs $RINGFILL (the binary; meson sets it); exits 77 (skip) without it.
Run alone: RINGFILL=build/engine/ringfill python3 tests/integration/test_docstream.py
"""

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402

SANITIZED = bool(os.environ.get("RINGFILL_SANITIZED"))
# The document: 320 MB (48 MB under sanitizers, which run several times slower).
DOC_BYTES = (48 if SANITIZED else 320) << 20
# Peak RSS allowed for the whole ringfill process, in KiB. The body buffer the
# whole-body path needed (the document, plus 4 bytes of index per byte and a
# tape) would be gigabytes; what remains is the row batches (about 40 bytes
# per item row here, ~11 MB in all, cut into checkpoints every 1 MiB), the
# writer's transaction, SQLite's cache, the stream's buffers (a window of
# 256 KiB, 1 MiB of index) and the program itself: 40 MB measured (69 MB
# when the rows were one batch). ASan's shadow and quarantine need more.
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


# JOB with each item's ~1 KB blob extracted too: the rows (~1 KB each, as
# large as the document) pass DS_CKPT_ROW_BYTES (1 MiB) hundreds of times, so
# they reach the writer in checkpoints and are never held whole.
JOB_BLOB = JOB.replace('"name": "@.name",', '"name": "@.name", "blob": "@.blob",', 1)
# Peak RSS allowed for that job, in KiB: two row batches of about 1 MiB on
# the loop's side, the writer's transaction (up to --commit-rows rows, held
# until the commit) and SQLite's page cache. Held whole (before 2026-12-07) the
# 313 MB document's rows took it to 534 MiB.
RSS_ROWS_MAX_KIB = 300 << 10


def ckpt_records(db):
    """ckpt_records of the one job, or None before the job table exists."""
    try:
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
        try:
            row = con.execute("SELECT ckpt_records FROM _ringfill_jobs LIMIT 1").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None


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
        cls.fs = FaultServer(cls.data, cls.pki).start()
        cls.addClassCleanup(cls.fs.stop)

    def job_dir(self, name, path, local=False, job=None, url=None):
        """A directory with the job file (JOB, or job) on data/PATH, fetched
        from nginx (or url) or (local) read by the files source."""
        cwd = os.path.join(self.tmp, name)
        os.makedirs(cwd)
        harness.write_lines(os.path.join(cwd, "urls.txt"), [url or self.nginx.url(path)])
        source = {"files": os.path.join(self.data, path)} if local else {"urls": "urls.txt"}
        with open(os.path.join(cwd, "job.json"), "w", encoding="utf-8") as f:
            f.write((job or JOB) % (json.dumps(source), self.pki.ca_cert))
        return cwd

    def start_job(self, cwd, extra=()):
        # Without meson's MALLOC_PERTURB_: it writes every byte malloc hands
        # out, so the peak would count the unused tail of every grown buffer.
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_PERTURB_"}
        return MeasuredPopen([harness.ringfill_path(), "run", "job.json", "--quiet"] + list(extra),
                             cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)

    def run_in(self, cwd, extra=()):
        proc = self.start_job(cwd, extra)
        out, err = proc.communicate(timeout=harness.RUN_TIMEOUT_S)
        self.assertIsNotNone(proc.maxrss)
        return proc.returncode, out + err, proc.maxrss

    def run_job(self, name, path, local=False, job=None):
        """Runs the job file (JOB, or job) on data/PATH, fetched from nginx or
        (local) read by the files source."""
        cwd = self.job_dir(name, path, local, job)
        return (cwd,) + self.run_in(cwd)

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

    def check_tables(self, cwd, blob=False, what="", sent=None, doc="big.json", want=None):
        """Every table holds exactly what the document (big.json, whose
        gen_document result is self.want) has: no row lost or twice; and
        its one job is done with the document's size (or `sent`, the body's
        size as sent, e.g. compressed)."""
        want = want or self.want
        db = os.path.join(cwd, "out.db")
        jobs = harness.jobs(db)
        self.assertEqual([j["state"] for j in jobs], ["done"], what + repr(jobs))
        if sent is None:
            sent = os.path.getsize(os.path.join(self.data, doc))
        self.assertEqual(jobs[0]["bytes"], sent, what)
        self.assertEqual(self.table_digest(db, "SELECT id, name, x FROM items ORDER BY rowid"),
                         want["items"], what)
        self.assertEqual(self.table_digest(db, "SELECT k, y, x FROM events ORDER BY rowid"),
                         want["events"], what)
        with harness.open_db(db) as con:
            self.assertEqual([tuple(r) for r in con.execute("SELECT n, y, missing FROM docs")],
                             [(3, 5, None)], what)
            if blob:
                self.assertEqual(con.execute("SELECT count(*) FROM items WHERE blob = ?",
                                             (BLOB,)).fetchone()[0], want["items"][0], what)
        return jobs[0]

    def check_big(self, name, local):
        cwd, rc, log, rss_kib = self.run_job(name, "big.json", local)
        self.assertEqual(rc, 0, log)
        self.check_tables(cwd)
        print("\n%d MB document (%s), %d item rows: peak RSS %d KiB" % (
            DOC_BYTES >> 20, "file" if local else "https", self.want["items"][0], rss_kib),
            file=sys.stderr)
        self.assertLess(rss_kib, RSS_MAX_KIB,
                        "peak RSS %d KiB for a %d MB document" % (rss_kib, DOC_BYTES >> 20))

    # ---- rows as large as the document: checkpoints -------------------------

    def test_big_document_rows_reach_the_writer_in_checkpoints(self):
        """Rows as large as the document are cut into checkpoints (rows plus
        the count of records so far, committed with the job still pending)
        instead of one batch: the tables are exact, the job's checkpoint
        columns show the cuts, and the peak RSS stays far below the rows'
        size."""
        for name, local in (("rows-https", False), ("rows-local", True)):
            cwd, rc, log, rss_kib = self.run_job(name, "big.json", local, JOB_BLOB)
            self.assertEqual(rc, 0, log)
            job = self.check_tables(cwd, blob=True, what=name + ": ")
            # The last checkpoint committed: a count of rows-path records
            # (items, then events) short of the whole, at offset 0.
            self.assertEqual(job["ckpt_offset"], 0, name)
            self.assertGreater(job["ckpt_records"], 0, name)
            # events wait for $.tail.y: no cut from their first record on.
            self.assertLessEqual(job["ckpt_records"], self.want["items"][0], name)
            print("\n%d MB document (%s), rows with their ~1 KB blob: peak RSS %d KiB" % (
                DOC_BYTES >> 20, name, rss_kib), file=sys.stderr)
            if not SANITIZED:  # ASan's shadow and quarantine are not ours
                self.assertLess(rss_kib, RSS_ROWS_MAX_KIB, name)

    def test_killed_document_resumes_after_its_checkpoint(self):
        """kill -9 once a checkpoint is committed: the rows committed are
        exactly the checkpoint's records; the same command again reads the
        document from the start, skips those records (their `$` columns are
        still read) and ends with every table exact."""
        self.check_stopped(signal.SIGKILL, -signal.SIGKILL)

    def test_interrupted_document_checkpoints_and_resumes(self):
        """Ctrl-C (SIGINT) half-way through a document whose first half
        holds less than one cut of rows (JOB on 24 MB: about 1 MB of rows in
        all): the rows parsed so far become a checkpoint at the stop (exit
        130, the job pending with exactly those rows), and the next run
        fetches the whole document again (no Range: a document has no offset
        to resume from) and goes on after them, every table exact."""
        cwd, want, path = self.stop_half_way("sigint", "half.json")
        self.check_resumes(cwd, self.fs.open_gate, doc="half.json", want=want)
        self.assertEqual(self.fs.ranges[path], [None, None])

    def stop_half_way(self, name, doc):
        """Serves a new 24 MB document DOC (about 1 MB of rows in all) from
        /halfgate/ and sends SIGINT once its first half is on disk: exit
        130. Returns the run's directory, what its tables must hold, and
        the path asked for. The gate stays closed until open_gate()."""
        self.fs.reset()  # the gate closed again
        want = gen_document(os.path.join(self.data, doc), 24 << 20)
        path = "/halfgate/" + doc  # half the body, then nothing until open_gate()
        cwd = self.job_dir(name, doc, url=self.fs.url(path.lstrip("/")))
        with open(os.path.join(cwd, "job.json"), encoding="utf-8") as f:
            job = json.load(f)
        job["raw"] = "raw"
        with open(os.path.join(cwd, "job.json"), "w", encoding="utf-8") as f:
            json.dump(job, f)
        half = os.path.getsize(os.path.join(self.data, doc)) // 2

        def part_size():
            return sum(os.path.getsize(os.path.join(d, n))
                       for d, _, names in os.walk(os.path.join(cwd, "raw"))
                       for n in names if n.endswith(".part"))
        proc = self.start_job(cwd)
        try:
            deadline = time.monotonic() + harness.RUN_TIMEOUT_S
            # The first half on disk (its bytes are parsed as they arrive).
            while (proc.poll() is None and time.monotonic() < deadline
                   and part_size() < half - (1 << 20)):
                time.sleep(0.02)
            time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=harness.RUN_TIMEOUT_S)
        finally:
            harness.stop_process(proc)
        self.assertEqual(proc.returncode, 130, out + err)
        return cwd, want, path

    def test_download_only_refuses_a_checkpointed_document(self):
        """A job stopped after a checkpoint (Ctrl-C half-way), then a run
        with --download-only: fetched whole and marked done, its other rows
        would never load, and a later load of the kept file would insert the
        first ones again. The job fails for good without a request, naming
        the committed records and the way out, and keeps its rows and
        checkpoint; after `ringfill retry --all` a run that parses finishes
        it, every table exact."""
        cwd, want, path = self.stop_half_way("dlonly", "dl.json")
        db = os.path.join(cwd, "out.db")
        records = ckpt_records(db)
        self.assertGreater(records or 0, 0, "no checkpoint committed")
        self.fs.open_gate()
        asked = len(self.fs.ranges[path])
        rc, log, _ = self.run_in(cwd, ["--download-only"])
        self.assertEqual(rc, 1, log)
        with harness.open_db(db) as con:
            job = con.execute("SELECT state, error_class, error, ckpt_records, raw_path"
                              " FROM _ringfill_jobs").fetchone()
            rows = sum(con.execute("SELECT count(*) FROM %s" % t).fetchone()[0]
                       for t in ("items", "events")
                       if con.execute("SELECT 1 FROM sqlite_master WHERE name=?",
                                      (t,)).fetchone())
        self.assertEqual(job[:2], ("failed", "permanent"), job)
        self.assertIn("%d records of this body were committed" % records, job[2])
        self.assertIn("--download-only", job[2])
        self.assertEqual((job[3], job[4], rows), (records, None, records))
        self.assertEqual(len(self.fs.ranges[path]), asked, "the refused job was fetched")
        self.retry_and_finish(cwd, "after --download-only refused it: ", "dl.json", want)

    def retry_and_finish(self, cwd, what, doc, want):
        """`ringfill retry --all`, then the same run to the end: every table
        exact."""
        retry = subprocess.run([harness.ringfill_path(), "retry", "out.db", "--all"], cwd=cwd,
                               capture_output=True, text=True, timeout=harness.RUN_TIMEOUT_S)
        self.assertEqual(retry.returncode, 0, retry.stdout + retry.stderr)
        rc, log, _ = self.run_in(cwd)
        self.assertEqual(rc, 0, log)
        self.check_tables(cwd, what=what, doc=doc, want=want)

    def test_checkpoint_of_other_rows_paths_refused(self):
        """A document stopped after a checkpoint, then a run whose tables
        read other rows paths (a table taken out of the job file): the
        checkpoint counts records of the earlier paths, so skipping that
        many of this run's would skip other records, inserting some twice
        or losing some. The job fails for good, naming the records and the
        way out, and changes nothing; with the earlier tables back and
        `ringfill retry --all`, the next run finishes it, every table exact.
        Before, it ended done with rows duplicated or missing."""
        cwd, want, path = self.stop_half_way("paths", "paths.json")
        db = os.path.join(cwd, "out.db")
        records = ckpt_records(db)
        self.assertGreater(records or 0, 0, "no checkpoint committed")
        self.fs.open_gate()
        job_path = os.path.join(cwd, "job.json")
        with open(job_path, encoding="utf-8") as f:
            earlier = f.read()
        job = json.loads(earlier)
        job["tables"] = [t for t in job["tables"] if t["name"] != "events"]
        with open(job_path, "w", encoding="utf-8") as f:
            json.dump(job, f)

        def table_rows():
            with harness.open_db(db) as con:
                return {t: con.execute("SELECT count(*) FROM %s" % t).fetchone()[0]
                        for t in ("items", "events", "docs")
                        if con.execute("SELECT 1 FROM sqlite_master WHERE name=?",
                                       (t,)).fetchone()}
        before = table_rows()
        rc, log, _ = self.run_in(cwd)
        self.assertEqual(rc, 1, log)
        with harness.open_db(db) as con:
            state = con.execute("SELECT state, error_class, error, ckpt_records"
                                " FROM _ringfill_jobs").fetchone()
        self.assertEqual(state[:2], ("failed", "permanent"), state)
        self.assertIn("%d records of this document were committed by an earlier run whose "
                      "tables read other rows paths" % records, state[2])
        self.assertEqual((state[3], table_rows()), (records, before))
        with open(job_path, "w", encoding="utf-8") as f:
            f.write(earlier)
        self.retry_and_finish(cwd, "after other rows paths were refused: ", "paths.json", want)

    def check_stopped(self, sig, code):
        """Sends sig once a checkpoint is committed, expects exit `code`,
        then check_resumes."""
        name = signal.Signals(sig).name.lower()
        landed = False
        for attempt in range(3):  # a run that ends before the signal proves nothing
            cwd = self.job_dir("%s-%d" % (name, attempt), "big.json", True, JOB_BLOB)
            db = os.path.join(cwd, "out.db")
            # Small transactions: the first checkpoint is committed long
            # before the done mark, not in the same transaction (the 48 MB
            # document of a sanitized build is read in under --commit-ms).
            proc = self.start_job(cwd, ["--commit-rows", "2000"])
            try:
                deadline = time.monotonic() + harness.RUN_TIMEOUT_S
                while proc.poll() is None and time.monotonic() < deadline:
                    if ckpt_records(db):
                        proc.send_signal(sig)
                        break
                    time.sleep(0.005)
                out, err = proc.communicate(timeout=harness.RUN_TIMEOUT_S)
            finally:
                harness.stop_process(proc)
            with harness.open_db(db) as con:
                state = con.execute("SELECT state FROM _ringfill_jobs").fetchone()[0]
            if proc.returncode == code and state == "pending":
                landed = True
                break
            # Ended before the signal, or done between the look and the signal.
            self.assertIn(proc.returncode, (0, code), out + err)
        self.assertTrue(landed, "no %s landed after a checkpoint" % name)
        self.check_resumes(cwd, blob=True)

    def check_resumes(self, cwd, before_rerun=None, blob=False, doc="big.json", want=None):
        """The stopped run left the job pending with a checkpoint and
        exactly its records' rows; the same command again (after
        before_rerun()) ends with every table exact."""
        db = os.path.join(cwd, "out.db")
        records = ckpt_records(db)
        self.assertGreater(records or 0, 0, "no checkpoint committed")
        with harness.open_db(db) as con:
            made = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            rows = sum(con.execute("SELECT count(*) FROM %s" % t).fetchone()[0]
                       for t in ("items", "events") if t in made)  # made with their first row
            state = con.execute("SELECT state FROM _ringfill_jobs").fetchone()[0]
        self.assertEqual((state, rows), ("pending", records))
        if before_rerun:
            before_rerun()
        rc, log, _ = self.run_in(cwd)
        self.assertEqual(rc, 0, log)
        self.check_tables(cwd, blob=blob, what="resumed after %d records: " % records, doc=doc,
                          want=want)

    def test_reset_mid_document_retries_after_its_checkpoint(self):
        """The connection is reset half-way (/resetonce/): a transient
        failure; the retry fetches the whole document again and skips the
        records its committed checkpoints hold. Every row once."""
        cwd = self.job_dir("reset", "big.json", job=JOB_BLOB,
                           url=self.fs.url("resetonce/big.json"))
        rc, log, _ = self.run_in(cwd)
        self.assertEqual(rc, 0, log)
        job = self.check_tables(cwd, blob=True, what="after a reset: ")
        self.assertEqual(job["attempts"], 2, job)
        self.assertGreater(job["ckpt_records"], 0, job)

    def test_checkpoint_then_the_other_kind_in_one_run(self):
        """Within one run: a body checkpointed as one kind, its connection
        reset, then answered as the other kind (Content-Type changed) on the
        retry. The records of one cannot be counted in the other, so the job
        fails (permanent, saying so) with exactly its checkpoints' rows:
        none lost or repeated. Both ways: a document, then NDJSON; NDJSON
        (the same document on one line, then 3 MB of blank line), then a
        document."""
        items = ",".join('{"x": %d, "pad": "%s"}' % (i, "p" * 1000) for i in range(5000))
        doc = '{"items": [%s]}' % items
        for way, text, extra in (("json2nd", doc, []),
                                 ("nd2json", doc + "\n" + " " * (3 << 20),
                                  ["--checkpoint-records", "1"])):
            with open(os.path.join(self.data, way + ".dat"), "w", encoding="utf-8") as f:
                f.write(text)
            cwd = self.job_dir("flip-" + way, way + ".dat",
                               url=self.fs.url("flipct/%s/%s.dat" % (way, way)),
                               job='{"source": %s, "db": "out.db", "http": {"cacert": "%s",'
                                   ' "retries": 3}, "tables": [{"name": "t",'
                                   ' "rows": "$.items[*]", "columns": {"x": "@.x", "pad": "@.pad"}}]}')
            db = os.path.join(cwd, "out.db")
            proc = self.start_job(cwd, ["--retry-base", "0.05"] + extra)
            try:
                # The first answer's checkpoint committed: the server may
                # reset the connection now.
                deadline = time.monotonic() + harness.RUN_TIMEOUT_S
                while (proc.poll() is None and time.monotonic() < deadline
                       and not ckpt_records(db)):
                    time.sleep(0.01)
                self.fs.release_flip()
                out, err = proc.communicate(timeout=harness.RUN_TIMEOUT_S)
            finally:
                harness.stop_process(proc)
            self.assertEqual(proc.returncode, 1, way + ": " + out + err)
            (j,) = harness.jobs(db)
            self.assertEqual((j["state"], j["error_class"]), ("failed", "permanent"), j)
            self.assertIn("records were committed by an earlier run or attempt that read this "
                          "body as", j["error"])
            self.assertGreater(j["ckpt_records"] or 0, 0, j)
            with harness.open_db(db) as con:
                got = con.execute("SELECT count(*), count(DISTINCT x), min(x), max(x)"
                                  " FROM t").fetchone()
            want = j["ckpt_records"] if way == "json2nd" else 5000  # NDJSON: 1 record, 5000 rows
            self.assertEqual(tuple(got), (want, want, 0, want - 1), way + ": " + repr(j))

    def test_gzip_document_checkpoints(self):
        """The same document gzip-compressed by nginx (Content-Encoding:
        gzip): decoded a piece at a time, its rows cut into checkpoints the
        same way, every table exact."""
        ng = harness.Nginx(self.data, self.pki, work=os.path.join(self.tmp, "nginx-gz"), gzip=True)
        ng.start()
        self.addCleanup(ng.stop)
        cwd = self.job_dir("gzip", "big.json", job=JOB_BLOB, url=ng.url("big.json"))
        rc, log, _ = self.run_in(cwd)
        self.assertEqual(rc, 0, log)
        gz = harness.jobs(os.path.join(cwd, "out.db"))[0]["bytes"]
        self.assertLess(gz, os.path.getsize(os.path.join(self.data, "big.json")) // 10)
        job = self.check_tables(cwd, blob=True, what="gzip: ", sent=gz)
        self.assertEqual(job["content_encoding"], "gzip", job)
        self.assertGreater(job["ckpt_records"], 0, job)

    def test_no_checkpoint_while_a_table_holds_records(self):
        """A table whose `$` column comes after its records holds them to the
        end (compact JSON), so they count as consumed with no rows yet: while
        it does, no cut is made, however large the other tables' rows grow
        (here `items`, after the held `events`). The job ends with no
        checkpoint and every table exact."""
        path = os.path.join(self.data, "held-first.json")
        n = 20000 // (4 if SANITIZED else 1)  # ~1 KB rows: 20 MB, past one cut
        with open(path, "w", encoding="utf-8") as f:
            f.write('{"meta": {"x": "m"}, "events": [%s],\n "items": [' % ", ".join(
                '{"k": %d}' % k for k in range(10)))
            f.write(",\n".join('{"id": %d, "name": "n%d", "blob": "%s"}' % (i, i, BLOB)
                               for i in range(n)))
            f.write('],\n "tail": {"y": 5}}\n')
        cwd, rc, log, _ = self.run_job("held-first", "held-first.json", True, JOB_BLOB)
        self.assertEqual(rc, 0, log)
        db = os.path.join(cwd, "out.db")
        jobs = harness.jobs(db)
        self.assertEqual([(j["state"], j["ckpt_records"]) for j in jobs], [("done", None)])
        with harness.open_db(db) as con:
            self.assertEqual([tuple(r) for r in con.execute(
                "SELECT k, y, x FROM events ORDER BY rowid")], [(k, 5, "m") for k in range(10)])
            self.assertEqual(tuple(con.execute(
                "SELECT count(*), count(DISTINCT id), min(id), max(id), sum(blob = ?)"
                " FROM items", (BLOB,)).fetchone()), (n, n, 0, n - 1, n))

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
