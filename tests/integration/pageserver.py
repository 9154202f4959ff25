#!/usr/bin/env python3
"""tests/integration/pageserver.py: a cursor-paginated HTTPS API for the
paginate source's tests (tests/integration/test_sources.py).

It holds ITEMS repos (deterministic from a seed) and serves them by cursor:

  /MODE/pages?limit=N[&cursor=C]  {"repos": [...N items...], "cursor": NEXT}
                                  (C "start" or absent: the first page)
  /repo/DID.json                  the repo document of one item (DID is
                                  percent-decoded from the path)

Modes (the first path segment):
  ok       the last page has no "cursor" key
  nullend  the last page has "cursor": null
  emptyend the last full page carries a cursor, the page after it is empty
  repeat   the third page's cursor is the second page's: a pagination loop
  flaky    the second page answers 503 (Retry-After: 0) on its first request
  slow     every page waits SLOW_S first (for kill -9 in the middle)
  baditem  the first page also holds an item without a "did" and one whose
           "did" is an object
  baditemflaky  the second page holds baditem's two items, and the third page
           answers 503 on its first request
  cap5     a page with a cursor (other than "start", the first page's) and
           a limit above 5 answers 400
  nulcursor the second page's cursor holds a NUL byte
  badcursor the second page's cursor is an object
  loopfirst the last page's cursor is "again", which serves the first page
           (byte for byte, so it repeats the first page under a new cursor);
           while PageServer.again_down is set, "again" answers 503
  repeatmid the third page's cursor is "alias", which serves the second page
           (a middle page repeated under a new cursor)
  loopfresh after the last page the chain starts over at the first items,
           every cursor of lap L ending in " L": no cursor and no page body
           ever repeats, only a page limit ends it

Cursors hold bytes that must be percent-encoded in a query ("c/2 &=?+%").
Every request is counted per path with its query (PageServer.hits). TLS
uses the harness's server certificate, so clients trust the test CA.
"""

import json
import random
import sys
import time
import urllib.parse
import os

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

SLOW_S = 0.3
MODES = ("ok", "nullend", "emptyend", "repeat", "flaky", "slow", "baditem", "badcursor",
         "loopfirst", "repeatmid", "loopfresh", "baditemflaky", "cap5", "nulcursor")
BAD_ITEMS = [{"rev": 1}, {"did": {"x": 1}}]


def make_items(count, seed):
    """The items: dids with bytes a URL must encode, and mixed field types."""
    rnd = random.Random(seed)
    items = []
    for i in range(count):
        items.append({
            "did": "did:plc:%04d/%s" % (i, rnd.choice(["a b", "x?y", "é", "p#q", "z"])),
            "rev": rnd.randrange(10 ** 9),
            "active": rnd.random() < 0.8,
            "head": None if i % 7 == 0 else "bafy%08x" % rnd.randrange(1 << 32),
        })
    return items


def repo_doc(item):
    """The document /repo/DID.json serves for an item."""
    rnd = random.Random(item["did"])
    return {
        "did": item["did"],
        "handle": "user%d.test" % rnd.randrange(10000),
        "records": [{"id": "%s#%d" % (item["did"], k), "n": rnd.randrange(1000),
                     "text": rnd.choice(["hi", "", "ünï", "a\"b"])}
                    for k in range(rnd.randrange(0, 5))],
    }


def cursor_of(offset):
    return "c/%d &=?+%%" % offset


def offset_of(cursor, limit):
    """The offset a cursor stands for; "start" and "again" are the first
    page's, "alias" the second's."""
    if cursor in ("start", "again"):
        return 0
    if cursor == "alias":
        return limit
    return int(cursor[2:].split(" ")[0])


def lap_of(cursor):
    """loopfresh: the lap a cursor belongs to (the first page's: 0)."""
    parts = cursor.split(" ")
    return int(parts[-1]) if cursor.startswith("c/") and len(parts) > 2 else 0


class Handler(harness.TlsHandler):
    def log_message(self, fmt, *args):
        pass

    def _send(self, code, obj, extra=()):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.hits[self.path] = srv.hits.get(self.path, 0) + 1
            hits = srv.hits[self.path]
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.split("/")
        if len(parts) == 3 and parts[1] == "repo" and parts[2].endswith(".json"):
            did = urllib.parse.unquote(parts[2][:-5])
            item = srv.by_did.get(did)
            if item is None:
                return self._send(404, {"error": "no such repo"})
            return self._send(200, repo_doc(item))
        if len(parts) != 3 or parts[2] != "pages" or parts[1] not in MODES:
            return self._send(404, {"error": "no such path"})
        mode = parts[1]
        q = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        limit = int(q.get("limit", ["10"])[0])
        cursors = q.get("cursor", [])
        if len(cursors) > 1:
            return self._send(400, {"error": "cursor given twice"})
        offset = offset_of(cursors[0], limit) if cursors else 0
        if mode == "loopfirst" and cursors == ["again"] and srv.again_down:
            return self._send(503, {"error": "try again"}, [("Retry-After", "0")])
        if mode == "slow":
            time.sleep(SLOW_S)
        if mode == "flaky" and offset == limit and hits == 1:
            return self._send(503, {"error": "try again"}, [("Retry-After", "0")])
        if mode == "cap5" and cursors and cursors[0] != "start" and limit > 5:
            return self._send(400, {"error": "limit above 5 with a cursor"})
        if mode == "baditemflaky" and offset == 2 * limit and hits == 1:
            return self._send(503, {"error": "try again"}, [("Retry-After", "0")])
        page = srv.items[offset:offset + limit]
        if (mode == "baditem" and offset == 0) or (mode == "baditemflaky" and offset == limit):
            page = page[:2] + BAD_ITEMS + page[2:]
        doc = {"repos": page}
        nxt = offset + limit
        if mode == "badcursor" and offset == limit:
            doc["cursor"] = {"next": cursor_of(nxt)}
        elif mode == "nulcursor" and offset == limit:
            doc["cursor"] = cursor_of(nxt) + "\u0000x"
        elif mode == "repeat" and offset == 2 * limit:
            doc["cursor"] = cursor_of(limit)
        elif mode == "repeatmid" and offset == 2 * limit:
            doc["cursor"] = "alias"
        elif mode == "loopfresh":
            lap = lap_of(cursors[0]) if cursors else 0
            more = nxt < len(srv.items)
            doc["cursor"] = "%s %d" % (cursor_of(nxt if more else 0), lap if more else lap + 1)
        elif mode == "loopfirst" and nxt >= len(srv.items):
            doc["cursor"] = "again"
        elif nxt < len(srv.items) or (mode == "emptyend" and page):
            doc["cursor"] = cursor_of(nxt)
        elif mode == "nullend":
            doc["cursor"] = None
        self._send(200, doc)


class PageServer(harness.TlsServer):
    """A threaded HTTPS server on a free loopback port; a context manager."""
    handler = Handler
    name = "pageserver"

    def __init__(self, pki, count, seed):
        super().__init__(pki)
        self.items = make_items(count, seed)

    @property
    def again_down(self):
        return self.httpd.again_down

    @again_down.setter
    def again_down(self, down):
        self.httpd.again_down = bool(down)

    def prepare(self, httpd):
        httpd.hits = {}
        httpd.items = self.items
        httpd.by_did = {it["did"]: it for it in self.items}
        httpd.again_down = False
