#!/usr/bin/env python3
"""bench/peer_importer.py: the peer of `ringfill bench e2e` (docs/benchmarks.md):
an importer written the way such importers usually are. A
concurrent.futures thread pool downloads every URL with urllib.request over
HTTPS (verified against --cacert), the main thread json.loads each body and
inserts its tweets and following entries with executemany in batches.

    peer_importer.py --urls FILE --db FILE --cacert CA [--workers N] [--batch N]

The tables have the shapes ringfill infers for `--rows '$.tweets[*]' --table
tweets` and `--rows '$.following[*]' --table following`: one column per
field, nested objects flattened with '_', arrays as compact JSON text, and
_job (here: the URL's 1-based line in FILE). The same SQLite settings as
ringfill (WAL, synchronous=NORMAL). Standard library only. Exit 0, or 1 with
the reason on stderr.
"""

import argparse
import concurrent.futures
import json
import sqlite3
import ssl
import sys
import urllib.request

TWEETS = ("CREATE TABLE tweets (_job INTEGER, id TEXT, full_text TEXT, favorite_count INTEGER,"
          " retweet_count INTEGER, created_at TEXT, entities_hashtags TEXT, lang TEXT)")
FOLLOWING = "CREATE TABLE following (_job INTEGER, accountId TEXT)"
INSERT_TWEET = "INSERT INTO tweets VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
INSERT_FOLLOWING = "INSERT INTO following VALUES (?, ?)"


def fetch(url, ctx):
    with urllib.request.urlopen(url, context=ctx, timeout=60) as r:
        return r.read()


def tweet_row(job, t):
    return (job, t["id"], t["full_text"], t["favorite_count"], t["retweet_count"],
            t["created_at"],
            json.dumps(t["entities"]["hashtags"], ensure_ascii=False, separators=(",", ":")),
            t["lang"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--urls", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--cacert", required=True)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--batch", type=int, default=10000)
    a = ap.parse_args()
    with open(a.urls, encoding="utf-8") as f:
        urls = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    ctx = ssl.create_default_context(cafile=a.cacert)
    con = sqlite3.connect(a.db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(TWEETS)
    con.execute(FOLLOWING)
    tweets, following = [], []

    def flush():
        with con:
            con.executemany(INSERT_TWEET, tweets)
            con.executemany(INSERT_FOLLOWING, following)
        tweets.clear()
        following.clear()

    with concurrent.futures.ThreadPoolExecutor(max_workers=a.workers) as pool:
        futures = {pool.submit(fetch, u, ctx): job for job, u in enumerate(urls, 1)}
        for fut in concurrent.futures.as_completed(futures):
            job = futures[fut]
            doc = json.loads(fut.result())
            tweets.extend(tweet_row(job, t) for t in doc["tweets"])
            following.extend((job, x["accountId"]) for x in doc["following"])
            if len(tweets) + len(following) >= a.batch:
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
