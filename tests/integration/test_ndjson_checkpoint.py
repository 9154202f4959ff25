#!/usr/bin/env python3
"""Streamed NDJSON bodies (issue 5 item 3, issue 4 item 4): parsed as they
arrive, checkpointed (rows + byte offset + record count in one transaction),
and resumed after `kill -9` from the checkpoint: with `Range: bytes=N-` and
`If-Range` where the server allows it, else by fetching the body again and
skipping the records already committed. Whatever the way, the table ends
equal to an uninterrupted run's (no row lost, none twice), and with --raw
the raw file equals the served file byte for byte.

Kill points: after the first checkpoint is committed (the test watches the
database), plus a seeded random delay. RINGFILL_NDJSON_TRIALS (default 3)
and RINGFILL_CRASH_SEED change the trials; failures print the seed.

Needs $RINGFILL and nginx; exits 77 without them.
Run alone: RINGFILL=build/engine/ringfill python3 tests/integration/test_ndjson_checkpoint.py
"""

import gzip
import hashlib
import json
import os
import random
import re
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
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import describe, run_ringfill  # noqa: E402
from test_crash_resume import sha256_file, table_rows, write_ndjson  # noqa: E402

TRIALS = int(os.environ.get("RINGFILL_NDJSON_TRIALS", "3"))
KILL_ATTEMPTS = 3  # per trial, when the run ended before the kill (resume_trials)
SEED = int(os.environ.get("RINGFILL_CRASH_SEED", "20240605"))
# A sanitized build (meson sets RINGFILL_SANITIZED) runs several times
# slower: a quarter of the lines, the same number of checkpoints per body.
SCALE = 4 if os.environ.get("RINGFILL_SANITIZED") else 1
LINES = 250000 // SCALE
CKPT = 20000 // SCALE
WAIT_S = 120.0
RSS_BODY_MB = 320
RSS_LIMIT_MB = 200

LOG_FORMAT = ("    log_format rf '$uri $status \"$http_range\" \"$http_if_range\" "
              "$body_bytes_sent';\n    access_log {work}/access.log rf;\n")


class LoggingNginx(harness.Nginx):
    """harness.Nginx with Range and If-Range in its access log, and /gz/
    serving the same files gzip-compressed (nginx then sends no
    Accept-Ranges and a weak ETag)."""

    def _write_conf(self):
        path = super()._write_conf()
        with open(path, encoding="utf-8") as f:
            conf = f.read()
        conf = conf.replace("    access_log %s/access.log;\n" % self.work,
                            LOG_FORMAT.format(work=self.work), 1)
        conf = conf.replace("        location / { }\n", (
            "        location / { }\n"
            "        location /gz/ { alias %s/; gzip on; gzip_types application/x-ndjson;"
            " gzip_min_length 1; }\n") % self.root, 1)
        with open(path, "w", encoding="utf-8") as f:
            f.write(conf)
        return path

    def log(self):
        """(uri, status, range, if_range, bytes) per request so far."""
        out = []
        with open(os.path.join(self.work, "access.log"), encoding="utf-8") as f:
            for line in f:
                m = re.match(r'(\S+) (\d+) "([^"]*)" "([^"]*)" (\d+)', line)
                if m:  # nginx writes '"' as \x22 in its log
                    out.append((m.group(1), int(m.group(2)), m.group(3),
                                m.group(4).replace("\\x22", '"'), int(m.group(5))))
        return out


def setUpModule():
    harness.skip_unless_ringfill()


def ckpt_of(db):
    """(state, ckpt_offset, ckpt_records, ckpt_validator) of the one job, or
    None before the job table exists."""
    try:
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
        try:
            row = con.execute("SELECT state, ckpt_offset, ckpt_records, ckpt_validator"
                              " FROM _ringfill_jobs ORDER BY id LIMIT 1").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    return row


class NdjsonCheckpoint(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rf-ndckpt-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.data = os.path.join(cls.tmp, "data")
        os.makedirs(cls.data)
        cls.big = os.path.join(cls.data, "big.ndjson")
        write_ndjson(cls.big, LINES, 11)
        with open(cls.big, "rb") as f:
            cls.big_bytes = f.read()
        cls.pki = harness.make_pki(os.path.join(cls.tmp, "pki"))
        cls.ng = LoggingNginx(cls.data, cls.pki).start()
        cls.addClassCleanup(cls.ng.stop)
        cls.fs = FaultServer(cls.data, cls.pki).start()
        cls.addClassCleanup(cls.fs.stop)
        cls.ref = None

    def command(self, cwd, url, extra=()):
        path = harness.write_lines(os.path.join(cwd, "urls.txt"), [url])
        return ["run", "--urls", path, "--db", os.path.join(cwd, "rf.db"), "--rows", "$",
                "--table", "events", "--cacert", self.pki.ca_cert, "--quiet",
                "--checkpoint-records", str(CKPT), "--commit-rows", str(CKPT),
                "--retry-base", "0.05", "--retry-max", "0.5"] + list(extra)

    def reference(self):
        """The table of an uninterrupted run (job id 1, like every run here)."""
        if NdjsonCheckpoint.ref is None:
            cwd = tempfile.mkdtemp(prefix="ref-", dir=self.tmp)
            proc = run_ringfill(self.command(cwd, self.ng.url("big.ndjson")), cwd=cwd)
            self.assertEqual(proc.returncode, 0, describe(proc))
            NdjsonCheckpoint.ref = table_rows(os.path.join(cwd, "rf.db"), "events")
            self.assertEqual(len(NdjsonCheckpoint.ref[1]), LINES)
            # Streamed without --raw, the digest is taken as the bytes arrive.
            sha = self.check_job(cwd, "reference", False, self.big_bytes)
            self.assertEqual(sha, hashlib.sha256(self.big_bytes).hexdigest())
        return NdjsonCheckpoint.ref

    def kill_after_checkpoint(self, args, cwd, rng, what, wait_max_s=0.25):
        """Starts ringfill, waits for its first committed checkpoint, waits a
        seeded random moment more (at most wait_max_s), kill -9. Returns the committed checkpoint
        (state, offset, records, validator) and the size of the .part file
        after the kill, or None when the run ended first (the trial then
        proves nothing and is not counted)."""
        db = os.path.join(cwd, "rf.db")
        proc = subprocess.Popen([harness.ringfill_path()] + args, cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + WAIT_S
            while proc.poll() is None and time.monotonic() < deadline:
                row = ckpt_of(db)
                if row and row[2]:
                    break
                time.sleep(0.005)
            if proc.poll() is None:
                time.sleep(rng.uniform(0.0, wait_max_s))
                proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=WAIT_S)
        finally:
            harness.stop_process(proc)
        if proc.returncode != -signal.SIGKILL:
            self.assertEqual(proc.returncode, 0, what + err.decode(errors="replace")[-2000:])
            return None
        row = ckpt_of(db)
        if not row or row[0] != "pending" or not row[2]:
            return None
        parts = sum(os.path.getsize(os.path.join(d, n))
                    for d, _, names in os.walk(os.path.join(cwd, "raw"))
                    for n in names if n.endswith(".part"))
        return tuple(row) + (parts,)

    def check_table(self, cwd, what):
        cols, rows = self.reference()
        db = os.path.join(cwd, "rf.db")
        got_cols, got_rows = table_rows(db, "events")
        self.assertEqual(got_cols, cols, what)
        self.assertEqual(len(got_rows), len(rows), what + ": row count")
        with harness.open_db(db) as con:
            ids = tuple(con.execute("SELECT count(*), count(DISTINCT id) FROM events").fetchone())
        self.assertEqual(ids, (LINES, LINES), what + ": duplicates or losses")
        self.assertEqual(got_rows, rows, what + ": table contents")

    def check_job(self, cwd, what, raw, served):
        with harness.open_db(os.path.join(cwd, "rf.db")) as con:
            state, size, sha, raw_path, err = con.execute(
                "SELECT state, bytes, sha256, raw_path, error FROM _ringfill_jobs").fetchone()
        self.assertEqual(state, "done", "%s: %s" % (what, err))
        self.assertEqual(size, len(served), what)
        if raw:
            path = os.path.join(cwd, raw_path)
            with open(path, "rb") as f:
                self.assertTrue(f.read() == served, what + ": raw file differs from the served one")
            self.assertEqual(sha, hashlib.sha256(served).hexdigest(), what + ": sha256")
            self.assertFalse(os.path.exists(path + ".part"), what)
        return sha

    def resume_trials(self, name, url, raw, served=None, after=None, trials=TRIALS):
        """kill -9 after a checkpoint, the same command again, the checks; after(
        cwd, ckpt, what) adds the server-side checks. Returns how many trials
        landed between a committed checkpoint and the end."""
        served = self.big_bytes if served is None else served
        self.reference()  # first: the server logs must end with the trial's requests
        rng = random.Random("%s-%d" % (name, SEED))
        landed = 0
        for trial in range(trials):
            # A run that ends within the random wait after its first
            # checkpoint proves nothing: the trial starts again in a new
            # directory, killing as soon as a checkpoint is seen.
            for attempt in range(KILL_ATTEMPTS):
                cwd = tempfile.mkdtemp(prefix="%s-%d-%d-" % (name, trial, attempt),
                                       dir=self.tmp)
                args = self.command(cwd, url, ["--raw", "raw"] if raw else [])
                what = "%s trial %d (seed %d)" % (name, trial, SEED)
                logged = len(self.ng.log())
                ckpt = self.kill_after_checkpoint(args, cwd, rng, what,
                                                  0.25 if attempt == 0 else 0.0)
                if url.startswith(self.ng.url("")):
                    self.wait_logged(logged, what)
                if ckpt is not None:
                    break
            if ckpt is not None:
                landed += 1
                what += " (killed after checkpoint %r)" % (ckpt,)
                with harness.open_db(os.path.join(cwd, "rf.db")) as con:
                    n = con.execute("SELECT count(*) FROM events").fetchone()[0]
                self.assertEqual(n, ckpt[2], what + ": rows committed = checkpoint records")
            again = run_ringfill(args, cwd=cwd)
            self.assertEqual(again.returncode, 0, what + describe(again))
            self.check_table(cwd, what)
            self.check_job(cwd, what, raw, served)
            if ckpt is not None and after:
                after(cwd, ckpt, what)
        print("%s: %d of %d trials killed after a checkpoint" % (name, landed, trials),
              file=sys.stderr)
        self.assertGreater(landed, 0, name + ": no kill landed after a checkpoint")
        return landed

    def wait_logged(self, before, what):
        """nginx logs a request when it ends, and notices a killed client
        only when it next writes: waits (bounded) until the killed run's
        request is logged, so that the resumed run's request comes after it
        in the log (nginx_resumed_with_range reads the last entry)."""
        deadline = time.monotonic() + WAIT_S
        while len(self.ng.log()) <= before:
            self.assertLess(time.monotonic(), deadline, what + ": nginx never logged the request")
            time.sleep(0.01)

    # ---- a server with ranges: Range + If-Range, 206 ---------------------

    def nginx_resumed_with_range(self, cwd, ckpt, what, raw=True):
        _, offset, _, validator, part = ckpt
        self.assertTrue(validator.startswith('"'), what + ": nginx's ETag is the validator")
        last = [e for e in self.ng.log() if e[0] == "/big.ndjson"][-1]
        if raw and part < offset:
            # Killed after the .part was complete and renamed (or before its
            # bytes were there): never trusted, so fetched again from the
            # start, its committed records skipped.
            self.assertEqual((last[1], last[2]), (200, "-"), what + repr(last))
            return
        self.assertEqual(last[1], 206, what + ": resumed request " + repr(self.ng.log()[-4:]))
        self.assertEqual(last[2], "bytes=%d-" % offset, what)
        self.assertEqual(last[3], validator, what + ": If-Range")
        self.assertEqual(last[4], len(self.big_bytes) - offset, what + ": bytes sent")

    def test_range_resume_with_raw(self):
        self.resume_trials("range-raw", self.ng.url("big.ndjson"), True,
                           after=self.nginx_resumed_with_range)

    def test_range_resume_without_raw(self):
        def after(cwd, ckpt, what):
            self.nginx_resumed_with_range(cwd, ckpt, what, raw=False)
            with harness.open_db(os.path.join(cwd, "rf.db")) as con:
                sha = con.execute("SELECT sha256 FROM _ringfill_jobs").fetchone()[0]
            self.assertIsNone(sha, what + ": the first bytes were never hashed")
        self.resume_trials("range", self.ng.url("big.ndjson"), False, after=after, trials=1)

    def test_range_resume_after_a_utf8_bom(self):
        """A body that starts with a UTF-8 BOM (passed over by the parse):
        its checkpoints' offsets count the BOM's 3 bytes, so each is the
        start of a line in the body as sent and the resumed Range asks for
        exactly the rest; every row once."""
        bom_bytes = b"\xef\xbb\xbf" + self.big_bytes
        with open(os.path.join(self.data, "bom.ndjson"), "wb") as f:
            f.write(bom_bytes)

        def after(cwd, ckpt, what):
            _, offset, _, _, part = ckpt
            self.assertEqual(bom_bytes[offset - 1:offset], b"\n", what + ": a line's start")
            last = [e for e in self.ng.log() if e[0] == "/bom.ndjson"][-1]
            if part < offset:  # the .part was never trusted: fetched whole
                self.assertEqual((last[1], last[2]), (200, "-"), what + repr(last))
                return
            self.assertEqual((last[1], last[2]), (206, "bytes=%d-" % offset), what)
            self.assertEqual(last[4], len(bom_bytes) - offset, what + ": bytes sent")
        self.resume_trials("bom", self.ng.url("bom.ndjson"), True, served=bom_bytes,
                           after=after, trials=1)

    # ---- servers without ranges, or whose validator changed -------------

    def test_server_without_ranges(self):
        path = "/norange/big.ndjson"

        def after(cwd, ckpt, what):
            self.assertIsNone(ckpt[3], what + ": no validator without Accept-Ranges")
            self.assertEqual(self.fs.ranges[path][-1], None, what + ": Range sent anyway")
        self.resume_trials("norange", self.fs.url(path), True, after=after)

    def test_changed_validator_skips_records(self):
        path = "/etagflip/big.ndjson"

        def after(cwd, ckpt, what):
            self.assertEqual(self.fs.ranges[path][-1], "bytes=%d-" % ckpt[1], what)
        self.resume_trials("etagflip", self.fs.url(path), True, after=after)

    def test_bad_content_range_asks_for_the_whole_body(self):
        """A 206 whose Content-Range starts a byte off the checkpoint is
        refused, and the whole body is asked for at once, in the same
        attempt (--retries 1), its committed records skipped."""
        path = "/badrange/big.ndjson"
        self.reference()
        rng = random.Random("badrange-%d" % SEED)
        for trial in range(TRIALS):
            cwd = tempfile.mkdtemp(prefix="badrange-%d-" % trial, dir=self.tmp)
            what = "badrange trial %d (seed %d)" % (trial, SEED)
            ckpt = self.kill_after_checkpoint(self.command(cwd, self.fs.url(path)), cwd, rng,
                                              what)
            if ckpt is None:
                continue
            once = run_ringfill(self.command(cwd, self.fs.url(path), ["--retries", "1"]),
                                cwd=cwd)
            self.assertEqual(once.returncode, 0, what + describe(once))
            self.assertEqual(self.fs.ranges[path][-2:], ["bytes=%d-" % ckpt[1], None], what)
            self.check_table(cwd, what)
            self.assertEqual(harness.jobs(os.path.join(cwd, "rf.db"))[0]["attempts"], 1, what)
            return
        self.fail("badrange: no kill landed after a checkpoint")

    # ---- gzip: offsets are in the decoded stream, so never Range ---------

    def test_gzip_resumes_by_skipping(self):
        def after(cwd, ckpt, what):
            self.assertIsNone(ckpt[3], what + ": a gzip body has no Range validator")
            last = [e for e in self.ng.log() if e[0] == "/gz/big.ndjson"][-1]
            self.assertEqual((last[1], last[2]), (200, "-"), what + repr(last))
        gz_sent = self.gz_as_sent("/gz/big.ndjson")
        self.resume_trials("gzip-nginx", self.ng.url("gz/big.ndjson"), True, served=gz_sent,
                           after=after)

    def test_206_longer_than_its_range_is_not_parsed_on(self):
        """A chunked 206 that announces the whole rest and sends more lines
        after it fails the attempt before the extra bytes are parsed; the
        next attempt asks for the whole body: the table ends complete, not
        one extra row. Before, the extra lines were loaded as rows and the
        job marked done."""
        path = "/halfgate/big.ndjson"
        self.reference()
        cwd, db, offset, _ = self.mid_checkpoint("long206-", path)
        self.fs.set_partial("longchunked")
        again = run_ringfill(self.command(cwd, self.fs.url(path)), cwd=cwd)
        self.assertEqual(again.returncode, 0, describe(again))
        self.assertEqual(self.fs.ranges[path], [None, "bytes=%d-" % offset, None])
        self.check_table(cwd, "206 longer than its range")
        self.assertEqual(harness.jobs(db)[0]["state"], "done")

    def test_gzip_body_with_bad_json_fails_for_good(self):
        """A gzip NDJSON body whose record 11 is not JSON fails permanent,
        naming the record, after one attempt: the decoding that stops there
        on purpose is not a cut gzip stream (which is retried)."""
        name = "badgz.ndjson"
        with open(os.path.join(self.data, name), "wb") as f:
            for i in range(20000):
                f.write(b'{"id": %d, "pad": "%s"}\n' % (i, b"x" * 40) if i != 10 else b"{not json\n")
        self.addCleanup(os.unlink, os.path.join(self.data, name))
        self.fs.reset()
        cwd = tempfile.mkdtemp(prefix="badgz-", dir=self.tmp)
        proc = run_ringfill(self.command(cwd, self.fs.url("/gzipped/" + name)), cwd=cwd)
        self.assertEqual(proc.returncode, 1, describe(proc))
        job = harness.jobs(os.path.join(cwd, "rf.db"))[0]
        self.assertEqual((job["state"], job["error_class"], job["attempts"]),
                         ("failed", "permanent", 1), job)
        self.assertRegex(job["error"], r"^invalid JSON at byte offset \d+ \(record 11\)")
        self.assertEqual(self.fs.hits["/gzipped/" + name], 1)

    def test_gzip_cut_on_the_way_is_retried(self):
        """A gzip body whose framing ends properly before its gzip data
        does (a compressing proxy whose upstream died) is a truncation:
        transient, retried, and the retry skips the records the first
        attempt's checkpoints committed. Before, the job failed for good
        ("bad gzip data ...: the stream ends early") after one attempt."""
        path = "/gzipcutonce/big.ndjson"
        self.reference()
        self.fs.reset()
        cwd = tempfile.mkdtemp(prefix="gzcut-", dir=self.tmp)
        proc = run_ringfill(self.command(cwd, self.fs.url(path), ["--retries", "2"]), cwd=cwd)
        self.assertEqual(proc.returncode, 0, describe(proc))
        self.assertEqual(self.fs.hits[path], 2)
        self.check_table(cwd, "gzip cut on the way")
        self.assertEqual(harness.jobs(os.path.join(cwd, "rf.db"))[0]["state"], "done")

    def test_gzip_with_accept_ranges_still_skips(self):
        path = "/gzipped/big.ndjson"

        def after(cwd, ckpt, what):
            self.assertIsNone(ckpt[3], what)
            self.assertEqual(self.fs.ranges[path][-1], None, what)
        self.resume_trials("gzip-fault", self.fs.url(path), True,
                           served=gzip.compress(self.big_bytes, 6, mtime=0), after=after)

    def gz_as_sent(self, uri):
        """nginx's gzip output for the file: what a --raw run stores."""
        cwd = tempfile.mkdtemp(prefix="gzref-", dir=self.tmp)
        proc = run_ringfill(["run", "--urls", harness.write_lines(
            os.path.join(cwd, "u.txt"), [self.ng.url(uri)]), "--db", os.path.join(cwd, "d.db"),
            "--download-only", "--raw", "raw", "--cacert", self.pki.ca_cert, "--quiet"], cwd=cwd)
        self.assertEqual(proc.returncode, 0, describe(proc))
        with harness.open_db(os.path.join(cwd, "d.db")) as con:
            raw_path = con.execute("SELECT raw_path FROM _ringfill_jobs").fetchone()[0]
        with open(os.path.join(cwd, raw_path), "rb") as f:
            sent = f.read()
        self.assertEqual(gzip.decompress(sent), self.big_bytes)
        return sent

    # ---- SIGINT checkpoints the stream ------------------------------------

    def test_sigint_checkpoints_the_stream(self):
        path = "/halfgate/big.ndjson"
        self.reference()
        self.fs.reset()
        cwd = tempfile.mkdtemp(prefix="sigint-", dir=self.tmp)
        # No checkpoint comes due by count. One may by size (16 MiB of rows,
        # on the full-size file before the first half is in): the one found
        # must cover what was on disk when the signal was sent, which only
        # the signal's can.
        args = self.command(cwd, self.fs.url(path), ["--raw", "raw"])
        args[args.index("--checkpoint-records") + 1] = "100000000"
        proc = subprocess.Popen([harness.ringfill_path()] + args, cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            def part_size():
                return sum(os.path.getsize(os.path.join(d, n))
                           for d, _, names in os.walk(os.path.join(cwd, "raw"))
                           for n in names if n.endswith(".part"))
            deadline = time.monotonic() + WAIT_S
            # The server holds the second half: wait until the first is on disk.
            while (proc.poll() is None and time.monotonic() < deadline
                   and part_size() < len(self.big_bytes) // 2 - (1 << 20)):
                time.sleep(0.02)
            time.sleep(0.2)
            on_disk = part_size()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=WAIT_S)
        finally:
            harness.stop_process(proc)
        self.assertEqual(proc.returncode, 130, err.decode(errors="replace")[-2000:])
        state, offset, records, validator = ckpt_of(os.path.join(cwd, "rf.db"))
        self.assertEqual(state, "pending")
        self.assertGreater(records, 0, "no checkpoint pushed on SIGINT")
        # Lines are parsed as they arrive, in the loop turn that queues their
        # bytes' write to the .part file: the signal's checkpoint ends at most
        # a line before on_disk.
        longest = max(len(line) for line in self.big_bytes.split(b"\n")) + 1
        self.assertGreaterEqual(offset, on_disk - longest, "not the signal's checkpoint")
        self.assertEqual(validator, '"half-%d"' % len(self.big_bytes))
        self.assertEqual(self.big_bytes[offset - 1:offset], b"\n", "offset past a line")
        self.assertEqual(self.big_bytes[:offset].count(b"\n"), records)
        with harness.open_db(os.path.join(cwd, "rf.db")) as con:
            self.assertEqual(con.execute("SELECT count(*) FROM events").fetchone()[0], records)
        self.fs.open_gate()
        # --download-only would fetch the rest from the offset and mark the
        # job done, the raw file only the body's tail: refused, nothing
        # fetched, the checkpoint and its rows kept (docs/engine.md).
        dl = run_ringfill(args + ["--download-only"], cwd=cwd)
        self.assertEqual(dl.returncode, 1, describe(dl))
        self.assertEqual(ckpt_of(os.path.join(cwd, "rf.db")),
                         ("failed", offset, records, validator))
        self.assertEqual(self.fs.ranges[path], [None])
        requeue = run_ringfill(["retry", os.path.join(cwd, "rf.db"), "--all"], cwd=cwd)
        self.assertEqual(requeue.returncode, 0, describe(requeue))
        again = run_ringfill(args, cwd=cwd)
        self.assertEqual(again.returncode, 0, describe(again))
        self.assertEqual(self.fs.ranges[path], [None, "bytes=%d-" % offset])
        self.check_table(cwd, "sigint")
        self.check_job(cwd, "sigint", True, self.big_bytes)

    def test_checkpoint_at_the_body_end_finishes(self):
        """A checkpoint at the very end of the body (every byte came, the
        connection was lost before the end was seen: the database as a
        finished run leaves it, set back to pending with such a
        checkpoint): the resume asks bytes=LEN-, which a server answers 416.
        The job asks again at once for the whole body (no attempt spent:
        --retries 1 here), skips every committed record and is marked done,
        no row added. On 305bec0 the job failed for good (HTTP 416), and
        `retry --all` only asked the same Range again."""
        path = "/halfgate/big.ndjson"
        self.reference()
        self.fs.reset()
        self.fs.open_gate()
        cwd = tempfile.mkdtemp(prefix="atend-", dir=self.tmp)
        args = self.command(cwd, self.fs.url(path), ["--retries", "1"])
        first = run_ringfill(args, cwd=cwd)
        self.assertEqual(first.returncode, 0, describe(first))
        db = os.path.join(cwd, "rf.db")
        with sqlite3.connect(db) as con:
            con.execute("UPDATE _ringfill_jobs SET state='pending', ckpt_offset=?,"
                        " ckpt_records=?, ckpt_validator=?",
                        (len(self.big_bytes), LINES, '"half-%d"' % len(self.big_bytes)))
        con.close()
        again = run_ringfill(args, cwd=cwd)
        self.assertEqual(again.returncode, 0, describe(again))
        self.assertEqual(self.fs.ranges[path], [None, "bytes=%d-" % len(self.big_bytes), None])
        self.check_table(cwd, "checkpoint at the end")
        self.assertEqual(harness.jobs(db)[0]["state"], "done")

    def mid_checkpoint(self, prefix, path):
        """A run of /halfgate/ PATH to its end, then its database set back to
        what a run killed after a checkpoint halfway leaves: the first
        half's records committed, the job pending. (cwd, db, offset,
        records)."""
        self.fs.reset()
        self.fs.open_gate()
        cwd = tempfile.mkdtemp(prefix=prefix, dir=self.tmp)
        db = os.path.join(cwd, "rf.db")
        offset = self.big_bytes.index(b"\n", len(self.big_bytes) // 2) + 1
        records = self.big_bytes[:offset].count(b"\n")
        first = run_ringfill(self.command(cwd, self.fs.url(path)), cwd=cwd)
        self.assertEqual(first.returncode, 0, describe(first))
        with sqlite3.connect(db) as con:
            con.execute("DELETE FROM events WHERE rowid > ?", (records,))
            con.execute("UPDATE _ringfill_jobs SET state='pending', ckpt_offset=?,"
                        " ckpt_records=?, ckpt_validator=?",
                        (offset, records, '"half-%d"' % len(self.big_bytes)))
        con.close()
        return cwd, db, offset, records

    def test_max_body_caps_the_whole_body_after_a_resume(self):
        """--max-body caps the whole body, also when a checkpoint's Range
        brings only its second half: a limit between the two sizes fails
        the job for good and keeps its checkpoint and the rows committed
        with it. With a Content-Length the head says so at once, naming the
        whole size; chunked, the stream stops where the whole passes the
        limit. Before, the 206's remainder alone was checked, so a body
        larger than the limit loaded after a resume."""
        path = "/halfgate/big.ndjson"
        whole = len(self.big_bytes)
        for how in ("length", "chunked"):
            with self.subTest(how=how):
                cwd, db, offset, records = self.mid_checkpoint("maxbody-", path)
                self.fs.set_partial(how)
                limit = whole - offset + (whole - offset) // 2
                self.assertLess(limit, whole)
                again = run_ringfill(self.command(cwd, self.fs.url(path),
                                                  ["--max-body", str(limit)]), cwd=cwd)
                self.assertEqual(again.returncode, 1, describe(again))
                self.assertEqual(self.fs.ranges[path], [None, "bytes=%d-" % offset])
                job = harness.jobs(db)[0]
                self.assertEqual((job["state"], job["error_class"]), ("failed", "permanent"))
                self.assertIn("larger than --max-body (%d bytes)" % limit, job["error"])
                state, at, done, validator = ckpt_of(db)
                if how == "length":
                    self.assertIn("body of %d bytes" % whole, job["error"])
                    self.assertEqual((at, done), (offset, records))
                else:  # checkpoints may have come before the limit
                    self.assertGreaterEqual(at, offset)
                    self.assertLessEqual(at, limit)
                    self.assertEqual(self.big_bytes[:at].count(b"\n"), done)
                self.assertEqual(validator, '"half-%d"' % whole)
                with harness.open_db(db) as con:
                    self.assertEqual(con.execute("SELECT count(*) FROM events").fetchone()[0],
                                     done)

    def test_206_that_is_not_the_rest_is_refused(self):
        """A 206 that may not be the rest of the checkpoint's body is
        refused, and the body is asked again whole at once, no attempt
        spent (--retries 1 here), its committed records skipped: the table
        ends complete. Each was
        taken as the rest before: the job marked done at the 206's end,
        the records after it never loaded ("short": bytes N-M/T with M+1 <
        T; "star": bytes N-M/*, the length unknown), or another version's
        bytes glued onto the committed records ("otheretag": a server that
        ignores If-Range; a line cut at another place failed the job for
        good)."""
        path = "/halfgate/big.ndjson"
        self.reference()
        for how in ("short", "star", "otheretag"):
            with self.subTest(how=how):
                cwd, db, offset, _ = self.mid_checkpoint("206%s-" % how, path)
                self.fs.set_partial(how)
                again = run_ringfill(self.command(cwd, self.fs.url(path), ["--retries", "1"]),
                                     cwd=cwd)
                self.assertEqual(again.returncode, 0, describe(again))
                self.assertEqual(self.fs.ranges[path], [None, "bytes=%d-" % offset, None])
                self.check_table(cwd, "206 " + how)
                self.assertEqual(harness.jobs(db)[0]["state"], "done")

    def test_206_cut_short_resumes_from_its_checkpoints(self):
        """A chunked 206 that announces the whole rest and ends half-way
        with a proper last chunk (a proxy whose upstream died) fails the
        attempt as transient instead of ending the job; what it brought is
        committed by its checkpoints, and a later run resumes from there
        and completes the table. Before, the job was marked done with the
        second half of the rest missing."""
        path = "/halfgate/big.ndjson"
        self.reference()
        cwd, db, offset, records = self.mid_checkpoint("cut206-", path)
        self.fs.set_partial("cutchunked")
        cut = run_ringfill(self.command(cwd, self.fs.url(path), ["--retries", "1"]), cwd=cwd)
        self.assertEqual(cut.returncode, 1, describe(cut))
        job = harness.jobs(db)[0]
        self.assertEqual((job["state"], job["error_class"]), ("failed", "transient"), job)
        self.assertIn("HTTP 206 body ended after", job["error"])
        state, at, done, _ = ckpt_of(db)
        self.assertGreaterEqual(done, records)
        self.assertEqual(self.big_bytes[:at].count(b"\n"), done)
        with harness.open_db(db) as con:
            self.assertEqual(con.execute("SELECT count(*) FROM events").fetchone()[0], done)
        self.fs.set_partial("length")
        again = run_ringfill(self.command(cwd, self.fs.url(path)), cwd=cwd)
        self.assertEqual(again.returncode, 0, describe(again))
        self.assertEqual(self.fs.ranges[path][-1], "bytes=%d-" % at)
        self.check_table(cwd, "206 cut short")
        self.assertEqual(harness.jobs(db)[0]["state"], "done")

    # ---- limits --------------------------------------------------------------

    def huge_file(self, directory):
        """An NDJSON file of RSS_BODY_MB MB in `directory` (removed after
        the test): held whole it would need more memory than that."""
        path = os.path.join(directory, "huge.ndjson")
        pad = "p" * 10000
        with open(path, "w", encoding="ascii") as f:
            for i in range(RSS_BODY_MB * 100):
                f.write('{"id": %d, "pad": "%s"}\n' % (i, pad))
        self.addCleanup(os.unlink, path)
        return path

    def check_peak_rss(self, args, cwd, path):
        """Runs ringfill with args; it must load every line of `path` into
        events with a peak RSS under RSS_LIMIT_MB."""
        # A child Python runs ringfill, so RUSAGE_CHILDREN is ringfill's alone.
        probe = ("import resource, subprocess, sys\n"
                 "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL,"
                 " stderr=subprocess.PIPE)\n"
                 "sys.stderr.buffer.write(r.stderr[-2000:])\n"
                 "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
        out = subprocess.run([sys.executable, "-c", probe, harness.ringfill_path()] + args,
                             cwd=cwd, capture_output=True, text=True, timeout=WAIT_S * 2)
        rc, maxrss_kib = (int(x) for x in out.stdout.split())
        self.assertEqual(rc, 0, out.stderr + repr(harness.jobs(os.path.join(cwd, "rf.db"))))
        with harness.open_db(os.path.join(cwd, "rf.db")) as con:
            self.assertEqual(con.execute("SELECT count(*) FROM events").fetchone()[0],
                             RSS_BODY_MB * 100)
        print("peak RSS %.1f MB for a %d MB body" % (maxrss_kib / 1024, os.path.getsize(path)
                                                   >> 20), file=sys.stderr)
        # A sanitizer's shadow memory and quarantine make RSS say nothing
        # about ours (as in test_net_features): the normal build checks it.
        with open(harness.ringfill_path(), "rb") as f:
            if b"__asan_init" in f.read():
                self.skipTest("peak RSS is not ours under AddressSanitizer")
        self.assertLess(maxrss_kib / 1024, RSS_LIMIT_MB)

    def test_peak_memory_bounded_on_a_large_body(self):
        """A body of RSS_BODY_MB MB: streamed, ringfill's peak RSS stays
        under RSS_LIMIT_MB."""
        path = self.huge_file(self.data)
        cwd = tempfile.mkdtemp(prefix="rss-", dir=self.tmp)
        args = self.command(cwd, self.ng.url("huge.ndjson"))
        args[args.index("--rows") + 1] = "$.id"
        self.check_peak_rss(args, cwd, path)

    def test_peak_memory_bounded_on_a_large_local_file(self):
        """The same bytes from a local file (the files source): streamed as a
        download is, not read whole."""
        cwd = tempfile.mkdtemp(prefix="rss-local-", dir=self.tmp)
        path = self.huge_file(self.local_dir(cwd))
        self.check_peak_rss(self.files_command(cwd, "$.id"), cwd, path)

    # ---- a local NDJSON file (the files source) ------------------------------

    def local_dir(self, cwd):
        d = os.path.join(cwd, "in")
        os.makedirs(d, exist_ok=True)
        return d

    def files_command(self, cwd, rows="$"):
        """A job file reading the NDJSON files of cwd/in into events, with
        the checkpoint and commit sizes of self.command."""
        job = os.path.join(cwd, "job.json")
        with open(job, "w", encoding="utf-8") as f:
            json.dump({"source": {"files": self.local_dir(cwd)}, "db": os.path.join(cwd, "rf.db"),
                       "tables": [{"name": "events", "rows": rows}]}, f)
        return ["run", job, "--quiet", "--checkpoint-records", str(CKPT), "--commit-rows",
                str(CKPT)]

    def test_local_file_resumes_from_checkpoint(self):
        """An NDJSON file of the files source is read in pieces and
        checkpointed as a download is; after kill -9 the next run reads on
        from the checkpoint when the file is unchanged (its size and mtime are
        the validator), and from the start, skipping the committed records,
        when it was touched. Either way the table ends equal to an
        uninterrupted download's, and the job done with the file's size."""
        self.reference()
        rng = random.Random("local-%d" % SEED)
        landed = 0
        for trial in range(TRIALS):
            for attempt in range(KILL_ATTEMPTS):
                cwd = tempfile.mkdtemp(prefix="local-%d-%d-" % (trial, attempt), dir=self.tmp)
                local = os.path.join(self.local_dir(cwd), "big.ndjson")
                shutil.copyfile(self.big, local)
                args = self.files_command(cwd)
                what = "local trial %d (seed %d)" % (trial, SEED)
                ckpt = self.kill_after_checkpoint(args, cwd, rng, what,
                                                  0.25 if attempt == 0 else 0.0)
                if ckpt is not None:
                    break
            touched = trial % 2 == 1
            if ckpt is not None:
                landed += 1
                _, offset, records, validator, _ = ckpt
                what += " (killed after checkpoint %r)" % (ckpt,)
                st = os.stat(local)
                self.assertEqual(validator, "file %d %d.%09d" % (
                    st.st_size, st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9), what)
                self.assertEqual(self.big_bytes[offset - 1:offset], b"\n", what + ": offset")
                self.assertEqual(self.big_bytes[:offset].count(b"\n"), records, what)
                with harness.open_db(os.path.join(cwd, "rf.db")) as con:
                    n = con.execute("SELECT count(*) FROM events").fetchone()[0]
                self.assertEqual(n, records, what + ": rows committed = checkpoint records")
                if touched:  # another version: read again, committed records skipped
                    os.utime(local, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
            again = run_ringfill(args, cwd=cwd)
            self.assertEqual(again.returncode, 0, what + describe(again))
            self.check_table(cwd, what)
            sha = self.check_job(cwd, what, False, self.big_bytes)
            if ckpt is None or touched:  # read whole by the run that finished it
                self.assertEqual(sha, hashlib.sha256(self.big_bytes).hexdigest(), what)
        print("local: %d of %d trials killed after a checkpoint" % (landed, TRIALS),
              file=sys.stderr)
        self.assertGreater(landed, 0, "local: no kill landed after a checkpoint")

    def test_record_longer_than_the_limit_is_permanent(self):
        path = os.path.join(self.data, "longline.ndjson")
        with open(path, "w", encoding="ascii") as f:
            f.write('{"id": 1}\n{"id": 2, "pad": "%s"}\n' % ("q" * (17 << 20)))
        self.addCleanup(os.unlink, path)
        cwd = tempfile.mkdtemp(prefix="long-", dir=self.tmp)
        proc = run_ringfill(self.command(cwd, self.ng.url("longline.ndjson")), cwd=cwd)
        self.assertEqual(proc.returncode, 1, describe(proc))
        with harness.open_db(os.path.join(cwd, "rf.db")) as con:
            state, cls, err = con.execute(
                "SELECT state, error_class, error FROM _ringfill_jobs").fetchone()
        self.assertEqual((state, cls), ("failed", "permanent"))
        self.assertIn("record at byte offset 10 is longer than 16777216 bytes", err)


if __name__ == "__main__":
    harness.main_or_skip(need_nginx=True)
