#!/usr/bin/env python3
"""The files and paginate sources of job files, end to end.

paginate: a real cursor-paginated HTTPS server (pageserver.py) whose cursors
need percent-encoding; each item emits a job from a URL template (served by
the same server) or, without a template, the items are the rows. Every
table is compared exactly with what the documents hold; a 503 on a page is
retried in place; a repeated cursor fails the page job (exit 1) instead of
looping, and so does a page that repeats an earlier page's body under a new
cursor (the first page or a middle one, in the same run or an earlier one);
a chain that never repeats (new cursors every lap) ends at max_pages; kill -9
in the middle of a pagination, then a resume, gives the same
tables and the same jobs as an uninterrupted run.

files: a directory written by a --download-only --raw run loads into the same
tables as the same documents over HTTPS; a missing file and an invalid JSON
file are permanent failures naming the file (and the byte offset); job-file
errors name FILE:LINE: KEY and exit 2 before anything is created.

Needs $RINGFILL (the binary; meson sets it); exits 77 (skip) without it.
Run alone: RINGFILL=build/engine/ringfill python3 tests/integration/test_sources.py
"""

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
from harness import describe, run_ringfill  # noqa: E402
from pageserver import PageServer, repo_doc  # noqa: E402

ITEMS = 47   # not a multiple of LIMIT: the last page is short
LIMIT = 5
SEED = 11


def setUpModule():
    harness.skip_unless_ringfill()


def table(db, name, cols):
    with harness.open_db(db) as con:
        q = 'SELECT %s FROM "%s"' % (", ".join('"%s"' % c for c in cols), name)
        return sorted((tuple(r) for r in con.execute(q)), key=repr)


def job_set(db):
    with harness.open_db(db) as con:
        return sorted(tuple(r) for r in con.execute(
            "SELECT key, url, state, error_class, vars FROM _ringfill_jobs"))


def sql_val(v):
    """How an inferred (auto) column stores a JSON value."""
    if isinstance(v, bool):
        return int(v)
    return v


def expected_repos(items):
    return sorted(((it["did"], repo_doc(it)["handle"], it["rev"], it["head"]) for it in items),
                  key=repr)


def expected_records(items):
    rows = []
    for it in items:
        d = repo_doc(it)
        rows += [(r["id"], d["did"], r["n"], r["text"]) for r in d["records"]]
    return sorted(rows, key=repr)


class Sources(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rf-sources-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.pki = harness.make_pki(os.path.join(cls.tmp, "pki"))
        cls.srv = PageServer(cls.pki, ITEMS, SEED).start()
        cls.addClassCleanup(cls.srv.stop)

    def workdir(self):
        return harness.new_dir(self.tmp)

    def job_emit(self, d, mode, db="out.db"):
        """A job file: pages of `mode`, each item fetched from /repo/{did}.json."""
        job = {
            "source": {"paginate": {
                "url": self.srv.url("%s/pages?limit=%d&cursor=start" % (mode, LIMIT)),
                "cursor_param": "cursor", "cursor_path": "$.cursor", "items": "$.repos[*]",
                "emit": self.srv.url("repo/{did}.json")}},
            "db": db,
            "http": {"cacert": self.pki.ca_cert, "retries": 3},
            "tables": [
                {"name": "repos", "columns": {"did": "@.did", "handle": "@.handle",
                                              "rev": "{rev}", "head": "{head}"},
                 "key": ["did"], "mode": "upsert"},
                {"name": "records", "rows": "$.records[*]",
                 "columns": {"id": "@.id", "did": "$.did", "n": "@.n", "text": "@.text"}},
            ],
        }
        path = os.path.join(d, "job.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(job, f)
        return path

    def run_ok(self, args, code=0):
        p = run_ringfill(args + ["--retry-base", "0.05", "--retry-max", "0.2"])
        self.assertEqual(p.returncode, code, describe(p))
        return p

    # -- paginate ----------------------------------------------------------

    def check_emit_tables(self, db):
        self.assertEqual(table(db, "repos", ["did", "handle", "rev", "head"]),
                         expected_repos(self.srv.items))
        self.assertEqual(table(db, "records", ["id", "did", "n", "text"]),
                         expected_records(self.srv.items))

    def test_paginate_emit_fills_every_table(self):
        d = self.workdir()
        job = self.job_emit(d, "ok")
        self.run_ok(["run", job])
        db = os.path.join(d, "out.db")
        self.check_emit_tables(db)
        jobs = harness.jobs(db)
        pages = [j for j in jobs if j["key"].startswith("page")]
        self.assertEqual(len(pages), (ITEMS + LIMIT - 1) // LIMIT)
        self.assertEqual(len(jobs), len(pages) + ITEMS)
        self.assertTrue(all(j["state"] == "done" for j in jobs), jobs)
        # The cursor replaced the stale one and was encoded: the server
        # decoded it back (a wrong one would be a 500 or a wrong offset).
        second = [j for j in pages if j["key"] == "page:c/5 &=?+%"]
        self.assertEqual(len(second), 1, pages)
        self.assertNotIn("start", second[0]["url"])
        self.assertIn("cursor=c%2F5%20%26%3D%3F%2B%25", second[0]["url"])
        # Re-running fetches nothing and adds nothing.
        before = self.srv.hits
        p = self.run_ok(["run", job])
        self.assertEqual(self.srv.hits, before, describe(p))
        self.assertEqual(len(harness.jobs(db)), len(jobs))
        self.check_emit_tables(db)

    def test_paginate_items_are_rows_without_emit(self):
        for mode in ("nullend", "emptyend"):
            d = self.workdir()
            job = {"source": {"paginate": {
                "url": self.srv.url("%s/pages?limit=%d" % (mode, LIMIT)),
                "cursor_path": "$.cursor", "items": "$.repos[*]"}},
                "db": "out.db", "http": {"cacert": self.pki.ca_cert},
                "tables": [{"name": "items"},  # inferred, rows = the items
                           {"name": "pagesizes", "rows": "$",
                            "columns": {"n": {"path": "$.repos", "type": "json"}}}]}
            path = os.path.join(d, "job.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(job, f)
            self.run_ok(["run", path])
            db = os.path.join(d, "out.db")
            want = sorted(((it["did"], it["rev"], sql_val(it["active"]), it["head"])
                           for it in self.srv.items), key=repr)
            self.assertEqual(table(db, "items", ["did", "rev", "active", "head"]), want, mode)
            pages = (ITEMS + LIMIT - 1) // LIMIT + (mode == "emptyend")
            self.assertEqual(harness.count_rows(db, "pagesizes"), pages, mode)
            self.assertEqual(len(harness.jobs(db)), pages, mode)

    def test_paginate_retries_a_page_in_place(self):
        d = self.workdir()
        job = self.job_emit(d, "flaky")
        self.run_ok(["run", job])
        db = os.path.join(d, "out.db")
        self.check_emit_tables(db)
        flaky = [p for p, n in self.srv.hits.items()
                 if p.startswith("/flaky/pages") and "cursor=c%2F5%20" in p]
        self.assertEqual(len(flaky), 1, self.srv.hits)
        self.assertEqual(self.srv.hits[flaky[0]], 2)
        page2 = [j for j in harness.jobs(db) if j["key"] == "page:c/5 &=?+%"][0]
        self.assertEqual((page2["state"], page2["attempts"]), ("done", 2))

    def test_repeated_cursor_fails_the_page(self):
        d = self.workdir()
        job = self.job_emit(d, "repeat")
        p = self.run_ok(["run", job], code=1)
        db = os.path.join(d, "out.db")
        jobs = harness.jobs(db)
        failed = [j for j in jobs if j["state"] == "failed"]
        self.assertEqual(len(failed), 1, jobs)
        self.assertEqual(failed[0]["key"], "page:c/10 &=?+%")
        self.assertEqual(failed[0]["error_class"], "permanent")
        self.assertIn("repeated cursor", failed[0]["error"])
        # The failed page's items were rolled back with it: the first two
        # pages' items are in, nothing else.
        self.assertEqual(table(db, "repos", ["did", "handle", "rev", "head"]),
                         expected_repos(self.srv.items[:2 * LIMIT]))
        self.assertEqual(len(jobs), 3 + 2 * LIMIT, describe(p))

    def page_jobs(self, db):
        return [j for j in harness.jobs(db) if j["key"] == "page" or j["key"].startswith("page:")]

    def check_repeat(self, d, mode, key, earlier, items, code=1):
        """A run of mode fails the page `key` alone: it repeats page
        `earlier`; the tables hold the `items` served before it."""
        db = os.path.join(d, "out.db")
        jobs = harness.jobs(db)
        failed = [j for j in jobs if j["state"] == "failed"]
        self.assertEqual([j["key"] for j in failed], [key], jobs)
        self.assertEqual(failed[0]["error_class"], "permanent")
        self.assertIn('page repeats page "%s" (same content)' % earlier, failed[0]["error"])
        # Nothing of the repeated page was committed: no next page, no rows.
        self.assertEqual(table(db, "repos", ["did", "handle", "rev", "head"]),
                         expected_repos(items))
        self.assertEqual(table(db, "records", ["id", "did", "n", "text"]),
                         expected_records(items))
        self.assertEqual(len(jobs), len(self.page_jobs(db)) + len(items))
        return failed[0]

    def test_page_repeating_the_first_page_fails(self):
        d = self.workdir()
        before = self.srv.hits
        p = self.run_ok(["run", self.job_emit(d, "loopfirst")], code=1)
        self.check_repeat(d, "loopfirst", "page:again", "page", self.srv.items)
        # The chain stopped at the repeated page: the second page was asked once.
        second = [n - before.get(path, 0) for path, n in self.srv.hits.items()
                  if path.startswith("/loopfirst/pages") and "cursor=c%2F5%20" in path]
        self.assertEqual(second, [1], describe(p))

    def test_page_repeating_a_middle_page_fails(self):
        d = self.workdir()
        self.run_ok(["run", self.job_emit(d, "repeatmid")], code=1)
        self.check_repeat(d, "repeatmid", "page:alias", "page:c/5 &=?+%",
                          self.srv.items[:3 * LIMIT])

    def test_page_repeating_a_page_of_an_earlier_run_fails(self):
        d = self.workdir()
        job = self.job_emit(d, "loopfirst")
        db = os.path.join(d, "out.db")
        self.srv.again_down = True
        try:  # the "again" page fails transiently; every other page is done
            self.run_ok(["run", job, "--retries", "1"], code=1)
        finally:
            self.srv.again_down = False
        again = [j for j in harness.jobs(db) if j["key"] == "page:again"]
        self.assertEqual([(j["state"], j["error_class"]) for j in again],
                         [("failed", "transient")])
        # The re-run fetches it again: the first page it repeats is from run 1.
        self.run_ok(["run", job], code=1)
        self.check_repeat(d, "loopfirst", "page:again", "page", self.srv.items)

    def test_endless_chain_stops_at_max_pages(self):
        d = self.workdir()
        path = self.job_emit(d, "loopfresh")
        with open(path, encoding="utf-8") as f:
            job = json.load(f)
        max_pages = 2 * ((ITEMS + LIMIT - 1) // LIMIT) + 3  # into the third lap
        job["source"]["paginate"]["max_pages"] = max_pages
        with open(path, "w", encoding="utf-8") as f:
            json.dump(job, f)
        before = sum(n for k, n in self.srv.hits.items() if k.startswith("/loopfresh/pages"))
        p = self.run_ok(["run", path], code=1)
        db = os.path.join(d, "out.db")
        pages = self.page_jobs(db)
        self.assertEqual(len(pages), max_pages, describe(p))
        failed = [j for j in harness.jobs(db) if j["state"] == "failed"]
        self.assertEqual(len(failed), 1, failed)
        self.assertEqual(failed[0]["key"], "page:c/10 &=?+% 2")  # the last one made
        self.assertIn("more than max_pages (%d) pages" % max_pages, failed[0]["error"])
        asked = sum(n for k, n in self.srv.hits.items() if k.startswith("/loopfresh/pages"))
        self.assertEqual(asked - before, max_pages)
        self.check_emit_tables(db)  # every item once, from the first lap

    def test_bad_items_and_cursors_fail_alone(self):
        d = self.workdir()
        p = self.run_ok(["run", self.job_emit(d, "baditem")], code=1)
        db = os.path.join(d, "out.db")
        failed = [j for j in harness.jobs(db) if j["state"] == "failed"]
        # Each bad item is a failed job of its own; the chain went on.
        self.assertEqual(sorted(j["key"] for j in failed), ["page item 3", "page item 4"],
                         describe(p))
        self.assertTrue(all(j["error_class"] == "permanent" and
                            'no string or number field "did"' in j["error"] for j in failed))
        self.check_emit_tables(db)
        d = self.workdir()
        self.run_ok(["run", self.job_emit(d, "badcursor")], code=1)
        db = os.path.join(d, "out.db")
        failed = [j for j in harness.jobs(db) if j["state"] == "failed"]
        self.assertEqual([j["key"] for j in failed], ["page:c/5 &=?+%"])
        self.assertIn("the cursor at $.cursor is not a string or a number", failed[0]["error"])
        # A cursor holding a NUL byte: the page fails (its key, text, would be
        # cut at the NUL and name another page than its URL).
        d2 = self.workdir()
        self.run_ok(["run", self.job_emit(d2, "nulcursor")], code=1)
        failed2 = [j for j in harness.jobs(os.path.join(d2, "out.db")) if j["state"] == "failed"]
        self.assertEqual([j["key"] for j in failed2], ["page:c/5 &=?+%"])
        self.assertIn("the cursor at $.cursor holds a NUL byte", failed2[0]["error"])
        # The failed page's items are not there: it made nothing.
        self.assertEqual(table(db, "repos", ["did", "handle", "rev", "head"]),
                         expected_repos(self.srv.items[:LIMIT]))

    def test_max_pages_counts_pages_not_failed_items(self):
        # max_pages exactly the chain's pages; the second page's two bad items
        # are failed jobs of their own ("page:CURSOR item 3"), and the third page
        # fails transiently in the first run (--retries 1), so the second run
        # resumes the chain and counts its pages from the database. Counted
        # with the items (as on 4db4cd0), the last pages were refused:
        # "more than max_pages", items never fetched.
        d = self.workdir()
        path = self.job_emit(d, "baditemflaky")
        with open(path, encoding="utf-8") as f:
            job = json.load(f)
        job["source"]["paginate"]["max_pages"] = (ITEMS + LIMIT - 1) // LIMIT
        job["http"]["retries"] = 1
        with open(path, "w", encoding="utf-8") as f:
            json.dump(job, f)
        self.run_ok(["run", path], code=1)
        db = os.path.join(d, "out.db")
        self.assertIn("failed", {j["state"] for j in self.page_jobs(db)})
        p = self.run_ok(["run", path], code=1)  # the bad items stay failed
        failed = [j for j in harness.jobs(db) if j["state"] == "failed"]
        second = [j["key"] for j in self.page_jobs(db) if j["key"].endswith(" item 3")]
        self.assertEqual(len(second), 1, describe(p))
        self.assertEqual(sorted(j["key"] for j in failed),
                         [second[0], second[0][:-1] + "4"], describe(p))
        self.check_emit_tables(db)

    def test_page_not_done_takes_the_job_files_url(self):
        # A page job keeps the URL it was emitted with. A job file whose url
        # asks too much of the cursor pages (cap5: limit 6 is refused with a
        # cursor) fails the second page for good; the url fixed, the next
        # run gives that page the job file's URL for its cursor, without
        # `retry`, and the chain completes. On 0c04126 it kept the old URL
        # and failed again on every run.
        d = self.workdir()
        job = self.job_emit(d, "cap5")
        with open(job, encoding="utf-8") as f:
            spec = json.load(f)
        bad = spec["source"]["paginate"]["url"].replace("limit=%d" % LIMIT, "limit=6")
        spec["source"]["paginate"]["url"] = bad
        with open(job, "w", encoding="utf-8") as f:
            json.dump(spec, f)
        self.run_ok(["run", job], code=1)
        db = os.path.join(d, "out.db")
        failed = [j for j in self.page_jobs(db) if j["state"] == "failed"]
        self.assertEqual(len(failed), 1, failed)
        self.assertIn("HTTP 400", failed[0]["error"])
        spec["source"]["paginate"]["url"] = bad.replace("limit=6", "limit=%d" % LIMIT)
        with open(job, "w", encoding="utf-8") as f:
            json.dump(spec, f)
        p = self.run_ok(["run", job])
        self.assertIn("1 jobs not done yet take their new URL", p.stderr)
        page = [j for j in self.page_jobs(db) if j["key"] == failed[0]["key"]][0]
        self.assertEqual(page["state"], "done", page)
        self.assertIn("limit=%d&" % LIMIT, page["url"])
        self.check_emit_tables(db)

    def test_kill_mid_pagination_then_resume(self):
        ref = self.workdir()
        self.run_ok(["run", self.job_emit(ref, "slow")])
        d = self.workdir()
        job = self.job_emit(d, "slow")
        db = os.path.join(d, "out.db")
        proc = subprocess.Popen([harness.ringfill_path(), "run", job, "--quiet"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        done = 0
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
            try:
                with sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=1) as con:
                    done = con.execute("SELECT count(*) FROM _ringfill_jobs WHERE key LIKE"
                                       " 'page:%' AND state='done'").fetchone()[0]
            except sqlite3.Error:
                continue
            if done >= 3:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.assertGreaterEqual(done, 3, "the run ended before it could be killed")
        # Killed in the middle: pages and items are still to come.
        self.assertLess(done, (ITEMS + LIMIT - 1) // LIMIT)
        self.assertTrue([j for j in harness.jobs(db) if j["state"] == "pending"])
        self.run_ok(["run", job])
        self.check_emit_tables(db)
        self.assertEqual(job_set(db), job_set(os.path.join(ref, "out.db")))
        with harness.open_db(db) as con:
            self.assertEqual(con.execute("SELECT count(*) FROM records").fetchone()[0],
                             len(expected_records(self.srv.items)))

    # -- files -------------------------------------------------------------

    def test_files_from_raw_equal_https(self):
        urls = [self.srv.url("repo/%s.json" % __import__("urllib.parse").parse.quote(
            it["did"], safe="")) for it in self.srv.items]
        d = self.workdir()
        harness.write_lines(os.path.join(d, "urls.txt"), urls)
        tables = [{"name": "repos", "columns": {"did": "@.did", "handle": "@.handle"}},
                  {"name": "records", "rows": "$.records[*]",
                   "columns": {"id": "@.id", "did": "$.did", "n": "@.n", "text": "@.text"}},
                  {"name": "docs"}]
        for name, source in (("https", {"urls": "urls.txt"}),
                             ("files", {"files": "raw/*/*.json"})):
            with open(os.path.join(d, name + ".json"), "w", encoding="utf-8") as f:
                json.dump({"source": source, "db": name + ".db",
                           "http": {"cacert": self.pki.ca_cert}, "tables": tables}, f)
        self.run_ok(["run", "--urls", os.path.join(d, "urls.txt"), "--db",
                     os.path.join(d, "dl.db"), "--raw", os.path.join(d, "raw"),
                     "--download-only", "--cacert", self.pki.ca_cert])
        before = self.srv.hits
        self.run_ok(["run", os.path.join(d, "files.json")])
        self.assertEqual(self.srv.hits, before, "the files source fetched something")
        self.run_ok(["run", os.path.join(d, "https.json")])
        a, b = os.path.join(d, "files.db"), os.path.join(d, "https.db")
        self.assertEqual(table(a, "repos", ["did", "handle"]), table(b, "repos", ["did", "handle"]))
        self.assertEqual(table(a, "repos", ["did", "handle"]),
                         sorted(((r[0], r[1]) for r in expected_repos(self.srv.items)), key=repr))
        cols = ["id", "did", "n", "text"]
        self.assertEqual(table(a, "records", cols), expected_records(self.srv.items))
        self.assertEqual(table(a, "records", cols), table(b, "records", cols))
        with harness.open_db(b) as con:
            doc_cols = [r[1] for r in con.execute("PRAGMA table_info(docs)") if r[1] != "_job"]
        self.assertEqual(table(a, "docs", doc_cols), table(b, "docs", doc_cols))
        # bytes and sha256 are those of the files, as the download recorded them.
        got = {(j["bytes"], j["sha256"]) for j in harness.jobs(a)}
        self.assertEqual(got, {(j["bytes"], j["sha256"]) for j in harness.jobs(
            os.path.join(d, "dl.db"))})
        files = harness.jobs(a)
        self.assertTrue(all(j["url"].startswith("file:/") and j["state"] == "done"
                            for j in files), files)
        self.assertTrue(all(not j["key"].startswith("/") and j["key"].count("/") == 1
                            for j in files), files)
        # Nothing is read twice: a re-run finds every job done.
        p = self.run_ok(["run", os.path.join(d, "files.json")])
        self.assertIn("0 jobs to fetch", p.stderr)

    @staticmethod
    def write_docs(d, texts):
        """D/docs holding a file per (name, text); its path."""
        docs = os.path.join(d, "docs")
        os.makedirs(docs)
        for name, text in texts:
            with open(os.path.join(docs, name), "w") as f:
                f.write(text)
        return docs

    def test_files_pattern_widened_loads_each_file_once(self):
        # A file's job is keyed by its path under the pattern's base, so a
        # wider pattern gives known files new keys; and a link names its
        # target's file again. Each file is still loaded once: it is known
        # by its resolved path (its file: URL).
        d = self.workdir()
        docs = self.write_docs(d, (("h_a.json", '{"x": "a"}'), ("h_b.json", '{"x": "b"}')))
        os.makedirs(os.path.join(docs, "h"))
        os.makedirs(os.path.join(docs, "g"))
        for name in ("a", "b"):
            os.rename(os.path.join(docs, "h_%s.json" % name),
                      os.path.join(docs, "h", "%s.json" % name))
        job = os.path.join(d, "job.json")

        def run(pattern):
            with open(job, "w") as f:
                json.dump({"source": {"files": pattern}, "db": "out.db",
                           "tables": [{"name": "t", "columns": {"x": "@.x"}}]}, f)
            return self.run_ok(["run", job])
        run("docs/h/*.json")
        with open(os.path.join(docs, "g", "c.json"), "w") as f:
            f.write('{"x": "c"}')
        os.symlink(os.path.join("..", "h", "a.json"), os.path.join(docs, "g", "link.json"))
        p = run("docs/*/*.json")
        self.assertIn("1 paths name a file another path names too", p.stderr)
        self.assertIn("2 files are known already under another path", p.stderr)
        db = os.path.join(d, "out.db")
        self.assertEqual(table(db, "t", ["x"]), [("a",), ("b",), ("c",)])
        self.assertEqual(sorted(j["key"] for j in harness.jobs(db)),
                         ["a.json", "b.json", "g/c.json"])

    def test_files_errors_name_the_file(self):
        d = self.workdir()
        docs = self.write_docs(d, (("a.json", '{"x": 1}'), ("b.json", '{"x": [1, 2}'),
                                   ("c.jsonl", '{"x": 3}\n{"x": 4}\n'),
                                   ("big.json", '{"x": "%s"}' % ("y" * 5000))))
        with open(os.path.join(d, "job.json"), "w") as f:
            json.dump({"source": {"files": "docs"}, "db": "out.db",
                       "tables": [{"name": "t", "columns": {"x": "@.x"}}]}, f)
        job = os.path.join(d, "job.json")
        self.run_ok(["run", job, "--max-body", "4K"], code=1)
        db = os.path.join(d, "out.db")
        by_key = {j["key"]: j for j in harness.jobs(db)}
        self.assertEqual(sorted(by_key), ["a.json", "b.json", "big.json", "c.jsonl"])
        bad = by_key["b.json"]
        self.assertEqual((bad["state"], bad["error_class"]), ("failed", "permanent"))
        self.assertIn(os.path.join(docs, "b.json"), bad["error"])
        self.assertIn("byte offset 11", bad["error"])
        self.assertIn("larger than --max-body", by_key["big.json"]["error"])
        self.assertEqual(table(db, "t", ["x"]), [(1,), (3,), (4,)])
        # A file gone since the import: requeue, delete, run again.
        p = run_ringfill(["retry", db, "--all"])
        self.assertEqual(p.returncode, 0, describe(p))
        os.unlink(os.path.join(docs, "b.json"))
        self.run_ok(["run", job, "--max-body", "4K"], code=1)
        gone = {j["key"]: j for j in harness.jobs(db)}["b.json"]
        self.assertEqual((gone["state"], gone["error_class"]), ("failed", "permanent"))
        self.assertIn(os.path.join(docs, "b.json"), gone["error"])
        self.assertIn("No such file", gone["error"])
        self.assertEqual(table(db, "t", ["x"]), [(1,), (3,), (4,)])

    def test_files_ndjson_names_with_a_hash_or_a_question_mark(self):
        """A local file's name is all path: "run#1.ndjson" and "a?b.jsonl"
        are NDJSON by their suffix, where a URL's path would end at the
        "#" or "?". Before, "a?b.jsonl" (since 2642cb7 at least) and, for a
        while, "run#1.ndjson" were read as one document and failed."""
        d = self.workdir()
        self.write_docs(d, (("run#1.ndjson", '{"x": 1}\n{"x": 2}\n'),
                            ("a?b.jsonl", '{"x": 3}\n{"x": 4}\n')))
        job = self.files_job(d, [{"name": "t", "columns": {"x": "@.x"}}])
        self.run_ok(["run", job, "--quiet"])
        self.assertEqual(sorted(table(os.path.join(d, "out.db"), "t", ["x"])),
                         [(1,), (2,), (3,), (4,)])

    def test_table_named_in_another_case_keeps_its_column_map(self):
        """SQLite's table names ignore case: a job file's table "t" is the
        table "T" another one filled. Its records' keys go to the columns
        the first run mapped them to ("Name" -> Name, "name" -> name_2),
        whatever order they come in. Before, the map was looked up by the
        exact name: the second run mapped "name" to Name and "Name" to
        name_2, each value in the other key's column."""
        d = self.workdir()
        for sub_dir, doc in (("a", '{"items": [{"id": 1, "Name": "UPPER-1", "name": "lower-1"}]}'),
                             ("b", '{"items": [{"id": 2, "name": "lower-2", "Name": "UPPER-2"}]}')):
            os.makedirs(os.path.join(d, sub_dir))
            with open(os.path.join(d, sub_dir, "doc.json"), "w") as f:
                f.write(doc)
        for job, src, name in (("ja.json", "a", "T"), ("jb.json", "b", "t")):
            with open(os.path.join(d, job), "w") as f:
                json.dump({"source": {"files": src}, "db": "out.db",
                           "tables": [{"name": name, "rows": "$.items[*]"}]}, f)
            self.run_ok(["run", os.path.join(d, job), "--quiet"])
        db = os.path.join(d, "out.db")
        self.assertEqual(table(db, "t", ["id", "Name", "name_2"]),
                         [(1, "UPPER-1", "lower-1"), (2, "UPPER-2", "lower-2")])
        # An entry naming a column the table does not have (left by a table
        # dropped and made again by hand, under another spelling) is skipped.
        with sqlite3.connect(db) as con:
            con.execute("INSERT INTO _ringfill_columns VALUES ('T', 'y', 'y_old')")
        con.close()
        os.makedirs(os.path.join(d, "c"))
        with open(os.path.join(d, "c", "doc.json"), "w") as f:
            f.write('{"items": [{"id": 3, "y": "why"}]}')
        with open(os.path.join(d, "jc.json"), "w") as f:
            json.dump({"source": {"files": "c"}, "db": "out.db",
                       "tables": [{"name": "t", "rows": "$.items[*]"}]}, f)
        self.run_ok(["run", os.path.join(d, "jc.json"), "--quiet"])
        self.assertIn((3, "why"), table(db, "t", ["id", "y"]))

    def test_declared_column_renamed_in_another_case_is_the_same_column(self):
        """A job file's declared column and key "id", renamed "ID" for the
        next run, is the same column (SQLite's names ignore case): the next
        document's record with id 1 replaces the first. Before, the rename
        made a column ID_2, moved the key's index to it, and upsert stored
        the record a second time."""
        d = self.workdir()
        self.write_docs(d, (("a.json", '{"id": 1, "x": "a"}'),))
        self.run_ok(["run", self.files_job(d, [
            {"name": "t", "columns": {"id": "@.id", "x": "@.x"}, "key": ["id"],
             "mode": "upsert"}]), "--quiet"])
        with open(os.path.join(d, "docs", "b.json"), "w") as f:
            f.write('{"id": 1, "x": "b", "y": 2}')
        self.run_ok(["run", self.files_job(d, [
            {"name": "t", "columns": {"ID": "@.id", "x": "@.x", "Y": "@.y"}, "key": ["ID"],
             "mode": "upsert"}]), "--quiet"])
        db = os.path.join(d, "out.db")
        with harness.open_db(db) as con:
            cols = [r[1] for r in con.execute("PRAGMA table_info(t)")]
        self.assertEqual(cols, ["_job", "id", "x", "Y"])
        self.assertEqual(table(db, "t", ["id", "x", "Y"]), [(1, "b", 2)])

    def test_key_added_over_duplicate_rows_says_what_to_do(self):
        """A key given to a table whose rows already repeat it stops the run
        (exit 3) before any row, and says to remove the duplicates or the
        key: a re-run alone cannot help. Before, it said "run the same
        command again to resume", which failed the same way every time."""
        d = self.workdir()
        self.write_docs(d, (("a.json", '[{"id": 1, "x": "a"}, {"id": 1, "x": "b"}]'),))
        self.run_ok(["run", self.files_job(d, [{"name": "t", "rows": "$[*]"}]), "--quiet"])
        with open(os.path.join(d, "docs", "b.json"), "w") as f:
            f.write('[{"id": 2, "x": "c"}]')
        job = self.files_job(d, [{"name": "t", "rows": "$[*]", "key": ["id"], "mode": "upsert"}])
        for _ in range(2):
            p = self.run_ok(["run", job, "--quiet"], code=3)
            self.assertIn('table "t": cannot make its key unique', p.stderr)
            self.assertIn("its rows hold the same key more than once: remove those rows, or "
                          "the table's \"key\" from the job file", p.stderr)
            self.assertNotIn("run the same command again", p.stderr)
            self.assertEqual(sorted(table(os.path.join(d, "out.db"), "t", ["id", "x"])),
                             [(1, "a"), (1, "b")])

    def test_key_past_the_column_limit_says_so(self):
        """A key whose column the table lacks, on a table at SQLite's 2000
        columns: the run stops (exit 3) naming the table and the limit, and
        what to do. Before, it said "cannot make its key unique: too many
        columns on sqlite_altertab_t" and to run the same command again."""
        d = self.workdir()
        self.write_docs(d, (("a.json", json.dumps({"c%d" % i: i for i in range(1999)})),))
        self.run_ok(["run", self.files_job(d, [{"name": "t"}]), "--quiet"])
        job = self.files_job(d, [{"name": "t", "key": ["newkey"], "mode": "upsert"}])
        p = self.run_ok(["run", job, "--quiet"], code=3)
        self.assertIn('table "t": its key\'s columns would give it more than 2000 columns, '
                      "SQLite's limit", p.stderr)
        self.assertIn("key the table by columns it has", p.stderr)
        self.assertNotIn("sqlite_altertab_t", p.stderr)
        self.assertNotIn("run the same command again", p.stderr)

    def test_end_of_run_figures_are_what_was_committed(self):
        """The last line, and --log-json's "finished" event, count the jobs
        and rows the database committed: a job whose rows it refused (a key
        repeated in append mode) is failed there, not done. Before, they
        counted what the loop handed over: "2 done, 0 failed" for a run
        whose database held one done job and one failed. With --log-json
        every line of stderr is JSON."""
        d = self.workdir()
        self.write_docs(d, (("a.json", '[{"id": 1}, {"id": 2}]'),
                            ("b.json", '[{"id": 3}, {"id": 3}]')))
        job = self.files_job(d, [{"name": "t", "rows": "$[*]", "key": ["id"],
                                  "mode": "append"}])
        p = self.run_ok(["run", job, "--log-json"], code=1)
        # Every line is JSON (the import and the summary too: they were
        # plain text between the JSON lines before).
        events = [json.loads(line) for line in p.stderr.splitlines()]
        kinds = [e["event"] for e in events]
        self.assertEqual((kinds[0], kinds[-1]), ("import", "summary"), p.stderr)
        self.assertIn("1 jobs failed", events[-1]["message"])
        fin = [e for e in events if e.get("event") == "finished"]
        self.assertEqual(len(fin), 1, p.stderr)
        self.assertEqual((fin[0]["jobs_done"], fin[0]["jobs_failed"], fin[0]["rows"]),
                         (1, 1, 2), fin[0])
        os.unlink(os.path.join(d, "out.db"))
        p = self.run_ok(["run", job, "--progress"], code=1)
        self.assertIn("1 done, 1 failed", p.stderr)

    def test_integers_beyond_64_bits_never_meet_in_a_numeric_column(self):
        """An integer beyond int64 is kept as its digits in a TEXT column (a
        column made by such a first value is TEXT); for a column of INTEGER
        affinity, where SQLite would keep a REAL of 15 digits (so
        18446744073709551614 and ...615 would be one key, and upsert would
        drop a record), the job fails for good, saying why. Before, both
        were stored as 1.84467440737096e+19: one row for two ids."""
        d = self.workdir()
        self.write_docs(d, (
            ("1.json", '{"items": [{"id": 1, "v": "a"}]}'),
            ("2.json", '{"items": [{"id": 18446744073709551614, "v": "b"},'
                       ' {"id": 18446744073709551615, "v": "c"}]}'),
            ("3.json", '{"big": [{"id": 18446744073709551615}, {"id": 7}],'
                       ' "reals": [{"x": 1.5}, {"x": 100000000000000000000}]}')))
        job = self.files_job(d, [
            {"name": "t", "rows": "$.items[*]", "key": ["id"], "mode": "upsert"},
            {"name": "g", "rows": "$.big[*]"}, {"name": "r", "rows": "$.reals[*]"}])
        self.run_ok(["run", job, "--quiet", "--concurrency", "1"], code=1)
        db = os.path.join(d, "out.db")
        jobs = {j["key"]: j for j in harness.jobs(db)}
        self.assertEqual(jobs["1.json"]["state"], "done")
        bad = jobs["2.json"]
        self.assertEqual((bad["state"], bad["error_class"]), ("failed", "permanent"), bad)
        self.assertIn("an integer beyond 64 bits", bad["error"])
        self.assertEqual(table(db, "t", ["id", "v"]), [(1, "a")])
        with harness.open_db(db) as con:
            got = con.execute('SELECT typeof(id), id FROM "g" ORDER BY rowid').fetchall()
        self.assertEqual([tuple(r) for r in got],
                         [("text", "18446744073709551615"), ("text", "7")])
        # A REAL column takes such an integer's double, as any number's.
        self.assertEqual(table(db, "r", ["x"]), [(1.5,), (1e20,)])

    def test_integer_strings_beyond_64_bits_and_declared_integers(self):
        """The same holds for ids sent as JSON strings into a column of
        INTEGER affinity (SQLite reads "18446744073709551614" as a REAL
        there: before, two ids were one row after an upsert) and for a
        declared "integer" column, which stored NULL for any whole number
        beyond int64 (two NULL keys, two rows, and the ids gone): both now
        fail the job, saying why. Declared "text", the digits are kept."""
        d = self.workdir()
        self.write_docs(d, (
            ("1.json", '{"items": [{"id": 1, "v": "a"}]}'),
            ("2.json", '{"items": [{"id": "18446744073709551614", "v": "b"},'
                       ' {"id": " 18446744073709551615 ", "v": "c"}]}'),
            ("3.json", '{"items": [{"id": "12", "v": "d"}, {"id": "x", "v": "e"}]}'),
            ("4.json", '{"decl": [{"id": 18446744073709551614}, {"id": "1e30"}]}'),
            ("5.json", '{"decl": [{"id": "42"}, {"id": "N/A"}]}'),
            ("6.json", '{"items": [{"id": "12345678901234567890.0", "v": "f"},'
                       ' {"id": "1.2345678901234567891e19", "v": "g"}]}')))
        job = self.files_job(d, [
            {"name": "t", "rows": "$.items[*]", "key": ["id"], "mode": "upsert"},
            {"name": "n", "rows": "$.decl[*]", "key": ["id"], "mode": "upsert",
             "columns": {"id": {"path": "@.id", "type": "integer"}}},
            {"name": "s", "rows": "$.decl[*]", "key": ["id"], "mode": "upsert",
             "columns": {"id": {"path": "@.id", "type": "text"}}}])
        self.run_ok(["run", job, "--quiet", "--concurrency", "1"], code=1)
        db = os.path.join(d, "out.db")
        jobs = {j["key"]: j for j in harness.jobs(db)}
        for key in ("1.json", "3.json", "5.json"):
            self.assertEqual(jobs[key]["state"], "done", jobs[key])
        # 6.json: whole numbers beyond int64 written with a fraction or an
        # exponent, which SQLite stores as one REAL as well.
        for key in ("2.json", "4.json", "6.json"):
            bad = jobs[key]
            self.assertEqual((bad["state"], bad["error_class"]), ("failed", "permanent"), bad)
            self.assertIn("an integer beyond 64 bits", bad["error"])
        # "12" becomes 12 under the column's affinity, "x" stays text.
        self.assertEqual(sorted(table(db, "t", ["id", "v"]), key=repr),
                         sorted([(1, "a"), (12, "d"), ("x", "e")], key=repr))
        # "N/A" is no number: NULL, as docs/jobfile.md says.
        self.assertEqual(sorted(table(db, "n", ["id"]), key=repr), [(42,), (None,)])
        self.assertEqual(sorted(table(db, "s", ["id"]), key=repr), [("42",), ("N/A",)])
        # Declared text alone, the same document loads with its digits.
        job2 = os.path.join(d, "job2.json")
        with open(job2, "w") as f:
            json.dump({"source": {"files": "docs/[45].json"}, "db": "out2.db", "tables": [
                {"name": "s2", "rows": "$.decl[*]", "key": ["id"], "mode": "upsert",
                 "columns": {"id": {"path": "@.id", "type": "text"}}}]}, f)
        self.run_ok(["run", job2, "--quiet"])
        self.assertEqual(sorted(table(os.path.join(d, "out2.db"), "s2", ["id"])),
                         sorted([("1e30",), ("18446744073709551614",), ("42",), ("N/A",)]))

    def test_numbers_beyond_a_double_never_meet_as_infinity(self):
        """1e500, 1e999, a 500-digit integer or the string "1e500" going into
        a column of REAL, INTEGER or NUMERIC affinity would all be stored as
        infinity, one value: upsert kept one record of two. Such a job now
        fails, permanent, saying why (for the 500 digits into a REAL column
        the reason was the INTEGER one); a TEXT column keeps them as
        written."""
        d = self.workdir()
        big = "9" * 500
        self.write_docs(d, (
            ("1.json", '{"r": [{"k": 1.5, "v": "a"}], "i": [{"k": 7, "v": "a"}]}'),
            ("2.json", '{"r": [{"k": 1e500, "v": "b"}, {"k": 1e999, "v": "c"}]}'),
            ("3.json", '{"i": [{"k": 1e500, "v": "b"}, {"k": 1e999, "v": "c"}]}'),
            ("4.json", '{"r": [{"k": "1e500", "v": "b"}, {"k": " 2E+400 ", "v": "c"}]}'),
            ("5.json", '{"r": [{"k": %s, "v": "b"}]}' % big),
            ("6.json", '{"t": [{"k": 1e500}, {"k": 1e999}, {"k": "1e500"}, {"k": %s}],'
                       ' "r": [{"k": "1.7e308", "v": "d"}, {"k": "1e-500", "v": "e"},'
                       ' {"k": "x1e500", "v": "f"}]}' % big),
            # Past SQLite's own exponent limit (10000): it reads this 1e-80000
            # as infinity, so it is refused too (asked of SQLite itself).
            ("7.json", '{"r": [{"k": "1%se-100000", "v": "h"}]}' % ("0" * 20000))))
        job = self.files_job(d, [
            {"name": "r", "rows": "$.r[*]", "key": ["k"], "mode": "upsert"},
            {"name": "i", "rows": "$.i[*]", "key": ["k"], "mode": "upsert"},
            {"name": "t", "rows": "$.t[*]", "key": ["k"], "mode": "upsert",
             "columns": {"k": {"path": "@.k", "type": "text"}}}])
        self.run_ok(["run", job, "--quiet", "--concurrency", "1"], code=1)
        db = os.path.join(d, "out.db")
        jobs = {j["key"]: j for j in harness.jobs(db)}
        for key in ("1.json", "6.json"):
            self.assertEqual(jobs[key]["state"], "done", jobs[key])
        for key in ("2.json", "3.json", "4.json", "5.json", "7.json"):
            bad = jobs[key]
            self.assertEqual((bad["state"], bad["error_class"]), ("failed", "permanent"), bad)
            self.assertIn("a number beyond the range of a double", bad["error"])
        self.assertEqual(sorted(table(db, "r", ["k", "v"]), key=repr),
                         sorted([(1.5, "a"), (1.7e308, "d"), (0.0, "e"), ("x1e500", "f")],
                                key=repr))
        self.assertEqual(table(db, "i", ["k", "v"]), [(7, "a")])
        self.assertEqual(sorted(table(db, "t", ["k"])),
                         sorted([("1e500",), ("1e999",), (big,)]))

    def test_long_whole_number_into_a_real_column_takes_its_double(self):
        """A declared integer's whole number beyond int64 whose text is long
        (zeros before it: "000...0001e30", past 400 bytes) going into a REAL
        column (a table made by hand) is stored as its double, as a short
        one is. Before, any such text over 400 bytes was refused as beyond a
        double's range."""
        d = self.workdir()
        long_text = "0" * 500 + "1e30"
        self.write_docs(d, (("a.json", '[{"k": "%s"}, {"k": "2e30"}]' % long_text),))
        db = os.path.join(d, "out.db")
        with sqlite3.connect(db) as con:
            con.execute('CREATE TABLE t ("_job" INTEGER, k REAL)')
        con.close()
        self.run_ok(["run", self.files_job(d, [
            {"name": "t", "rows": "$[*]", "columns": {"k": {"path": "@.k", "type": "integer"}}}]),
            "--quiet"])
        self.assertEqual(sorted(table(db, "t", ["k"])), [(1e30,), (2e30,)])

    def test_files_streams_reused_across_documents(self):
        # Small files are streamed one after another through the loop's pool
        # of json_streams (engine/docstream.c): a document whose `$` value
        # comes after its records (held to the end), an invalid one and a
        # file larger than a read piece between them leave nothing behind
        # for the next document.
        d = self.workdir()
        big = [{"x": 100 + i, "pad": "p" * 1000} for i in range(1100)]  # > 1 MiB: pieces
        self.write_docs(d, (
            ("1.json", '{"items": [{"x": 1}], "meta": {"m": "A"}}'),
            ("2.json", '{"meta": {"m": "B"}, "items": [{"x": 2}, {"x": 3}]}'),
            ("3.json", '{"meta": {"m": "C"}, "items": [{"x": 4}, {"x": '),
            ("4.json", json.dumps({"meta": {"m": "L"}, "items": big})),
            ("5.json", '{"items": [{"x": 5}, {"x": 6}], "meta": {"m": "E"}}'),
            ("6.json", '{"meta": {"m": "F"}, "items": [{"x": 7}]}')))
        with open(os.path.join(d, "job.json"), "w") as f:
            json.dump({"source": {"files": "docs"}, "db": "out.db",
                       "tables": [{"name": "t", "rows": "$.items[*]",
                                   "columns": {"x": "@.x", "m": "$.meta.m"}}]}, f)
        for conc in ("1", "3"):
            db = os.path.join(d, "out.db")
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(db + suffix):
                    os.unlink(db + suffix)
            self.run_ok(["run", os.path.join(d, "job.json"), "--concurrency", conc], code=1)
            want = [(1, "A"), (2, "B"), (3, "B"), (5, "E"), (6, "E"), (7, "F")]
            want += [(100 + i, "L") for i in range(1100)]
            self.assertEqual(table(db, "t", ["x", "m"]), sorted(want, key=repr), conc)
            bad = {j["key"]: j for j in harness.jobs(db)}["3.json"]
            self.assertEqual((bad["state"], bad["error_class"]), ("failed", "permanent"))
            self.assertIn("invalid JSON", bad["error"])

    def test_repeated_member_names_on_paths_refused_streamed_or_whole(self):
        """A document whose object on a path the tables read repeats a name
        the path selects gives the same outcome whether the run streams it
        or parses it whole (a table with an `@` JSON column does): the job
        fails, permanent, naming the second key's byte offset and line.
        Before, the stream took both "rows" arrays and the first "acct", the
        whole parse the last of each: different rows, both at exit 0.
        Repeated names elsewhere (inside a record, off the paths) stay as
        they were: the last member wins in a record, alike both ways."""
        d = self.workdir()
        rows_twice = '{"acct": {"id": 1},\n "rows": [{"k": 1}],\n "rows": [{"k": 2}]}'
        acct_twice = '{"acct": {"id": 1}, "rows": [{"k": 3}],\n\n "acct": {"id": 2}}'
        fine = ('{"other": 1, "other": 2, "acct": {"id": 6, "x": 1, "x": 2},'
                ' "rows": [{"k": 4, "k": 5}]}')
        self.write_docs(d, (("a.json", rows_twice), ("b.json", acct_twice), ("c.json", fine)))
        table_t = {"name": "t", "rows": "$.rows[*]", "columns": {"k": "@.k", "acct": "$.acct.id"}}
        whole = {"name": "whole", "columns": {"d": {"path": "@", "type": "json"}}}
        outcomes = []
        for tables in ([table_t], [table_t, whole]):
            db = os.path.join(d, "out.db")
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(db + suffix):
                    os.unlink(db + suffix)
            self.run_ok(["run", self.files_job(d, tables), "--quiet"], code=1)
            jobs = {j["key"]: j for j in harness.jobs(db)}
            for key, text, name in (("a.json", rows_twice, '"rows": [{"k": 2}'),
                                    ("b.json", acct_twice, '"acct": {"id": 2}')):
                at = text.index(name)
                bad = jobs[key]
                self.assertEqual((bad["state"], bad["error_class"]), ("failed", "permanent"),
                                 bad)
                self.assertIn("member name repeated at byte offset %d (line %d)"
                              % (at, text[:at].count("\n") + 1), bad["error"])
            self.assertEqual(jobs["c.json"]["state"], "done", jobs["c.json"])
            outcomes.append(table(db, "t", ["k", "acct"]))
        self.assertEqual(outcomes, [[(5, 6)], [(5, 6)]])

    def test_gzip_local_document_checkpoint_keeps_its_rows_paths(self):
        """A gzip-compressed local document that fails after a checkpoint
        keeps the rows paths its checkpoint counted, as a plain one does:
        once fixed, a run whose tables read other paths refuses it, and one
        with the earlier tables finishes it, every record once. Before, the
        gzip file's checkpoint kept no rows paths and was taken on trust: a
        table added before the rows gave 100 duplicates and lost its own."""
        import gzip
        d = self.workdir()
        docs = os.path.join(d, "docs")
        os.makedirs(docs)

        def write(tail):
            body = {"pre": [{"k": i} for i in range(100)],
                    "rows": [{"k": i, "pad": "x" * 40} for i in range(30000)]}
            text = json.dumps(body)[:-1] + tail + "}"
            with open(os.path.join(docs, "d.json"), "wb") as f:
                f.write(gzip.compress(text.encode(), 1))
        write(', "bad": tru')
        # ~50 bytes of fields a row: 1.5 MB in all, past a checkpoint's 1 MiB.
        t = {"name": "t", "rows": "$.rows[*]", "columns": {"k": "@.k", "pad": "@.pad"}}
        p = {"name": "p", "rows": "$.pre[*]", "columns": {"k": "@.k"}}
        self.run_ok(["run", self.files_job(d, [t]), "--quiet"], code=1)
        db = os.path.join(d, "out.db")
        with harness.open_db(db) as con:
            ckpt, validator = con.execute(
                "SELECT ckpt_records, ckpt_validator FROM _ringfill_jobs").fetchone()
            done = con.execute("SELECT count(*) FROM t").fetchone()[0]
        self.assertGreater(ckpt or 0, 0, "no checkpoint committed")
        self.assertTrue((validator or "").startswith("rows-paths:"), validator)
        write("")
        retry = [harness.ringfill_path(), "retry", db, "--all"]
        self.assertEqual(subprocess.run(retry, capture_output=True).returncode, 0)
        self.run_ok(["run", self.files_job(d, [t, p]), "--quiet"], code=1)
        job = harness.jobs(db)[0]
        self.assertEqual((job["state"], job["error_class"]), ("failed", "permanent"), job)
        self.assertIn("tables read other rows paths", job["error"])
        self.assertEqual(len(table(db, "t", ["k"])), done)
        self.assertEqual(subprocess.run(retry, capture_output=True).returncode, 0)
        self.run_ok(["run", self.files_job(d, [t]), "--quiet"])
        self.assertEqual(sorted(r[0] for r in table(db, "t", ["k"])), list(range(30000)))

    def test_files_large_documents_stream_two_at_a_time(self):
        # Documents of a read piece (1 MiB) or more are streamed two at a
        # time (engine/files.c, LOCAL_STREAMS_MAX), the others wait in order:
        # rows reach the writer as each one ends instead of all at the end.
        # Every row arrives; a document that fails mid-stream, a small one
        # and an empty one between them do not hold a place.
        d = self.workdir()
        def big(n, items=1100):
            return json.dumps({"meta": {"m": "D%d" % n},
                               "items": [{"x": n * 10000 + i, "pad": "p" * 1000}
                                         for i in range(items)]})
        names = ["%02d.json" % n for n in range(9)]
        texts = [big(n) for n in range(9)]
        texts[3] = big(3, 2200)[:1600000]  # streamed, cut inside an item: invalid JSON
        texts[5] = '{"meta": {"m": "S"}, "items": [{"x": 5}]}'  # one piece
        texts[6] = '{}'                        # no items
        self.write_docs(d, zip(names, texts))
        with open(os.path.join(d, "job.json"), "w") as f:
            json.dump({"source": {"files": "docs"}, "db": "out.db",
                       "tables": [{"name": "t", "rows": "$.items[*]",
                                   "columns": {"x": "@.x", "m": "$.meta.m"}}]}, f)
        stats = os.path.join(d, "stats.json")
        p = run_ringfill(["run", os.path.join(d, "job.json"), "--quiet"], cwd=d,
                         env={"RINGFILL_COPY_STATS": stats})
        self.assertEqual(p.returncode, 1, describe(p))
        db = os.path.join(d, "out.db")
        want = [(5, "S")]
        for n in (0, 1, 2, 4, 7, 8):
            want += [(n * 10000 + i, "D%d" % n) for i in range(1100)]
        self.assertEqual(table(db, "t", ["x", "m"]), sorted(want, key=repr))
        states = {j["key"]: j["state"] for j in harness.jobs(db)}
        self.assertEqual(states, {k: "failed" if k == "03.json" else "done" for k in names})
        with open(stats, encoding="ascii") as f:
            s = json.load(f)
        # Seven documents to stream, every stat in before the first ends.
        self.assertEqual(s["local_streams_peak"], 2, s)
        self.assertGreaterEqual(s["local_stream_waits"], 1, s)

    def test_files_stopped_while_documents_wait(self):
        # Ctrl-C while two large documents stream and the others wait for
        # their turn (LOCAL_STREAMS_MAX): the waiting ones are abandoned off
        # the wait list (files_free), the streaming ones cut a checkpoint of
        # what they parsed (docstream.c); exit 130 with every job either
        # done with all its rows or pending with exactly its checkpoint's.
        # The same command again ends with every row once.
        n_docs, items = 8, 20000  # ~20 MB each; each document's rows (~0.3 MB) make no cut
        for attempt in range(3):  # a signal that lands too late proves nothing
            d = self.workdir()
            os.makedirs(os.path.join(d, "docs"))
            for n in range(n_docs):
                with open(os.path.join(d, "docs", "%02d.json" % n), "w") as f:
                    f.write('{"meta": {"m": "D%d"}, "items": [' % n)
                    f.write(",".join('{"x": %d, "pad": "%s"}' % (n * 100000 + i, "p" * 1000)
                                     for i in range(items)))
                    f.write("]}")
            job = os.path.join(d, "job.json")
            with open(job, "w") as f:
                json.dump({"source": {"files": "docs"}, "db": "out.db",
                           "tables": [{"name": "t", "rows": "$.items[*]",
                                       "columns": {"x": "@.x", "m": "$.meta.m"}}]}, f)
            db = os.path.join(d, "out.db")
            # Small transactions: a document's done mark is visible as soon
            # as it is read, while most of the others still wait.
            proc = subprocess.Popen([harness.ringfill_path(), "run", job, "--quiet",
                                     "--commit-rows", "1000"], cwd=d,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                deadline = time.monotonic() + harness.RUN_TIMEOUT_S
                while proc.poll() is None and time.monotonic() < deadline:
                    try:
                        if any(j["state"] == "done" for j in harness.jobs(db)):
                            break  # two documents stream, the others wait
                    except sqlite3.Error:
                        pass
                    time.sleep(0.005)
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=harness.RUN_TIMEOUT_S)
            finally:
                harness.stop_process(proc)
            self.assertIn(proc.returncode, (0, 130), out + err)
            jobs = harness.jobs(db)
            with harness.open_db(db) as con:
                counts = dict(con.execute("SELECT _job, count(*) FROM t GROUP BY _job").fetchall())
            for j in jobs:
                want = items if j["state"] == "done" else (j["ckpt_records"] or 0)
                self.assertEqual((j["state"] in ("done", "pending"), counts.get(j["id"], 0)),
                                 (True, want), j)
            print("\nat the stop: %r" % [(j["key"], j["state"], j["ckpt_records"]) for j in jobs],
                  file=sys.stderr)
            waited = [j for j in jobs if j["state"] == "pending" and not j["ckpt_records"]]
            cut = [j for j in jobs if j["state"] == "pending" and j["ckpt_records"]]
            if proc.returncode == 130 and waited and cut:
                break
        self.assertEqual(proc.returncode, 130, "the run ended before the signal, 3 times")
        self.assertTrue(waited, "no document was still waiting at the stop: %r" % jobs)
        self.assertTrue(cut, "no streaming document cut a checkpoint at the stop: %r" % jobs)
        self.run_ok(["run", job, "--quiet"])
        self.assertEqual(table(db, "t", ["x", "m"]),
                         sorted(((n * 100000 + i, "D%d" % n) for n in range(n_docs)
                                 for i in range(items)), key=repr))

    def test_files_invalid_document_keeps_its_committed_checkpoints(self):
        # A document that turns invalid after more than 1 MiB of rows: its
        # job fails (permanent, the byte offset named) keeping exactly the
        # rows of the checkpoints committed before the error, as an NDJSON
        # body does; once the file is fixed, `ringfill retry --all` and a run
        # add the rest after them, every row once.
        d = self.workdir()
        items = ",".join('{"x": %d, "pad": "%s"}' % (i, "p" * 1000) for i in range(5000))
        good = '{"m": "A", "items": [%s]}' % items
        bad = good[:-2] + ",]}"  # a trailing comma after the last item
        self.write_docs(d, (("a.json", bad),))
        job = self.files_job(d, [{"name": "t", "rows": "$.items[*]",
                                  "columns": {"x": "@.x", "m": "$.m", "pad": "@.pad"}}])
        self.run_ok(["run", job, "--quiet"], code=1)
        db = os.path.join(d, "out.db")
        (j,) = harness.jobs(db)
        self.assertEqual((j["state"], j["error_class"]), ("failed", "permanent"), j)
        self.assertIn("invalid JSON at byte offset %d" % bad.index(",]"), j["error"])
        self.assertGreater(j["ckpt_records"] or 0, 0, j)  # ~5 MB of rows: cut every 1 MiB
        self.assertEqual(table(db, "t", ["x"]), sorted(((i,) for i in range(j["ckpt_records"])),
                                                      key=repr))
        with open(os.path.join(d, "docs", "a.json"), "w") as f:
            f.write(good)
        self.retry_and_finish(job, db)
        self.assertEqual(table(db, "t", ["x", "m"]), sorted(((i, "A") for i in range(5000)),
                                                            key=repr))

    # Two small files for the checkpoint tests below: a document of 100
    # items (x 0..99, m "A") and 100 NDJSON lines (x 1000..1099). With
    # CKPT_TABLES the document's items go to t (n's `$` row is its one row
    # at the end) and each NDJSON line to n (t's rows path selects nothing
    # there).
    CKPT_DOCS = (("a.json", json.dumps({"m": "A", "items": [{"x": i} for i in range(100)]})),
                 ("b.ndjson", "".join('{"x": %d}\n' % (1000 + i) for i in range(100))))
    CKPT_TABLES = [{"name": "t", "rows": "$.items[*]", "columns": {"x": "@.x", "m": "$.m"}},
                   {"name": "n", "rows": "$", "columns": {"x": "@.x"}}]

    def files_job(self, d, tables):
        """d/job.json: the files of d/docs into `tables`, database d/out.db."""
        job = os.path.join(d, "job.json")
        with open(job, "w") as f:
            json.dump({"source": {"files": "docs"}, "db": "out.db", "tables": tables}, f)
        return job

    def stopped_after_40(self, d, docs, tables, offset_sql):
        """Runs the job over `docs` to the end, then edits its database to
        what a run stopped after 40 records of each file leaves: the other
        rows gone, every job pending with a checkpoint of 40 records at
        `offset_sql` (an SQL expression of the job's key). (job, db)."""
        self.write_docs(d, docs)
        job = self.files_job(d, tables)
        self.run_ok(["run", job, "--quiet"])
        db = os.path.join(d, "out.db")
        with sqlite3.connect(db) as con:
            names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            con.execute("DELETE FROM t WHERE x >= 40")
            if "n" in names:
                con.execute("DELETE FROM n WHERE x >= 1040 OR x IS NULL")
            con.execute("UPDATE _ringfill_jobs SET state = 'pending', ckpt_records = 40,"
                        " ckpt_offset = " + offset_sql + ","
                        " ckpt_validator = 'file 1 1.000000000'")
        con.close()
        return job, db

    def retry_and_finish(self, job, db):
        """`ringfill retry --all`, then the job file again: exit 0."""
        p = run_ringfill(["retry", db, "--all"])
        self.assertEqual(p.returncode, 0, describe(p))
        self.run_ok(["run", job, "--quiet"])

    def test_files_small_file_with_a_checkpoint_skips_its_records(self):
        # A stopped run leaves a pending job with a checkpoint and exactly
        # its records' rows (here made by editing a finished run's database
        # to that state: 40 of 100 records). A file under a read piece
        # (1 MiB) then still goes the checkpoint's way: its first 40 records
        # are skipped, not inserted again on top of the checkpoint's rows.
        # A document's checkpoint has offset 0; the NDJSON file's names a
        # version (size, mtime) this file does not have, so both are read
        # from the start.
        d = self.workdir()
        forty_lines = len("".join('{"x": %d}\n' % (1000 + i) for i in range(40)))
        job, db = self.stopped_after_40(d, self.CKPT_DOCS, self.CKPT_TABLES,
                                        "CASE WHEN key LIKE '%%.ndjson' THEN %d ELSE 0 END"
                                        % forty_lines)
        self.run_ok(["run", job, "--quiet"])
        self.assertEqual(table(db, "t", ["x", "m"]), sorted(((i, "A") for i in range(100)),
                                                            key=repr))
        self.assertEqual(table(db, "n", ["x"]),
                         sorted([(1000 + i,) for i in range(100)] + [(None,)], key=repr))
        self.assertEqual([j["state"] for j in harness.jobs(db)], ["done", "done"])

    def test_files_checkpointed_document_is_not_parsed_whole(self):
        # A document with a committed checkpoint (a stopped run whose tables
        # could stream) met by a job file whose tables cannot (an inferred
        # `$` table: docs/engine.md) would be parsed whole, its first records
        # inserted again: the job fails instead (permanent, saying why), and
        # nothing is added. With the earlier tables and `ringfill retry
        # --all` it resumes after its checkpoint.
        d = self.workdir()
        tables = self.CKPT_TABLES[:1]
        job, db = self.stopped_after_40(d, self.CKPT_DOCS[:1], tables, "0")
        # Jobs belong to the job file's path (their source): the tables that
        # cannot stream go into the same file.
        self.files_job(d, tables + [{"name": "w", "rows": "$"}])
        self.run_ok(["run", job, "--quiet"], code=1)
        (j,) = harness.jobs(db)
        self.assertEqual((j["state"], j["error_class"]), ("failed", "permanent"), j)
        self.assertIn("40 records of this document were committed by an earlier run", j["error"])
        self.assertEqual(len(table(db, "t", ["x"])), 40)
        self.files_job(d, tables)
        self.retry_and_finish(job, db)
        self.assertEqual(table(db, "t", ["x", "m"]), sorted(((i, "A") for i in range(100)),
                                                            key=repr))

    def test_files_checkpoint_of_the_other_kind_fails_the_job(self):
        # A checkpoint made while a body was read as NDJSON (a byte offset)
        # cannot be resumed by a run that reads it as a single document (the
        # extension, --ndjson or the content type changed), nor the other
        # way: its records cannot be matched, so the job fails (permanent,
        # saying why) and adds nothing, instead of skipping the wrong records.
        d = self.workdir()
        job, db = self.stopped_after_40(d, self.CKPT_DOCS, self.CKPT_TABLES,
                                        "CASE WHEN key LIKE '%.json' THEN 400 ELSE 0 END")
        self.run_ok(["run", job, "--quiet"], code=1)
        errors = {j["key"]: (j["state"], j["error_class"], j["error"]) for j in harness.jobs(db)}
        self.assertEqual({k: v[:2] for k, v in errors.items()},
                         {"a.json": ("failed", "permanent"), "b.ndjson": ("failed", "permanent")})
        self.assertIn("40 records were committed by an earlier run or attempt that read this "
                      "body as NDJSON, but this attempt reads it as a single JSON document",
                      errors["a.json"][2])
        self.assertIn("read this body as a single JSON document, but this attempt reads it "
                      "as NDJSON", errors["b.ndjson"][2])
        self.assertEqual(len(table(db, "t", ["x"])), 40)
        self.assertEqual(len(table(db, "n", ["x"])), 40)

    def test_files_run_needs_no_ca_store(self):
        # A files run never connects, so it does not load the CA store: a
        # --cacert that is not PEM does not stop it. A URL run still refuses
        # it before any job starts (exit 2).
        d = self.workdir()
        self.write_docs(d, (("a.json", '{"x": 1}'),))
        bad_ca = os.path.join(d, "not-a-ca.pem")
        with open(bad_ca, "w") as f:
            f.write("not a certificate\n")
        with open(os.path.join(d, "job.json"), "w") as f:
            json.dump({"source": {"files": "docs"}, "db": "out.db",
                       "tables": [{"name": "t", "columns": {"x": "@.x"}}]}, f)
        self.run_ok(["run", os.path.join(d, "job.json"), "--cacert", bad_ca])
        self.assertEqual(table(os.path.join(d, "out.db"), "t", ["x"]), [(1,)])
        harness.write_lines(os.path.join(d, "urls.txt"), [self.srv.url("repo/x.json")])
        p = self.run_ok(["run", "--urls", os.path.join(d, "urls.txt"), "--db",
                         os.path.join(d, "urls.db"), "--cacert", bad_ca], code=2)
        self.assertIn("cannot load CA certificates", p.stderr)

    # -- job-file errors ------------------------------------------------------

    def test_job_file_errors_exit_2(self):
        cases = [
            ('{"source": {"paginate": {"url": "https://h/p", "cursor_path": "$.c"}}}',
             ":1: source.paginate.items: missing"),
            ('{"source": {"paginate": {"url": "https://h/p",\n "cursor_path": "$.c[*]",'
             ' "items": "$.a[*]"}}}', ":2: source.paginate.cursor_path: the cursor is one value"),
            ('{"source": {"paginate": {"url": "http://h/p", "cursor_path": "$.c",'
             ' "items": "$.a[*]"}}}', ":1: source.paginate.url: not a valid https URL"),
            ('{\n"source": {"paginate": {"url": "https://h/p", "cursor_path": "$.c",'
             ' "items": "$.a[*]",\n\n "emit": "https://h/{a}/{b}"}}}',
             ":4: source.paginate.emit: expected exactly one {name}"),
            ('{"source": {"paginate": {"url": "https://h/p", "cursor_path": "$.c",'
             ' "items": "$.a[*]", "cursor_param": "a b"}}}',
             ":1: source.paginate.cursor_param: a parameter name"),
            ('{"source": {"files": "nothing-here/*.json"}}',
             "source.files: "),
            ('{"source": {"files": "x", "urls": "u.txt"}}', ":1: source: give one of"),
        ]
        for text, want in cases:
            d = self.workdir()
            path = os.path.join(d, "job.json")
            with open(path, "w") as f:
                f.write(text)
            p = run_ringfill(["run", path, "--db", os.path.join(d, "out.db")])
            self.assertEqual(p.returncode, 2, describe(p))
            self.assertIn(want, p.stderr, describe(p))
            self.assertIn(path if ":1:" not in want else "job.json", p.stderr)
            self.assertFalse(os.path.exists(os.path.join(d, "out.db")), text)

    def test_download_only_refused_for_files_and_pages(self):
        # Both would end with jobs done and no rows, never loaded by a later
        # run: a file marked done unread, pagination stopped at its first
        # page. Refused before anything is created or fetched.
        d = self.workdir()
        self.write_docs(d, (("a.json", '{"x": 1}'),))
        files_job = os.path.join(d, "files.json")
        with open(files_job, "w") as f:
            json.dump({"source": {"files": "docs"}, "db": "out.db",
                       "tables": [{"name": "t", "columns": {"x": "@.x"}}]}, f)
        cases = [(files_job, "the files source has nothing to download"),
                 (self.job_emit(d, "ok"), "the paginate source cannot be followed")]
        for job, want in cases:
            before = self.srv.hits
            p = run_ringfill(["run", job, "--download-only", "--raw", os.path.join(d, "raw")])
            self.assertEqual(p.returncode, 2, describe(p))
            self.assertIn(job + ": --download-only: " + want, p.stderr)
            self.assertFalse(os.path.exists(os.path.join(d, "out.db")), job)
            self.assertEqual(self.srv.hits, before, job)
        # Without the flag the files load.
        self.run_ok(["run", files_job])
        self.assertEqual(table(os.path.join(d, "out.db"), "t", ["x"]), [(1,)])

    def test_dry_run_prints_the_plan(self):
        d = self.workdir()
        p = self.run_ok(["run", self.job_emit(d, "ok"), "--dry-run"])
        self.assertIn("pages from " + self.srv.url("ok/pages"), p.stdout)
        self.assertIn("each fetched as " + self.srv.url("repo/{did}.json"), p.stdout)
        self.assertIn("; at most 1000000 pages\n", p.stdout)  # the default max_pages
        path = self.job_emit(d, "ok")
        with open(path) as f:
            job = json.load(f)
        job["source"]["paginate"]["max_pages"] = 23
        with open(path, "w") as f:
            json.dump(job, f)
        p = self.run_ok(["run", path, "--dry-run"])
        self.assertIn("; at most 23 pages\n", p.stdout)
        self.assertFalse(os.path.exists(os.path.join(d, "out.db")))
        self.assertEqual(self.srv.hits.get("/ok/pages?limit=5&cursor=start", 0), 0)


if __name__ == "__main__":
    harness.main_or_skip()
