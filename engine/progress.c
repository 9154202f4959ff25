/* engine/progress.c: what a person watching a run sees. On a terminal one
 * live line (jobs done/total, MB/s, rows/s, failures, ETA) redrawn once a
 * second; otherwise a plain log line every few seconds; --log-json prints the
 * same as JSON lines; --quiet prints nothing. Called from the loop's tick;
 * the last line comes from main once the writer is done (progress_final). */
#include "engine/loop_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PROGRESS_TTY_MS 1000u
#define PROGRESS_LOG_MS 5000u

static void eta_text(char *out, size_t cap, double secs)
{
	if (secs < 0 || secs > 360000)
		snprintf(out, cap, "--");
	else if (secs >= 3600)
		snprintf(out, cap, "%dh%02dm", (int)(secs / 3600), (int)(secs / 60) % 60);
	else
		snprintf(out, cap, "%dm%02ds", (int)(secs / 60), (int)secs % 60);
}

/* text as a JSON string (RFC 8259 escapes; bytes as they are otherwise). */
static void json_string_out(const char *text)
{
	fputc('"', stderr);
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(stderr, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(stderr, "\\u%04x", *p);
		else
			fputc(*p, stderr);
	}
	fputc('"', stderr);
}

void run_say(const run_opts_t *o, const char *kind, const char *fmt, ...)
{
	bool error = !strcmp(kind, "error") || !strcmp(kind, "stopped") || !strcmp(kind, "kept");
	if (o->out == OUT_QUIET && !error)
		return;
	char text[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	if (o->out != OUT_LOG_JSON) {
		fprintf(stderr, "%s\n", text);
		return;
	}
	fprintf(stderr, "{\"event\":\"%s\",\"message\":", kind);
	json_string_out(text);
	fputs("}\n", stderr);
}

/* Whether the live line is redrawn in place (a terminal, or --progress). */
static bool progress_tty(const run_opts_t *o)
{
	static int tty = -1;
	if (tty < 0)
		tty = o->out == OUT_PROGRESS || (o->out == OUT_AUTO && isatty(STDERR_FILENO));
	return tty;
}

void progress_final(const run_opts_t *o, const loop_result_t *res, uint64_t done,
                    uint64_t failed, uint64_t rows)
{
	if (o->out == OUT_QUIET)
		return;
	double secs = res->seconds > 0 ? res->seconds : 0.001;
	double mbps = (double)res->bytes / 1e6 / secs, rps = (double)rows / secs;
	uint64_t total = res->jobs_total > done + failed ? res->jobs_total : done + failed;
	if (o->out == OUT_LOG_JSON) {
		fprintf(stderr,
		        "{\"event\":\"finished\",\"seconds\":%.3f,\"jobs_done\":%llu,"
		        "\"jobs_failed\":%llu,\"jobs_total\":%llu,\"bytes\":%llu,\"rows\":%llu,"
		        "\"mb_per_s\":%.3f,\"rows_per_s\":%.1f}\n",
		        secs, (unsigned long long)done, (unsigned long long)failed,
		        (unsigned long long)total, (unsigned long long)res->bytes,
		        (unsigned long long)rows, mbps, rps);
		return;
	}
	fprintf(stderr, "%s%llu done, %llu failed, %.1f MB in %.1fs (%.1f MB/s, %.0f rows/s)\n",
	        progress_tty(o) ? "\r\033[K" : "", (unsigned long long)done,
	        (unsigned long long)failed, (double)res->bytes / 1e6, secs, mbps, rps);
}

void progress_report(loop_t *l)
{
	static uint64_t last_ms;
	if (l->o->out == OUT_QUIET)
		return;
	bool tty = progress_tty(l->o);
	uint64_t every = tty && l->o->out != OUT_LOG_JSON ? PROGRESS_TTY_MS : PROGRESS_LOG_MS;
	if (l->now_ms - last_ms < every)
		return;
	last_ms = l->now_ms;
	double secs = (double)(l->now_ms - l->start_ms) / 1000.0;
	if (secs <= 0)
		secs = 0.001;
	uint64_t finished = l->jobs_done + l->jobs_failed;
	uint64_t total = l->cfg->jobs_total;
	if (total < finished + l->jobs_active) /* pages make jobs as the run goes */
		total = finished + l->jobs_active;
	double mbps = (double)l->bytes / 1e6 / secs, rps = (double)l->rows / secs;
	char eta[32];
	eta_text(eta, sizeof eta,
	         finished ? (double)(total > finished ? total - finished : 0) * secs / (double)finished
	                  : -1);
	if (l->o->out == OUT_LOG_JSON) {
		fprintf(stderr,
		        "{\"event\":\"progress\",\"seconds\":%.3f,\"jobs_done\":%llu,"
		        "\"jobs_failed\":%llu,\"jobs_total\":%llu,\"bytes\":%llu,\"rows\":%llu,"
		        "\"mb_per_s\":%.3f,\"rows_per_s\":%.1f}\n",
		        secs, (unsigned long long)l->jobs_done, (unsigned long long)l->jobs_failed,
		        (unsigned long long)total, (unsigned long long)l->bytes,
		        (unsigned long long)l->rows, mbps, rps);
		return;
	}
	fprintf(stderr, "%s%llu/%llu jobs  %.1f MB/s  %.0f rows/s  %llu failed  ETA %s%s",
	        tty ? "\r\033[K" : "", (unsigned long long)finished, (unsigned long long)total, mbps,
	        rps, (unsigned long long)l->jobs_failed, eta, tty ? "" : "\n");
	fflush(stderr);
}
