#!/usr/bin/env python3
"""Every failure of DESIGN §5 that a server can cause, against
tests/integration/faultserver.py: each case ends in the right state and class,
with the exact number of attempts, and the server saw exactly that many
requests. A 429 or 503 pauses the whole host (a rate limiter counts requests
that arrive during the pause: none may), and a backfill against the fault
server run twice in a row ends with the same database.

Needs $RINGFILL (the binary; meson sets it); exits 77 (skip) without it.
Run alone: RINGFILL=build/engine/ringfill python3 tests/integration/test_faults.py
"""

import json
import os
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
# --timeout: the stall cases wait this long per attempt. A sanitized build
# under load can take longer than 1 s for a handshake and an answer, which
# turned a 400 into a timeout and a second attempt once.
TIMEOUT_S = 3 if os.environ.get("RINGFILL_SANITIZED") else 1

# path under the fault server → (state, class, attempts, http_status or None,
# a regular expression the reason must match). attempts is exact, and equal
# to the requests the server saw for the path. FILE is a document with rows.
CASES = {
    "status/500": ("failed", "transient", RETRIES, 500, r"500"),
    "status/502": ("failed", "transient", RETRIES, 502, r"502"),
    "status/503": ("failed", "transient", RETRIES, 503, r"503"),
    "status/504": ("failed", "transient", RETRIES, 504, r"504"),
    "status/404": ("failed", "permanent", 1, 404, r"404"),
    "status/410": ("failed", "permanent", 1, 410, r"410"),
    "status/400": ("failed", "permanent", 1, 400, r"400"),
    "once429/FILE": ("done", None, 2, 200, None),
    "once429date/FILE": ("done", None, 2, 200, None),
    "reset/FILE": ("failed", "transient", RETRIES, None, r"(?i)reset|closed|truncat"),
    "shortnotify/FILE": ("failed", "transient", RETRIES, None, r"(?i)truncat|short|closed"),
    "shortnoclose/FILE": ("failed", "transient", RETRIES, None, r"(?i)truncat|short|closed"),
    "badchunk/FILE": ("failed", "transient", RETRIES, None, r"(?i)chunk"),
    "nofinalchunk/FILE": ("failed", "transient", RETRIES, None, r"(?i)chunk|truncat|closed"),
    "stall/FILE": ("failed", "transient", RETRIES, None, r"(?i)time"),
    "stallhead/FILE": ("failed", "transient", RETRIES, None, r"(?i)time"),
    "trickle/FILE": ("done", None, 1, 200, None),
    "closecl/FILE": ("done", None, 1, 200, None),
    "close/FILE": ("done", None, 1, 200, None),
    # no length, half the body, a FIN without close_notify: a truncation
    "closefin/FILE": ("failed", "transient", RETRIES, None, r"(?i)truncat"),
    "keepalive/FILE": ("done", None, 1, 200, None),
    # gzip data that stops half-way in a well-framed body: cut on the way
    "gzipcut/FILE": ("failed", "transient", RETRIES, None, r"(?i)truncated.*gzip"),
    # heads past a limit: the server will send them again, so not retried
    # (150 fields were transient, where a 20 KB field was permanent)
    "manyheaders/FILE": ("failed", "permanent", 1, None, r"too many headers"),
    "bighead/FILE": ("failed", "permanent", 1, None, r"header too large"),
}
for _kind in faultserver.BAD_JSON:
    CASES["badjson/" + _kind] = ("failed", "permanent", 1, 200, r"(?i)offset")


def setUpModule():
    harness.skip_unless_ringfill()


def snapshot(db, table):
    """What must be equal between two runs: every job's outcome (not its
    timestamps) and the table's rows, sorted. For a transient failure the last
    HTTP status and the exact reason depend on timing (a reset may come
    before or after the head was read), so only its state, class and
    attempts are compared."""
    with harness.open_db(db) as con:
        jobs = [tuple(r) for r in con.execute(
            "SELECT key, url, state, attempts,"
            " CASE WHEN error_class = 'transient' THEN NULL ELSE http_status END,"
            " error_class,"
            " CASE WHEN error_class = 'transient' THEN NULL ELSE error END,"
            " bytes, sha256 FROM _ringfill_jobs ORDER BY key")]
        cols = [r[1] for r in con.execute('PRAGMA table_info("%s")' % table)]
        rows = sorted(tuple(map(repr, r)) for r in con.execute(
            'SELECT * FROM "%s"' % table))
    return jobs, sorted(cols), rows


class Faults(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rf-faults-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.data = os.path.join(cls.tmp, "data")
        manifest = harness.gen_dataset(cls.data, 20, 5)
        # A document big enough for several TLS records, with rows.
        cls.file = max((f for f in manifest["files"] if f["following"] > 0),
                       key=lambda f: f["bytes"])
        cls.pki = harness.make_pki(os.path.join(cls.tmp, "pki"))
        cls.fs = faultserver.FaultServer(cls.data, cls.pki).start()
        cls.addClassCleanup(cls.fs.stop)

    def setUp(self):
        self.cwd = tempfile.mkdtemp(prefix="case-", dir=self.tmp)
        self.db = os.path.join(self.cwd, "rf.db")
        self.fs.reset()

    def case_url(self, fs, case):
        return fs.url(case.replace("FILE", self.file["path"]))

    def run_list(self, urls, db=None, extra=()):
        path = harness.write_lines(os.path.join(self.cwd, "urls.txt"), urls)
        args = ["run", "--urls", path, "--db", db or self.db, "--rows", "$.following[*]",
                "--table", "following", "--cacert", self.pki.ca_cert, "--quiet",
                "--retries", str(RETRIES), "--retry-base", "0.05", "--retry-max", "0.5",
                "--timeout", str(TIMEOUT_S)] + list(extra)
        return run_ringfill(args, cwd=self.cwd)

    def all_urls(self):
        urls = [self.case_url(self.fs, c) for c in CASES]
        refused = "https://127.0.0.1:%d/refused.json" % harness.free_port()
        return urls, refused

    def check_cases(self, proc, refused):
        jobs = {j["url"]: j for j in harness.jobs(self.db)}
        hits = self.fs.hits
        with harness.open_db(self.db) as con:
            rows = dict(con.execute("SELECT _job, count(*) FROM following GROUP BY _job"))
        for case, (state, cls, attempts, status, reason) in CASES.items():
            with self.subTest(case=case):
                url = self.case_url(self.fs, case)
                j = jobs[url]
                what = "%s: %r%s" % (case, j, describe(proc))
                self.assertEqual((j["state"], j["error_class"]), (state, cls), what)
                self.assertEqual(j["attempts"], attempts, what)
                path = "/" + case.replace("FILE", self.file["path"])
                self.assertEqual(hits.get(path, 0), attempts, "server hits, " + what)
                if status is not None:
                    self.assertEqual(j["http_status"], status, what)
                if state == "done":
                    self.assertEqual(j["sha256"], self.file["sha256"], what)
                    self.assertEqual(rows.get(j["id"], 0), self.file["following"], what)
                else:
                    self.assertTrue(j["error"], what)
                    self.assertRegex(j["error"], reason, what)
                    self.assertEqual(rows.get(j["id"], 0), 0, what)
        r = jobs[refused]
        self.assertEqual((r["state"], r["error_class"], r["attempts"]),
                         ("failed", "transient", RETRIES), r)
        self.assertRegex(r["error"], r"(?i)refused")

    def test_every_fault_classified_and_counted(self):
        urls, refused = self.all_urls()
        proc = self.run_list(urls + [refused])
        self.assertEqual(proc.returncode, 1, describe(proc))
        self.check_cases(proc, refused)

    def test_run_twice_same_database(self):
        """The same command twice: the second run retries the transient
        failures afresh (and they fail the same way), the rest is untouched;
        a fresh database filled by the same command holds the same."""
        urls, refused = self.all_urls()
        proc = self.run_list(urls + [refused])
        self.assertEqual(proc.returncode, 1, describe(proc))
        first = snapshot(self.db, "following")
        self.fs.reset()
        proc = self.run_list(urls + [refused])
        self.assertEqual(proc.returncode, 1, describe(proc))
        hits = self.fs.hits
        for case, (state, cls, _, _, _) in CASES.items():
            path = "/" + case.replace("FILE", self.file["path"])
            again = RETRIES if cls == "transient" else 0
            self.assertEqual(hits.get(path, 0), again, "%s: requests in the re-run" % case)
        second = snapshot(self.db, "following")
        self.assertEqual(first[0], second[0], "job outcomes differ between runs")
        self.assertEqual(first[1:], second[1:], "table contents differ between runs")

        self.fs.reset()
        other = os.path.join(self.cwd, "other.db")
        proc = self.run_list(urls + [refused], db=other)
        self.assertEqual(proc.returncode, 1, describe(proc))
        fresh = snapshot(other, "following")
        self.assertEqual(first[0], fresh[0], "job outcomes differ in a fresh database")
        self.assertEqual(first[1:], fresh[1:], "table contents differ in a fresh database")

    def test_utf8_bom_passed_over_however_it_is_cut(self):
        """A body that starts with a UTF-8 byte order mark (RFC 8259 §8.1
        lets a parser ignore it; Python's json and simdjson do) loads as
        without it: NDJSON and a document, sent whole or a byte per TLS
        record (/slowstart/: the BOM cut anywhere), streamed or, from local
        files under tables that cannot stream, parsed whole. Errors after it
        name offsets that count it; two bytes of a BOM then other bytes are
        invalid at offset 0. Before, every such body failed at offset 0."""
        bom = b"\xef\xbb\xbf"
        line = b'{"following": [{"accountId": "a%d"}]}'
        docs = {
            "bom.ndjson": bom + b"\n".join(line % i for i in range(3)) + b"\n",
            "bom.json": bom + b'{"following": [{"accountId": "b1"}, {"accountId": "b2"}]}',
            "bombad.ndjson": bom + line % 9 + b'\n{"following": tru}\n',
            "bombad.json": bom + b'{"following": [{"accountId": "c1"}], "x": tru}',
            "bomhalf.json": b"\xef\xbb{}",
        }
        os.makedirs(os.path.join(self.data, "bom"), exist_ok=True)
        for name, body in docs.items():
            with open(os.path.join(self.data, "bom", name), "wb") as f:
                f.write(body)
        want = sorted([("a0",), ("a1",), ("a2",), ("b1",), ("b2",)])

        def check(db, key_of):
            jobs = {key_of(j): j for j in harness.jobs(db)}
            with harness.open_db(db) as con:
                got = sorted(tuple(r) for r in con.execute('SELECT "accountId" FROM following'))
            self.assertEqual(got, want, jobs)
            for name in ("bom.ndjson", "bom.json"):
                self.assertEqual(jobs[name]["state"], "done", jobs[name])
            # "tru}" fails at its "}" (the literal ends there): offsets in
            # the file as sent, the BOM's 3 bytes counted.
            bad_at = {"bombad.ndjson": docs["bombad.ndjson"].index(b"tru}") + 3,
                      "bombad.json": docs["bombad.json"].index(b"tru}") + 3, "bomhalf.json": 0}
            for name, at in bad_at.items():
                j = jobs[name]
                self.assertEqual((j["state"], j["error_class"]), ("failed", "permanent"), j)
                self.assertRegex(j["error"], r"invalid JSON at byte offset %d\b" % at)

        for mode in ("keepalive", "slowstart"):
            with self.subTest(mode=mode):
                db = os.path.join(self.cwd, mode + ".db")
                proc = self.run_list([self.fs.url("%s/bom/%s" % (mode, n)) for n in docs], db=db)
                self.assertEqual(proc.returncode, 1, describe(proc))
                check(db, lambda j: j["url"].rsplit("/", 1)[1])
        # Local files, under tables that cannot stream (an inferred `$`
        # table): each document parsed whole.
        with open(os.path.join(self.cwd, "job.json"), "w") as f:
            json.dump({"source": {"files": os.path.join(self.data, "bom")}, "db": "files.db",
                       "tables": [{"name": "following", "rows": "$.following[*]"},
                                  {"name": "whole", "rows": "$"}]}, f)
        proc = run_ringfill(["run", "job.json", "--quiet"], cwd=self.cwd)
        self.assertEqual(proc.returncode, 1, describe(proc))
        check(os.path.join(self.cwd, "files.db"), lambda j: j["key"])

    def test_408_on_a_reused_connection_is_not_an_attempt(self):
        """A server that answers 408 to a request on a reused keep-alive
        connection (it timed the connection out as the request came): the
        request goes again on a new connection without counting an attempt,
        so even --retries 1 loads every document, each in one attempt; the
        same 408 on a new connection counts (/status/408 fails after
        --retries). Before, each reused connection's 408 used an attempt."""
        urls = [self.fs.url("idle408/%s?n=%d" % (self.file["path"], i)) for i in range(6)]
        proc = self.run_list(urls, extra=["--per-host", "1", "--concurrency", "1",
                                          "--retries", "1"])
        self.assertEqual(proc.returncode, 0, describe(proc))
        jobs = harness.jobs(self.db)
        self.assertEqual([(j["state"], j["attempts"]) for j in jobs], [("done", 1)] * 6, jobs)
        self.assertEqual(self.fs.hits["/idle408/" + self.file["path"]], 6 + 5, self.fs.hits)
        db = os.path.join(self.cwd, "fresh.db")
        proc = self.run_list([self.fs.url("status/408")], db=db, extra=["--retries", "2"])
        self.assertEqual(proc.returncode, 1, describe(proc))
        j = harness.jobs(db)[0]
        self.assertEqual((j["state"], j["error_class"], j["attempts"]),
                         ("failed", "transient", 2), j)

    def limiter_case(self, retry_after):
        """Twelve documents from a host whose first answer is a 429: no
        request may reach it until the Retry-After has passed."""
        fs = faultserver.FaultServer(self.data, self.pki, limit_retry_after=retry_after).start()
        self.addCleanup(fs.stop)
        urls = [fs.url("limit/%s?n=%d" % (self.file["path"], i)) for i in range(12)]
        # --retry-max above the Retry-After, so the server's wish is not capped.
        proc = self.run_list(urls, extra=["--retry-max", "4", "--per-host", "4"])
        self.assertEqual(proc.returncode, 0, describe(proc))
        self.assertEqual(fs.early, 0, "requests sent while the host was paused" + describe(proc))
        jobs = harness.jobs(self.db)
        hits = fs.hits
        path = "/limit/" + self.file["path"]
        self.assertEqual(sum(j["attempts"] for j in jobs), hits[path], hits)
        for j in jobs:
            self.assertEqual(j["state"], "done", j)
            self.assertIn(j["attempts"], (1, 2), j)
        self.assertGreaterEqual(hits[path], len(urls) + 1, hits)

    def test_host_paused_on_429_seconds(self):
        self.limiter_case(2)

    def test_host_paused_on_429_http_date(self):
        self.limiter_case("date")


if __name__ == "__main__":
    harness.main_or_skip()
