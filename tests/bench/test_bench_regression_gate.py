#!/usr/bin/env python3
"""`ringfill bench --baseline FILE --max-regress PCT` is a regression gate: it
exits 1 naming every case that got worse than the baseline by more than PCT
percent, and 0 otherwise. A slowdown is injected by editing a baseline to be
much faster than the measured result (so the outcome never depends on this
machine's speed). Where both results have a ratio to a peer, the ratio is
compared instead of the raw value.

Needs $RINGFILL (meson sets it); exits 77 (skip) without it.
Run alone: RINGFILL=build/engine/ringfill python3 tests/bench/test_bench_regression_gate.py
"""

import copy
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchcheck  # noqa: E402

SPEEDUP = 100.0  # the edited baseline claims this much more throughput


def scaled(doc, factor, only=None):
    """A copy of a result with every value (or only case `only`) times factor."""
    out = copy.deepcopy(doc)
    for rec in out["results"]:
        if only is None or rec["case"] == only:
            rec["runs"] = [v * factor for v in rec["runs"]]
            for k in ("value", "min", "max"):
                rec[k] *= factor
    return out


def with_peer(doc, ratio_factor):
    """A copy where each record has a peer whose ratio is scaled by ratio_factor."""
    out = copy.deepcopy(doc)
    for rec in out["results"]:
        pv = rec["value"] / 2
        rec["peer"] = {"name": "test-peer", "value": pv, "runs": [pv], "min": pv, "max": pv}
        rec["ratio"] = rec["value"] / pv * ratio_factor
    return out


class RegressionGate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory(prefix="rf_bench_gate_")
        cls.result = cls.path("result.json")
        r = benchcheck.run("ring", "--quick", "--runs", "1", "--json", cls.result)
        assert r.returncode == 0, r.stderr
        with open(cls.result) as f:
            cls.doc = json.load(f)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    @classmethod
    def path(cls, name):
        return os.path.join(cls.dir.name, name)

    def save(self, name, doc):
        p = self.path(name)
        with open(p, "w") as f:
            json.dump(doc, f)
        return p

    def compare(self, result, baseline, pct):
        return benchcheck.run("--compare", result, "--baseline", baseline,
                              "--max-regress", str(pct))

    def test_a_run_prints_the_command_that_repeats_it(self):
        out = self.path("it's here.json")
        env = dict(os.environ, RINGFILL_ISA="scalar")  # named in the command, as it is set
        env.pop("RINGFILL_BENCH_CLOCK", None)
        r = subprocess.run([benchcheck.ringfill(), "bench", "ring", "--quick", "--runs", "1",
                            "--json", out], capture_output=True, text=True, timeout=600,
                           env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        last = r.stdout.rstrip("\n").splitlines()[-1]
        self.assertEqual(last, "command: RINGFILL_ISA=scalar ringfill bench ring --quick --runs 1 --json '%s'"
                         % out.replace("'", "'\\''"))

    def test_same_result_passes(self):
        r = self.compare(self.result, self.result, 0)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("2 compared, 0 regressed, 0 missing", r.stdout)

    def test_a_case_missing_from_the_result_fails(self):
        # The baseline has a case this ring run no longer makes: not guarded, so a failure.
        extra = copy.deepcopy(self.doc)
        gone = copy.deepcopy(extra["results"][0])
        gone["case"] = "renamed"
        extra["results"].append(gone)
        base = self.save("extra_case.json", extra)
        r = self.compare(self.result, base, 20)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("missing from this result: ring/renamed", r.stderr)
        # A case of a suite that did not run is not missing.
        other = copy.deepcopy(self.doc)
        parse_rec = copy.deepcopy(other["results"][0])
        parse_rec["suite"] = "parse"
        other["results"].append(parse_rec)
        base = self.save("other_suite.json", other)
        r = self.compare(self.result, base, 20)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_case_runs_only_the_cases_it_names(self):
        # --case GLOB: only the matching cases run and are reported, and a
        # gate skips the baseline's other cases instead of calling them
        # missing; a glob that matches nothing is a usage error (exit 2).
        only = self.path("only_batched.json")
        # The baseline: far faster on single, far slower on batched (so no
        # noise of this machine decides the outcome).
        fast = self.save("fast_single.json",
                         scaled(scaled(self.doc, SPEEDUP, only="single"), 1 / SPEEDUP,
                                only="batched"))
        r = benchcheck.run("ring", "--quick", "--runs", "1", "--case", "b*ed", "--json", only,
                           "--baseline", fast, "--max-regress", "20")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(only) as f:
            self.assertEqual({rec["case"] for rec in json.load(f)["results"]}, {"batched"})
        self.assertIn("ring/single items_per_s", r.stdout)
        self.assertIn("not selected (--case)", r.stdout)
        self.assertIn("1 compared, 0 regressed, 0 missing", r.stdout)
        self.assertNotIn("ring/single", r.stderr)
        # Both named: the slowed case is compared, and fails the gate.
        r = benchcheck.run("ring", "--quick", "--runs", "1", "--case", "batched", "--case",
                           "single", "--baseline", fast, "--max-regress", "20")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("regressed", r.stderr)
        self.assertIn("ring/single items_per_s", r.stderr)
        r = benchcheck.run("ring", "--quick", "--runs", "1", "--case", "nothing*")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("--case nothing* selected no case", r.stderr)
        r = benchcheck.run("--instructions", "ring", "--case", "single")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)

    def test_nothing_compared_fails(self):
        none = copy.deepcopy(self.doc)
        for rec in none["results"]:
            rec["suite"] = "store"
        base = self.save("no_common_case.json", none)
        r = self.compare(self.result, base, 20)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("nothing compared", r.stderr)

    def test_faster_baseline_fails_naming_every_case(self):
        fast = self.save("fast.json", scaled(self.doc, SPEEDUP))
        r = self.compare(self.result, fast, 20)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("ring/single items_per_s", r.stderr)
        self.assertIn("ring/batched items_per_s", r.stderr)

    def test_only_the_regressed_case_is_named(self):
        fast = self.save("fast_batched.json", scaled(self.doc, SPEEDUP, only="batched"))
        r = self.compare(self.result, fast, 20)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("ring/batched items_per_s", r.stderr)
        self.assertNotIn("ring/single", r.stderr)

    def test_within_threshold_passes(self):
        slightly = self.save("slightly.json", scaled(self.doc, 1.10))  # we are 9.1% slower
        self.assertEqual(self.compare(self.result, slightly, 10).returncode, 0)
        self.assertEqual(self.compare(self.result, slightly, 5).returncode, 1)

    def test_live_run_gated_against_baselines(self):
        fast = self.save("live_fast.json", scaled(self.doc, SPEEDUP))
        slow = self.save("live_slow.json", scaled(self.doc, 1 / SPEEDUP))
        r = benchcheck.run("ring", "--quick", "--runs", "1", "--baseline", fast,
                           "--max-regress", "20")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("ring/single items_per_s", r.stderr)
        r = benchcheck.run("ring", "--quick", "--runs", "1", "--baseline", slow,
                           "--max-regress", "20")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_ratio_is_compared_where_both_have_a_peer(self):
        now = self.save("peer_now.json", with_peer(self.doc, 1.0))
        # Raw values 100x faster but the same ratio: the ratio decides, so no regression.
        same_ratio = self.save("peer_fast_values.json", with_peer(scaled(self.doc, SPEEDUP), 1.0))
        self.assertEqual(self.compare(now, same_ratio, 20).returncode, 0)
        # Same raw values but the baseline beat its peer by twice as much: regression.
        better_ratio = self.save("peer_better.json", with_peer(self.doc, 2.0))
        r = self.compare(now, better_ratio, 20)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("ring/single items_per_s", r.stderr)

    def test_unreadable_baseline_is_not_a_pass(self):
        bad = self.save("bad.json", {"results": "no"})
        r = self.compare(self.result, bad, 20)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        r = self.compare(self.result, self.path("missing.json"), 20)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("missing.json", r.stderr)
        # A live run reads the baseline before measuring anything.
        r = benchcheck.run("ring", "--quick", "--baseline", bad, "--max-regress", "20")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertNotIn("ring single", r.stderr)


if __name__ == "__main__":
    benchcheck.ringfill()
    unittest.main()
