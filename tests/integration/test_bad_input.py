#!/usr/bin/env python3
"""Bad input never stops the good jobs, and every failure is recorded with the
right class and a reason a person understands (DESIGN §5): a malformed URL
line, a refused connection, a 404, a body that is not JSON, an untrusted
certificate, a certificate for another host name; plus the usage errors
(exit 2) that must not touch the database.

Needs $RINGFILL (the binary; meson sets it); exits 77 (skip) without it.
Run alone: RINGFILL=build/engine/ringfill python3 tests/integration/test_bad_input.py
"""

import os
import re
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import describe, run_ringfill  # noqa: E402

RETRY_FAST = ["--retries", "2", "--retry-base", "0.05", "--retry-max", "0.2", "--timeout", "10"]


def setUpModule():
    harness.skip_unless_ringfill()


class BadInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rf-bad-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.data = os.path.join(cls.tmp, "data")
        cls.manifest = harness.gen_dataset(cls.data, 4, 3)
        with open(os.path.join(cls.data, "bad.json"), "wb") as f:
            f.write(b'{"following": [{"accountId": "1"}], "a": tru}\n')
        cls.pki = harness.make_pki(os.path.join(cls.tmp, "pki"))
        cls.nginx = harness.Nginx(cls.data, cls.pki, work=os.path.join(cls.tmp, "nginx"))
        cls.nginx.start()
        cls.addClassCleanup(cls.nginx.stop)

    def setUp(self):
        self.cwd = tempfile.mkdtemp(prefix="case-", dir=self.tmp)
        self.db = os.path.join(self.cwd, "rf.db")

    def run_args(self, urls, extra=(), cacert=True):
        args = ["run", "--urls", urls, "--db", self.db, "--rows", "$.following[*]",
                "--table", "following", "--raw", "raw", "--quiet"] + RETRY_FAST + list(extra)
        if cacert:
            args += ["--cacert", self.pki.ca_cert]
        return args

    def good_urls(self):
        return {self.nginx.url(f["path"]): f for f in self.manifest["files"]}

    def test_mixed_good_and_bad(self):
        good = self.good_urls()
        good_list = list(good)
        closed = "https://127.0.0.1:%d/archives/x.json" % harness.free_port()
        missing = self.nginx.url("archives/no-such-account.json")
        notjson = self.nginx.url("bad.json")
        lines = ["# good and bad mixed", good_list[0], "", "not a url", closed,
                 good_list[1], missing, notjson, good_list[2], good_list[3]]
        malformed_line = lines.index("not a url") + 1
        urls = harness.write_lines(os.path.join(self.cwd, "urls.txt"), lines)

        proc = run_ringfill(self.run_args(urls), cwd=self.cwd)
        self.assertEqual(proc.returncode, 1, describe(proc))

        jobs = harness.jobs(self.db)
        by_url = {j["url"]: j for j in jobs if j["url"]}
        self.assertEqual(len(jobs), 8, jobs)
        for url, f in good.items():
            # The exit code alone can mislead (a crash may also exit 1): show
            # ringfill's output when the good jobs did not finish.
            self.assertEqual(by_url[url]["state"], "done", "%r%s" % (by_url[url], describe(proc)))
        with harness.open_db(self.db) as con:
            got = dict(con.execute("SELECT _job, count(*) FROM following GROUP BY _job"))
        for url, f in good.items():
            self.assertEqual(got.get(by_url[url]["id"], 0), f["following"], url)

        known = set(good) | {closed, missing, notjson}
        odd = [j for j in jobs if j["url"] not in known]
        self.assertEqual(len(odd), 1, "one job for the malformed line: %r" % jobs)
        bad = odd[0]
        self.assert_failed(bad, "permanent")
        self.assertIn("urls.txt", bad["error"])
        self.assertRegex(bad["error"], r"\b%d\b" % malformed_line)

        refused = by_url[closed]
        self.assert_failed(refused, "transient")
        self.assertEqual(refused["attempts"], 2, refused)

        nf = by_url[missing]
        self.assert_failed(nf, "permanent")
        self.assertEqual(nf["http_status"], 404, nf)
        self.assertIn("404", nf["error"])

        nj = by_url[notjson]
        self.assert_failed(nj, "permanent")
        self.assertIn("offset", nj["error"].lower())
        self.assertNotIn(nj["id"], got, "a document that is not JSON adds no rows")

    def assert_failed(self, job, cls):
        self.assertEqual(job["state"], "failed", job)
        self.assertEqual(job["error_class"], cls, job)
        self.assertTrue(job["error"] and job["error"].strip(), job)
        self.assertNotIn("\n", job["error"].strip(), "reasons are one line: %r" % job)

    def test_missing_url_file_is_usage_error(self):
        proc = run_ringfill(self.run_args(os.path.join(self.cwd, "no-such-list.txt")),
                            cwd=self.cwd)
        self.assertEqual(proc.returncode, 2, describe(proc))
        self.assertIn("no-such-list.txt", proc.stderr)
        self.assertFalse(os.path.exists(self.db), "the database must not be created")

    def test_unusable_inputs_are_usage_errors_before_anything_is_written(self):
        """A CA file that holds no certificate, and a URL list (or a job
        file's keys) that is a directory: exit 2 naming it, no database, no
        raw directory, in a dry run too. Before, the CA file failed at the
        loop's start (exit 2 after the database, the jobs and a run row were
        written) and a directory failed the import (exit 3, a database)."""
        urls = harness.write_lines(os.path.join(self.cwd, "urls.txt"),
                                   list(self.good_urls())[:1])
        junk = os.path.join(self.cwd, "junk.pem")
        with open(junk, "w") as f:
            f.write("not a certificate\n")
        lists = os.path.join(self.cwd, "lists")
        os.makedirs(lists)
        with open(os.path.join(self.cwd, "job.json"), "w") as f:
            f.write('{"source": {"template": "https://h/{k}.json", "keys": "lists"},'
                    ' "db": "rf.db", "raw": "raw"}')
        cases = [(self.run_args(urls, cacert=False) + ["--cacert", junk],
                  "junk.pem: cannot load CA certificates"),
                 (self.run_args(lists), "lists: Is a directory"),
                 (["run", "job.json"], "lists: Is a directory")]
        for args, said in cases:
            for dry in ([], ["--dry-run"]):
                proc = run_ringfill(args + dry, cwd=self.cwd)
                self.assertEqual(proc.returncode, 2, describe(proc))
                self.assertIn(said, proc.stderr)
                self.assertFalse(os.path.exists(self.db), "the database must not be created")
                self.assertFalse(os.path.exists(os.path.join(self.cwd, "raw")))

    def test_dry_run_reads_the_list_as_the_run_does(self):
        """--dry-run finds the URLs and malformed lines a run finds (it goes
        through the same import, in a database in memory), changing
        nothing: a URL with a tab after it is a URL, and bad manifest lines
        (not JSON, no "url", not https) are malformed. Before, its own
        reading called the first malformed and counted none of the others."""
        url = list(self.good_urls())[0]
        path = os.path.join(self.cwd, "urls.txt")
        with open(path, "w") as f:
            f.write(url + "\t\n{bad json\n{\"key\": \"k\"}\n"
                    '{"url": "ftp://x/y"}\n# comment\n\n')
        proc = run_ringfill(self.run_args(path, extra=["--dry-run"]), cwd=self.cwd)
        self.assertEqual(proc.returncode, 0, describe(proc))
        self.assertIn("GET " + url, proc.stdout)
        self.assertIn("dry run: 1 URLs, 3 malformed lines in", proc.stdout)
        self.assertIn("urls.txt:2: bad manifest line", proc.stdout)
        self.assertFalse(os.path.exists(self.db), "the database must not be created")
        proc = run_ringfill(self.run_args(path), cwd=self.cwd)
        self.assertEqual(proc.returncode, 1, describe(proc))
        jobs = harness.jobs(self.db)
        self.assertEqual(sorted(j["state"] for j in jobs), ["done", "failed", "failed", "failed"])

    def test_unknown_flag_is_usage_error(self):
        urls = harness.write_lines(os.path.join(self.cwd, "urls.txt"),
                                   list(self.good_urls())[:1])
        proc = run_ringfill(self.run_args(urls, extra=["--no-such-flag"]), cwd=self.cwd)
        self.assertEqual(proc.returncode, 2, describe(proc))
        self.assertIn("--no-such-flag", proc.stderr)
        self.assertFalse(os.path.exists(self.db), "the database must not be created")

    def test_refused_headers_never_print_their_value(self):
        """A header refused at start (exit 2, no database) is named by its
        name alone: its value may be a token. Before, the whole 'Name:
        value' text was printed, from --header and from a job file."""
        secret = "sk-live-9f8e7d6c5b4a"
        urls = harness.write_lines(os.path.join(self.cwd, "urls.txt"),
                                   list(self.good_urls())[:1])
        cases = [("X Api Key: " + secret, "header 'X': bad character in header name"),
                 ("Authorization Bearer sk-" + secret + ":x",
                  "header 'Authorization': bad character in header name"),
                 ("Authorization Bearer " + secret, "header: expected 'Name: value'"),
                 ("Authorization: Bearer " + secret + " ${TOK",
                  "header 'Authorization': unterminated ${VAR}"),
                 ("Authorization: Bearer $" + "V" * 200,
                  "header 'Authorization': environment variable name longer than 127")]
        for header, said in cases:
            proc = run_ringfill(self.run_args(urls, extra=["--header", header]), cwd=self.cwd)
            self.assertEqual(proc.returncode, 2, describe(proc))
            self.assertIn(said, proc.stderr)
            self.assertNotIn(secret, proc.stderr)
            self.assertNotIn("V" * 100, proc.stderr)
            self.assertFalse(os.path.exists(self.db), "the database must not be created")
        job = os.path.join(self.cwd, "job.json")
        with open(job, "w") as f:
            f.write('{"source": {"urls": "urls.txt"}, "db": "rf.db", "http": {"headers":'
                    ' {"Authorization": "Bearer %s ${TOK"}}}' % secret)
        proc = run_ringfill(["run", job], cwd=self.cwd)
        self.assertEqual(proc.returncode, 2, describe(proc))
        self.assertIn("unterminated ${VAR}", proc.stderr)
        self.assertNotIn(secret, proc.stderr)
        self.assertFalse(os.path.exists(self.db), "the database must not be created")

    def test_reserved_table_names_in_any_case(self):
        """_ringfill* names are the store's and sqlite_* names SQLite's, in
        any letter case (SQLite's names ignore it): --table _RINGFILL_JOBS
        or SQLite_events (or such a job-file table) is refused at start, as
        _ringfill_jobs was. Before, the run fetched and every job failed."""
        urls = harness.write_lines(os.path.join(self.cwd, "urls.txt"),
                                   list(self.good_urls())[:1])
        for name, said in (("_RINGFILL_JOBS", "names starting with _ringfill are reserved"),
                           ("_Ringfill_runs", "names starting with _ringfill are reserved"),
                           ("SQLite_events", "names starting with sqlite_ are SQLite's own")):
            args = [a if a != "following" else name for a in self.run_args(urls)]
            proc = run_ringfill(args, cwd=self.cwd)
            self.assertEqual(proc.returncode, 2, describe(proc))
            self.assertIn(said, proc.stderr)
            self.assertFalse(os.path.exists(self.db), "the database must not be created")
            job = os.path.join(self.cwd, "job.json")
            with open(job, "w") as f:
                f.write('{"source": {"urls": "urls.txt"}, "db": "rf.db",\n'
                        ' "tables": [{"name": "%s"}]}' % name)
            proc = run_ringfill(["run", job], cwd=self.cwd)
            self.assertEqual(proc.returncode, 2, describe(proc))
            self.assertIn("job.json:2: tables[0].name: " + said, proc.stderr)
            self.assertFalse(os.path.exists(self.db), "the database must not be created")

    def test_help_and_option_errors(self):
        """-h and --help print help to stdout with exit 0 (status's too);
        a flag without its value and an unknown flag are told apart."""
        for args in (["run", "-h"], ["run", "--help"], ["status", "--help"], ["status", "-h"]):
            proc = run_ringfill(args, cwd=self.cwd)
            self.assertEqual(proc.returncode, 0, describe(proc))
            self.assertIn("usage: ringfill", proc.stdout)
        for args, said in ((["run", "--db"], "option needs a value '--db'"),
                           (["run", "-x"], "unknown option '-x'"),
                           (["run", "--nope"], "unknown option '--nope'"),
                           (["run", "--urls", "urls.txt", "--rows", "@.a[*]"],
                            "--rows '@.a[*]': a rows path starts at the document")):
            proc = run_ringfill(args, cwd=self.cwd)
            self.assertEqual(proc.returncode, 2, describe(proc))
            self.assertIn(said, proc.stderr)

    def test_max_body_limit_is_named_exactly(self):
        # The parser's limit is 4 GiB less 16 bytes: "4G" is one byte too many
        # and must be refused with the largest size that is accepted.
        urls = harness.write_lines(os.path.join(self.cwd, "urls.txt"),
                                   list(self.good_urls())[:1])
        for size in ("4G", "4294967281", "0"):
            proc = run_ringfill(self.run_args(urls, extra=["--max-body", size]), cwd=self.cwd)
            self.assertEqual(proc.returncode, 2, describe(proc))
            self.assertIn("max-body '%s'" % size, proc.stderr)
            self.assertIn("4294967280", proc.stderr)
            self.assertFalse(os.path.exists(self.db), size)
        for size in ("4095M", "4294967280"):
            proc = run_ringfill(self.run_args(urls, extra=["--max-body", size, "--dry-run"]),
                                cwd=self.cwd)
            self.assertEqual(proc.returncode, 0, describe(proc))

    def run_one_failing(self, url, cacert, drop_env=()):
        urls = harness.write_lines(os.path.join(self.cwd, "urls.txt"), [url])
        proc = run_ringfill(self.run_args(urls, cacert=cacert), cwd=self.cwd,
                            drop_env=drop_env)
        self.assertEqual(proc.returncode, 1, describe(proc))
        (job,) = harness.jobs(self.db)
        self.assert_failed(job, "permanent")
        # Never downloaded insecurely: no body, no raw file, no rows.
        self.assertFalse(job["bytes"], job)
        raw = os.path.join(self.cwd, "raw")
        self.assertEqual([n for _, _, ns in os.walk(raw) for n in ns], [])
        return job

    def test_untrusted_certificate(self):
        # Without --cacert the system store is used, which does not know our
        # CA. Drop variables that would point OpenSSL elsewhere.
        url = self.nginx.url(self.manifest["files"][0]["path"])
        job = self.run_one_failing(url, cacert=False,
                                   drop_env=("SSL_CERT_FILE", "SSL_CERT_DIR"))
        self.assertIn("certificate", job["error"].lower())

    def test_wrong_host_name(self):
        url = self.nginx.url(self.manifest["files"][0]["path"], wrong=True)
        job = self.run_one_failing(url, cacert=True)
        self.assertRegex(job["error"].lower(), r"host|name|127\.0\.0\.1|certificate")


if __name__ == "__main__":
    harness.main_or_skip(need_nginx=True)
