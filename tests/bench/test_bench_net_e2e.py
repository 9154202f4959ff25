#!/usr/bin/env python3
"""`ringfill bench net` and `ringfill bench e2e` (quick sizes, one run) write
results that match bench/result.schema.json, and their checks really ran:
every downloaded file was verified (files_verified is the case's file count,
for ringfill and for curl) and both databases of the e2e suite hold every row
the generator wrote (rows_verified). The verifiers themselves are shown to
catch a changed byte, a missing file and a changed row. No test here looks at
how fast anything was: benchmarks are not tests.

Needs $RINGFILL (meson sets it), nginx and openssl; exits 77 (skip) without.
Run alone: RINGFILL=build/engine/ringfill python3 tests/bench/test_bench_net_e2e.py
"""

import hashlib
import importlib.util
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, HERE)
import benchcheck  # noqa: E402

NGINX = os.environ.get("RINGFILL_BENCH_NGINX", "/usr/sbin/nginx")
QUICK_ARCHIVES = 300  # bench/netbench.py's --quick e2e sizes, seed 1
QUICK_GRAPH, GRAPH_EDGE_SCALE = 40, 50
QUICK_PAGES, QUICK_PAGE_MB = 2, 2


def load_netbench():
    spec = importlib.util.spec_from_file_location(
        "netbench", os.path.join(ROOT, "bench", "netbench.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class NetAndE2eResults(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="rf_bench_net_")
        self.out = os.path.join(self.dir.name, "result.json")

    def tearDown(self):
        self.dir.cleanup()

    def bench_json(self, suite):
        r = benchcheck.run(suite, "--quick", "--runs", "1", "--json", self.out, timeout=240)
        self.assertEqual(r.returncode, 0, r.stderr[-4000:])
        with open(self.out) as f:
            doc = json.load(f)
        self.assertEqual(benchcheck.validate(doc), [])
        for rec in doc["results"]:
            self.assertEqual(benchcheck.consistency_problems(rec, 1), [])
            self.assertEqual(rec["suite"], suite)
        self.assertIn(suite, r.stdout)  # the table
        return doc, r

    def test_net_verifies_every_file_for_both_clients(self):
        doc, r = self.bench_json("net")
        recs = {(x["case"], x["metric"]): x for x in doc["results"]}
        cases = sorted({c for c, _ in recs if re.fullmatch(r"(small|large)_\d+x\d+[KM]B", c)})
        self.assertEqual(len(cases), 2, sorted(recs))
        for case in cases:
            files = int(re.search(r"_(\d+)x", case).group(1))
            for metric in ("requests_per_s", "mb_per_s", "cpu_s_per_gb", "peak_rss_mb"):
                self.assertIn((case, metric), recs)
            self.assertEqual(recs[(case, "cpu_s_per_gb")]["direction"], "lower")
            v = recs[(case, "files_verified")]
            self.assertEqual(v["runs"], [files], case)
            if shutil.which("curl"):
                self.assertEqual(v["peer"]["name"], "curl")
                self.assertEqual(v["peer"]["runs"], [files], case)
                self.assertIsNotNone(recs[(case, "requests_per_s")]["ratio"])
            # Builds with asserts count copies: the ciphertext once (into
            # OpenSSL's record buffer, never through a memory BIO), and body
            # plaintext only where it shares a TLS record with the head.
            tls_in = recs.get((case, "copied_tls_in_per_byte"))
            if tls_in is not None:
                self.assertTrue(1.0 <= tls_in["value"] < 1.1, tls_in)
                self.assertLess(recs[(case, "copied_plain_per_byte")]["value"], 0.9)
        self.assertIn(("openssl_aes-128-gcm", "decrypt_mb_per_s"), recs)
        self.assertIn("ringfill: TLS", doc["env"]["cipher"])
        self.assertIn("cipher:", r.stdout)

    def check_loop_peers(self, recs, case):
        """The case's seconds next to the C insert loop (its runs ringfill's
        seconds, with a ratio) and, beside it, the loop on only the rows
        ringfill stored: those two records."""
        floor = recs[(case, "seconds_vs_insert_loop")]
        self.assertEqual(floor["peer"]["name"], "sqlite-c-insert-loop")
        self.assertEqual(floor["runs"], recs[(case, "seconds")]["runs"])
        self.assertIsNotNone(floor["ratio"])
        stored = recs[(case, "seconds_vs_stored_loop")]
        self.assertEqual(stored["peer"]["name"], "sqlite-c-stored-rows-loop")
        return floor, stored

    def test_e2e_both_databases_hold_every_generated_row(self):
        doc, r = self.bench_json("e2e")
        if shutil.which("curl"):  # the table names whose value curl_download_s is
            rows = [line for line in r.stdout.splitlines() if "curl_download_s" in line]
            self.assertEqual(len(rows), 3, r.stdout)
            self.assertTrue(all("curl_download_s (curl)" in line for line in rows), rows)
        recs = {(x["case"], x["metric"]): x for x in doc["results"]}

        def generated(name, count, edge_scale):
            gen = os.path.join(self.dir.name, name)
            subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_dataset.py"),
                            "--out", gen, "--count", str(count), "--seed", "1",
                            "--edge-scale", str(edge_scale)],
                           check=True, capture_output=True, timeout=120)
            with open(os.path.join(gen, "manifest.json"), encoding="utf-8") as f:
                return json.load(f)["totals"]
        totals = generated("dataset", QUICK_ARCHIVES, 1)
        archive_rows = totals["tweets"] + totals["following"]
        # The edge-heavy archives: following and followers by (account,
        # other account), tweets by id; no key repeats, so every row stays.
        totals = generated("graph", QUICK_GRAPH, GRAPH_EDGE_SCALE)
        graph_rows = totals["tweets"] + totals["following"] + totals["followers"]
        self.assertGreater(totals["followers"], 50 * QUICK_GRAPH)
        events = os.path.join(self.dir.name, "events")
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_events.py"),
                        "--out", events, "--pages", str(QUICK_PAGES), "--page-mb",
                        str(QUICK_PAGE_MB), "--seed", "1"],
                       check=True, capture_output=True, timeout=120)
        with open(os.path.join(events, "manifest.json"), encoding="utf-8") as f:
            totals = json.load(f)["totals"]
        event_rows = sum(totals[t] for t in ("events", "actors", "repos", "commits"))
        # Repeated actors and repositories are upserted: fewer rows than events.
        self.assertLess(totals["actors"], totals["events"])
        for case, rows in (("archives_%d" % QUICK_ARCHIVES, archive_rows),
                           ("graph_%d" % QUICK_GRAPH, graph_rows),
                           ("events_%dx%dMB" % (QUICK_PAGES, QUICK_PAGE_MB), event_rows)):
            v = recs[(case, "rows_verified")]
            self.assertEqual((v["runs"], v["peer"]["runs"]), ([rows], [rows]), case)
            self.assertEqual(v["peer"]["name"], "python-importer")
            for metric in ("seconds", "rows_per_s", "cpu_s", "peak_rss_mb"):
                self.assertIsNotNone(recs[(case, metric)]["ratio"], metric)
            self.assertEqual(recs[(case, "seconds")]["direction"], "lower")
            floor, stored = self.check_loop_peers(recs, case)
            self.assertEqual(stored["runs"], floor["runs"])
            self.assertEqual(len(stored["peer"]["runs"]), len(floor["peer"]["runs"]))
            # nginx's CPU while each client ran: both made it serve every
            # document, so neither can have cost it nothing.
            server = recs[(case, "server_cpu_s")]
            self.assertEqual(server["peer"]["name"], "python-importer")
            self.assertEqual(len(server["runs"]), len(recs[(case, "seconds")]["runs"]))
            self.assertTrue(all(v > 0 for v in server["runs"] + server["peer"]["runs"]), server)
            # curl downloading the same documents, nothing stored, against
            # the same loop runs as seconds_vs_insert_loop.
            if shutil.which("curl"):
                download = recs[(case, "curl_download_s")]
                self.assertEqual(download["peer"], floor["peer"])
                self.assertEqual(len(download["runs"]), len(floor["runs"]))
            else:
                self.assertNotIn((case, "curl_download_s"), recs)
        # The same archives loaded from a local directory (the files source):
        # every row checked against the importer's database, timed against
        # the C loop only.
        for files_case, rows in (("archives_files_%d" % QUICK_ARCHIVES, archive_rows),
                                 ("graph_files_%d" % QUICK_GRAPH, graph_rows)):
            v = recs[(files_case, "rows_verified")]
            self.assertEqual((v["runs"], v["peer"]), ([rows], None))
            for metric in ("seconds", "rows_per_s", "cpu_s", "peak_rss_mb"):
                self.assertIn((files_case, metric), recs)
            self.assertNotIn((files_case, "server_cpu_s"), recs)  # no server involved
            self.check_loop_peers(recs, files_case)

    def test_a_suite_that_cannot_run_exits_3_and_writes_no_result(self):
        env = dict(os.environ, RINGFILL_BENCH_NGINX=os.path.join(self.dir.name, "no-nginx"))
        r = subprocess.run([benchcheck.ringfill(), "bench", "net", "--quick", "--runs", "1",
                            "--json", self.out], capture_output=True, text=True, env=env,
                           timeout=120)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("nginx", r.stderr)
        self.assertIn("nothing was measured", r.stderr)
        self.assertFalse(os.path.exists(self.out))


class Verifiers(unittest.TestCase):
    """The checks netbench.py runs after every client run, on data we spoil."""

    @classmethod
    def setUpClass(cls):
        cls.nb = load_netbench()

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="rf_bench_verify_")
        self.d = self.dir.name

    def tearDown(self):
        self.dir.cleanup()

    def test_a_changed_byte_or_a_missing_file_fails_the_case(self):
        files = []
        for i, body in enumerate([b'{"a": 1}', b'{"b": 2}']):
            rel = "s/d%d.json" % i
            with open(os.path.join(self.d, rel.replace("/", "_")), "wb") as f:
                f.write(body)
            files.append((rel, len(body), hashlib.sha256(body).hexdigest()))
        name = lambda rel: rel.replace("/", "_")  # noqa: E731
        self.assertEqual(self.nb.verify_dir(files, self.d, name, "t"), 2)
        with open(os.path.join(self.d, "s_d1.json"), "wb") as f:
            f.write(b'{"b": 3}')
        with self.assertRaisesRegex(self.nb.BenchError, "s/d1.json: sha256 differs"):
            self.nb.verify_dir(files, self.d, name, "t")
        os.unlink(os.path.join(self.d, "s_d1.json"))
        with self.assertRaisesRegex(self.nb.BenchError, "s/d1.json: missing"):
            self.nb.verify_dir(files, self.d, name, "t")

    def make_dbs(self):
        rf, py = os.path.join(self.d, "rf.db"), os.path.join(self.d, "py.db")
        urls = ["https://h/a.json", "https://h/b.json"]
        with sqlite3.connect(rf) as c:
            c.execute("CREATE TABLE _ringfill_jobs (id INTEGER PRIMARY KEY, url TEXT, state TEXT)")
            c.executemany("INSERT INTO _ringfill_jobs VALUES (?, ?, 'done')",
                          [(1, urls[0]), (2, urls[1]), (3, urls[0]), (4, urls[1])])
            c.execute("CREATE TABLE tweets (_job INTEGER, id TEXT, entities_hashtags TEXT)")
            c.execute("INSERT INTO tweets VALUES (2, '7', '[{\"text\":\"\\u65e5\"}]')")
            c.execute("CREATE TABLE following (_job INTEGER, accountId TEXT)")
            c.executemany("INSERT INTO following VALUES (?, ?)", [(3, "x"), (4, "y")])
        with sqlite3.connect(py) as c:
            c.execute("CREATE TABLE tweets (_job INTEGER, id TEXT, entities_hashtags TEXT)")
            c.execute("INSERT INTO tweets VALUES (2, '7', '[{\"text\":\"日\"}]')")
            c.execute("CREATE TABLE following (_job INTEGER, accountId TEXT)")
            c.executemany("INSERT INTO following VALUES (?, ?)", [(2, "y"), (1, "x")])
        return rf, py, urls, {"tweets": 1, "following": 2}

    def test_the_same_rows_pass_and_a_changed_row_fails(self):
        rf, py, urls, manifest = self.make_dbs()
        self.assertEqual(self.nb.verify_e2e(rf, py, urls, manifest), 3)
        with sqlite3.connect(py) as c:  # the same value, from the other document
            c.execute("UPDATE following SET _job = 3 - _job")
        with self.assertRaisesRegex(self.nb.BenchError, "following: the databases differ"):
            self.nb.verify_e2e(rf, py, urls, manifest)
        with sqlite3.connect(py) as c:
            c.execute("UPDATE following SET _job = 3 - _job")
            c.execute("UPDATE tweets SET id = '8'")
        with self.assertRaisesRegex(self.nb.BenchError, "tweets: the databases differ"):
            self.nb.verify_e2e(rf, py, urls, manifest)
        with sqlite3.connect(py) as c:
            c.execute("DELETE FROM tweets")
        with self.assertRaisesRegex(self.nb.BenchError, "tweets: ringfill has 1 rows, the "
                                                        "importer 0"):
            self.nb.verify_e2e(rf, py, urls, manifest)

    def test_file_jobs_compare_through_the_served_urls(self):
        """A files-source database names its jobs file:PATH; verify_e2e maps
        them to the served URLs: the same rows pass, a changed row or a file
        mapped to the other document fails, and an unmapped job fails."""
        rf, py, urls, manifest = self.make_dbs()
        paths = ["file:/data/a.json", "file:/data/b.json"]
        with sqlite3.connect(rf) as c:
            c.execute("UPDATE _ringfill_jobs SET url = replace(url, 'https://h/', 'file:/data/')")
        mapping = dict(zip(paths, urls))
        self.assertEqual(self.nb.verify_e2e(rf, py, urls, manifest, rf_urls=mapping), 3)
        with self.assertRaisesRegex(self.nb.BenchError, "tweets: the databases differ"):
            self.nb.verify_e2e(rf, py, urls, manifest, rf_urls=dict(zip(paths, urls[::-1])))
        with self.assertRaisesRegex(self.nb.BenchError, "following: the databases differ"):
            self.nb.verify_e2e(rf, py, urls, manifest, rf_urls={paths[1]: urls[1]})
        with self.assertRaisesRegex(self.nb.BenchError, "tweets: the databases differ"):
            self.nb.verify_e2e(rf, py, urls, manifest)  # file: jobs are not the URLs
        with sqlite3.connect(rf) as c:
            c.execute("UPDATE following SET accountId = 'w' WHERE accountId = 'y'")
        with self.assertRaisesRegex(self.nb.BenchError, "following: the databases differ"):
            self.nb.verify_e2e(rf, py, urls, manifest, rf_urls=mapping)

    def test_a_shared_key_table_ignores_only_which_document_wrote_last(self):
        rf, py, urls, manifest = self.make_dbs()
        with sqlite3.connect(py) as c:  # the last upsert came from the other document
            c.execute("UPDATE following SET _job = 3 - _job")
        self.assertEqual(self.nb.verify_e2e(rf, py, urls, manifest, shared=("following",)), 3)
        with sqlite3.connect(py) as c:  # but every other column still counts
            c.execute("UPDATE following SET accountId = 'z' WHERE accountId = 'x'")
        with self.assertRaisesRegex(self.nb.BenchError, "following: the databases differ"):
            self.nb.verify_e2e(rf, py, urls, manifest, shared=("following",))


class InsertLoop(unittest.TestCase):
    """rf_peer_insert_loop copies every table of a ringfill database (not
    ringfill's own) into a fresh one: same schema and key index, same rows in
    the same order, values of every SQLite type intact."""

    def setUp(self):
        self.loop = os.environ.get("RF_PEER_INSERT_LOOP")
        if not self.loop or not os.access(self.loop, os.X_OK):
            self.skipTest("RF_PEER_INSERT_LOOP not set (meson sets it)")
        self.dir = tempfile.TemporaryDirectory(prefix="rf_bench_loop_")
        self.src = os.path.join(self.dir.name, "src.db")
        self.dst = os.path.join(self.dir.name, "dst.db")

    def tearDown(self):
        self.dir.cleanup()

    def run_loop(self, *rows_db):
        return subprocess.run([self.loop, self.src, self.dst] + list(rows_db),
                              capture_output=True, text=True, timeout=120)

    def test_every_table_is_copied_row_for_row_with_its_key(self):
        with sqlite3.connect(self.src) as c:
            c.execute('CREATE TABLE "we""ird" (_job INTEGER, id INTEGER, "distinct" INTEGER,'
                      ' t TEXT, r REAL, b BLOB)')
            c.execute('CREATE UNIQUE INDEX "_ringfill_key_we""ird" ON "we""ird" (id)')
            rows = [(i % 5, 10**12 - i * 7, i % 2, "é\n%d" % i if i % 3 else None, i / 7,
                     bytes([i % 256, 0])) for i in range(1237)]  # 24 statements + a rest
            c.executemany('INSERT INTO "we""ird" VALUES (?, ?, ?, ?, ?, ?)', rows)
            c.execute("CREATE TABLE plain (_job INTEGER, v TEXT)")
            c.execute("INSERT INTO plain VALUES (1, 'x')")
            c.execute("CREATE TABLE _ringfill_jobs (id INTEGER PRIMARY KEY, url TEXT)")
            c.execute("INSERT INTO _ringfill_jobs VALUES (1, 'https://h/a')")
        r = self.run_loop()
        self.assertEqual(r.returncode, 0, r.stderr)
        res = json.loads(r.stdout)
        self.assertEqual((res["rows"], res["tables"]), (1238, 2))
        self.assertGreater(res["insert_s"], 0)
        schema = "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE '_ringfill_j%'"
        with sqlite3.connect(self.src) as a, sqlite3.connect(self.dst) as b:
            self.assertEqual(sorted(a.execute(schema)), sorted(b.execute(schema)))
            for t in ('"we""ird"', "plain"):
                q = "SELECT *, typeof(t) FROM %s ORDER BY rowid" % t if "we" in t else \
                    "SELECT * FROM %s ORDER BY rowid" % t
                self.assertEqual(list(a.execute(q)), list(b.execute(q)), t)
            self.assertEqual(list(b.execute("SELECT name FROM sqlite_master WHERE name = "
                                            "'_ringfill_jobs'")), [])
            self.assertEqual(b.execute("PRAGMA journal_mode").fetchone()[0], "wal")

    def test_rows_db_rows_are_upserted_in_their_order(self):
        """With ROWS.db the rows are ROWS.db's (every row the documents hold,
        keys coming again), inserted in rowid order into SRC's schema: a key
        that comes again updates its row, the last one wins."""
        with sqlite3.connect(self.src) as c:
            c.execute("CREATE TABLE t (_job INTEGER, k TEXT, v INTEGER, w TEXT)")
            c.execute('CREATE UNIQUE INDEX "_ringfill_key_t" ON t (k)')
            c.execute("INSERT INTO t VALUES (9, 'stored', 0, 'not copied')")
        rows_db = os.path.join(self.dir.name, "rows.db")
        # Columns in another order than SRC's: matched by name.
        rows = [("w%d" % i, i, "k%d" % (i % 40), i % 3) for i in range(1237)]
        with sqlite3.connect(rows_db) as c:
            c.execute("CREATE TABLE t (w TEXT, v INTEGER, k TEXT, _job INTEGER)")
            c.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
        r = self.run_loop(rows_db)
        self.assertEqual(r.returncode, 0, r.stderr)
        res = json.loads(r.stdout)
        self.assertEqual((res["rows"], res["tables"]), (1237, 1))
        self.assertGreaterEqual(res["close_s"], 0)
        last = {}
        for w, v, k, job in rows:
            last[k] = (job, k, v, w)
        with sqlite3.connect(self.dst) as b:
            got = sorted(b.execute("SELECT _job, k, v, w FROM t"))
        self.assertEqual(got, sorted(last.values()))

    def test_a_missing_rows_db_table_is_an_error(self):
        with sqlite3.connect(self.src) as c:
            c.execute("CREATE TABLE t (_job INTEGER, k TEXT)")
        rows_db = os.path.join(self.dir.name, "rows.db")
        with sqlite3.connect(rows_db) as c:
            c.execute("CREATE TABLE other (_job INTEGER, k TEXT)")
        r = self.run_loop(rows_db)
        self.assertEqual(r.returncode, 1)
        self.assertIn("select from ROWS.db", r.stderr)

    def test_sql_longer_than_its_buffer_is_an_error(self):
        """Two column names of 600 kB: the SELECT would pass the loop's 1 MiB
        SQL buffer, which is refused whole rather than cut or overrun."""
        a, b = "a" * 600000, "b" * 600000
        with sqlite3.connect(self.src) as c:
            c.execute('CREATE TABLE t ("%s" TEXT, "%s" TEXT)' % (a, b))
            c.execute("INSERT INTO t VALUES ('x', 'y')")
        r = self.run_loop()
        self.assertEqual(r.returncode, 1)
        self.assertIn("rf_peer_insert_loop: select", r.stderr)

    def test_a_database_without_tables_is_an_error(self):
        sqlite3.connect(self.src).close()
        r = self.run_loop()
        self.assertEqual(r.returncode, 1)
        self.assertIn("no tables to copy", r.stderr)
        self.assertIn(self.src, r.stderr)


if __name__ == "__main__":
    benchcheck.ringfill()
    if not os.access(NGINX, os.X_OK) or not shutil.which("openssl"):
        print("nginx or openssl not found; skipping")
        sys.exit(benchcheck.SKIP)
    unittest.main()
