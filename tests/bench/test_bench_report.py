#!/usr/bin/env python3
"""`ringfill bench --report OUT.html` draws every chart, as headless Chromium
renders it: after a real small run (`ring store --quick --runs 2`), each suite
of the result has a chart with one bar per record and one more per peer, every
bar has non-zero size in the laid-out page, and the screenshot has ringfill's
and the peer's colours inside each chart. With several saved results, a chart
over time per case and metric with a point per result, in date order.
Text from result files is escaped; a malformed result file is an input error
that writes no page. No test here looks at how fast anything was.

The report itself has no script: the test renders a copy with a probe script
appended that measures the layout (getBoundingClientRect) and writes it into
the DOM, which `chromium --dump-dom` prints.

Needs $RINGFILL and Debian's chromium (scripts/deps.sh installs it for the
test run); exits 77 (skip) saying so when chromium is not installed.
Run alone: RINGFILL=build/engine/ringfill python3 tests/bench/test_bench_report.py
"""

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchcheck  # noqa: E402

CHROMIUM_TIMEOUT_S = 120
WINDOW_W = 1100
RF_RGB = (0x2F, 0x6F, 0xB0)    # .bar.rf in bench/report.c
PEER_RGB = (0xE0, 0x8A, 0x2C)  # .bar.peer

PROBE = """<script>
(function () {
  function box(e) {
    var r = e.getBoundingClientRect();
    return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height];
  }
  var out = {height: document.documentElement.scrollHeight, charts: [], history: []};
  document.querySelectorAll("svg.chart").forEach(function (s) {
    out.charts.push({suite: s.getAttribute("data-suite"), box: box(s),
      bars: Array.prototype.map.call(s.querySelectorAll("rect.bar"), function (b) {
        return {cls: b.getAttribute("class"), box: box(b)}; }),
      errs: Array.prototype.map.call(s.querySelectorAll("path.err"), box),
      ratios: Array.prototype.map.call(s.querySelectorAll("text.ratio"),
                                       function (t) { return t.textContent; }),
      labels: Array.prototype.map.call(s.querySelectorAll("g.row > text:first-child"),
                                       function (t) { return t.textContent; })});
  });
  document.querySelectorAll("svg.history").forEach(function (s) {
    out.history.push({key: s.getAttribute("data-key"), box: box(s),
      points: Array.prototype.map.call(s.querySelectorAll("circle.pt.rf"), function (c) {
        return {box: box(c), title: c.textContent}; }),
      peer_points: s.querySelectorAll("circle.pt.peer").length,
      line: s.querySelector("polyline.line.rf").getAttribute("points").trim()});
  });
  out.scripts = document.scripts.length;
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>
"""


def chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def read_png_rgb(path):
    """(width, height, rows of (r, g, b) tuples) of an 8-bit, non-interlaced
    RGB or RGBA PNG, which is what Chromium writes."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = hdr
    assert depth == 8 and ctype in (2, 6) and interlace == 0, hdr
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(h):
        ft = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ft == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ft == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ft == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pr) & 0xFF
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(w)])
        prev = line
    return w, h, rows


def near(px, rgb, tol=24):
    return all(abs(p - q) <= tol for p, q in zip(px, rgb))


class Report(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.chromium = chromium()

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="rf_bench_report_")
        self.d = self.dir.name

    def tearDown(self):
        self.dir.cleanup()

    def browser(self, *args):
        profile = tempfile.mkdtemp(prefix="chromium-", dir=self.d)
        p = subprocess.run([self.chromium, "--headless", "--disable-gpu", "--no-sandbox",
                            "--hide-scrollbars", "--user-data-dir=" + profile,
                            "--no-first-run", "--disable-extensions", *args],
                           capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        return p.stdout

    def probe(self, html_path):
        """The layout of html_path as Chromium draws it (see PROBE)."""
        with open(html_path, encoding="utf-8") as f:
            page = f.read()
        self.assertNotIn("<script", page)  # the report needs no script
        self.assertNotRegex(page, r"(src|href)=\"(https?:)?//")  # and fetches nothing
        probed = os.path.join(self.d, "probed.html")
        with open(probed, "w", encoding="utf-8") as f:
            f.write(page.replace("</body>", PROBE + "</body>"))
        dom = self.browser("--window-size=%d,900" % WINDOW_W, "--dump-dom",
                           "file://" + probed)
        m = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
        self.assertIsNotNone(m, "the probe did not run:\n" + dom[-2000:])
        text = m.group(1).replace("&lt;", "<").replace("&gt;", ">").replace(
            "&quot;", '"').replace("&amp;", "&")
        return json.loads(text)

    def bench(self, *args):
        r = benchcheck.run(*args, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        return r

    def test_a_run_draws_a_chart_per_suite_with_every_bar(self):
        result, html = os.path.join(self.d, "r.json"), os.path.join(self.d, "r.html")
        r = self.bench("ring", "store", "--quick", "--runs", "2", "--json", result,
                       "--report", html)
        self.assertIn("report: " + html, r.stdout)
        with open(result) as f:
            doc = json.load(f)
        want = {}
        for rec in doc["results"]:
            s = want.setdefault(rec["suite"], {"bars": 0, "ratios": 0, "cases": []})
            s["bars"] += 1 + (rec["peer"] is not None)
            s["ratios"] += rec["ratio"] is not None
            s["cases"].append(rec["case"])
        self.assertEqual(sorted(want), ["ring", "store"])
        self.assertGreater(want["store"]["ratios"], 0)  # a chart with a peer is drawn
        layout = self.probe(html)
        self.assertEqual(layout["scripts"], 1)  # only the probe
        got = {c["suite"]: c for c in layout["charts"]}
        self.assertEqual(sorted(got), sorted(want))
        for suite, c in got.items():
            self.assertEqual(len(c["bars"]), want[suite]["bars"], suite)
            self.assertEqual(len(c["ratios"]), want[suite]["ratios"], suite)
            self.assertEqual(c["labels"], want[suite]["cases"], suite)
            for b in c["bars"]:
                self.assertGreater(b["box"][2], 0, (suite, b))
                self.assertGreater(b["box"][3], 0, (suite, b))
            for t in c["ratios"]:
                self.assertRegex(t, r"^\d+\.\d\d×$")
            # An error bar per bar, from min to max on the bar's own scale:
            # the bar ends at the median, so min/median and max/median of
            # its width (bars narrower than 2 px are drawn 1 px wide).
            self.assertEqual(len(c["errs"]), len(c["bars"]), suite)
            spans = []
            for rec in doc["results"]:
                if rec["suite"] == suite:
                    spans.append((rec["value"], rec["min"], rec["max"]))
                    if rec["peer"] is not None:
                        p = rec["peer"]
                        spans.append((p["value"], p["min"], p["max"]))
            self.assertEqual(len(spans), len(c["bars"]), suite)
            for (v, lo, hi), b, e in zip(spans, c["bars"], c["errs"]):
                left, width = b["box"][0], b["box"][2]
                if v <= 0 or width < 2:
                    continue
                self.assertAlmostEqual(e[0], left + lo / v * width, delta=1.5, msg=suite)
                self.assertAlmostEqual(e[0] + e[2], left + hi / v * width, delta=1.5,
                                       msg=suite)
                self.assertTrue(b["box"][1] <= e[1] + e[3] / 2 <= b["box"][1] + b["box"][3],
                                (suite, b, e))
        # The pixels: inside each chart, ringfill's colour, and the peer's
        # where the suite has one.
        png = os.path.join(self.d, "shot.png")
        self.browser("--window-size=%d,%d" % (WINDOW_W, layout["height"] + 20),
                     "--screenshot=" + png, "file://" + html)
        w, h, rows = read_png_rgb(png)
        for suite, c in got.items():
            x0, y0, cw, ch = (int(v) for v in c["box"])
            self.assertLessEqual(y0 + ch, h, suite)
            seen = {"rf": 0, "peer": 0}
            for y in range(y0, y0 + ch):
                for px in rows[y][x0:min(w, x0 + cw)]:
                    seen["rf"] += near(px, RF_RGB)
                    seen["peer"] += near(px, PEER_RGB)
            # at least each bar's area (the legend has a square of each colour too)
            rf_area = sum(b["box"][2] * b["box"][3] for b in c["bars"] if "rf" in b["cls"])
            self.assertGreater(seen["rf"], 0.8 * rf_area, suite)
            if any("peer" in b["cls"] for b in c["bars"]):
                peer_area = sum(b["box"][2] * b["box"][3] for b in c["bars"]
                                if "peer" in b["cls"])
                self.assertGreater(seen["peer"], 0.8 * peer_area, suite)

    def test_several_results_draw_a_chart_over_time(self):
        paths = []
        for i in range(3):
            paths.append(os.path.join(self.d, "r%d.json" % i))
            self.bench("ring", "--quick", "--runs", "2", "--json", paths[-1])
            time.sleep(1.1)  # env.date has seconds: each result its own date
        dates = []
        for p in paths:
            with open(p) as f:
                dates.append(json.load(f)["env"]["date"])
        self.assertEqual(dates, sorted(set(dates)))
        html = os.path.join(self.d, "history.html")
        # Given out of order: the page sorts them by date.
        r = subprocess.run([benchcheck.ringfill(), "bench", "--report", html, paths[2],
                            paths[0], paths[1]], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        layout = self.probe(html)
        self.assertEqual([c["suite"] for c in layout["charts"]], ["ring"])
        with open(paths[2]) as f:
            keys = ["%s/%s %s" % (x["suite"], x["case"], x["metric"])
                    for x in json.load(f)["results"]]
        self.assertEqual([hc["key"] for hc in layout["history"]], keys)
        for hc in layout["history"]:
            pts = hc["points"]
            self.assertEqual(len(pts), 3, hc["key"])
            self.assertEqual(hc["peer_points"], 0)  # ring has no peer
            self.assertEqual(len(hc["line"].split()), 3)
            xs = [p["box"][0] for p in pts]
            self.assertEqual(xs, sorted(xs))
            self.assertEqual(len(set(xs)), 3)
            for p, date in zip(pts, dates):
                self.assertGreater(p["box"][2], 0)
                self.assertIn(date, p["title"])
            self.assertGreater(hc["box"][2] * hc["box"][3], 0)
        # Each point's x label names the result's commit (env.commit).
        with open(paths[0]) as f:
            commit = json.load(f)["env"]["commit"]
        self.assertRegex(commit, r"^([0-9a-f]{7,}(-dirty)?|unknown)$")
        with open(html, encoding="utf-8") as f:
            charts = re.findall(r'<svg class="history".*?</svg>', f.read(), re.S)
        self.assertEqual(len(charts), len(keys))
        for chart in charts:
            self.assertEqual(chart.count(">%s</tspan>" % commit), 3)

    def draw(self, name, doc):
        """The report of result doc, saved as NAME.json: the page's path."""
        src, html = os.path.join(self.d, name + ".json"), os.path.join(self.d, name + ".html")
        with open(src, "w") as f:
            json.dump(doc, f)
        r = subprocess.run([benchcheck.ringfill(), "bench", "--report", html, src],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return html

    def test_text_from_a_result_file_is_escaped(self):
        evil = '<script>alert(1)</script> & "quoted" \'x\''
        doc = {"schema": "ringfill-bench/1",
               "env": {"ringfill": "<b>v</b>", "date": "2026-01-01T00:00:00Z", "cpu": evil,
                       "cpus": 2, "kernel": "k", "json_stage1": "avx2", "sqlite": "3",
                       "openssl": "o", "parse_corpus": "c", "runs": 1, "quick": True},
               "results": [{"suite": "ring", "case": evil, "metric": "m\"></svg><i>",
                            "value": 2, "unit": "u<", "direction": "higher", "runs": [2],
                            "min": 1, "max": 3,
                            "peer": {"name": "</text>p", "value": 1, "runs": [1], "min": 1,
                                     "max": 1}, "ratio": 2}]}
        html = self.draw("evil", doc)
        layout = self.probe(html)  # asserts there is no <script in the page
        self.assertEqual(layout["charts"][0]["labels"], [evil])
        self.assertEqual(len(layout["charts"][0]["bars"]), 2)

    def test_a_value_that_is_not_ringfills_is_labelled_with_its_subject(self):
        # e2e's curl_download_s is curl's time next to the insert loop's: its
        # bar says curl (the result's "subject"), not ringfill; a record
        # without a subject is ringfill's.
        doc = {"schema": "ringfill-bench/1",
               "env": {"ringfill": "v", "date": "2026-01-01T00:00:00Z", "cpu": "c",
                       "cpus": 2, "kernel": "k", "json_stage1": "avx2", "sqlite": "3",
                       "openssl": "o", "parse_corpus": "c", "runs": 1, "quick": True},
               "results": [{"suite": "e2e", "case": "w", "metric": m, "value": 2, "unit": "s",
                            "direction": "lower", "runs": [2], "min": 2, "max": 2,
                            "peer": {"name": "sqlite-c-insert-loop", "value": 1, "runs": [1],
                                     "min": 1, "max": 1}, "ratio": 0.5, **extra}
                           for m, extra in (("curl_download_s", {"subject": "curl"}),
                                            ("seconds", {}))]}
        self.assertEqual(benchcheck.validate(doc), [])
        with open(self.draw("subject", doc)) as f:
            page = f.read()
        rows = page.split('<g class="row">')[1:]
        self.assertEqual(len(rows), 2)
        curl_row = next(r for r in rows if "curl_download_s" in r)
        secs_row = next(r for r in rows if "curl_download_s" not in r)
        self.assertIn('<tspan class="small">curl</tspan>', curl_row)
        self.assertNotIn("ringfill", curl_row)
        self.assertIn('<tspan class="small">ringfill</tspan>', secs_row)

    def test_a_malformed_result_is_named_and_writes_no_page(self):
        good, bad = os.path.join(self.d, "good.json"), os.path.join(self.d, "bad.json")
        html = os.path.join(self.d, "out.html")
        self.bench("ring", "--quick", "--runs", "1", "--json", good)
        with open(good) as f:
            doc = json.load(f)
        del doc["results"][0]["max"]
        with open(bad, "w") as f:
            json.dump(doc, f)
        for args, reason in (([good, bad], "not a ringfill bench result"),
                             ([good, os.path.join(self.d, "missing.json")], "No such file")):
            r = subprocess.run([benchcheck.ringfill(), "bench", "--report", html, *args],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(args[1], r.stderr)
            self.assertIn(reason, r.stderr)
            self.assertFalse(os.path.exists(html))
            self.assertEqual([n for n in os.listdir(self.d) if "html" in n], [])
        # A file that is not a suite, without --report, is an unknown suite.
        r = subprocess.run([benchcheck.ringfill(), "bench", good], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown suite", r.stderr)
        # And result files do not mix with suites or run options.
        for extra in (["ring"], ["--runs", "2"], ["--json", os.path.join(self.d, "x.json")]):
            r = subprocess.run([benchcheck.ringfill(), "bench", "--report", html, good,
                                *extra], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 2, extra)
            self.assertFalse(os.path.exists(html))


if __name__ == "__main__":
    benchcheck.ringfill()
    if not chromium():
        print("chromium not installed (scripts/deps.sh installs Debian's chromium for the "
              "test run: apt-get install chromium); skipping the report rendering test")
        sys.exit(benchcheck.SKIP)
    unittest.main()
