/* engine/options.c: parse and check `ringfill run` flags (engine/options.h).
 * Every default and limit here is listed by `ringfill --help` and in
 * docs/ringfill.md. */
#include "engine/options.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "parse/json.h"
#include "store/writer.h"

void options_usage(FILE *f)
{
	fputs(
	    "usage: ringfill run [JOB.json] [--urls FILE] [options]\n"
	    "       ringfill status [--json] DB\n"
	    "       ringfill retry DB [--all]   (failed transient jobs, or --all, back to pending)\n"
	    "       ringfill parse [--select PATH]... [--on-demand] [--rows PATH [--count]]\n"
	    "                      [--ndjson] FILE   (ringfill parse --help)\n"
	    "       ringfill bench [SUITE...] [--runs N] [--json FILE] [--baseline FILE\n"
	    "                      --max-regress PCT]   (ringfill bench --help)\n"
	    "       ringfill --help | --version\n"
	    "\n"
	    "run: fetch every URL of FILE over HTTPS and load the JSON records into SQLite.\n"
	    "Running the same command again resumes: finished jobs are never fetched twice.\n"
	    "  JOB.json            a job file: source, tables with columns, keys and modes,\n"
	    "                      http settings (docs/jobfile.md); flags override it\n"
	    "  --urls FILE         one https URL per line ('#' comments and blank lines are\n"
	    "                      ignored), or NDJSON lines {\"url\": ..., \"key\": ...}\n"
	    "  --db FILE           SQLite database for job state and data (ringfill.db)\n"
	    "  --raw DIR           keep raw bodies under DIR/HOST/NAME (NAME.part until complete)\n"
	    "  --download-only     with --raw: store bodies, parse nothing\n"
	    "  --direct            with --download-only: write raw files with O_DIRECT\n"
	    "  --rows PATH         JSONPath of the records in each document ('$')\n"
	    "                      subset: $ .name ['name'] [N] [*]\n"
	    "  --table NAME        table for the records ('records'); columns are inferred\n"
	    "  --ndjson            bodies are newline-delimited JSON (auto for .ndjson/.jsonl\n"
	    "                      paths and application/x-ndjson)\n"
	    "  --concurrency N     requests in flight (256, 1..65536)\n"
	    "  --per-host N        connections per host (64)\n"
	    "  --cacert FILE       CA bundle (default: the system store). Verification is\n"
	    "                      always on.\n"
	    "  --header 'N: V'     extra request header; $VAR and ${VAR} are expanded from the\n"
	    "                      environment; header values are never logged\n"
	    "  --retries N         attempts before a transient failure is final (5)\n"
	    "  --retry-base S      backoff base in seconds (1); full jitter, doubling\n"
	    "  --retry-max S       backoff cap in seconds (60); also caps Retry-After\n"
	    "  --timeout S         per-phase deadline: connect, first byte, idle (30)\n"
	    "  --max-body BYTES    largest body accepted (536870912); suffixes K M G\n"
	    "  --commit-rows N     commit after this many rows (50000)\n"
	    "  --commit-ms MS      or after this many milliseconds (500)\n"
	    "  --db-timeout S      how long to wait for another process's write lock on the\n"
	    "                      database before stopping with exit 3 (60)\n"
	    "  --checkpoint-records N  a streamed NDJSON body checkpoints every N records\n"
	    "                      (1000) or 16 MiB of rows, and resumes from there (a\n"
	    "                      single document: every 1 MiB of rows)\n"
	    "  --loops N           loop threads (1: only one in this version)\n"
	    "  --dry-run           print what would be fetched; change nothing\n"
	    "  --quiet | --progress | --log-json   output: none, live line, JSON lines\n"
	    "\n"
	    "environment: HTTPS_PROXY=http://[user:pass@]host:port tunnels every request\n"
	    "through the proxy with CONNECT (TLS stays end to end); NO_PROXY=a.com,b.org\n"
	    "(host suffixes, or *) bypasses it\n"
	    "\n"
	    "exit codes: 0 all jobs done; 1 some jobs failed for good; 2 usage or input\n"
	    "file error; 3 fatal (database, disk); 130/143 interrupted (resumable)\n",
	    f);
}

static int bad(const char *flag, const char *val, const char *why)
{
	fprintf(stderr, "ringfill run: %s '%s': %s (see ringfill --help)\n", flag, val, why);
	return 2;
}

static int parse_u32(const char *flag, const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || !isdigit((unsigned char)*s) || v < lo || v > hi) {
		char why[64];
		snprintf(why, sizeof why, "expected a whole number from %u to %u", lo, hi);
		return bad(flag, s, why);
	}
	*out = (uint32_t)v;
	return 0;
}

static int parse_secs(const char *flag, const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
		return bad(flag, s, "expected seconds, e.g. 0.5 or 30");
	*out = v;
	return 0;
}

static int parse_bytes(const char *flag, const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	uint64_t mult = 1;
	if (*end == 'K' || *end == 'k')
		mult = 1ull << 10, end++;
	else if (*end == 'M' || *end == 'm')
		mult = 1ull << 20, end++;
	else if (*end == 'G' || *end == 'g')
		mult = 1ull << 30, end++;
	if (errno || end == s || *end || !isdigit((unsigned char)*s) || v == 0 ||
	    v > (uint64_t)JSON_DOC_BYTES_MAX / mult)
		return bad(flag, s,
		           "expected a size from 1 byte to 4294967280 (4G less 16), e.g. 512M or 4095M");
	*out = v * mult;
	return 0;
}

/* A header refused: only its name is printed (h up to name_end: the first
 * ':', or the first byte a name cannot hold; nothing when NULL or empty),
 * never its value, which may be a secret. */
static int bad_header(const char *from, const char *h, const char *name_end, const char *why)
{
	if (name_end && name_end > h)
		fprintf(stderr, "ringfill run: %s: header '%.*s': %s (its value is not printed; see "
		        "ringfill --help)\n", from, (int)(name_end - h), h, why);
	else
		fprintf(stderr, "ringfill run: %s: header: %s (its text is not printed; see ringfill "
		        "--help)\n", from, why);
	return 2;
}

/* Appends "Name: value\r\n" with $VAR / ${VAR} expanded from the environment.
 * A missing variable is an error: sending an empty token silently would be
 * worse. Neither the value nor its expansion is ever printed. */
int options_add_header(run_opts_t *o, const char *from, const char *h)
{
	const char *colon = strchr(h, ':');
	if (!colon || colon == h)
		return bad_header(from, h, NULL, "expected 'Name: value'");
	for (const char *p = h; p < colon; p++)
		if (!isgraph((unsigned char)*p)) /* the name as far as it goes: what follows may
		                                  * be a token whose ':' was taken for the name's */
			return bad_header(from, h, p, "bad character in header name after this");
	char *dst = o->headers + o->headers_len;
	char *lim = o->headers + sizeof o->headers - 3; /* room for CRLF and NUL */
	for (const char *p = h; *p; p++) {
		if (*p == '\r' || *p == '\n')
			return bad_header(from, h, colon, "header contains a line break");
		if (*p == '$' && (p[1] == '{' || isalpha((unsigned char)p[1]) || p[1] == '_')) {
			char name[128];
			size_t n = 0;
			int braced = p[1] == '{';
			const char *q = p + 1 + braced;
			while ((isalnum((unsigned char)*q) || *q == '_') && n < sizeof name - 1)
				name[n++] = *q++;
			name[n] = 0;
			if (isalnum((unsigned char)*q) || *q == '_')
				return bad_header(from, h, colon, "environment variable name longer than 127 "
				                  "characters");
			if (braced && *q++ != '}')
				return bad_header(from, h, colon, "unterminated ${VAR}");
			const char *val = getenv(name);
			if (!val) {
				fprintf(stderr, "ringfill run: %s: environment variable %s is not set\n", from,
				        name);
				return 2;
			}
			size_t vl = strlen(val);
			if (strpbrk(val, "\r\n"))
				return bad(from, name, "variable contains a line break");
			if (dst + vl > lim)
				return bad(from, "...", "headers too long");
			memcpy(dst, val, vl);
			dst += vl;
			p = q - 1;
			continue;
		}
		if (dst >= lim)
			return bad(from, "...", "headers too long");
		*dst++ = *p;
	}
	*dst++ = '\r';
	*dst++ = '\n';
	*dst = 0;
	o->headers_len = (size_t)(dst - o->headers);
	return 0;
}

bool options_has_header(const run_opts_t *o, const char *name, size_t name_len)
{
	for (const char *p = o->headers; *p;) {
		const char *colon = strchr(p, ':');
		if (colon && (size_t)(colon - p) == name_len && !strncasecmp(p, name, name_len))
			return true;
		const char *eol = strstr(p, "\r\n");
		if (!eol)
			break;
		p = eol + 2;
	}
	return false;
}

enum {
	O_URLS = 256, O_DB, O_RAW, O_ROWS, O_TABLE, O_CACERT, O_NDJSON, O_DOWNLOAD_ONLY,
	O_DRY_RUN, O_CONCURRENCY, O_PER_HOST, O_RETRIES, O_RETRY_BASE, O_RETRY_MAX,
	O_TIMEOUT, O_MAX_BODY, O_COMMIT_ROWS, O_COMMIT_MS, O_QUIET, O_PROGRESS, O_LOG_JSON,
	O_HEADER, O_LOOPS, O_DIRECT, O_DB_TIMEOUT, O_HELP, O_CKPT_RECORDS,
};

static const struct option run_longopts[] = {
	{"urls", required_argument, 0, O_URLS},
	{"db", required_argument, 0, O_DB},
	{"raw", required_argument, 0, O_RAW},
	{"rows", required_argument, 0, O_ROWS},
	{"table", required_argument, 0, O_TABLE},
	{"cacert", required_argument, 0, O_CACERT},
	{"ndjson", no_argument, 0, O_NDJSON},
	{"download-only", no_argument, 0, O_DOWNLOAD_ONLY},
	{"dry-run", no_argument, 0, O_DRY_RUN},
	{"concurrency", required_argument, 0, O_CONCURRENCY},
	{"per-host", required_argument, 0, O_PER_HOST},
	{"retries", required_argument, 0, O_RETRIES},
	{"retry-base", required_argument, 0, O_RETRY_BASE},
	{"retry-max", required_argument, 0, O_RETRY_MAX},
	{"timeout", required_argument, 0, O_TIMEOUT},
	{"max-body", required_argument, 0, O_MAX_BODY},
	{"checkpoint-records", required_argument, 0, O_CKPT_RECORDS},
	{"commit-rows", required_argument, 0, O_COMMIT_ROWS},
	{"commit-ms", required_argument, 0, O_COMMIT_MS},
	{"quiet", no_argument, 0, O_QUIET},
	{"progress", no_argument, 0, O_PROGRESS},
	{"log-json", no_argument, 0, O_LOG_JSON},
	{"header", required_argument, 0, O_HEADER},
	{"loops", required_argument, 0, O_LOOPS},
	{"direct", no_argument, 0, O_DIRECT},
	{"db-timeout", required_argument, 0, O_DB_TIMEOUT},
	{"help", no_argument, 0, O_HELP},
	{0, 0, 0, 0},
};

static void defaults(run_opts_t *o)
{
	memset(o, 0, sizeof *o);
	o->db = "ringfill.db";
	o->rows = "$";
	o->table = "records";
	o->concurrency = 256;
	o->per_host = 64;
	o->retries = 5;
	o->retry_base_s = 1.0;
	o->retry_max_s = 60.0;
	o->timeout_s = 30.0;
	o->body_bytes_max = 512ull << 20;
	o->commit_rows = WRITER_COMMIT_ROWS_DEFAULT;
	o->commit_ms = WRITER_COMMIT_MS_DEFAULT;
	o->db_timeout_s = -1.0; /* not given: $RINGFILL_DB_TIMEOUT, else 60 s (store.h) */
	o->ckpt_records = 1000; /* small enough that the writer works while a page streams in */
}

/* The options that take a number or a flag; split out to keep the switch
 * readable. Returns 0, 2 on a usage error, -1 when c is not one of them. */
static int parse_value_opt(run_opts_t *o, int c, const char *name, const char *v)
{
	uint32_t loops;
	switch (c) {
	case O_CONCURRENCY:
		o->set |= OPT_SET_CONCURRENCY;
		return parse_u32(name, v, 1, 65536, &o->concurrency);
	case O_PER_HOST:
		o->set |= OPT_SET_PER_HOST;
		return parse_u32(name, v, 1, 65536, &o->per_host);
	case O_RETRIES:
		o->set |= OPT_SET_RETRIES;
		return parse_u32(name, v, 1, 1000, &o->retries);
	case O_RETRY_BASE: return parse_secs(name, v, 0.0, 86400.0, &o->retry_base_s);
	case O_RETRY_MAX: return parse_secs(name, v, 0.0, 86400.0, &o->retry_max_s);
	case O_TIMEOUT:
		o->set |= OPT_SET_TIMEOUT;
		return parse_secs(name, v, 0.01, 86400.0, &o->timeout_s);
	case O_MAX_BODY: return parse_bytes(name, v, &o->body_bytes_max);
	case O_DB_TIMEOUT: return parse_secs(name, v, 0.0, 86400.0, &o->db_timeout_s);
	case O_COMMIT_ROWS: return parse_u32(name, v, 1, 100000000, &o->commit_rows);
	case O_COMMIT_MS: return parse_u32(name, v, 1, 3600000, &o->commit_ms);
	case O_CKPT_RECORDS: return parse_u32(name, v, 1, 100000000, &o->ckpt_records);
	case O_HEADER: return options_add_header(o, "--header", v);
	case O_LOOPS:
		if (parse_u32(name, v, 1, 64, &loops))
			return 2;
		if (loops != 1)
			return bad(name, v, "only one loop thread is supported in this version");
		return 0;
	default: return -1;
	}
}

int options_parse_run(int argc, char **argv, run_opts_t *o)
{
	defaults(o);
	optind = 1;
	opterr = 0;
	for (;;) {
		int idx = 0;
		/* "-:": positional arguments in place, and a missing value told
		 * apart (':') from an unknown option ('?'; optopt is set for both). */
		int c = getopt_long(argc, argv, "-:h", run_longopts, &idx);
		if (c == -1)
			break;
		if (c == 'h')
			c = O_HELP;
		if (c == '?' || c == ':') {
			const char *arg = argv[optind - 1];
			fprintf(stderr, "ringfill run: %s '%s' (see ringfill --help)\n",
			        c == ':' ? "option needs a value" : "unknown option", arg);
			return 2;
		}
		if (c == 1) { /* "-": a positional argument, in place */
			if (o->jobfile) {
				fprintf(stderr, "ringfill run: unexpected argument '%s' (one job file only)\n",
				        optarg);
				return 2;
			}
			o->jobfile = optarg;
			continue;
		}
		const char *name = run_longopts[idx].name;
		switch (c) {
		case O_URLS: o->urls = optarg, o->set |= OPT_SET_URLS; break;
		case O_DB: o->db = optarg, o->set |= OPT_SET_DB; break;
		case O_RAW: o->raw = optarg, o->set |= OPT_SET_RAW; break;
		case O_ROWS: o->rows = optarg, o->set |= OPT_SET_ROWS; break;
		case O_TABLE: o->table = optarg, o->set |= OPT_SET_TABLE; break;
		case O_CACERT: o->cacert = optarg, o->set |= OPT_SET_CACERT; break;
		case O_NDJSON: o->ndjson = true; break;
		case O_DOWNLOAD_ONLY: o->download_only = true; break;
		case O_DRY_RUN: o->dry_run = true; break;
		case O_QUIET: o->out = OUT_QUIET; break;
		case O_PROGRESS: o->out = OUT_PROGRESS; break;
		case O_LOG_JSON: o->out = OUT_LOG_JSON; break;
		case O_DIRECT: o->direct = true; break;
		case O_HELP: options_usage(stdout); return 1;
		default:
			if (parse_value_opt(o, c, name, optarg))
				return 2;
		}
	}
	if (optind < argc) { /* after "--" */
		fprintf(stderr, "ringfill run: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!o->urls && !o->jobfile) {
		fprintf(stderr,
		        "ringfill run: a job file or --urls FILE is required (see ringfill --help)\n");
		return 2;
	}
	return o->jobfile ? 0 : options_check_run(o);
}

int options_check_run(run_opts_t *o)
{
	if (o->download_only && !o->raw) {
		fprintf(stderr, "ringfill run: --download-only needs --raw DIR\n");
		return 2;
	}
	if (o->direct && !o->download_only) {
		fprintf(stderr, "ringfill run: --direct needs --download-only (and --raw DIR)\n");
		return 2;
	}
	if (!*o->table)
		return bad("--table", o->table, "empty table name");
	if (strncasecmp(o->table, "_ringfill", 9) == 0) /* SQLite's names ignore case */
		return bad("--table", o->table, "names starting with _ringfill are reserved");
	if (strncasecmp(o->table, "sqlite_", 7) == 0)
		return bad("--table", o->table, "names starting with sqlite_ are SQLite's own");
	if (o->retry_max_s < o->retry_base_s)
		o->retry_max_s = o->retry_base_s;
	return 0;
}

/* HTTPS_PROXY=http://[user:pass@]host:port. An https:// proxy (TLS to the
 * proxy itself) is not supported and says so, rather than being ignored. */
int options_proxy_from_env(run_opts_t *o)
{
	const char *v = getenv("HTTPS_PROXY");
	if (!v || !*v)
		v = getenv("https_proxy");
	o->no_proxy = getenv("NO_PROXY");
	if (!o->no_proxy || !*o->no_proxy)
		o->no_proxy = getenv("no_proxy");
	if (!v || !*v)
		return 0;
	const char *p = v;
	if (!strncasecmp(p, "http://", 7))
		p += 7;
	const char *at = strrchr(p, '@');
	const char *hostp = at ? at + 1 : p;
	/* Error messages show the value without its credentials. */
	const char *shown = at ? hostp : v;
	v = shown;
	if (strstr(p, "://"))
		return bad("HTTPS_PROXY", v, "only http:// proxies are supported (CONNECT)");
	const char *end = hostp + strcspn(hostp, "/");
	const char *colon = NULL;
	if (*hostp == '[') {
		const char *rb = memchr(hostp, ']', (size_t)(end - hostp));
		if (!rb)
			return bad("HTTPS_PROXY", v, "unterminated [IPv6] address");
		colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
		snprintf(o->proxy_host, sizeof o->proxy_host, "%.*s", (int)(rb - hostp - 1), hostp + 1);
	} else {
		colon = memchr(hostp, ':', (size_t)(end - hostp));
		const char *he = colon ? colon : end;
		snprintf(o->proxy_host, sizeof o->proxy_host, "%.*s", (int)(he - hostp), hostp);
	}
	unsigned long port = 3128;
	if (colon) {
		char *pe;
		port = strtoul(colon + 1, &pe, 10);
		if (pe != end || port == 0 || port > 65535)
			return bad("HTTPS_PROXY", v, "bad port");
	}
	if (!o->proxy_host[0])
		return bad("HTTPS_PROXY", v, "no host");
	o->proxy_port = (uint16_t)port;
	if (at) {
		unsigned char b64[400];
		size_t cred_len = (size_t)(at - p);
		if (cred_len > 290)
			return bad("HTTPS_PROXY", "...", "credentials too long");
		EVP_EncodeBlock(b64, (const unsigned char *)p, (int)cred_len);
		snprintf(o->proxy_auth, sizeof o->proxy_auth, "Basic %s", b64);
	}
	return 0;
}

bool options_use_proxy(const run_opts_t *o, const char *host)
{
	if (!o->proxy_host[0])
		return false;
	if (!o->no_proxy || !*o->no_proxy)
		return true;
	size_t hl = strlen(host);
	for (const char *p = o->no_proxy; *p;) {
		p += strspn(p, ", ");
		size_t n = strcspn(p, ", ");
		const char *e = p;
		if (n == 1 && *e == '*')
			return false;
		if (n && *e == '.') /* ".example.com" means the same as "example.com" */
			e++, n--;
		if (n && hl >= n && !strncasecmp(host + hl - n, e, n) &&
		    (hl == n || host[hl - n - 1] == '.'))
			return false;
		p = e + n;
	}
	return true;
}
