#!/usr/bin/env python3
"""Peak RSS and wall time of two ringfill binaries on one big single JSON
document served by nginx over TLS (the harness and the generator and job file
of test_docstream.py), the binaries alternating; medians of RUNS. Not a test:
the figures in docs/engine.md ("Single JSON bodies, streamed") come from it.

usage: measure_docstream.py TESTS_DIR MB RUNS BIN_BEFORE BIN_AFTER
e.g.   python3 tests/integration/measure_docstream.py tests 500 3 /tmp/before/ringfill build/engine/ringfill
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(sys.argv[1], "integration"))
import harness, test_docstream as t
mb, runs = int(sys.argv[2]), int(sys.argv[3])
bins = {"before": sys.argv[4], "after": sys.argv[5]}
tmp = tempfile.mkdtemp(prefix="rf-measure-docstream-")
data = os.path.join(tmp, "data"); os.makedirs(data)
want = t.gen_document(os.path.join(data, "big.json"), mb << 20)
pki = harness.make_pki(os.path.join(tmp, "pki"))
ng = harness.Nginx(data, pki, work=os.path.join(tmp, "nginx")); ng.start()
res = {k: [] for k in bins}
try:
    for r in range(runs):
        for name, b in bins.items():
            cwd = os.path.join(tmp, "%s%d" % (name, r)); os.makedirs(cwd)
            harness.write_lines(os.path.join(cwd, "urls.txt"), [ng.url("big.json")])
            open(os.path.join(cwd, "job.json"), "w").write(t.JOB % ('{"urls": "urls.txt"}', pki.ca_cert))
            t0 = time.monotonic()
            p = t.MeasuredPopen([b, "run", "job.json", "--quiet"], cwd=cwd,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            out, err = p.communicate()
            wall = time.monotonic() - t0
            assert p.returncode == 0, err
            res[name].append((wall, p.maxrss))
            print(name, "run", r, "wall %.2f s, peak RSS %d KiB" % (wall, p.maxrss), flush=True)
            shutil.rmtree(cwd)
finally:
    ng.stop()
    shutil.rmtree(tmp)
for name, v in res.items():
    print("%s: %d MB doc, %d item rows: median wall %.2f s (%.2f-%.2f), median peak RSS %.1f MB (%.1f-%.1f)" % (
        name, mb, want["items"][0], statistics.median(w for w, _ in v), min(w for w, _ in v), max(w for w, _ in v),
        statistics.median(m for _, m in v) / 1024, min(m for _, m in v) / 1024, max(m for _, m in v) / 1024))
