#!/usr/bin/env python3
"""`ringfill bench --json FILE` writes a result that matches its documented
schema (bench/result.schema.json, docs/benchmarks.md) and whose numbers agree
with each other (the value is the median of the runs, min and max bound them,
the ratio is ringfill over the peer). Usage errors (an unknown suite or option)
exit 2 and measure nothing. No test here looks at how fast anything
was: benchmarks are not tests.

Needs $RINGFILL (meson sets it); exits 77 (skip) without it.
Run alone: RINGFILL=build/engine/ringfill python3 tests/bench/test_bench_result_schema.py
"""

import json
import os
import statistics
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchcheck  # noqa: E402


class ResultSchema(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="rf_bench_test_")
        self.out = os.path.join(self.dir.name, "result.json")

    def tearDown(self):
        self.dir.cleanup()

    def bench_json(self, *suites, runs=1):
        r = benchcheck.run(*suites, "--quick", "--runs", str(runs), "--json", self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.out) as f:
            doc = json.load(f)
        self.assertEqual(benchcheck.validate(doc), [])
        return doc, r

    def check_consistent(self, rec, runs):
        where = f"{rec['suite']}/{rec['case']} {rec['metric']}"
        self.assertEqual(len(rec["runs"]), runs, where)
        self.assertAlmostEqual(rec["value"], statistics.median(rec["runs"]),
                               delta=1e-6 * rec["value"], msg=where)
        self.assertLessEqual(rec["min"], rec["value"], where)
        self.assertLessEqual(rec["value"], rec["max"], where)
        self.assertEqual(rec["min"], min(rec["runs"]), where)
        self.assertEqual(rec["max"], max(rec["runs"]), where)
        if rec["peer"] is None:
            self.assertIsNone(rec["ratio"], where)
        else:
            p = rec["peer"]
            self.assertEqual(len(p["runs"]), runs, where)
            self.assertAlmostEqual(p["value"], statistics.median(p["runs"]),
                                   delta=1e-6 * p["value"], msg=where)
            want = rec["value"] / p["value"] if rec["direction"] == "higher" \
                else p["value"] / rec["value"]
            self.assertAlmostEqual(rec["ratio"], want, delta=1e-6 * want, msg=where)

    def test_ring_result_matches_schema(self):
        doc, r = self.bench_json("ring", runs=1)
        cases = {(x["suite"], x["case"], x["metric"]) for x in doc["results"]}
        self.assertEqual(cases, {("ring", "single", "items_per_s"),
                                 ("ring", "batched", "items_per_s")})
        for rec in doc["results"]:
            self.check_consistent(rec, 1)
            self.assertEqual(rec["direction"], "higher")
        self.assertTrue(doc["env"]["quick"])
        self.assertEqual(doc["env"]["runs"], 1)
        self.assertIn("single", r.stdout)  # the table
        self.assertIn("ring single", r.stderr)  # the progress display

    def test_parse_result_has_every_case(self):
        # The generated documents are always there; the corpus only beside a checkout.
        doc, _ = self.bench_json("parse", runs=2)
        got = {(x["case"], x["metric"]): x for x in doc["results"]}
        for case, metric in (("gen/twitter-like.json", "parse_gbps"),
                             ("gen/twitter-like.json", "process_gbps"),
                             ("gen/twitter-like.json", "stream_statuses_gbps"),
                             ("gen/twitter-like.json", "select_statuses_id_gbps"),
                             ("gen/twitter-like.json", "select_screen_name_gbps"),
                             ("gen/canada-like.json", "parse_gbps"),
                             ("gen/events.ndjson", "parse_gbps"),
                             ("gen/events.ndjson", "select_items_gbps"),
                             ("geomean", "parse_gbps")):
            self.assertIn((case, metric), got)
        for rec in doc["results"]:
            self.assertEqual(rec["suite"], "parse")
            self.assertEqual(rec["direction"], "higher")
            if rec["case"] != "geomean":
                self.check_consistent(rec, 2)
        self.assertEqual(got[("gen/twitter-like.json", "stream_statuses_gbps")]["peer"]["name"],
                         "ringfill-in-memory")
        if got[("gen/twitter-like.json", "parse_gbps")]["peer"] is not None:  # simdjson built
            for case, metric in (("gen/twitter-like.json", "select_statuses_id_gbps"),
                                 ("gen/twitter-like.json", "select_screen_name_gbps"),
                                 ("gen/events.ndjson", "select_items_gbps")):
                self.assertTrue(got[(case, metric)]["peer"]["name"]
                                .startswith("simdjson-ondemand/"), (case, metric))

    def test_store_result_has_the_sqlite_loop_as_peer(self):
        doc, _ = self.bench_json("store", runs=3)
        peers = {(rec["case"], rec["metric"], rec["unit"]): rec["peer"]["name"]
                 for rec in doc["results"]}
        self.assertEqual(peers, {
            ("rowid_4col", "rows_per_s", "rows/s"): "sqlite-c-loop",
            ("upsert_2key", "rows_per_s", "rows/s"): "sqlite-c-loop",
            ("upsert_2key_vs_presorted", "rows_per_s", "rows/s"): "sqlite-c-loop-presorted"})
        for rec in doc["results"]:
            self.check_consistent(rec, 3)
        # The writer's upsert runs are one set, shown against both loops.
        by_case = {rec["case"]: rec for rec in doc["results"]}
        self.assertEqual(by_case["upsert_2key"]["runs"],
                         by_case["upsert_2key_vs_presorted"]["runs"])

    def test_schema_validator_rejects_a_broken_record(self):
        doc, _ = self.bench_json("ring")
        rec = doc["results"][0]
        del rec["runs"]
        rec["direction"] = "faster"
        rec["extra"] = 1
        found = "\n".join(benchcheck.validate(doc))
        for word in ("missing 'runs'", "'faster'", "unexpected key 'extra'"):
            self.assertIn(word, found)

    def test_usage_errors_exit_2_and_measure_nothing(self):
        for args, words in [
                (["nosuch"], "unknown suite"),
                (["ring", "--frobnicate"], "unknown option"),
                (["ring", "--runs", "0"], "--runs"),
                (["ring", "--runs", "x"], "--runs"),
                (["ring", "--baseline", self.out], "go together"),
                (["ring", "--json"], "needs a value"),
                (["ring", "nosuch"], "unknown suite")]:
            r = benchcheck.run(*args, "--json", self.out) if "--json" not in args \
                else benchcheck.run(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn(words, r.stderr, args)
            self.assertFalse(os.path.exists(self.out), args)


if __name__ == "__main__":
    benchcheck.ringfill()
    unittest.main()
