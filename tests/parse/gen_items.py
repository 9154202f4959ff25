#!/usr/bin/env python3
"""tests/parse/gen_items.py: writes a {"meta":{...},"items":[...]} JSON document
of about BYTES bytes to FILE, for measuring `ringfill parse --rows '$.items[*]'`
(docs/parse.md, "Streaming"). Deterministic; records are written 10,000 at a
time, so the document is never held whole. Prints the number of records.

usage: gen_items.py FILE BYTES
"""
import sys

RECORD = ('{"id":%d,"name":"item \\"%d\\" \\u00e9t\\u00e9","price":%d.%02d,'
          '"tags":["alpha","beta","gamma"],"active":%s,'
          '"nested":{"x":%d,"y":[1,2,3],"z":null}}')


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    path, target = sys.argv[1], int(sys.argv[2])
    n = written = 0
    with open(path, 'w') as f:
        f.write('{"meta":{"source":"generated","version":3,'
                '"note":"ringfill streaming benchmark"},\n"items":[\n')
        while written < target:
            batch = ',\n'.join(RECORD % (i, i, i % 1000, i % 100,
                                         'true' if i % 2 else 'false', i % 7)
                               for i in range(n, n + 10000))
            if n:
                batch = ',\n' + batch
            n += 10000
            f.write(batch)
            written += len(batch)
        f.write('\n],"tail":{"records":%d}}\n' % n)
    print(n)


if __name__ == '__main__':
    main()
