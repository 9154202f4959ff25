#!/usr/bin/env bash
# scripts/test.sh: every test, the way CI runs them (.ci/run calls this).
#   1. build-test:  the normal build (asserts off, as users build it) with
#                   warnings as errors; all suites. The sanitizer builds below
#                   turn asserts on (-Db_ndebug=false).
#   2. build-asan:  clang, AddressSanitizer + UBSan; suites parse, net, store
#                   and integration (the real binary over real TLS, where
#                   sanitizers find the most; a few minutes on 2 cores).
#   3. build-tsan:  clang, ThreadSanitizer; the SPSC ring test run directly
#                   with a smaller item count (TSAN_RING_ITEMS, default 2000000).
#   4. build-fuzz:  clang libFuzzer targets (tests/fuzz/) with address + undefined
#                   sanitizers, each run FUZZ_SECONDS (default 60) from seeds in
#                   the JSON test data (below); a clean run is one pass, a crash (or a
#                   target that does not build) one failure.
#   5. instructions: build-test's `ringfill bench --instructions` (callgrind)
#                   against bench/baseline.json, at most INSTR_MAX_REGRESS
#                   (default 3) percent more instructions per case; one pass
#                   or one failure, skipped without valgrind.
# Ends with one line "N passed, N failed" (", N skipped" when any were) and
# exits non-zero when anything failed. Builds are reused when they exist.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/deps.sh

ensure_packages "${BASE_PACKAGES[@]}" "${TEST_PACKAGES[@]}"

# The parser tests and fuzzers read JSONTestSuite and the corpus from the
# workplace's shared data: $RINGFILL_JSON_DATA if set, else ../shared/data/json
# beside this tree, else beside the local repository this one was cloned from
# (a clone made elsewhere, e.g. git clone /work/main /tmp/x). Every build
# gets it as -Djson_data.
json_data="${RINGFILL_JSON_DATA:-}"
if [ -z "$json_data" ]; then
	json_data=../shared/data/json
	origin="$(git config --get remote.origin.url 2>/dev/null || true)"
	if [ ! -d "$json_data" ] && [ -n "$origin" ] && [ -d "$origin/../shared/data/json" ]; then
		json_data="$origin/../shared/data/json"
	fi
fi
json_data="$(realpath -m "$json_data")"
if [ -d "$json_data/JSONTestSuite" ] && [ -d "$json_data/corpus" ]; then
	echo "== JSON test data: $json_data"
else
	echo "test.sh: no JSONTestSuite/ and corpus/ in $json_data: the parser tests and" \
		"fuzzers will fail; set RINGFILL_JSON_DATA=DIR" >&2
fi

TSAN_RING_ITEMS="${TSAN_RING_ITEMS:-2000000}"
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
logs=()         # LABEL=testlog.json for count_results.py
extra_pass=0    # results outside meson (the TSan run)
extra_fail=0

# setup DIR [meson args...]: configure DIR unless it already is.
setup() {
	local dir="$1"
	shift
	if [ -f "$dir/build.ninja" ]; then
		return 0
	fi
	meson setup "$dir" "$@"
}

# meson_suite LABEL DIR [meson test args...]: build, run, remember the log.
# A failed setup or build leaves no log, which counts as a failure.
meson_suite() {
	local label="$1" dir="$2"
	shift 2
	rm -f "$dir/meson-logs/testlog.json"
	echo "== $label: meson test -C $dir $*"
	meson test -C "$dir" --print-errorlogs "$@" || true
	logs+=("$label=$dir/meson-logs/testlog.json")
}

echo "== build-test: normal build, warnings are errors"
if setup build-test -Djson_data="$json_data" --werror && ninja -C build-test; then
	meson_suite normal build-test
else
	logs+=("normal=build-test/meson-logs/testlog.json.missing")
fi

echo "== build-asan: clang, address + undefined sanitizers"
if CC=clang setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Db_ndebug=false \
	-Djson_data="$json_data" --werror \
	&& ninja -C build-asan; then
	meson_suite asan build-asan --suite parse --suite net --suite store --suite integration
else
	logs+=("asan=build-asan/meson-logs/testlog.json.missing")
fi

echo "== build-tsan: clang, thread sanitizer, the SPSC ring"
tsan_bin=build-tsan/tests/ring/test_ring
if CC=clang setup build-tsan -Db_sanitize=thread -Db_lundef=false -Db_ndebug=false \
	-Djson_data="$json_data" --werror \
	&& ninja -C build-tsan tests/ring/test_ring; then
	# Without ASLR where setarch allows it: some kernels' mmap randomisation
	# clashes with TSan's fixed shadow layout ("unexpected memory mapping").
	norand=()
	if setarch "$(uname -m)" -R true 2>/dev/null; then
		norand=(setarch "$(uname -m)" -R)
	fi
	echo "== tsan: $tsan_bin $TSAN_RING_ITEMS"
	if TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
		timeout 600 "${norand[@]}" "$tsan_bin" "$TSAN_RING_ITEMS"; then
		extra_pass=$((extra_pass + 1))
	else
		echo "tsan: $tsan_bin failed" >&2
		extra_fail=$((extra_fail + 1))
	fi
else
	echo "tsan: could not build $tsan_bin" >&2
	extra_fail=$((extra_fail + 1))
fi

# ---- 4. fuzzing -------------------------------------------------------------
# -fsanitize=fuzzer-no-link on every file gives libFuzzer coverage of parse/;
# the targets themselves link -fsanitize=fuzzer (tests/parse/meson.build).
# New inputs go to build-fuzz/fuzz-corpus/TARGET (kept between runs); the
# shared seed directories are only read. Crashing inputs are saved as
# build-fuzz/fuzz-artifacts/TARGET-crash-*.
echo "== build-fuzz: clang libFuzzer, ${FUZZ_SECONDS}s per target"
fuzz_targets=(fuzz_json_doc fuzz_json_ndjson fuzz_json_split)
fuzz_seeds=("$json_data/JSONTestSuite/test_parsing" "$json_data/corpus")
if CC=clang setup build-fuzz -Db_sanitize=address,undefined -Db_lundef=false -Db_ndebug=false \
	-Djson_data="$json_data" -Dc_args=-fsanitize=fuzzer-no-link --werror \
	&& ninja -C build-fuzz "${fuzz_targets[@]/#/tests/parse/}"; then
	mkdir -p build-fuzz/fuzz-artifacts
	for t in "${fuzz_targets[@]}"; do
		mkdir -p "build-fuzz/fuzz-corpus/$t"
		echo "== fuzz: $t -max_total_time=$FUZZ_SECONDS"
		if UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1" \
			timeout $((FUZZ_SECONDS + 300)) "build-fuzz/tests/parse/$t" \
			-max_total_time="$FUZZ_SECONDS" -max_len=16384 -print_final_stats=1 \
			-artifact_prefix="build-fuzz/fuzz-artifacts/$t-" \
			"build-fuzz/fuzz-corpus/$t" "${fuzz_seeds[@]}" >"build-fuzz/$t.log" 2>&1; then
			tail -n 3 "build-fuzz/$t.log"
			extra_pass=$((extra_pass + 1))
		else
			tail -n 40 "build-fuzz/$t.log" >&2
			echo "fuzz: $t failed (log: build-fuzz/$t.log)" >&2
			extra_fail=$((extra_fail + 1))
		fi
	done
else
	echo "fuzz: could not build ${fuzz_targets[*]}" >&2
	extra_fail=$((extra_fail + ${#fuzz_targets[@]}))
fi

# ---- 5. instruction-count gate --------------------------------------------------
# `ringfill bench --instructions` counts, under valgrind's callgrind, the
# instructions of the parse and ring hot paths on fixed generated inputs and
# compares them with the committed bench/baseline.json (made the same way from
# the default build, like build-test). Counts are exact for one binary;
# INSTR_MAX_REGRESS percent absorbs another gcc's code generation and still
# catches a real regression (docs/benchmarks.md, "Instruction counts"). One
# pass or one failure; skipped (and counted so) without valgrind. About a
# minute on 2 cores.
INSTR_MAX_REGRESS="${INSTR_MAX_REGRESS:-3}"
extra_skip=0
echo "== instructions: build-test/engine/ringfill bench --instructions, max ${INSTR_MAX_REGRESS}% over bench/baseline.json"
if ! command -v valgrind >/dev/null 2>&1; then
	echo "instructions: valgrind is not installed; instruction gate skipped" >&2
	extra_skip=$((extra_skip + 1))
elif [ -x build-test/engine/ringfill ] \
	&& timeout 600 build-test/engine/ringfill bench --instructions \
		--baseline bench/baseline.json --max-regress "$INSTR_MAX_REGRESS"; then
	extra_pass=$((extra_pass + 1))
else
	echo "instructions: regressed beyond ${INSTR_MAX_REGRESS}%, or could not run (see above)" >&2
	extra_fail=$((extra_fail + 1))
fi

echo "== summary"
read -r passed failed skipped < <(python3 scripts/count_results.py "${logs[@]}")
passed=$((passed + extra_pass))
failed=$((failed + extra_fail))
skipped=$((skipped + extra_skip))
line="$passed passed, $failed failed"
if [ "$skipped" -gt 0 ]; then
	line="$line, $skipped skipped"
fi
echo "$line"
[ "$failed" -eq 0 ]
