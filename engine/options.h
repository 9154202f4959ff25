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

typedef struct {
	const char *urls;   /* --urls FILE */
	const char *db;     /* --db FILE */
	const char *raw;    /* --raw DIR, or NULL */
	const char *rows;   /* --rows PATH */
	const char *table;  /* --table NAME */
	const char *cacert; /* --cacert FILE, or NULL: system store */
	bool ndjson;        /* --ndjson forces NDJSON bodies */
	bool download_only; /* --download-only */
	bool dry_run;       /* --dry-run */
	uint32_t concurrency, per_host;
	uint32_t retries;               /* attempts before a transient failure is final */
	double retry_base_s, retry_max_s;
	double timeout_s;               /* per phase: connect, first byte, idle */
	uint64_t body_bytes_max;        /* --max-body */
	uint32_t commit_rows, commit_ms; /* --commit-rows, --commit-ms */
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
/* Reads HTTPS_PROXY and NO_PROXY from the environment into o. Returns 0, or
 * 2 after printing why the proxy setting cannot be used. */
int options_proxy_from_env(run_opts_t *o);
/* True when requests to host go through the proxy. */
bool options_use_proxy(const run_opts_t *o, const char *host);

#endif
