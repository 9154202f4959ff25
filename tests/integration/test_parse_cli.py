#!/usr/bin/env python3
"""`ringfill parse`: validates a JSON or NDJSON file and prints the values a
selector picks, one per line; an invalid file exits 1 with `FILE:OFFSET:
reason` on stderr; a missing file is a usage error (exit 2).

Values are compared leniently on form (a string may print as JSON, "abc", or
raw, abc) and strictly on content.

Needs $RINGFILL (the binary; meson sets it); exits 77 (skip) without it.
Run alone: RINGFILL=build/engine/ringfill python3 tests/integration/test_parse_cli.py
"""

import json
import os
import re
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import describe, run_ringfill  # noqa: E402


def setUpModule():
    harness.skip_unless_ringfill()


def as_value(line):
    """A printed value: JSON when it parses, else the raw text."""
    try:
        return json.loads(line)
    except ValueError:
        return line


class ParseCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rf-parse-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)

    def write(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode("utf-8"))
        return path

    def parse(self, *args):
        return run_ringfill(["parse"] + list(args), cwd=self.tmp, timeout_s=60)

    def assert_values(self, stdout, values):
        lines = stdout.split("\n")
        self.assertEqual(lines[-1], "", "output ends with a newline: %r" % stdout)
        lines = lines[:-1]
        self.assertEqual(len(lines), len(values), stdout)
        for line, v in zip(lines, values):
            self.assertTrue(as_value(line) == v or line == v, "%r printed as %r" % (v, line))

    def test_select_prints_values(self):
        ids = ["17", "4242", "9007199254740993", "x\u00e9\u6771"]
        doc = {"account": {"username": "otter_1"},
               "following": [{"accountId": i} for i in ids],
               "n": 42, "f": -1.5e3, "ok": True, "none": None}
        path = self.write("doc.json", json.dumps(doc, ensure_ascii=False))
        proc = self.parse("--select", "$.following[*].accountId", path)
        self.assertEqual(proc.returncode, 0, describe(proc))
        self.assert_values(proc.stdout, ids)

        proc = self.parse("--select", "$.n", "--select", "$.account.username", path)
        self.assertEqual(proc.returncode, 0, describe(proc))
        # Two selectors: both values, in whichever order the tool documents.
        got = sorted(str(as_value(line)) for line in proc.stdout.splitlines())
        self.assertEqual(got, ["42", "otter_1"])

        proc = self.parse("--select", "$.account", path)
        self.assertEqual(proc.returncode, 0, describe(proc))
        self.assertEqual(json.loads(proc.stdout), doc["account"])

    def test_valid_file_without_select(self):
        path = self.write("ok.json", '{"a": [1, 2, {"b": "\\u00e9\\n"}]}')
        proc = self.parse(path)
        self.assertEqual(proc.returncode, 0, describe(proc))
        self.assertEqual(proc.stderr, "")

    def test_generated_archive(self):
        data = os.path.join(self.tmp, "gen")
        manifest = harness.gen_dataset(data, 14, 5)
        for f in manifest["files"][5:8]:  # 6 is written with \u escapes
            path = os.path.join(data, f["path"])
            proc = self.parse("--select", "$.following[*].accountId", path)
            self.assertEqual(proc.returncode, 0, describe(proc))
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
            self.assert_values(proc.stdout, [x["accountId"] for x in doc["following"]])
            proc = self.parse("--select", "$.tweets[*].id", path)
            self.assertEqual(proc.returncode, 0, describe(proc))
            self.assert_values(proc.stdout, [t["id"] for t in doc["tweets"]])

    def test_invalid_file_reports_offset(self):
        data = b'[1, 2, @]'
        path = self.write("bad.json", data)
        proc = self.parse(path)
        self.assertEqual(proc.returncode, 1, describe(proc))
        m = re.search(re.escape(path) + r":(\d+): (\S.*)", proc.stderr)
        self.assertIsNotNone(m, "stderr is not FILE:OFFSET: reason:\n" + proc.stderr)
        self.assertIn(int(m.group(1)), (7, 8), "offset of '@' (0- or 1-based)")

        path = self.write("trunc.json", b'{"a": [1, 2')
        proc = self.parse("--select", "$.a[*]", path)
        self.assertEqual(proc.returncode, 1, describe(proc))
        self.assertRegex(proc.stderr, re.escape(path) + r":\d+: \S")

    def test_ndjson(self):
        lines = [{"id": 1, "name": "a"}, {"id": 2, "name": "b\u00fc"}, {"id": 3, "name": ""}]
        text = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines)
        path = self.write("rows.ndjson", text)
        proc = self.parse("--select", "$.id", path)
        self.assertEqual(proc.returncode, 0, describe(proc))
        self.assert_values(proc.stdout, [1, 2, 3])

        bad = self.write("bad.ndjson", text + '{"id": 4,}\n')
        proc = self.parse("--select", "$.id", bad)
        self.assertEqual(proc.returncode, 1, describe(proc))
        self.assertRegex(proc.stderr, re.escape(bad) + r":\d+: \S")

    def test_missing_file_is_usage_error(self):
        path = os.path.join(self.tmp, "no-such-file.json")
        proc = self.parse(path)
        self.assertEqual(proc.returncode, 2, describe(proc))
        self.assertIn("no-such-file.json", proc.stderr)


if __name__ == "__main__":
    harness.main_or_skip()
