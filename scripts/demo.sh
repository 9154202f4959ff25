#!/usr/bin/env bash
# scripts/demo.sh: on a fresh Debian 12 machine, install what is missing,
# build ringfill, and run the demo backfill (scripts/demo.py): ~300 generated
# account archives served by a private nginx over TLS on 127.0.0.1, fetched
# into demo-work/demo.db. Extra arguments go to demo.py (--count N, --work DIR).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/deps.sh

ensure_packages "${BASE_PACKAGES[@]}"

if [ ! -f build/build.ninja ]; then
	meson setup build
fi
ninja -C build

exec python3 scripts/demo.py --ringfill build/engine/ringfill "$@"
