#!/usr/bin/env python3
"""bench/peer_importer.py: the peer of `ringfill bench e2e` (docs/benchmarks.md):
an importer written the way such importers usually are. A
concurrent.futures thread pool downloads every URL with urllib.request over
HTTPS (verified against --cacert), the main thread json.loads each body (each
line, for NDJSON pages) and upserts its rows with executemany in batches.

    peer_importer.py --workload archives|graph|events --urls FILE --db FILE
                     --cacert CA [--workers N] [--batch N]

archives (scripts/gen_dataset.py): `tweets` keyed by id and `following` keyed
by accountId, the shapes ringfill infers for `$.tweets[*]` and
`$.following[*]`: one column per field, nested objects flattened with '_',
arrays as compact JSON text. graph (the same generator with long
following/followers lists): `following` and `followers` keyed by
(account_id, following_id) and (account_id, follower_id), account_id the
document's account, and `tweets` keyed by tweet_id, with the columns and types
bench/netbench.py's job file declares (issue 6's job file). events
(bench/gen_events.py, NDJSON): `events`, `actors`, `repos` and `commits`
keyed by their ids, with the columns and types
bench/netbench.py's job file declares. Every table also has _job (here: the
URL's 1-based line in FILE) and a UNIQUE index on its key, and a row whose key
exists already replaces the stored values (INSERT ... ON CONFLICT DO UPDATE),
as ringfill's upsert mode does. The same SQLite settings as ringfill (WAL,
synchronous=NORMAL). Standard library only. Exit 0, or 1 with the reason on
stderr.
"""

import argparse
import concurrent.futures
import json
import sqlite3
import ssl
import sys
import urllib.request

# table: (columns with their SQLite types after _job, key columns)
ARCHIVE_TABLES = {
    "tweets": ([("id", "TEXT"), ("full_text", "TEXT"), ("favorite_count", "INTEGER"),
                ("retweet_count", "INTEGER"), ("created_at", "TEXT"),
                ("entities_hashtags", "TEXT"), ("lang", "TEXT")], ("id",)),
    "following": ([("accountId", "TEXT")], ("accountId",)),
}
GRAPH_TABLES = {
    "following": ([("account_id", "TEXT"), ("following_id", "TEXT")],
                  ("account_id", "following_id")),
    "followers": ([("account_id", "TEXT"), ("follower_id", "TEXT")],
                  ("account_id", "follower_id")),
    "tweets": ([("tweet_id", "TEXT"), ("account_id", "TEXT"), ("full_text", "TEXT"),
                ("favorite_count", "INTEGER"), ("created_at", "TEXT")], ("tweet_id",)),
}
EVENT_TABLES = {
    "events": ([("id", "INTEGER"), ("type", "TEXT"), ("actor_id", "INTEGER"),
                ("repo_id", "INTEGER"), ("public", "INTEGER"), ("created_at", "TEXT"),
                ("payload", "TEXT")], ("id",)),
    "actors": ([("id", "INTEGER"), ("login", "TEXT"), ("display_login", "TEXT"),
                ("url", "TEXT"), ("avatar_url", "TEXT")], ("id",)),
    "repos": ([("id", "INTEGER"), ("name", "TEXT"), ("url", "TEXT")], ("id",)),
    "commits": ([("sha", "TEXT"), ("event_id", "INTEGER"), ("author_name", "TEXT"),
                 ("author_email", "TEXT"), ("message", "TEXT"), ("distinct", "INTEGER")],
                ("sha",)),
}


def create(con, tables):
    """CREATE TABLE and the key index; returns {table: upsert SQL}."""
    sql = {}
    for name, (cols, key) in tables.items():
        con.execute('CREATE TABLE "%s" (_job INTEGER, %s)' % (
            name, ", ".join('"%s" %s' % c for c in cols)))
        keys = ", ".join('"%s"' % k for k in key)
        con.execute('CREATE UNIQUE INDEX "%s_key" ON "%s" (%s)' % (name, name, keys))
        names = ["_job"] + [c for c, _ in cols]
        sql[name] = 'INSERT INTO "%s" VALUES (%s) ON CONFLICT (%s) DO UPDATE SET %s' % (
            name, ", ".join("?" * len(names)), keys,
            ", ".join('"%s" = excluded."%s"' % (c, c) for c in names if c not in key))
    return sql


def compact(v):
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def fetch(url, ctx):
    with urllib.request.urlopen(url, context=ctx, timeout=60) as r:
        return r.read()


def tweet_row(job, t):
    return (job, t["id"], t["full_text"], t["favorite_count"], t["retweet_count"],
            t["created_at"], compact(t["entities"]["hashtags"]), t["lang"])


def archive_rows(job, body, rows):
    doc = json.loads(body)
    rows["tweets"].extend(tweet_row(job, t) for t in doc["tweets"])
    rows["following"].extend((job, x["accountId"]) for x in doc["following"])


def graph_rows(job, body, rows):
    doc = json.loads(body)
    me = doc["account"]["accountId"]
    rows["following"].extend((job, me, x["accountId"]) for x in doc["following"])
    rows["followers"].extend((job, me, x["accountId"]) for x in doc["followers"])
    rows["tweets"].extend((job, t["id"], me, t["full_text"], t["favorite_count"],
                           t["created_at"]) for t in doc["tweets"])


def event_rows(job, body, rows):
    for line in body.splitlines():
        if not line.strip():
            continue
        e = json.loads(line)
        a, r = e["actor"], e["repo"]
        rows["events"].append((job, int(e["id"]), e["type"], a["id"], r["id"],
                               int(e["public"]), e["created_at"], compact(e["payload"])))
        rows["actors"].append((job, a["id"], a["login"], a["display_login"], a["url"],
                               a["avatar_url"]))
        rows["repos"].append((job, r["id"], r["name"], r["url"]))
        for c in e["payload"].get("commits", ()):
            rows["commits"].append((job, c["sha"], int(e["id"]), c["author"]["name"],
                                    c["author"]["email"], c["message"], int(c["distinct"])))


WORKLOADS = {"archives": (ARCHIVE_TABLES, archive_rows),
             "graph": (GRAPH_TABLES, graph_rows),
             "events": (EVENT_TABLES, event_rows)}


def dump_rows(workload, paths, out):
    """Every row the documents at `paths` hold, in document order, into a
    fresh SQLite database `out` (bench/netbench.py, before the rounds): per
    table of the workload a table of the same name, columns and types, _job
    the document's 1-based place in `paths`, no key and no index, so a key
    that comes again is a row again. rf_peer_insert_loop inserts these rows
    (its ROWS.db): issue 6's "the same rows in arrival order". Returns the
    number of rows."""
    tables, to_rows = WORKLOADS[workload]
    con = sqlite3.connect(out)
    total = 0
    try:
        with con:
            ins = {}
            for name, (cols, _) in tables.items():
                con.execute('CREATE TABLE "%s" (_job INTEGER, %s)' % (
                    name, ", ".join('"%s" %s' % c for c in cols)))
                ins[name] = 'INSERT INTO "%s" VALUES (%s)' % (
                    name, ", ".join("?" * (len(cols) + 1)))
            for job, path in enumerate(paths, 1):
                rows = {t: [] for t in tables}
                with open(path, "rb") as f:
                    to_rows(job, f.read(), rows)
                for t, batch in rows.items():
                    con.executemany(ins[t], batch)
                    total += len(batch)
    finally:
        con.close()
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", choices=sorted(WORKLOADS), default="archives")
    ap.add_argument("--urls", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--cacert", required=True)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--batch", type=int, default=10000)
    a = ap.parse_args()
    tables, to_rows = WORKLOADS[a.workload]
    with open(a.urls, encoding="utf-8") as f:
        urls = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    ctx = ssl.create_default_context(cafile=a.cacert)
    con = sqlite3.connect(a.db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    with con:
        upsert = create(con, tables)
    rows = {t: [] for t in tables}

    def flush():
        with con:
            for t, batch in rows.items():
                con.executemany(upsert[t], batch)
                batch.clear()

    with concurrent.futures.ThreadPoolExecutor(max_workers=a.workers) as pool:
        futures = {pool.submit(fetch, u, ctx): job for job, u in enumerate(urls, 1)}
        for fut in concurrent.futures.as_completed(futures):
            to_rows(futures[fut], fut.result(), rows)
            if sum(len(b) for b in rows.values()) >= a.batch:
                flush()
    flush()
    con.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # one line for the bench log, not a traceback
        print("peer_importer: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
