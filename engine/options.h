/* engine/options.h: the `ringfill run` command line (DESIGN §3), parsed and
 * checked before anything is opened, so a usage error writes nothing. */
#ifndef RF_OPTIONS_H
#define RF_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define OPT_HEADERS_BYTES_MAX 8192u /* all --header lines together */

typedef enum { OUT_AUTO = 0, OUT_QUIET, OUT_PROGRESS, OUT_LOG_JSON } out_mode_t;

/* run_opts_t.set: the flags given on the command line, which a job file's
 * settings do not override. */
enum {
	OPT_SET_URLS = 1u << 0,
	OPT_SET_DB = 1u << 1,
	OPT_SET_RAW = 1u << 2,
	OPT_SET_ROWS = 1u << 3,
	OPT_SET_TABLE = 1u << 4,
	OPT_SET_CACERT = 1u << 5,
	OPT_SET_CONCURRENCY = 1u << 6,
	OPT_SET_PER_HOST = 1u << 7,
	OPT_SET_RETRIES = 1u << 8,
	OPT_SET_TIMEOUT = 1u << 9,
};

typedef struct {
	const char *jobfile; /* JOB.json, the positional argument, or NULL */
	uint32_t set;        /* OPT_SET_* */
	const char *urls;   /* --urls FILE */
	const char *db;     /* --db FILE */
	const char *raw;    /* --raw DIR, or NULL */
	const char *rows;   /* --rows PATH */
	const char *table;  /* --table NAME */
	const char *cacert; /* --cacert FILE, or NULL: system store */
	bool ndjson;        /* --ndjson forces NDJSON bodies */
	bool download_only; /* --download-only */
	bool direct;        /* --direct: raw files written with O_DIRECT (needs --download-only) */
	bool dry_run;       /* --dry-run */
	uint32_t concurrency, per_host;
	uint32_t retries;               /* attempts before a transient failure is final */
	double retry_base_s, retry_max_s;
	double timeout_s;               /* per phase: connect, first byte, idle */
	uint64_t body_bytes_max;        /* --max-body */
	uint32_t commit_rows, commit_ms; /* --commit-rows, --commit-ms */
	double db_timeout_s;            /* --db-timeout, or < 0 when not given */
	uint32_t ckpt_records;          /* --checkpoint-records (engine/ndstream.c) */
	out_mode_t out;
	/* HTTPS_PROXY / https_proxy (http://[user:pass@]host:port), or none */
	char proxy_host[256];
	uint16_t proxy_port;
	char proxy_auth[512]; /* "Basic base64(user:pass)", or "" */
	const char *no_proxy; /* NO_PROXY / no_proxy: host suffixes, or "*" */
	char headers[OPT_HEADERS_BYTES_MAX]; /* "Name: value\r\n" lines, $VARs expanded */
	size_t headers_len;
} run_opts_t;

/* Parses argv (argv[0] is "run"). Returns 0, or 2 after printing a usage error
 * naming the flag; 1 when --help was printed (exit 0 then). */
int options_parse_run(int argc, char **argv, run_opts_t *o);
void options_usage(FILE *f);
/* Adds a request header "Name: value" ($VAR and ${VAR} expanded from the
 * environment), as --header does; `from` names it in messages. Returns 0,
 * or 2 after printing why. */
int options_add_header(run_opts_t *o, const char *from, const char *header);
/* True when a header of that name (any letter case) is already set. */
bool options_has_header(const run_opts_t *o, const char *name, size_t name_len);
/* Checks what a job file may have changed (table names); 0 or 2. */
int options_check_run(run_opts_t *o);
/* Reads HTTPS_PROXY and NO_PROXY from the environment into o. Returns 0, or
 * 2 after printing why the proxy setting cannot be used. */
int options_proxy_from_env(run_opts_t *o);
/* True when requests to host go through the proxy. */
bool options_use_proxy(const run_opts_t *o, const char *host);

#endif
