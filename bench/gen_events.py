#!/usr/bin/env python3
"""bench/gen_events.py: the `e2e` suite's GitHub-event-like NDJSON workload
(docs/benchmarks.md, issue 7): PAGES files of about PAGE_MB megabytes, one
event per line, deterministic for a seed.

    gen_events.py --out DIR --pages N --page-mb MB [--seed S]

Writes DIR/events/page-NNNN.ndjson and DIR/manifest.json (files, their sizes
and sha256, and the row counts each table of the suite's job file must end up
with). Events are PushEvent (with 1-20 commits, heavy-tailed), WatchEvent,
IssuesEvent, CreateEvent, PullRequestEvent and ForkEvent, by a pool of actors
on a pool of repositories chosen with heavy-tailed popularity, so the same
actor and repository appear in many events on many pages: their tables are
upserts of the same keys again and again. An actor's or repository's fields
depend only on its id, so the final rows do not depend on arrival order.
Texts mix ASCII, multi-byte UTF-8, quotes, newlines and backslashes; every
7th page is written with \\uXXXX escapes for everything beyond ASCII.
Standard library only.
"""

import argparse
import functools
import hashlib
import json
import os
import random
import sys

TYPES = [("PushEvent", 50), ("WatchEvent", 15), ("IssuesEvent", 10), ("CreateEvent", 10),
         ("PullRequestEvent", 10), ("ForkEvent", 5)]
WORDS = ["fix", "add", "update", "refactor", "parser", "loop", "tests", "docs", "typo",
         "bump", "release", "cache", "retry", "écrire", "größe", "データ", "修复", "тест",
         "naïve", "😀", "emoji ✓", "tab\there", "quote \"q\"", "back\\slash", "new\nline"]
NAMES = ["Ada", "Linus", "Grace", "Jürgen", "Zoë", "Łukasz", "Mårten", "Ngọc", "李雷",
         "Ολγα", "Søren", "José", "Ивана", "Björn", "Chloé", "Ken"]
ACTORS_PER_MB = 400
REPOS_PER_MB = 300
EVENT_ID_BASE = 26_000_000_000


def sha(rng):
    return "%040x" % rng.getrandbits(160)


def text(rng, lo, hi):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


@functools.lru_cache(maxsize=None)
def actor(i):
    """Actor i: every field a function of i, so any copy of it is the same
    (json.dumps does not change the dict)."""
    r = random.Random(i * 7919 + 1)
    login = "%s-%s%d" % (r.choice(NAMES).lower(), r.choice(WORDS[:12]), i)
    return {"id": 1000 + i, "login": login, "display_login": login, "gravatar_id": "",
            "url": "https://api.github.invalid/users/" + login,
            "avatar_url": "https://avatars.github.invalid/u/%d?" % (1000 + i)}


@functools.lru_cache(maxsize=None)
def repo(i):
    r = random.Random(i * 104729 + 2)
    name = "%s/%s-%s" % (r.choice(NAMES).lower(), r.choice(WORDS[:12]), i)
    return {"id": 50_000 + i, "name": name, "url": "https://api.github.invalid/repos/" + name}


def popular(rng, n):
    """An index below n, heavy-tailed: a few are chosen very often."""
    return min(n - 1, int(rng.paretovariate(1.1)) - 1) if rng.random() < 0.6 \
        else rng.randrange(n)


def payload(rng, kind, stats):
    if kind == "PushEvent":
        n = min(20, int(rng.paretovariate(1.5)))
        commits = []
        for _ in range(n):
            who = rng.choice(NAMES)
            commits.append({"sha": sha(rng),
                            "author": {"email": "%s@example.invalid" % who.lower(),
                                       "name": who},
                            "message": text(rng, 1, 12), "distinct": rng.random() < 0.9,
                            "url": "https://api.github.invalid/commits/x"})
        stats["commits"] += n
        return {"push_id": rng.getrandbits(40), "size": n, "distinct_size": n,
                "ref": "refs/heads/" + rng.choice(["main", "master", "dev"]),
                "head": commits[-1]["sha"], "before": sha(rng), "commits": commits}
    if kind == "WatchEvent":
        return {"action": "started"}
    if kind == "IssuesEvent":
        return {"action": rng.choice(["opened", "closed"]),
                "issue": {"id": rng.getrandbits(32), "number": rng.randint(1, 9999),
                          "title": text(rng, 2, 8), "body": text(rng, 0, 60),
                          "labels": [{"name": rng.choice(WORDS)} for _ in
                                     range(rng.randint(0, 3))],
                          "comments": rng.randint(0, 40)}}
    if kind == "CreateEvent":
        return {"ref": rng.choice(["main", "v1.%d" % rng.randint(0, 30)]),
                "ref_type": rng.choice(["branch", "tag"]), "master_branch": "main",
                "description": text(rng, 0, 10) or None, "pusher_type": "user"}
    if kind == "PullRequestEvent":
        return {"action": "opened", "number": rng.randint(1, 5000),
                "pull_request": {"id": rng.getrandbits(32), "title": text(rng, 2, 8),
                                 "body": text(rng, 0, 80), "draft": rng.random() < 0.2,
                                 "additions": rng.randint(0, 4000),
                                 "deletions": rng.randint(0, 4000)}}
    return {"forkee": {"id": rng.getrandbits(32), "full_name": "x/" + text(rng, 1, 1),
                       "private": False, "stargazers_count": rng.randint(0, 100)}}


def generate(out, pages, page_mb, seed):
    rng = random.Random(seed)
    kinds = [k for k, w in TYPES for _ in range(w)]
    n_actors = max(50, int(pages * page_mb * ACTORS_PER_MB))
    n_repos = max(50, int(pages * page_mb * REPOS_PER_MB))
    os.makedirs(os.path.join(out, "events"), exist_ok=True)
    stats = {"events": 0, "commits": 0}
    seen_actors, seen_repos, files = set(), set(), []
    eid = EVENT_ID_BASE
    width = max(4, len(str(pages - 1)))
    for p in range(pages):
        rel = "events/page-%0*d.ndjson" % (width, p)
        lines, size = [], 0
        while size < page_mb * 1_000_000:
            a, r = popular(rng, n_actors), popular(rng, n_repos)
            seen_actors.add(a)
            seen_repos.add(r)
            kind = rng.choice(kinds)
            eid += rng.randint(1, 50)
            ev = {"id": str(eid), "type": kind, "actor": actor(a), "repo": repo(r),
                  "payload": payload(rng, kind, stats), "public": True,
                  "created_at": "2023-%02d-%02dT%02d:%02d:%02dZ" % (
                      rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                      rng.randint(0, 59), rng.randint(0, 59))}
            line = json.dumps(ev, ensure_ascii=(p % 7 == 6), separators=(",", ":"))
            lines.append(line)
            size += len(line.encode("utf-8")) + 1
            stats["events"] += 1
        body = ("\n".join(lines) + "\n").encode("utf-8")
        with open(os.path.join(out, rel), "wb") as f:
            f.write(body)
        files.append({"path": rel, "bytes": len(body), "lines": len(lines),
                      "sha256": hashlib.sha256(body).hexdigest()})
    # What each table holds after the backfill (upserts collapse repeated
    # keys), and how many rows the documents hold in all (what a loader writes).
    totals = {"events": stats["events"], "actors": len(seen_actors), "repos": len(seen_repos),
              "commits": stats["commits"], "bytes": sum(f["bytes"] for f in files)}
    rows_in_documents = 3 * stats["events"] + stats["commits"]
    manifest = {"seed": seed, "pages": pages, "page_mb": page_mb, "totals": totals,
                "rows_in_documents": rows_in_documents, "files": files}
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    return manifest


def main():
    ap = argparse.ArgumentParser(description="Write GitHub-event-like NDJSON pages.")
    ap.add_argument("--out", required=True)
    ap.add_argument("--pages", type=int, required=True)
    ap.add_argument("--page-mb", type=float, required=True)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.pages < 1 or not a.page_mb > 0:
        ap.error("--pages must be >= 1 and --page-mb > 0")
    m = generate(a.out, a.pages, a.page_mb, a.seed)
    print("%d pages, %d bytes: %s" % (a.pages, m["totals"]["bytes"], json.dumps(m["totals"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
