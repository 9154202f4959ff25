#!/usr/bin/env python3
"""Peak RSS of ringfill with many connections in flight (issue 4's target:
512 connections, <= 128 MB): N files of about 1 MB of random bytes served by
nginx over TLS (tests/integration/harness.py), fetched with
`ringfill run --download-only --raw` at C connections to the one host, each
binary in turn, ROUNDS times; every raw file is checked by sha256 after every
run. Not a test: the figures in docs/benchmarks.md ("512 connections in
flight") come from it. The files are kept in WORK and reused.

usage: measure_conns.py TESTS_DIR WORK ROUNDS BIN [BIN ...]
       (environment: FILES, default 2000; CONNS, default 512)
e.g.   python3 tests/integration/measure_conns.py tests /tmp/conns 3 build/engine/ringfill
"""
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(sys.argv[1], "integration"))
import harness

work, rounds, bins = sys.argv[2], int(sys.argv[3]), sys.argv[4:]
n_files = int(os.environ.get("FILES", "2000"))
conns = os.environ.get("CONNS", "512")
root = os.path.join(work, "files-%d" % n_files)
names = ["f%04d.bin" % i for i in range(n_files)]
if not os.path.exists(os.path.join(root, "done")):
    os.makedirs(root, exist_ok=True)
    rng = random.Random(20261124)
    for n in names:
        with open(os.path.join(root, n), "wb") as f:
            f.write(rng.randbytes(1000000 + rng.randrange(4096)))
    open(os.path.join(root, "done"), "w").close()
sums = {}
for n in names:
    with open(os.path.join(root, n), "rb") as f:
        sums[n] = hashlib.sha256(f.read()).hexdigest()

pki = harness.make_pki(os.path.join(work, "pki"))
peaks = {b: [] for b in bins}
with harness.Nginx(root, pki) as ng:
    urls = os.path.join(work, "urls.txt")
    with open(urls, "w") as f:
        for n in names:
            f.write(ng.url(n) + "\n")
    for _ in range(rounds):
        for b in bins:
            out = tempfile.mkdtemp(dir=work)
            p = subprocess.run(["/usr/bin/time", "-f", "%M %e %U %S", b, "run", "--urls", urls,
                                "--db", os.path.join(out, "rf.db"), "--raw", os.path.join(out, "raw"),
                                "--download-only", "--cacert", pki.ca_cert, "--concurrency", conns,
                                "--per-host", conns, "--quiet"],
                               capture_output=True, text=True)
            kb, wall, user, sys_s = p.stderr.strip().splitlines()[-1].split()
            bad = 0
            hosts = os.listdir(os.path.join(out, "raw")) if p.returncode == 0 else []
            for n in names:
                try:
                    with open(os.path.join(out, "raw", hosts[0], n), "rb") as f:
                        bad += hashlib.sha256(f.read()).hexdigest() != sums[n]
                except (FileNotFoundError, IndexError):
                    bad += 1
            peaks[b].append(int(kb) / 1024)
            print("%s exit=%d peak=%.1f MiB wall=%s s cpu=%.2f s bad=%d load=%s" %
                  (b, p.returncode, int(kb) / 1024, wall, float(user) + float(sys_s), bad,
                   open("/proc/loadavg").read().split()[0]), flush=True)
            shutil.rmtree(out)
for b in bins:
    print("%s: median peak %.1f MiB over %d runs" % (b, statistics.median(peaks[b]), len(peaks[b])))
