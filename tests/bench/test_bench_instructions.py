#!/usr/bin/env python3
"""`ringfill bench --instructions` counts instructions (valgrind's callgrind)
of the parse and ring hot paths on fixed inputs, and its result goes through
the same --baseline/--max-regress gate as timings. Counts do not depend on
how busy the machine is, so the gate uses the tolerance CI uses
(scripts/test.sh, TOLERANCE below): it passes on the result itself and fails,
naming the case, on a baseline edited to be lower than the measurement by
more than the tolerance.

Needs $RINGFILL (meson sets it) and valgrind; exits 77 (skip) without either.
Run alone: RINGFILL=build/engine/ringfill python3 tests/bench/test_bench_instructions.py
"""

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchcheck  # noqa: E402

TOLERANCE = 3.0  # percent, as scripts/test.sh gates bench/baseline.json
DOCS = ("twitter-like.json", "canada-like.json", "events.ndjson")


def lowered(doc, pct, only=None):
    """A copy of a result whose counts (or only case `only`'s) are such that
    the measurement is pct percent above them."""
    out = copy.deepcopy(doc)
    for rec in out["results"]:
        if only is None or rec["case"] == only:
            f = 1 / (1 + pct / 100)
            rec["runs"] = [v * f for v in rec["runs"]]
            for k in ("value", "min", "max"):
                rec[k] *= f
    return out


class Instructions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory(prefix="rf_bench_instr_")
        cls.result = cls.path("result.json")
        r = benchcheck.run("--instructions", "--json", cls.result)
        assert r.returncode == 0, r.stdout + r.stderr
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

    def compare(self, baseline, pct=TOLERANCE):
        return benchcheck.run("--compare", self.result, "--baseline", baseline,
                              "--max-regress", str(pct))

    def test_result_matches_schema(self):
        self.assertEqual(benchcheck.validate(self.doc), [])
        self.assertIn("compiler", self.doc["env"])
        self.assertIn("callgrind", self.doc["env"]["instructions"])
        cases = set()
        for rec in self.doc["results"]:
            self.assertEqual(benchcheck.consistency_problems(rec, 1), [])
            self.assertEqual((rec["metric"], rec["unit"], rec["direction"]),
                             ("instructions", "instr", "lower"))
            self.assertEqual(rec["value"], int(rec["value"]))
            cases.add(rec["suite"] + "/" + rec["case"])
        # Every document with the scalar kernel (usable everywhere), both ring cases.
        for d in DOCS:
            self.assertIn("parse/%s/full/scalar" % d, cases)
        self.assertIn("ring/single", cases)
        self.assertIn("ring/batched", cases)

    def test_passes_on_itself(self):
        r = self.compare(self.result)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("%d compared, 0 regressed" % len(self.doc["results"]), r.stdout)

    def test_lowered_baseline_fails_naming_every_case(self):
        low = self.save("low.json", lowered(self.doc, TOLERANCE + 2))
        r = self.compare(low)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        for rec in self.doc["results"]:
            self.assertIn("%s/%s instructions" % (rec["suite"], rec["case"]), r.stderr)

    def test_only_the_lowered_case_is_named(self):
        low = self.save("low_single.json", lowered(self.doc, TOLERANCE + 2, only="single"))
        r = self.compare(low)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("ring/single instructions", r.stderr)
        self.assertNotIn("ring/batched", r.stderr)
        self.assertNotIn("parse/", r.stderr)

    def test_within_tolerance_passes(self):
        low = self.save("low_within.json", lowered(self.doc, TOLERANCE - 1))
        self.assertEqual(self.compare(low).returncode, 0)
        self.assertEqual(self.compare(low, TOLERANCE - 1.5).returncode, 1)

    def test_a_kernel_not_measurable_here_is_named_not_missing(self):
        # A baseline made where valgrind runs the AVX-512 kernel (or on a CPU
        # with kernels this one lacks) has cases this run cannot measure: the
        # live gate names them and passes; a case that is simply gone fails.
        base = copy.deepcopy(self.doc)
        extra = copy.deepcopy(next(r for r in base["results"]
                                   if r["case"] == "twitter-like.json/full/scalar"))
        extra["case"] = "twitter-like.json/full/avx512"
        base["results"].append(extra)
        r = benchcheck.run("--instructions", "parse", "--baseline",
                           self.save("with_avx512.json", base), "--max-regress", str(TOLERANCE))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"twitter-like\.json/full/avx512 instructions +not measured here")
        gone = copy.deepcopy(base)
        gone["results"][-1]["case"] = "twitter-like.json/full/renamed"
        r = benchcheck.run("--instructions", "parse", "--baseline",
                           self.save("with_renamed.json", gone), "--max-regress", str(TOLERANCE))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("missing from this result: parse/twitter-like.json/full/renamed", r.stderr)

    def test_live_run_is_exact_and_gated(self):
        # A second count of the same binary is identical: it passes a 0% gate.
        r = benchcheck.run("--instructions", "ring", "--baseline", self.result,
                           "--max-regress", "0")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("2 compared, 0 regressed", r.stdout)
        low = self.save("live_low.json", lowered(self.doc, TOLERANCE + 2))
        r = benchcheck.run("--instructions", "ring", "--baseline", low,
                           "--max-regress", str(TOLERANCE))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("ring/single instructions", r.stderr)
        self.assertIn("ring/batched instructions", r.stderr)

    def test_usage_errors_measure_nothing(self):
        for args in (["store"], ["e2e"], ["--runs", "3"], ["--quick"], ["--corpus", "/"]):
            r = benchcheck.run("--instructions", *args)
            self.assertEqual(r.returncode, 2, args)
            self.assertNotIn("callgrind (", r.stderr)

    def test_without_valgrind_says_so(self):
        env = dict(os.environ, RINGFILL_VALGRIND=self.path("no-valgrind-here"))
        r = subprocess.run([benchcheck.ringfill(), "bench", "--instructions", "ring"],
                           capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("needs valgrind", r.stderr)


if __name__ == "__main__":
    benchcheck.ringfill()
    if not (os.environ.get("RINGFILL_VALGRIND") or shutil.which("valgrind")):
        print("valgrind not installed; skipping")
        sys.exit(benchcheck.SKIP)
    unittest.main()
