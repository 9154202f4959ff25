# scripts/deps.sh: sourced by demo.sh and test.sh. ensure_packages PKG...
# installs the Debian packages that are missing (checked with dpkg -s), with
# apt-get through sudo when not root. Nothing is installed when all are there.
ensure_packages() {
	local missing=() pkg
	for pkg in "$@"; do
		if ! dpkg -s "$pkg" >/dev/null 2>&1; then
			missing+=("$pkg")
		fi
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		return 0
	fi
	echo "installing: ${missing[*]}"
	local sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		sudo=(sudo)
	fi
	"${sudo[@]}" apt-get update
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

BASE_PACKAGES=(meson ninja-build pkg-config gcc liburing-dev libssl-dev libsqlite3-dev zlib1g-dev libjemalloc-dev
	libcmocka-dev nginx-light openssl python3 ca-certificates)

# Only the tests need these: chromium renders `ringfill bench --report` pages
# headless (tests/bench/test_bench_report.py, skipped without it).
TEST_PACKAGES=(clang libclang-rt-14-dev valgrind chromium)
