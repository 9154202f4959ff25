#!/usr/bin/env python3
"""scripts/count_results.py: tally meson test logs for scripts/test.sh.

    count_results.py LABEL=BUILD/meson-logs/testlog.json ...

Prints "PASSED FAILED SKIPPED" on stdout, and one line per failed test
(LABEL: name: result) on stderr. A missing log counts as one failure: the
build or the test run did not get that far.
"""

import json
import sys

PASSED = {"OK", "EXPECTEDFAIL"}
SKIPPED = {"SKIP"}


def main():
    passed = failed = skipped = 0
    for arg in sys.argv[1:]:
        label, _, path = arg.partition("=")
        try:
            with open(path, encoding="utf-8") as f:
                lines = [ln for ln in f if ln.strip()]
        except OSError as e:
            print("%s: no test log (%s)" % (label, e.strerror), file=sys.stderr)
            failed += 1
            continue
        for ln in lines:
            t = json.loads(ln)
            result = t.get("result", "ERROR")
            if result in PASSED:
                passed += 1
            elif result in SKIPPED:
                skipped += 1
            else:
                failed += 1
                print("%s: %s: %s" % (label, t.get("name", "?"), result), file=sys.stderr)
    print(passed, failed, skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
