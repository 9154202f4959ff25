#!/usr/bin/env python3
"""scripts/demo.py: a demo backfill on this machine, end to end.

Generates sample account archives (scripts/gen_dataset.py), serves them with a
private nginx over TLS (tests/integration/harness.py, loopback only), writes a
job file (docs/jobfile.md) that fills four tables from each archive with one
`ringfill run`, and prints what landed. nginx is stopped on the way out, also
on error.

    python3 scripts/demo.py [--work DIR] [--count N] [--ringfill PATH]

Run by scripts/demo.sh after the build. The work dir (default demo-work/ in
the repository) is wiped and rebuilt on each run; it holds its own .gitignore.
"""

import argparse
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import gen_dataset  # noqa: E402
import harness  # noqa: E402

RUN_TIMEOUT_S = 600


def run(cmd, cwd):
    print("$ " + shlex.join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=cwd, timeout=RUN_TIMEOUT_S, check=False)
    return proc.returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=os.path.join(REPO, "demo-work"))
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ringfill", default=os.path.join(REPO, "build", "engine", "ringfill"))
    a = ap.parse_args()
    work = os.path.abspath(a.work)
    ringfill = os.path.abspath(a.ringfill)
    if not os.access(ringfill, os.X_OK):
        print("demo: %s not found; build first (ninja -C build)" % ringfill, file=sys.stderr)
        return 2

    if os.path.isdir(work):
        shutil.rmtree(work)
    os.makedirs(work)
    with open(os.path.join(work, ".gitignore"), "w", encoding="ascii") as f:
        f.write("# made by scripts/demo.py: nothing here belongs in git\n*\n")

    data = os.path.join(work, "data")
    manifest = gen_dataset.generate(data, a.count, a.seed)
    t = manifest["totals"]
    print("generated %d archives (%.1f MB): %d tweets, %d following" % (
        a.count, t["bytes"] / 1e6, t["tweets"], t["following"]))
    pki = harness.make_pki(os.path.join(work, "pki"))
    db = os.path.join(work, "demo.db")

    with harness.Nginx(data, pki, work=os.path.join(work, "nginx")) as ng:
        print("nginx serving %s on %s" % (data, ng.url("")))
        users = os.path.join(work, "usernames.txt")
        with open(users, "w", encoding="utf-8") as f:
            for e in manifest["files"]:
                f.write(e["username"] + "\n")
        job = os.path.join(work, "backfill.json")
        with open(job, "w", encoding="utf-8") as f:
            f.write(job_file(ng.url("archives/") + "{username}.json", pki.ca_cert))
        print("job file %s:\n%s" % (job, open(job, encoding="utf-8").read()))
        codes = [run([ringfill, "run", job], cwd=work)]
    print()
    run([ringfill, "status", db], cwd=work)
    reported = report(db, manifest)
    print("\nThe database is %s\n  open it with: sqlite3 %s" % (db, db))
    if any(c != 0 for c in codes):
        print("demo: ringfill exited with %s" % codes, file=sys.stderr)
        return 1
    return 0 if reported else 1


def job_file(template, cacert):
    """The demo's job: one parse of each archive fills four tables."""
    return """// The demo backfill: one job per username, four tables per archive.
{
  "source": { "template": "%s", "keys": "usernames.txt" },
  "db": "demo.db",
  "raw": "raw",
  "http": { "cacert": "%s", "concurrency": 64 },
  "tables": [
    { "name": "accounts", "rows": "$",
      "columns": { "account_id": "$.account.accountId", "username": "{username}",
                   "created_at": "$.account.createdAt", "bio": "$.profile.bio",
                   "location": "$.profile.location" },
      "key": ["account_id"], "mode": "upsert", "null_if": ["", "N/A"] },
    { "name": "tweets", "rows": "$.tweets[*]",
      "columns": { "tweet_id": "@.id", "account_id": "$.account.accountId",
                   "full_text": "@.full_text", "lang": "@.lang", "created_at": "@.created_at",
                   "favorite_count": { "path": "@.favorite_count", "type": "integer" },
                   "retweet_count": { "path": "@.retweet_count", "type": "integer" },
                   "hashtags": { "path": "@.entities.hashtags", "type": "json" } },
      "key": ["tweet_id"], "mode": "upsert", "null_if": ["", "N/A", "Not On File"] },
    { "name": "following", "rows": "$.following[*]",
      "columns": { "account_id": "$.account.accountId", "following_id": "@.accountId" },
      "key": ["account_id", "following_id"], "mode": "ignore" },
    { "name": "followers", "rows": "$.followers[*]" }   // columns inferred
  ]
}
""" % (template, cacert)


def report(db, manifest):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        print("\nrows per table (expected from the generator):")
        expected = dict(manifest["totals"], accounts=len(manifest["files"]))
        for table in ("accounts", "tweets", "following", "followers"):
            n = con.execute('SELECT count(*) FROM "%s"' % table).fetchone()[0]
            print("  %-10s %8d  (%d)" % (table, n, expected[table]))
        print("\nthe 5 most-liked tweets:")
        q = """SELECT a.username, t.favorite_count AS likes,
                      substr(replace(replace(t.full_text, char(10), ' '), char(9), ' '), 1, 50) AS text
               FROM tweets t JOIN accounts a ON a.account_id = t.account_id
               ORDER BY t.favorite_count DESC LIMIT 5"""
        for user, likes, text in con.execute(q):
            print("  %9d  %-28s %s" % (likes, user, text))
        print("\naccounts following the most others:")
        q = """SELECT a.username, count(*) AS n FROM following f
               JOIN accounts a ON a.account_id = f.account_id
               GROUP BY f.account_id ORDER BY n DESC LIMIT 5"""
        for user, n in con.execute(q):
            print("  %9d  %s" % (n, user))
        return True
    except sqlite3.Error as e:
        print("demo: query failed: %s" % e, file=sys.stderr)
        return False
    finally:
        con.close()


if __name__ == "__main__":
    sys.exit(main())
