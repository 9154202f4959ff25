/* bench/peer_simdjson.cpp: the `parse` suite's peer. bench/suite_parse.c runs
 * it as a subprocess (no shell) on the same file and iteration count it
 * measured ringfill with, and reads its timings from stdout:
 *
 *   usage: rf_peer_simdjson MODE FILE ITERS RUNS [IMPL]
 *   MODE: dom (one document), dom-ndjson (parse_many), ondemand-ids
 *         ($.statuses[*].id), ondemand-names ($.statuses[*].user.screen_name),
 *         ondemand-ndjson-items (iterate_many; of each line, every element
 *         of an array or member's value of an object: `$[*]`),
 *         stage1 (On-Demand's iterate(): stage 1 alone, for the split of
 *         bench/parse_split.c)
 *   IMPL: dom modes only: the simdjson kernel to use (haswell, fallback, ...)
 *         instead of the one it picks at run time
 *   out:  "impl NAME" and "version X.Y.Z" once, "run SECONDS" per run (each
 *         run parses the file ITERS times), then "checksum N" (documents, id sum, name bytes,
 *         or for items string bytes plus one per other value);
 *         SECONDS are wall seconds, or the thread's CPU seconds when
 *         RINGFILL_BENCH_CLOCK=cpu (as suite_parse.c then times itself)
 *
 *   usage: rf_peer_simdjson validate|validate-ndjson FILE
 *   The minimal program the whole-process case times against `ringfill parse
 *   FILE`: load the file, parse it once with the DOM parser (parse_many for
 *   NDJSON, every document), exit 0 if valid. Prints nothing on success.
 *
 * Built only when libsimdjson-dev is found (bench/meson.build). Exit 0, 1 on
 * a parse error (printed to stderr), 2 on bad usage. */
#include <simdjson.h>

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

using namespace simdjson;

namespace {

const char *mode;

int fail(const char *what, error_code e)
{
	std::fprintf(stderr, "rf_peer_simdjson: %s: %s\n", what, error_message(e));
	return -1;
}

/* One value `$[*]` selects, read as suite_parse.c's items_visit reads it: a
 * string unescaped (its bytes counted), a number as a double, anything else
 * (a literal; a container, skipped) counted once. */
error_code add_item(ondemand::value v, uint64_t *check)
{
	ondemand::json_type t;
	error_code e = v.type().get(t);
	if (e)
		return e;
	if (t == ondemand::json_type::string) {
		std::string_view s;
		if ((e = v.get_string().get(s)))
			return e;
		*check += s.size();
		return SUCCESS;
	}
	if (t == ondemand::json_type::number) {
		double d; /* one past a double's range (1e400) is NUMBER_ERROR here, -ERANGE there */
		if ((e = v.get_double().get(d)) && e != NUMBER_ERROR)
			return e;
	}
	*check += 1;
	return SUCCESS;
}

/* Every line of NDJSON through iterate_many, `$[*]` of each. Its default
 * batch (1 MB) bounds a line: a longer one fails the peer, and the suite then
 * drops the ratio with a message. */
int items(ondemand::parser &op, const padded_string &json, uint64_t *check)
{
	ondemand::document_stream stream;
	error_code e = op.iterate_many(json).get(stream);
	if (e)
		return fail("iterate_many", e);
	for (auto doc : stream) {
		ondemand::json_type t;
		if ((e = doc.type().get(t)))
			return fail("on-demand line", e);
		if (t == ondemand::json_type::array) {
			ondemand::array a;
			if ((e = doc.get_array().get(a)))
				return fail("on-demand array", e);
			for (auto el : a) {
				ondemand::value v;
				if ((e = el.get(v)) || (e = add_item(v, check)))
					return fail("on-demand element", e);
			}
		} else if (t == ondemand::json_type::object) {
			ondemand::object o;
			if ((e = doc.get_object().get(o)))
				return fail("on-demand object", e);
			for (auto field : o) {
				ondemand::value v;
				if ((e = field.value().get(v)) || (e = add_item(v, check)))
					return fail("on-demand member", e);
			}
		}
	}
	return 0;
}

/* One pass over the document in the chosen mode; adds to *check. */
int pass(dom::parser &dp, ondemand::parser &op, const padded_string &json, uint64_t *check)
{
	if (!std::strcmp(mode, "dom")) {
		dom::element doc;
		error_code e = dp.parse(json).get(doc);
		if (e)
			return fail("dom parse", e);
		*check += 1;
	} else if (!std::strcmp(mode, "dom-ndjson")) {
		dom::document_stream stream;
		error_code e = dp.parse_many(json).get(stream);
		if (e)
			return fail("parse_many", e);
		for (auto doc : stream) {
			if (doc.error())
				return fail("parse_many document", doc.error());
			*check += 1;
		}
	} else if (!std::strcmp(mode, "ondemand-ndjson-items")) {
		return items(op, json, check);
	} else if (!std::strcmp(mode, "stage1")) {
		/* On-Demand's iterate() runs stage 1 over the whole document
		 * and walks nothing: rf_parse_split's stage-1 peer. */
		ondemand::document doc;
		error_code e = op.iterate(json).get(doc);
		if (e)
			return fail("on-demand iterate", e);
		*check += 1;
	} else {
		bool names = !std::strcmp(mode, "ondemand-names");
		ondemand::document doc;
		ondemand::array statuses;
		error_code e = op.iterate(json).get(doc);
		if (e || (e = doc["statuses"].get_array().get(statuses)))
			return fail("on-demand statuses", e);
		for (auto item : statuses) {
			ondemand::object s;
			if ((e = item.get_object().get(s)))
				return fail("on-demand status", e);
			if (names) {
				std::string_view name;
				if ((e = s["user"]["screen_name"].get_string().get(name)))
					return fail("on-demand screen_name", e);
				*check += name.size();
			} else {
				uint64_t id;
				if ((e = s["id"].get_uint64().get(id)))
					return fail("on-demand id", e);
				*check += id;
			}
		}
	}
	return 0;
}

/* The validate modes: as little as a program that checks a file can do. */
int validate(bool ndjson, const char *file)
{
	padded_string json;
	error_code e = padded_string::load(file).get(json);
	if (e) {
		fail(file, e);
		return 1;
	}
	dom::parser dp;
	if (!ndjson) {
		dom::element doc;
		return dp.parse(json).get(doc) ? 1 : 0;
	}
	dom::document_stream stream;
	if (dp.parse_many(json).get(stream))
		return 1;
	for (auto doc : stream)
		if (doc.error())
			return 1;
	return 0;
}

/* Seconds on the clock suite_parse.c uses too (RINGFILL_BENCH_CLOCK). */
double now_s(bool cpu)
{
	if (!cpu)
		return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
			.count();
	timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

} // namespace

int main(int argc, char **argv)
{
	if (argc == 3 && (!std::strcmp(argv[1], "validate") || !std::strcmp(argv[1], "validate-ndjson")))
		return validate(argv[1][8] == '-', argv[2]);
	if (argc != 5 && argc != 6) {
		std::fprintf(stderr, "usage: rf_peer_simdjson MODE FILE ITERS RUNS [IMPL]\n");
		return 2;
	}
	mode = argv[1];
	unsigned long iters = std::strtoul(argv[3], nullptr, 10);
	unsigned long runs = std::strtoul(argv[4], nullptr, 10);
	const char *known[] = {"dom",    "dom-ndjson", "ondemand-ids", "ondemand-names",
	                       "ondemand-ndjson-items", "stage1"};
	bool ok = false;
	for (const char *k : known)
		ok = ok || !std::strcmp(mode, k);
	if (!ok || iters == 0 || runs == 0) {
		std::fprintf(stderr, "rf_peer_simdjson: bad mode or count\n");
		return 2;
	}
	padded_string json;
	error_code e = padded_string::load(argv[2]).get(json);
	if (e) {
		fail(argv[2], e);
		return 1;
	}
	/* DOM dispatches at run time; On-Demand is compiled for the build's
	 * target (bench/meson.build passes -march=native when it can). */
	bool od = !std::strncmp(mode, "ondemand", 8);
	if (argc == 6) {
		const implementation *impl = get_available_implementations()[argv[5]];
		if (od || !impl || !impl->supported_by_runtime_system()) {
			std::fprintf(stderr, "rf_peer_simdjson: implementation %s not available%s\n",
			             argv[5], od ? " for On-Demand" : "");
			return 2;
		}
		get_active_implementation() = impl;
	}
	std::printf("impl %s\n", od ? SIMDJSON_STRINGIFY(SIMDJSON_BUILTIN_IMPLEMENTATION)
	                            : get_active_implementation()->name().c_str());
	/* The enum, not SIMDJSON_VERSION: some releases define that as a string. */
	std::printf("version %d.%d.%d\n", int(SIMDJSON_VERSION_MAJOR), int(SIMDJSON_VERSION_MINOR),
	            int(SIMDJSON_VERSION_REVISION));
	dom::parser dp;
	ondemand::parser op;
	uint64_t check = 0;
	const char *clock = std::getenv("RINGFILL_BENCH_CLOCK");
	bool cpu = clock && !std::strcmp(clock, "cpu");
	for (unsigned long r = 0; r < runs; r++) {
		double t0 = now_s(cpu);
		for (unsigned long i = 0; i < iters; i++) {
			check = 0; /* the checksum of one pass, as the parent computes it */
			if (pass(dp, op, json, &check) != 0)
				return 1;
		}
		std::printf("run %.9f\n", now_s(cpu) - t0);
	}
	std::printf("checksum %" PRIu64 "\n", check);
	return 0;
}
