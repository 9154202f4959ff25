/* bench/report.c: `ringfill bench --report FILE.html` (docs/benchmarks.md):
 * draws one or more --json results (bench/result.schema.json) as a single
 * self-contained HTML page: inline CSS and SVG, no script, nothing fetched.
 * bench/bench.c calls it after a run (with that run's result) or with saved
 * result files. Every piece of text from a result file is escaped. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/harness.h"
#include "parse/json.h"

#define REPORT_RESULTS_MAX 256u  /* result files in one report */
#define REPORT_SUITE_BYTES 16u
#define REPORT_METRIC_BYTES 48u
#define REPORT_UNIT_BYTES 16u
#define REPORT_ENV_BYTES 256u
#define REPORT_SUITES_MAX 16u

/* Geometry of the per-suite bar charts (SVG user units = CSS pixels). */
#define BAR_CHART_W 960
#define BAR_LABEL_W 330 /* case and metric names */
#define BAR_AREA_W 420  /* the longest bar of a row */
#define BAR_H 14
#define BAR_GAP 4
#define BAR_ROW_PAD 12
#define BAR_TOP 30 /* the legend */

/* Geometry of the over-time charts. */
#define HIST_W 460
#define HIST_H 220
#define HIST_LEFT 60
#define HIST_RIGHT 16
#define HIST_TOP 16
#define HIST_BOTTOM 60 /* three lines under each point: day, time, commit */

/* One record of a result file, as much as the report draws. */
typedef struct {
	char suite[REPORT_SUITE_BYTES], case_name[BENCH_NAME_BYTES_MAX];
	char metric[REPORT_METRIC_BYTES], unit[REPORT_UNIT_BYTES];
	char peer[BENCH_PEER_NAME_BYTES_MAX];
	char subject[BENCH_PEER_NAME_BYTES_MAX]; /* the value's name: "ringfill" unless said */
	bool higher_better, has_peer, has_ratio;
	double value, min, max, peer_value, peer_min, peer_max, ratio;
} rep_rec_t;

/* One result file. recs is malloc'd and owned here (result_free). */
typedef struct {
	const char *path; /* the caller's string */
	char date[40], version[64], commit[64], cpu[REPORT_ENV_BYTES], kernel[REPORT_ENV_BYTES];
	char stage1[16], sqlite[32], build[REPORT_ENV_BYTES];
	double runs;
	bool quick;
	uint32_t order; /* position on the command line: breaks ties between dates */
	rep_rec_t *recs;
	uint32_t n;
} rep_result_t;

/* ---- reading result files ------------------------------------------------ */

static void opt_str(const json_doc_t *d, uint32_t obj, const char *k, char *out, size_t cap)
{
	if (bench_json_str(d, obj, k, out, cap) != 0)
		snprintf(out, cap, "?");
}

static int rec_read(const json_doc_t *d, uint32_t n, rep_rec_t *r)
{
	char dir[16];
	if (json_type(d, n) != JSON_OBJECT ||
	    bench_json_str(d, n, "suite", r->suite, sizeof(r->suite)) ||
	    bench_json_str(d, n, "case", r->case_name, sizeof(r->case_name)) ||
	    bench_json_str(d, n, "metric", r->metric, sizeof(r->metric)) ||
	    bench_json_str(d, n, "unit", r->unit, sizeof(r->unit)) ||
	    bench_json_str(d, n, "direction", dir, sizeof(dir)) ||
	    bench_json_num(d, n, "value", &r->value) || bench_json_num(d, n, "min", &r->min) ||
	    bench_json_num(d, n, "max", &r->max))
		return -EINVAL;
	r->higher_better = strcmp(dir, "lower") != 0;
	if (json_object_get(d, n, "subject", 7) == JSON_NONE)
		snprintf(r->subject, sizeof(r->subject), "ringfill");
	else if (bench_json_str(d, n, "subject", r->subject, sizeof(r->subject)) ||
	         !r->subject[0])
		return -EINVAL;
	r->has_ratio = bench_json_num(d, n, "ratio", &r->ratio) == 0;
	uint32_t p = json_object_get(d, n, "peer", 4);
	if (p != JSON_NONE && json_type(d, p) == JSON_OBJECT) {
		if (bench_json_str(d, p, "name", r->peer, sizeof(r->peer)) ||
		    bench_json_num(d, p, "value", &r->peer_value) ||
		    bench_json_num(d, p, "min", &r->peer_min) ||
		    bench_json_num(d, p, "max", &r->peer_max))
			return -EINVAL;
		r->has_peer = true;
	}
	return 0;
}

static int result_parse(const json_doc_t *d, rep_result_t *res)
{
	if (json_type(d, 0) != JSON_OBJECT)
		return -EINVAL;
	uint32_t env = json_object_get(d, 0, "env", 3);
	uint32_t arr = json_object_get(d, 0, "results", 7);
	if (env == JSON_NONE || json_type(d, env) != JSON_OBJECT || arr == JSON_NONE ||
	    json_type(d, arr) != JSON_ARRAY ||
	    bench_json_str(d, env, "date", res->date, sizeof(res->date)) != 0)
		return -EINVAL;
	opt_str(d, env, "ringfill", res->version, sizeof(res->version));
	opt_str(d, env, "commit", res->commit, sizeof(res->commit));
	opt_str(d, env, "cpu", res->cpu, sizeof(res->cpu));
	opt_str(d, env, "kernel", res->kernel, sizeof(res->kernel));
	opt_str(d, env, "json_stage1", res->stage1, sizeof(res->stage1));
	opt_str(d, env, "sqlite", res->sqlite, sizeof(res->sqlite));
	opt_str(d, env, "build", res->build, sizeof(res->build));
	if (bench_json_num(d, env, "runs", &res->runs) != 0)
		res->runs = 0;
	uint32_t q = json_object_get(d, env, "quick", 5);
	res->quick = q != JSON_NONE && json_type(d, q) == JSON_TRUE;
	res->recs = calloc(d->nodes[arr].count + 1, sizeof(*res->recs));
	if (!res->recs)
		return -ENOMEM;
	for (uint32_t n = arr + 1; n < d->nodes[arr].next; n = d->nodes[n].next) {
		int rc = rec_read(d, n, &res->recs[res->n]);
		if (rc != 0)
			return rc;
		res->n++;
	}
	return 0;
}

/* Loads one --json result. 0, or -errno after naming the file and why. */
static int result_load(const char *path, rep_result_t *res)
{
	char *src;
	json_parser_t *p;
	json_doc_t d;
	int rc = bench_json_load(path, &src, &p, &d);
	if (rc != 0)
		return rc;
	rc = result_parse(&d, res);
	if (rc == -EINVAL)
		fprintf(stderr, "ringfill bench: %s: not a ringfill bench result (missing or "
		                "malformed env.date, \"results\" or a record in it)\n", path);
	else if (rc != 0)
		fprintf(stderr, "ringfill bench: %s: %s\n", path, strerror(-rc));
	json_parser_free(p);
	free(src);
	return rc;
}

static int result_cmp(const void *a, const void *b)
{
	const rep_result_t *x = a, *y = b;
	int c = strcmp(x->date, y->date);
	return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* ---- HTML output ------------------------------------------------------------ */

/* Text for HTML content and attribute values: every character with a
 * meaning in markup becomes an entity, control characters are dropped. */
static void esc(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default:
			if (*p >= 0x20 && *p != 0x7f)
				fputc(*p, f);
		}
	}
}

/* 4 significant digits, with k/M/G for large values as the table prints. */
static const char *num(double v, char *buf, size_t cap)
{
	double a = v < 0 ? -v : v;
	if (a >= 1e9)
		snprintf(buf, cap, "%.4gG", v / 1e9);
	else if (a >= 1e6)
		snprintf(buf, cap, "%.4gM", v / 1e6);
	else if (a >= 1e4)
		snprintf(buf, cap, "%.4gk", v / 1e3);
	else
		snprintf(buf, cap, "%.4g", v);
	return buf;
}

static const char page_head[] =
	"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	"<title>ringfill bench report</title>\n<style>\n"
	"body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}\n"
	"h1{font-size:22px}h2{font-size:18px;margin-top:28px}\n"
	".env{color:#555;font-size:13px}\n"
	"svg text{font:12px sans-serif;fill:#222}\n"
	"svg .small{font-size:10px;fill:#555}\n"
	".bar.rf,.pt.rf{fill:#2f6fb0}.bar.peer,.pt.peer{fill:#e08a2c}\n"
	".line.rf{stroke:#2f6fb0}.line.peer{stroke:#e08a2c}\n"
	".line{fill:none;stroke-width:2}.err{stroke:#111;stroke-width:1.2}\n"
	".axis{stroke:#888;stroke-width:1}\n"
	".ratio.good{fill:#1a7f37;font-weight:bold}.ratio.bad{fill:#b42318;font-weight:bold}\n"
	"figure{display:inline-block;margin:8px 16px 8px 0;vertical-align:top}\n"
	"figcaption{font-size:13px;max-width:460px;word-wrap:break-word}\n"
	"</style>\n</head>\n<body>\n<h1>ringfill bench</h1>\n";

static void env_para(FILE *f, const rep_result_t *r)
{
	const char *const parts[][2] = {
		{"", r->path},         {": ringfill ", r->version}, {" ", r->commit}, {", ", r->date},
		{"<br>cpu: ", r->cpu}, {"; kernel: ", r->kernel},   {"; json stage 1: ", r->stage1},
		{"; SQLite ", r->sqlite}, {"; build: ", r->build},
	};
	char b[32];
	fputs("<p class=\"env\">", f);
	for (size_t i = 0; i < sizeof(parts) / sizeof(*parts); i++) {
		fputs(parts[i][0], f); /* markup of ours */
		esc(f, parts[i][1]);
	}
	fprintf(f, "<br>medians of %s runs, error bars from min to max%s</p>\n",
	        num(r->runs, b, sizeof(b)),
	        r->quick ? "; <strong>--quick</strong> sizes, not numbers to keep" : "");
}

/* A horizontal bar from 0 to v with an error bar from lo to hi, scaled so
 * that scale fills BAR_AREA_W. */
static void bar(FILE *f, const char *cls, double v, double lo, double hi, double scale, int y)
{
	double x0 = BAR_LABEL_W, k = BAR_AREA_W / scale;
	double w = v * k < 1 ? 1 : v * k, ym = y + BAR_H / 2.0;
	fprintf(f, "<rect class=\"bar %s\" x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\"/>\n",
	        cls, BAR_LABEL_W, y, w, BAR_H);
	fprintf(f, "<path class=\"err\" d=\"M%.1f %.1fH%.1fM%.1f %dv%dM%.1f %dv%d\"/>\n",
	        x0 + lo * k, ym, x0 + hi * k, x0 + lo * k, y + 2, BAR_H - 4, x0 + hi * k, y + 2,
	        BAR_H - 4);
}

static void bar_value(FILE *f, const char *who, const rep_rec_t *r, double v, double hi,
                      double scale, int y)
{
	char b[32];
	fprintf(f, "<text x=\"%.1f\" y=\"%d\">", BAR_LABEL_W + hi * BAR_AREA_W / scale + 6,
	        y + BAR_H - 3);
	fputs(num(v, b, sizeof(b)), f);
	fputc(' ', f);
	esc(f, r->unit);
	fputs(" <tspan class=\"small\">", f);
	esc(f, who);
	fputs("</tspan></text>\n", f);
}

static int row_height(const rep_rec_t *r)
{
	return (r->has_peer ? 2 * BAR_H + BAR_GAP : BAR_H) + BAR_ROW_PAD + 12;
}

/* One record: its names on the left, ringfill's bar, the peer's bar below
 * it, and the ratio at the right end. */
static void bar_row(FILE *f, const rep_rec_t *r, int y)
{
	double top = r->max > r->value ? r->max : r->value;
	if (r->has_peer) {
		top = r->peer_max > top ? r->peer_max : top;
		top = r->peer_value > top ? r->peer_value : top;
	}
	double scale = top > 0 ? top * 1.02 : 1;
	fprintf(f, "<g class=\"row\"><text x=\"0\" y=\"%d\">", y + 11);
	esc(f, r->case_name);
	fprintf(f, "</text><text class=\"small\" x=\"0\" y=\"%d\">", y + 24);
	esc(f, r->metric);
	fputs(" (", f);
	esc(f, r->unit);
	fprintf(f, ", %s is better)</text>\n", r->higher_better ? "higher" : "lower");
	bar(f, "rf", r->value, r->min, r->max, scale, y);
	bar_value(f, r->subject, r, r->value, r->max, scale, y);
	if (r->has_peer) {
		int py = y + BAR_H + BAR_GAP;
		bar(f, "peer", r->peer_value, r->peer_min, r->peer_max, scale, py);
		bar_value(f, r->peer, r, r->peer_value, r->peer_max, scale, py);
	}
	if (r->has_ratio)
		fprintf(f, "<text class=\"ratio %s\" x=\"%d\" y=\"%d\" text-anchor=\"end\">%.2f&#215;"
		           "</text>\n", r->ratio >= 1 ? "good" : "bad", BAR_CHART_W - 4, y + 20,
		        r->ratio);
	fputs("</g>\n", f);
}

/* The chart of one suite of the newest result: a row per case and metric. */
static void suite_chart(FILE *f, const rep_result_t *res, const char *suite)
{
	int h = BAR_TOP;
	uint32_t rows = 0, bars = 0;
	for (uint32_t i = 0; i < res->n; i++)
		if (!strcmp(res->recs[i].suite, suite)) {
			h += row_height(&res->recs[i]);
			rows++;
			bars += 1u + res->recs[i].has_peer;
		}
	fputs("<section class=\"suite\"><h2>", f);
	esc(f, suite);
	fprintf(f, "</h2>\n<svg class=\"chart\" data-suite=\"");
	esc(f, suite);
	fprintf(f, "\" data-rows=\"%u\" data-bars=\"%u\" xmlns=\"http://www.w3.org/2000/svg\" "
	           "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n<title>",
	        rows, bars, BAR_CHART_W, h, BAR_CHART_W, h);
	esc(f, suite);
	fputs(": ringfill (blue) and its peer (orange) per case; ratio = ringfill / peer, "
	      "above 1 ringfill did better</title>\n", f);
	fprintf(f, "<rect class=\"pt rf\" x=\"%d\" y=\"4\" width=\"12\" height=\"12\"/>"
	           "<text x=\"%d\" y=\"14\">ringfill</text>"
	           "<rect class=\"pt peer\" x=\"%d\" y=\"4\" width=\"12\" height=\"12\"/>"
	           "<text x=\"%d\" y=\"14\">peer</text>"
	           "<text class=\"small\" x=\"%d\" y=\"14\" text-anchor=\"end\">ratio "
	           "(ringfill / peer; &gt; 1: ringfill better)</text>\n",
	        BAR_LABEL_W, BAR_LABEL_W + 16, BAR_LABEL_W + 90, BAR_LABEL_W + 106,
	        BAR_CHART_W - 4);
	int y = BAR_TOP;
	for (uint32_t i = 0; i < res->n; i++)
		if (!strcmp(res->recs[i].suite, suite)) {
			bar_row(f, &res->recs[i], y);
			y += row_height(&res->recs[i]);
		}
	fputs("</svg>\n</section>\n", f);
}

/* ---- over time ------------------------------------------------------------- */

static const rep_rec_t *find_rec(const rep_result_t *res, const rep_rec_t *like)
{
	for (uint32_t i = 0; i < res->n; i++) {
		const rep_rec_t *r = &res->recs[i];
		if (!strcmp(r->suite, like->suite) && !strcmp(r->case_name, like->case_name) &&
		    !strcmp(r->metric, like->metric))
			return r;
	}
	return NULL;
}

/* The *_verified metrics count what a run checked; they are constant by
 * construction and are not drawn over time. */
static bool headline(const rep_rec_t *r)
{
	size_t n = strlen(r->metric), k = strlen("_verified");
	return !(n >= k && !strcmp(r->metric + n - k, "_verified"));
}

static double hist_x(uint32_t i, uint32_t n)
{
	double w = HIST_W - HIST_LEFT - HIST_RIGHT;
	return HIST_LEFT + (n > 1 ? w * i / (n - 1) : w / 2);
}

static double hist_y(double v, double top)
{
	return HIST_TOP + (HIST_H - HIST_TOP - HIST_BOTTOM) * (1 - v / top);
}

/* One series (ringfill's or the peer's) over the results that have the key. */
static void hist_series(FILE *f, const rep_result_t *res, uint32_t n, const rep_rec_t *key,
                        bool peer, double top)
{
	fprintf(f, "<polyline class=\"line %s\" points=\"", peer ? "peer" : "rf");
	for (uint32_t i = 0; i < n; i++) {
		const rep_rec_t *r = find_rec(&res[i], key);
		if (r && (!peer || r->has_peer))
			fprintf(f, "%.1f,%.1f ", hist_x(i, n),
			        hist_y(peer ? r->peer_value : r->value, top));
	}
	fputs("\"/>\n", f);
	for (uint32_t i = 0; i < n; i++) {
		const rep_rec_t *r = find_rec(&res[i], key);
		if (!r || (peer && !r->has_peer))
			continue;
		double x = hist_x(i, n), v = peer ? r->peer_value : r->value;
		double lo = peer ? r->peer_min : r->min, hi = peer ? r->peer_max : r->max;
		char b[32];
		fprintf(f, "<path class=\"err\" d=\"M%.1f %.1fV%.1f\"/>\n", x, hist_y(lo, top),
		        hist_y(hi, top));
		fprintf(f, "<circle class=\"pt %s\" cx=\"%.1f\" cy=\"%.1f\" r=\"4\"><title>",
		        peer ? "peer" : "rf", x, hist_y(v, top));
		esc(f, peer ? r->peer : r->subject);
		fputs(" ", f);
		esc(f, res[i].date);
		fprintf(f, ": %s ", num(v, b, sizeof(b)));
		esc(f, r->unit);
		fputs("</title></circle>\n", f);
	}
}

static void hist_axes(FILE *f, const rep_result_t *res, uint32_t n, double top)
{
	char b[32];
	double y0 = hist_y(0, top);
	fprintf(f, "<path class=\"axis\" d=\"M%d %.1fV%dM%d %.1fH%d\"/>\n", HIST_LEFT, y0,
	        HIST_TOP, HIST_LEFT, y0, HIST_W - HIST_RIGHT);
	fprintf(f, "<text class=\"small\" x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n",
	        HIST_LEFT - 4, HIST_TOP + 4, num(top, b, sizeof(b)));
	fprintf(f, "<text class=\"small\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">0</text>\n",
	        HIST_LEFT - 4, y0 + 4);
	uint32_t every = n > 8 ? (n + 7) / 8 : 1; /* at most 8 labels, so they do not overlap */
	for (uint32_t i = 0; i < n; i++) {
		if (i % every && i + 1 != n)
			continue;
		/* 2026-11-24T03:00:00Z: the day and the time say which run it was. */
		char day[8] = "", tod[8] = "";
		if (strlen(res[i].date) >= 16) {
			snprintf(day, sizeof(day), "%.5s", res[i].date + 5);
			snprintf(tod, sizeof(tod), "%.5s", res[i].date + 11);
		}
		fprintf(f, "<text class=\"small\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
		        hist_x(i, n), y0 + 14);
		esc(f, day[0] ? day : res[i].date);
		fprintf(f, "<tspan x=\"%.1f\" dy=\"12\">", hist_x(i, n));
		esc(f, tod);
		fprintf(f, "</tspan><tspan x=\"%.1f\" dy=\"12\">", hist_x(i, n));
		esc(f, res[i].commit);
		fputs("</tspan><title>", f);
		esc(f, res[i].path);
		fputs("</title></text>\n", f);
	}
}

static void hist_chart(FILE *f, const rep_result_t *res, uint32_t n, const rep_rec_t *key)
{
	double top = 0;
	uint32_t points = 0;
	for (uint32_t i = 0; i < n; i++) {
		const rep_rec_t *r = find_rec(&res[i], key);
		if (!r)
			continue;
		points++;
		top = r->max > top ? r->max : top;
		top = r->value > top ? r->value : top;
		if (r->has_peer) {
			top = r->peer_max > top ? r->peer_max : top;
			top = r->peer_value > top ? r->peer_value : top;
		}
	}
	top = top > 0 ? top * 1.1 : 1;
	fputs("<figure><figcaption>", f);
	esc(f, key->suite);
	fputs(" / ", f);
	esc(f, key->case_name);
	fputs(" / ", f);
	esc(f, key->metric);
	fputs(" (", f);
	esc(f, key->unit);
	fprintf(f, ", %s is better)</figcaption>\n<svg class=\"history\" data-key=\"",
	        key->higher_better ? "higher" : "lower");
	esc(f, key->suite);
	fputc('/', f);
	esc(f, key->case_name);
	fputc(' ', f);
	esc(f, key->metric);
	fprintf(f, "\" data-points=\"%u\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
	           "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n",
	        points, HIST_W, HIST_H, HIST_W, HIST_H);
	hist_axes(f, res, n, top);
	hist_series(f, res, n, key, false, top);
	hist_series(f, res, n, key, true, top);
	fputs("</svg></figure>\n", f);
}

/* A chart per suite/case/metric that at least two results have, in the order
 * the records first appear (oldest result first). */
static void history(FILE *f, const rep_result_t *res, uint32_t n)
{
	fputs("<section class=\"over-time\"><h2>Over time</h2>\n<p class=\"env\">One chart per "
	      "suite, case and metric found in at least two results; x: the result's date "
	      "(oldest left), y: the median, bars from min to max; blue ringfill, orange the "
	      "peer.</p>\n", f);
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = 0; j < res[i].n; j++) {
			const rep_rec_t *r = &res[i].recs[j];
			bool seen = false;
			uint32_t have = 0;
			for (uint32_t k = 0; k < i && !seen; k++)
				seen = find_rec(&res[k], r) != NULL;
			for (uint32_t k = i; k < n && !seen; k++)
				have += find_rec(&res[k], r) != NULL;
			if (!seen && have >= 2 && headline(r))
				hist_chart(f, res, n, r);
		}
	fputs("</section>\n", f);
}

static void page(FILE *f, const rep_result_t *res, uint32_t n)
{
	const rep_result_t *last = &res[n - 1];
	const char *suites[REPORT_SUITES_MAX];
	uint32_t n_suites = 0;
	fputs(page_head, f);
	env_para(f, last);
	for (uint32_t i = 0; i < last->n; i++) {
		uint32_t k = 0;
		while (k < n_suites && strcmp(suites[k], last->recs[i].suite) != 0)
			k++;
		if (k == n_suites && n_suites < REPORT_SUITES_MAX)
			suites[n_suites++] = last->recs[i].suite;
	}
	for (uint32_t k = 0; k < n_suites; k++)
		suite_chart(f, last, suites[k]);
	if (n > 1) {
		history(f, res, n);
		fputs("<h2>Results drawn</h2>\n", f);
		for (uint32_t i = 0; i < n; i++)
			env_para(f, &res[i]);
	}
	fputs("</body>\n</html>\n", f);
}

/* Writes out_path through a temporary file beside it, renamed into place
 * only when complete, so a failed report never leaves half a page. */
static int page_write(const char *out_path, const rep_result_t *res, uint32_t n)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", out_path, (long)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -errno;
	page(f, res, n);
	int rc = ferror(f) ? -EIO : 0;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, out_path) != 0)
		rc = -errno;
	if (rc != 0)
		unlink(tmp);
	return rc;
}

int bench_report(const char *out_path, const char *const *paths, uint32_t n)
{
	if (n == 0 || n > REPORT_RESULTS_MAX) {
		fprintf(stderr, "ringfill bench: --report draws 1 to %u result files, not %u\n",
		        REPORT_RESULTS_MAX, n);
		return -EINVAL;
	}
	rep_result_t *res = calloc(n, sizeof(*res));
	int rc = res ? 0 : -ENOMEM;
	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		res[i].path = paths[i];
		res[i].order = i;
		rc = result_load(paths[i], &res[i]);
		rc = rc == 0 || rc == -ENOMEM ? rc : -EINVAL; /* said why; the caller's exit 2 */
	}
	if (rc == 0) {
		qsort(res, n, sizeof(*res), result_cmp);
		rc = page_write(out_path, res, n);
		if (rc != 0)
			fprintf(stderr, "ringfill bench: %s: %s\n", out_path, strerror(-rc));
		rc = rc == -EINVAL ? -EIO : rc; /* -EINVAL means a bad input file */
	}
	for (uint32_t i = 0; res && i < n; i++)
		free(res[i].recs);
	free(res);
	return rc;
}
