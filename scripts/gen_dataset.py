#!/usr/bin/env python3
"""scripts/gen_dataset.py: a deterministic sample dataset shaped like a
social-network data export, for the demo and the integration tests.

    gen_dataset.py --out DIR --count N --seed S [--edge-scale F]

writes DIR/archives/<username>.json (one account each) and DIR/manifest.json
(each file's path, size, sha256 and its following/followers/tweets counts, so
tests check row counts without parsing the way ringfill does). Nothing else is
written. The same arguments give byte-identical files on any machine.

List lengths are heavy-tailed: most accounts have a few entries, some have
thousands, a few have none. Strings carry non-ASCII text, emoji, quotes,
backslashes and newlines; every 7th file is written with \\uXXXX escapes
(surrogate pairs for emoji) instead of raw UTF-8, so both forms are covered.

--edge-scale F makes the following and followers lists F times as long (the
scale and the cap of their heavy tail; default 1, the demo's and the tests'
small lists). Real exports are edge-heavy: the import in
shared/context/000_*.txt averaged about 1,260 following and 2,560 followers
per account; F = 50 gives about 630 and 800 (medians about 250 and 340, a
few accounts with tens of thousands), which `ringfill bench e2e` uses for its
`graph` workload, where inserting the rows outweighs downloading them.
"""

import argparse
import hashlib
import json
import os
import random
import sys

WORDS = ["river", "pixel", "maple", "quartz", "otter", "ember", "nova", "cobalt",
         "fjord", "lumen", "sable", "tundra", "willow", "zephyr", "basil", "cinder"]
PLACES = ["Zürich", "São Paulo", "東京", "Montréal", "Kraków", "Reykjavík", "",
          "Lagos", "Αθήνα", "Москва", "नई दिल्ली"]
BIO_BITS = ["coffee ☕ & code", "she/her", "« quoted » and \"double quoted\"",
            "line one\nline two", "tabs\there", "back\\slash", "🚀🔥 shipping",
            "日本語のテキスト", "emoji family 👨‍👩‍👧", "ünïcödé", "", "a/b <c> &d"]
TEXT_BITS = ["Just shipped a thing", "hello world", "¿qué tal?", "今日はいい天気ですね",
             "\"quoted\" words", "multi\nline\ntweet", "price: 5€ 🤑", "x < y && y > z",
             "naïve café", "🧵 1/n", "path C:\\temp\\new", "Ωμέγα", "tab\tseparated"]
TAGS = ["rust", "c", "sqlite", "io_uring", "tls", "json", "日本", "café", "100DaysOfCode"]
LANGS = ["en", "en", "en", "ja", "es", "de", "fr", "und"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def heavy_tail(rng, scale, cap, zero_p):
    """Mostly small, sometimes large (Pareto), a few zeros; at most cap."""
    if rng.random() < zero_p:
        return 0
    return min(cap, int(scale * rng.paretovariate(1.2)))


def twitter_time(rng):
    return "%s %s %02d %02d:%02d:%02d +0000 %d" % (
        rng.choice(DAYS), rng.choice(MONTHS), rng.randint(1, 28), rng.randint(0, 23),
        rng.randint(0, 59), rng.randint(0, 59), rng.randint(2008, 2023))


def account_id(rng):
    return str(rng.randrange(10**6, 10**19))


def tweet(rng):
    words = [rng.choice(TEXT_BITS) for _ in range(rng.randint(1, 4))]
    tags = rng.sample(TAGS, rng.choice([0, 0, 0, 1, 1, 2, 3]))
    text = " ".join(words)
    hashtags = []
    for tag in tags:
        start = len(text) + 1
        text += " #" + tag
        hashtags.append({"text": tag, "indices": [start, start + 1 + len(tag)]})
    return {
        "id": str(rng.randrange(10**17, 10**19)),
        "full_text": text,
        "favorite_count": heavy_tail(rng, 1, 1_000_000, 0.3),
        "retweet_count": heavy_tail(rng, 1, 100_000, 0.5),
        "created_at": twitter_time(rng),
        "entities": {"hashtags": hashtags},
        "lang": rng.choice(LANGS),
    }


def archive(rng, index, edge_scale):
    username = "%s_%s%d" % (rng.choice(WORDS), rng.choice(WORDS), index)
    bio = " ".join(rng.choice(BIO_BITS) for _ in range(rng.randint(1, 3)))
    return username, {
        "account": {"accountId": account_id(rng), "username": username,
                    "createdAt": "%d-%02d-%02dT%02d:%02d:%02d.000Z" % (
                        rng.randint(2007, 2023), rng.randint(1, 12), rng.randint(1, 28),
                        rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59))},
        "profile": {"bio": bio,
                    "website": rng.choice(["", "https://example.com/" + username]),
                    "location": rng.choice(PLACES)},
        "following": [{"accountId": account_id(rng)}
                      for _ in range(heavy_tail(rng, 3 * edge_scale, 5000 * edge_scale, 0.05))],
        "followers": [{"accountId": account_id(rng)}
                      for _ in range(heavy_tail(rng, 4 * edge_scale, 8000 * edge_scale, 0.05))],
        "tweets": [tweet(rng) for _ in range(heavy_tail(rng, 2, 2000, 0.08))],
    }


def generate(out, count, seed, edge_scale=1):
    rng = random.Random(seed)
    os.makedirs(os.path.join(out, "archives"), exist_ok=True)
    files = []
    totals = {"following": 0, "followers": 0, "tweets": 0, "bytes": 0}
    for i in range(count):
        username, doc = archive(rng, i, edge_scale)
        body = json.dumps(doc, ensure_ascii=(i % 7 == 6), indent=None).encode("utf-8")
        rel = "archives/%s.json" % username
        with open(os.path.join(out, rel), "wb") as f:
            f.write(body)
        entry = {"path": rel, "username": username, "bytes": len(body),
                 "sha256": hashlib.sha256(body).hexdigest(),
                 "following": len(doc["following"]), "followers": len(doc["followers"]),
                 "tweets": len(doc["tweets"])}
        files.append(entry)
        for k in ("following", "followers", "tweets", "bytes"):
            totals[k] += entry[k]
    manifest = {"seed": seed, "count": count, "edge_scale": edge_scale, "totals": totals,
                "files": files}
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return manifest


def main():
    ap = argparse.ArgumentParser(description="Write a deterministic sample dataset.")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--count", type=int, required=True, help="number of accounts")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--edge-scale", type=int, default=1,
                    help="following/followers lists this many times as long (default 1)")
    a = ap.parse_args()
    if a.count < 0:
        ap.error("--count must be >= 0")
    if a.edge_scale < 1:
        ap.error("--edge-scale must be >= 1")
    m = generate(a.out, a.count, a.seed, a.edge_scale)
    t = m["totals"]
    print("%d archives, %d bytes: %d following, %d followers, %d tweets -> %s" % (
        a.count, t["bytes"], t["following"], t["followers"], t["tweets"],
        os.path.join(a.out, "manifest.json")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
