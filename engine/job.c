/* engine/job.c: a job's life on the loop: start, retries with backoff and
 * full jitter, the HTTP status verdict, the raw file (NAME.part written,
 * closed and renamed through io_uring), the parse into rows, and the
 * hand-over of its batch to the writer (store/writer.c) through the ring.
 *
 * A job is done only when its raw file is complete and renamed and its batch is
 * in the ring; the writer commits the rows and the state together. */
#include "engine/loop_internal.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

static void job_unlink(loop_t *l, job_t *j)
{
	if (j->all_prev)
		j->all_prev->all_next = j->all_next;
	else
		l->jobs = j->all_next;
	if (j->all_next)
		j->all_next->all_prev = j->all_prev;
}

/* Frees the job; its row in _ringfill_jobs stays as it was (pending), so the
 * next run takes it up again. */
void job_abandon(loop_t *l, job_t *j)
{
	job_unlink(l, j);
	if (j->conn) { /* a fatal error while its body still arrives */
		conn_t *c = j->conn;
		c->job = NULL;
		j->conn = NULL;
		conn_close(l, c);
	}
	if (j->streaming) {
		j->write_busy = false; /* its last request has completed, or the ring is gone */
		stream_release(l, j);
	}
	if (j->file_fd >= 0 && !l->ring_gone)
		loop_slot_close(l, j->file_fd);
	nd_reset(l, j);
	if (j->batch)
		batch_free(j->batch);
	json_buf_free(&j->body);
	json_buf_free(&j->wire);
	gzip_end(&j->gz);
	files_free(l, j);
	job_raw_part_release(l, j);
	free(j->redirect_url);
	free(j->desc);
	free(j);
	assert(l->jobs_active > 0);
	l->jobs_active--;
}

static void job_reset_response(loop_t *l, job_t *j)
{
	nd_reset(l, j);
	memset(&j->resp, 0, sizeof j->resp);
	j->head_done = j->body_done = j->got_bytes = false;
	j->body.len = 0;
	j->wire.len = 0;
	gzip_end(&j->gz);
	j->gz_failed = false;
	http_chunked_init(&j->chunk);
}

/* The body as sent: what the raw file holds and the SHA-256 is of. */
static const json_buf_t *job_stored(const job_t *j)
{
	return j->resp.gzip ? &j->wire : &j->body;
}

void job_start(loop_t *l, job_desc_t *d)
{
	job_t *j = calloc(1, sizeof *j);
	if (!j) {
		free(d);
		loop_fatal(l, "out of memory");
		return;
	}
	j->desc = d;
	j->file_fd = -1;
	j->op_file.kind = OP_FILE;
	j->all_next = l->jobs;
	if (l->jobs)
		l->jobs->all_prev = j;
	l->jobs = j;
	l->jobs_active++;
	j->attempts_run = 1;
	if (files_job(l, d)) {
		files_start(l, j);
		return;
	}
	if (l->o->download_only && (d->ckpt_records || d->ckpt_offset)) {
		/* Part of its rows are in the database under this job: fetched whole
		 * and marked done here, the rest would never load, and loading the
		 * kept file later would insert the first part again. */
		job_fail(l, j, ERROR_CLASS_PERMANENT, 0,
		         "%llu records of this body were committed by an earlier run that parsed "
		         "it (a checkpoint), so --download-only cannot take it over: requeue it "
		         "(ringfill retry DB --all) and finish it with a run that parses",
		         (unsigned long long)d->ckpt_records);
		return;
	}
	const char *reason = "malformed";
	if (url_parse(d->url, strlen(d->url), &j->url, &reason)) {
		job_fail(l, j, ERROR_CLASS_PERMANENT, 0, "malformed URL: %s", reason);
		return;
	}
	j->origin = j->host = host_get(l, &j->url);
	if (!j->host) {
		job_fail(l, j, ERROR_CLASS_TRANSIENT, 0, "too many hosts in one run (limit %u)",
		         HOSTS_MAX);
		return;
	}
	host_enqueue(l, j->host, j);
}

void job_ready(loop_t *l, job_t *j)
{
	j->next = NULL;
	if (l->ready_tail)
		l->ready_tail->next = j;
	else
		l->ready_head = j;
	l->ready_tail = j;
}

/* Hands finished jobs' batches to the writer in order. When the ring is full
 * they wait here, and pull_jobs takes no new job meanwhile (backpressure). */
void loop_flush_ready(loop_t *l)
{
	bool pushed = false;
	nd_ck_flush(l); /* checkpoints waiting for ring space go first */
	while (l->ready_head) {
		job_t *j = l->ready_head;
		batch_t *b = j->batch;
		/* Read before the push: from then on the writer may free it. */
		bool done = b->kind == BATCH_JOB_DONE;
		if (done) /* how the raw file and sha256 hold the body */
			snprintf(b->content_encoding, sizeof b->content_encoding, "%s",
			         j->resp.content_encoding);
		uint32_t rows = b->n_rows, emits = b->n_emit;
		/* Counted before the push: the writer settles it (writer.h). */
		if (emits)
			atomic_fetch_add_explicit(&l->pipe->emits_unsettled, 1, memory_order_relaxed);
		if (!pipe_push_batch(l->pipe, b)) {
			if (emits)
				atomic_fetch_sub_explicit(&l->pipe->emits_unsettled, 1, memory_order_relaxed);
			break;
		}
		pushed = true;
		j->batch = NULL; /* the writer's now */
		if (done) {
			l->jobs_done++;
			l->rows += rows;
		} else {
			l->jobs_failed++;
		}
		l->ready_head = j->next;
		if (!l->ready_head)
			l->ready_tail = NULL;
		job_abandon(l, j); /* frees it; the batch carries its outcome */
	}
	if (pushed)
		doorbell_ring(&l->pipe->writer_bell);
}

static uint64_t url_hash(const char *s)
{
	uint64_t h = 14695981039346656037ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

/* A retry starts again from the job's own URL, not from where a redirect
 * chain had led. */
static void job_restart_chain(job_t *j)
{
	if (!j->redirect_url)
		return;
	free(j->redirect_url);
	j->redirect_url = NULL;
	j->redirects = 0;
	const char *why;
	/* It parsed when the job started, so it parses again. */
	url_parse(j->desc->url, strlen(j->desc->url), &j->url, &why);
	j->host = j->origin;
}

/* Full jitter: a uniform delay in [0, min(max, base * 2^(attempt-1))]. */
static uint64_t backoff_ms(loop_t *l, uint32_t attempt)
{
	double cap = l->o->retry_base_s * (double)(1ull << (attempt > 30 ? 30 : attempt - 1));
	if (cap > l->o->retry_max_s)
		cap = l->o->retry_max_s;
	l->rng ^= l->rng << 13; /* xorshift64: jitter, not cryptography */
	l->rng ^= l->rng >> 7;
	l->rng ^= l->rng << 17;
	return (uint64_t)(cap * 1000.0 * (double)(l->rng >> 11) / (double)(1ull << 53));
}

void job_fail(loop_t *l, job_t *j, error_class_t cls, uint64_t delay_ms, const char *fmt, ...)
{
	char msg[BATCH_ERROR_BYTES_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (j->streaming) {
		if (stream_defer_failure(l, j, cls, delay_ms, msg))
			return; /* job_stream_abort_done comes back here */
		stream_release(l, j);
	}
	if (cls == ERROR_CLASS_TRANSIENT && l->stopping) {
		job_abandon(l, j); /* stays pending: the next run tries again */
		return;
	}
	if (cls == ERROR_CLASS_TRANSIENT) {
		uint64_t wait = backoff_ms(l, j->attempts_run);
		uint64_t cap_ms = (uint64_t)(l->o->retry_max_s * 1000.0);
		if (delay_ms > wait) /* Retry-After, capped by --retry-max */
			wait = delay_ms < cap_ms ? delay_ms : cap_ms;
		int status = j->head_done ? j->resp.status : 0;
		if (status == 429 || status == 503)
			host_pause(l, j->host, l->now_ms + wait);
		if (j->attempts_run < l->o->retries) {
			job_restart_chain(j);
			job_reset_response(l, j);
			j->retry_at_ms = l->now_ms + wait;
			j->next = l->retry_list;
			l->retry_list = j;
			return;
		}
	}
	int status = j->head_done ? j->resp.status : 0;
	batch_t *b = j->batch ? j->batch : batch_new(BATCH_JOB_FAILED, j->desc->id);
	if (!b) {
		job_abandon(l, j);
		loop_fatal(l, "out of memory");
		return;
	}
	j->batch = b;
	b->attempts = j->desc->attempts + (int)j->attempts_run;
	b->http_status = status;
	if (cls == ERROR_CLASS_TRANSIENT && j->attempts_run > 1)
		batch_fail(b, cls, "%s (gave up after %u attempts)", msg, j->attempts_run);
	else
		batch_fail(b, cls, "%s", msg);
	job_ready(l, j);
}

void job_retry_due(loop_t *l)
{
	job_t **pp = &l->retry_list;
	while (*pp) {
		job_t *j = *pp;
		if (j->retry_at_ms > l->now_ms) {
			pp = &j->next;
			continue;
		}
		*pp = j->next;
		j->attempts_run++;
		host_enqueue(l, j->host, j);
	}
}

static const char *status_text(int s)
{
	switch (s) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 410: return "Gone";
	case 425: return "Too Early";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return s >= 500 ? "server error" : s >= 400 ? "client error" : "unexpected status";
	}
}

static bool status_transient(int s)
{
	return s == 408 || s == 425 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

/* Retry-After as delay-seconds or an HTTP-date; 0 when absent or unreadable. */
static uint64_t retry_after_ms(const char *v)
{
	if (!*v)
		return 0;
	char *end;
	unsigned long long secs = strtoull(v, &end, 10);
	if (end != v && *end == 0)
		return secs > 86400ull * 365 ? 86400ull * 365 * 1000 : secs * 1000ull;
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *rest = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!rest || *rest)
		return 0;
	time_t when = timegm(&tm), now = time(NULL);
	return when > now ? (uint64_t)(when - now) * 1000ull : 0;
}

/* t[0..n), up to the first of `stops` in it, ends in .ndjson or .jsonl. */
static bool ndjson_suffix(const char *t, size_t n, const char *stops)
{
	for (size_t i = 0; i < n && *stops; i++)
		if (strchr(stops, t[i])) {
			n = i;
			break;
		}
	return (n >= 7 && !strncasecmp(t + n - 7, ".ndjson", 7)) ||
	       (n >= 6 && !strncasecmp(t + n - 6, ".jsonl", 6));
}

/* NDJSON by --ndjson, the Content-Type, or the suffix of the URL fetched or
 * of the job's own: a .ndjson URL that redirects to a storage URL without
 * one (a signed object URL served as application/octet-stream) is still
 * NDJSON. */
bool job_is_ndjson(loop_t *l, job_t *j)
{
	if (l->o->ndjson)
		return true;
	const char *ct = j->resp.content_type;
	if (!strcmp(ct, "application/x-ndjson") || !strcmp(ct, "application/jsonl") ||
	    !strcmp(ct, "application/x-jsonlines") || !strcmp(ct, "application/ndjson"))
		return true;
	/* A local file's path is all path ('?' and '#' are its own); a URL's
	 * target ends at its query. */
	if (ndjson_suffix(j->url.target, j->url.target_len, j->local ? "" : "?"))
		return true;
	if (!j->redirects || !j->desc->url)
		return false;
	const char *own = strstr(j->desc->url, "://");
	size_t at = own ? strcspn(own + 3, "/?#") : 0;
	return own && own[3 + at] == '/' &&
	       ndjson_suffix(own + 3 + at, strlen(own + 3 + at), "?#");
}

typedef struct {
	batch_t *b;
	const loop_config_t *cfg;
	const json_doc_t *vars; /* the job's variables, or NULL */
	const char *reason;
} rows_ctx_t;

/* One document (the body, or one NDJSON line): rows for every table. */
static int rows_from_line(void *ctx, const json_doc_t *doc, size_t line_offset)
{
	(void)line_offset;
	rows_ctx_t *rc = ctx;
	return batch_add_doc(rc->b, rc->cfg->tables, rc->cfg->n_tables, doc, rc->vars,
	                     &rc->reason)
	           ? 1
	           : 0;
}

/* A body sent with content codings the client does not undo (anything but
 * gzip alone, docs/net.md: "gzip, gzip", "br", "deflate") is parsed as
 * sent, and fails as JSON at its first byte: the reason says why. */
const char *job_coding_note(const job_t *j, char *buf, size_t cap)
{
	if (!j->resp.content_encoding[0] || j->resp.gzip)
		return "";
	snprintf(buf, cap, " (the body came with Content-Encoding \"%s\", which ringfill does not "
	         "decode)", j->resp.content_encoding);
	return buf;
}

/* A document with a member name repeated in an object on a path the tables
 * read (batch_doc_repeats, or the stream's JSON_STREAM_E_REPEATED): refused
 * for good, whether it was streamed or parsed whole, which would otherwise
 * take different members (the stream every "rows" array and a `$` column's
 * first value, the whole tape the last member). */
void job_fail_repeated(batch_t *b, size_t offset, size_t line)
{
	batch_fail(b, ERROR_CLASS_PERMANENT,
	           "member name repeated at byte offset %zu (line %zu) in an object on a path the "
	           "tables read: which of the members to take is undefined, so the document is "
	           "refused", offset, line);
}

/* Parses the body in place and appends its rows to the job's batch, or turns
 * the batch into a permanent failure that names the byte offset. The job's
 * variables ({name} columns) are parsed with their own parser, so their
 * document stays valid beside the body's. */
static void job_parse(loop_t *l, job_t *j)
{
	batch_t *b = j->batch;
	json_error_t e = {0, 0, NULL};
	json_doc_t vars;
	rows_ctx_t rc = {b, l->cfg, NULL, NULL};
	const char *v = j->desc->vars;
	if (v && l->cfg->vars_parser && json_parse(l->cfg->vars_parser, v, strlen(v), &vars, &e) == 0)
		rc.vars = &vars; /* the store wrote them as JSON: they parse */
	if (paginate_is_page(l, j)) {
		paginate_page(l, j, b, rc.vars);
		return;
	}
	/* A UTF-8 BOM before the value is passed over; offsets still count it. */
	const char *body = j->body.data ? j->body.data : "";
	size_t bom = job_bom_len(body, j->body.len);
	int r;
	if (job_is_ndjson(l, j)) {
		r = json_ndjson_each(l->parser, body + bom, j->body.len - bom, rows_from_line, &rc, &e);
	} else {
		json_doc_t doc;
		size_t at;
		r = json_parse(l->parser, body + bom, j->body.len - bom, &doc, &e);
		if (r == 0 && batch_doc_repeats(l->cfg->tables, l->cfg->n_tables, &doc, &at)) {
			size_t line = 1;
			for (const char *q = doc.src; (q = memchr(q, '\n', (size_t)(doc.src + at - q)));
			     q++)
				line++;
			job_fail_repeated(b, bom + at, line);
			return;
		}
		if (r == 0)
			r = rows_from_line(&rc, &doc, 0);
	}
	char note[JOB_CODING_NOTE_BYTES];
	if (r == -1)
		batch_fail(b, ERROR_CLASS_PERMANENT, "invalid JSON at byte offset %zu (line %zu): %s%s",
		           bom + e.offset, e.line, e.reason ? e.reason : "syntax error",
		           job_coding_note(j, note, sizeof note));
	else if (r != 0)
		batch_fail(b, ERROR_CLASS_PERMANENT, "cannot turn the records into rows: %s",
		           rc.reason ? rc.reason : "unknown reason");
}

void hex_digest(const unsigned char md[32], char out[65])
{
	static const char hex[] = "0123456789abcdef";
	for (unsigned i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = 0;
}

void sha256_hex(loop_t *l, const json_buf_t *body, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	EVP_Digest(body->data ? body->data : "", body->len, md, &n, l->sha256, NULL);
	hex_digest(md, out);
}

/* DIR-relative names of the raw file: HOST/NAME.part, then HOST/NAME. */
static uint32_t raw_part_bucket(const char *name)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h % RAW_PART_BUCKETS;
}

static bool raw_part_taken(const loop_t *l, const char *name)
{
	for (const job_t *o = l->raw_parts[raw_part_bucket(name)]; o; o = o->raw_next)
		if (!strcmp(o->raw_rel_part, name))
			return true;
	return false;
}

/* The job's .part name no longer held (job_abandon). */
void job_raw_part_release(loop_t *l, job_t *j)
{
	if (!j->raw_part_held)
		return;
	job_t **p = &l->raw_parts[raw_part_bucket(j->raw_rel_part)];
	while (*p != j)
		p = &(*p)->raw_next;
	*p = j->raw_next;
	j->raw_part_held = false;
}

void job_raw_names(loop_t *l, job_t *j)
{
	if (j->raw_part_held) /* a retry: the same names, its .part goes on */
		return;
	char name[RAW_NAME_BYTES_MAX + 32];
	if (url_raw_name(j->desc->url, strlen(j->desc->url), name, sizeof name) < 0)
		snprintf(name, sizeof name, "job-%lld", (long long)j->desc->id);
	snprintf(j->raw_rel_final, sizeof j->raw_rel_final, "%s/%s", j->origin->dirname, name);
	snprintf(j->raw_rel_part, sizeof j->raw_rel_part, "%s.part", j->raw_rel_final);
	/* The final name is shared: last rename wins. NAME.ID.part could be
	 * another URL's own .part name (NAME.ID, say): looked up too. */
	for (unsigned k = 0; raw_part_taken(l, j->raw_rel_part); k++) {
		int n = snprintf(j->raw_rel_part, sizeof j->raw_rel_part, "%s.%lld", j->raw_rel_final,
		                 (long long)j->desc->id);
		if (k && n > 0 && (size_t)n < sizeof j->raw_rel_part)
			n += snprintf(j->raw_rel_part + n, sizeof j->raw_rel_part - (size_t)n, ".%u", k);
		if (n > 0 && (size_t)n < sizeof j->raw_rel_part)
			snprintf(j->raw_rel_part + n, sizeof j->raw_rel_part - (size_t)n, ".part");
	}
	uint32_t b = raw_part_bucket(j->raw_rel_part);
	j->raw_next = l->raw_parts[b];
	l->raw_parts[b] = j;
	j->raw_part_held = true;
}

/* A 2xx body: the raw file first (its writes run while we parse), then rows. */
void job_body_ok(loop_t *l, job_t *j)
{
	batch_t *b = batch_new(BATCH_JOB_DONE, j->desc->id);
	if (!b) {
		job_abandon(l, j);
		loop_fatal(l, "out of memory");
		return;
	}
	j->batch = b;
	b->attempts = j->desc->attempts + (int)j->attempts_run;
	b->http_status = j->resp.status;
	b->body_bytes = job_stored(j)->len;
	sha256_hex(l, job_stored(j), b->sha256_hex);
	if (job_gzip_unended(j)) {
		j->gz_failed = true;
		snprintf(j->gz_error, sizeof j->gz_error,
		         "bad gzip data at byte %zu: the stream ends early", j->wire.len);
	}
	if (l->o->raw && j->origin) /* a local file (files.c) is its own raw body */
		job_raw_names(l, j);
	if (j->gz_failed)
		batch_fail(b, ERROR_CLASS_PERMANENT, "%s", j->gz_error);
	else if (!l->o->download_only)
		job_parse(l, j);
	if (l->o->raw && j->origin)
		host_rawdir(l, j->origin, j);
	else
		job_ready(l, j);
}

/* The absolute URL a Location names, relative to the URL just fetched
 * (RFC 3986 5.2.2): absolute ("https://..."), scheme-relative ("//host/p"),
 * absolute-path ("/p"), query-only ("?q": the current path with that query),
 * fragment-only ("#f": the current URL) or path-relative ("p", against the
 * current directory; dot segments are sent as they come). A fragment is
 * never part of a request: dropped. */
static int redirect_target(const job_t *j, const char *loc, char *out, size_t cap)
{
	const url_t *u = &j->url;
	char authority[URL_HOST_BYTES_MAX + 16];
	snprintf(authority, sizeof authority, u->host_is_ipv6 ? "[%s]" : "%s", u->host);
	if (u->port != 443)
		snprintf(authority + strlen(authority), sizeof authority - strlen(authority), ":%u",
		         u->port);
	int n, ln = (int)strcspn(loc, "#");
	size_t scheme = strspn(loc, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                            "0123456789+.-");
	size_t path = u->target_len; /* the current target less its query */
	const char *q = memchr(u->target, '?', u->target_len);
	if (q)
		path = (size_t)(q - u->target);
	if (scheme > 0 && loc[scheme] == ':' && isalpha((unsigned char)loc[0]))
		n = snprintf(out, cap, "%.*s", ln, loc); /* absolute; url_parse refuses all but https */
	else if (loc[0] == '/' && loc[1] == '/')
		n = snprintf(out, cap, "https:%.*s", ln, loc);
	else if (loc[0] == '/')
		n = snprintf(out, cap, "https://%s%.*s", authority, ln, loc);
	else if (ln == 0) /* only a fragment */
		n = snprintf(out, cap, "https://%s%.*s", authority, (int)u->target_len, u->target);
	else if (loc[0] == '?')
		n = snprintf(out, cap, "https://%s%.*s%.*s", authority, (int)path, u->target, ln, loc);
	else {
		size_t dir = path;
		while (dir > 0 && u->target[dir - 1] != '/')
			dir--;
		/* "https://h?q" has an empty path: "p" is "/p" there (5.2.3) */
		n = snprintf(out, cap, "https://%s%s%.*s%.*s", authority, dir ? "" : "/", (int)dir,
		             u->target, ln, loc);
	}
	return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

/* Follows a 301/302/303/307/308: at most REDIRECTS_MAX per attempt, never to
 * a URL seen earlier in the chain, never away from https. The connection it
 * came on is already back in its pool; the job queues on the new host. */
static void job_redirect(loop_t *l, job_t *j)
{
	int s = j->resp.status;
	if (!j->resp.location[0]) {
		job_fail(l, j, ERROR_CLASS_PERMANENT, 0, "HTTP %d redirect without a Location", s);
		return;
	}
	if (j->redirects >= REDIRECTS_MAX) {
		job_fail(l, j, ERROR_CLASS_PERMANENT, 0, "too many redirects (more than %u), last to %s",
		         REDIRECTS_MAX, j->resp.location);
		return;
	}
	char *next = malloc(URL_BYTES_MAX + 1);
	const char *why = "URL too long";
	url_t u;
	if (!next || redirect_target(j, j->resp.location, next, URL_BYTES_MAX + 1) ||
	    url_parse(next, strlen(next), &u, &why)) {
		job_fail(l, j, ERROR_CLASS_PERMANENT, 0, "HTTP %d redirect to %s refused: %s", s,
		         j->resp.location, next ? why : "out of memory");
		free(next);
		return;
	}
	uint64_t h = url_hash(next);
	if (j->redirects == 0)
		j->seen_urls[0] = url_hash(j->desc->url);
	for (uint32_t i = 0; i <= j->redirects; i++)
		if (j->seen_urls[i] == h) {
			job_fail(l, j, ERROR_CLASS_PERMANENT, 0, "redirect loop: %s was already visited",
			         next);
			free(next);
			return;
		}
	host_t *host = host_get(l, &u);
	if (!host) {
		job_fail(l, j, ERROR_CLASS_TRANSIENT, 0, "too many hosts in one run (limit %u)",
		         HOSTS_MAX);
		free(next);
		return;
	}
	j->seen_urls[++j->redirects] = h;
	free(j->redirect_url);
	j->redirect_url = next;
	j->url = u; /* its target points into next, which the job now owns */
	j->host = host;
	job_reset_response(l, j);
	host_enqueue(l, host, j);
}

void job_response_done(loop_t *l, job_t *j)
{
	int s = j->resp.status;
	if (s >= 200 && s < 300 && job_gzip_unended(j) && !j->nd_failed) {
		/* The body ended before its gzip data did, framing intact: cut on
		 * the way (a compressing proxy whose upstream died), transient as
		 * a truncated body is; bad gzip data is permanent (job_body_ok,
		 * nd_finish). (A stream whose records failed stopped decoding on
		 * purpose: its failure stands.) */
		job_fail(l, j, ERROR_CLASS_TRANSIENT, 0,
		         "truncated body: its gzip data ends early, after %llu bytes",
		         (unsigned long long)(j->nd ? j->stream_bytes : j->wire.len));
		return;
	}
	if (j->nd) { /* 2xx NDJSON: rows are parsed; the last line and the batch */
		l->bytes += j->stream_bytes;
		nd_finish(l, j);
		if (j->streaming)
			stream_finish(l, j); /* the raw file completes, then job_stream_batch */
		else
			job_ready(l, j);
		return;
	}
	if (j->streaming) { /* 2xx, --download-only: the rest is already on its way */
		l->bytes += j->stream_bytes;
		stream_finish(l, j);
		return;
	}
	l->bytes += job_stored(j)->len;
	if (s >= 200 && s < 300) {
		job_body_ok(l, j);
	} else if (s == 301 || s == 302 || s == 303 || s == 307 || s == 308) {
		job_redirect(l, j);
	} else if (s == 416 && j->range_sent) {
		/* Our Range from a checkpoint was refused: most often the
		 * checkpoint is at the very end of the body (every byte came, the
		 * connection was lost before its end was seen). The next attempt
		 * asks for the whole body and skips the committed records, as
		 * after a 200: never stuck on a Range that cannot be served. At
		 * once, as for a .part too short to resume: no attempt is
		 * counted, so --retries 1 cannot end it on the 416. (Stopping:
		 * it stays pending for the next run.) */
		if (l->stopping)
			job_abandon(l, j);
		else
			job_range_fallback(l, j);
	} else if (status_transient(s)) {
		job_fail(l, j, ERROR_CLASS_TRANSIENT, retry_after_ms(j->resp.retry_after), "HTTP %d %s",
		         s, status_text(s));
	} else {
		job_fail(l, j, ERROR_CLASS_PERMANENT, 0, "HTTP %d %s", s, status_text(s));
	}
}

/* ---- the raw file: open, write, close, rename ---------------------------
 * No fsync: like SQLite's synchronous=NORMAL, this survives the process
 * dying at any instant (the page cache keeps what was written), not a power
 * cut. docs/engine.md says why; an fsync per file cost 30% of a run of small
 * files. */

static void file_submit(loop_t *l, job_t *j)
{
	struct io_uring_sqe *sqe = loop_sqe(l);
	switch (j->file_step) {
	case FILE_OPEN:
		/* No O_CLOEXEC: a direct descriptor is in no fd table (EINVAL). A
		 * body resumed at file_resume keeps the .part's first bytes. */
		io_uring_prep_openat_direct(sqe, l->raw_dirfd, j->raw_rel_part,
		                            (j->file_resume ? O_RDWR | O_CREAT : O_WRONLY | O_CREAT | O_TRUNC) |
		                            (j->streaming && l->o->direct ? O_DIRECT : 0), /* stream.c */
		                            0644, (unsigned)j->file_fd);
		break;
	case FILE_REHASH: {
		uint64_t left = j->file_resume - j->file_off;
		io_uring_prep_read(sqe, j->file_fd, j->rehash_buf,
		                   (unsigned)(left < CHUNK_BYTES ? left : CHUNK_BYTES), j->file_off);
		sqe->flags |= IOSQE_FIXED_FILE;
		break;
	}
	case FILE_WRITE: {
		const json_buf_t *body = job_stored(j);
		size_t left = body->len - j->file_off;
		io_uring_prep_write(sqe, j->file_fd, body->data + j->file_off,
		                    (unsigned)(left < FILE_WRITE_CHUNK ? left : FILE_WRITE_CHUNK),
		                    j->file_off);
		sqe->flags |= IOSQE_FIXED_FILE;
		break;
	}
	case FILE_CLOSE: io_uring_prep_close_direct(sqe, (unsigned)j->file_fd); break;
	case FILE_RENAME:
		io_uring_prep_renameat(sqe, l->raw_dirfd, j->raw_rel_part, l->raw_dirfd,
		                       j->raw_rel_final, 0);
		break;
	}
	io_uring_sqe_set_data(sqe, &j->op_file);
}

/* A streaming job failed while a file request was in flight; now that it
 * has completed, the failure takes its course. */
static void job_stream_abort_done(loop_t *l, job_t *j)
{
	error_class_t cls = j->abort_cls;
	uint64_t delay_ms = j->abort_delay_ms;
	char msg[BATCH_ERROR_BYTES_MAX];
	snprintf(msg, sizeof msg, "%s", j->abort_msg);
	stream_release(l, j);
	job_reset_response(l, j);
	job_fail(l, j, cls, delay_ms, "%s", msg);
}

/* Every chunk is written: close, then rename (job_file_complete). */
void job_stream_done(loop_t *l, job_t *j)
{
	j->file_step = FILE_CLOSE;
	file_submit(l, j);
}

void job_rawdir_ready(loop_t *l, job_t *j)
{
	if (j->aborting) {
		job_stream_abort_done(l, j);
		return;
	}
	/* Slots are sized for a file per active job: there is always one. */
	j->file_fd = loop_slot_get(l);
	assert(j->file_fd >= 0);
	j->file_step = FILE_OPEN;
	file_submit(l, j);
}

static const char *file_step_name(file_step_t s)
{
	switch (s) {
	case FILE_OPEN: return "cannot create";
	case FILE_REHASH: return "cannot read";
	case FILE_WRITE: return "cannot write";
	case FILE_CLOSE: return "cannot close";
	case FILE_RENAME: return "cannot rename";
	}
	return "error on";
}

/* The streamed body is complete and renamed: its batch, with no rows
 * (--download-only). Returns nonzero when it could not be made. */
static int job_stream_batch(loop_t *l, job_t *j)
{
	batch_t *b = j->nd ? j->batch : batch_new(BATCH_JOB_DONE, j->desc->id);
	unsigned char md[32];
	unsigned int n = 0;
	if (!b || EVP_DigestFinal_ex(j->sha, md, &n) != 1) {
		if (b != j->batch)
			batch_free(b); /* an NDJSON job's own batch goes with the job */
		loop_fatal(l, "out of memory");
		job_abandon(l, j);
		return -1;
	}
	hex_digest(md, b->sha256_hex);
	b->attempts = j->desc->attempts + (int)j->attempts_run;
	b->http_status = j->resp.status;
	b->body_bytes = j->nd_base + j->stream_bytes;
	j->batch = b;
	stream_release(l, j);
	return 0;
}

/* A .part shorter than the checkpoint it should continue (a run killed
 * before the page cache had it? another hand?), a 416 or a 206 that cannot
 * continue it (nd_begin): the body is fetched again from the start, its
 * committed records skipped. Not counted as an attempt. */
void job_range_fallback(loop_t *l, job_t *j)
{
	if (j->conn) {
		conn_t *c = j->conn;
		c->job = NULL;
		j->conn = NULL;
		conn_close(l, c);
	}
	j->no_range = true;
	stream_release(l, j);
	job_restart_chain(j);
	job_reset_response(l, j);
	host_enqueue_front(l, j->host, j);
}

/* The request died on a reused keep-alive connection before any byte came
 * back, or came back as a 408 (Request Timeout: servers that close an idle
 * connection answer so, e.g. Node's http.Server): the server most likely
 * timed out the connection just as we used it. Sent again at once, on a new
 * connection, without counting an attempt; a new connection's failure
 * counts. Before 2026-12-08 a 408 counted one. */
void job_stale_retry(loop_t *l, job_t *j)
{
	job_reset_response(l, j);
	j->fresh_only = true;
	host_enqueue_front(l, j->host, j);
}

/* --raw after a 206: the .part's first file_resume bytes are read back through
 * io_uring for the SHA-256 of the whole file; then the body is written on at
 * file_resume. */
static void job_rehashed(loop_t *l, job_t *j, size_t n)
{
	if (j->aborting) {
		job_stream_abort_done(l, j);
		return;
	}
	if (n == 0) {
		job_range_fallback(l, j);
		return;
	}
	EVP_DigestUpdate(j->sha, j->rehash_buf, n);
	j->file_off += n;
	if (j->file_off < j->file_resume) {
		file_submit(l, j);
		return;
	}
	free(j->rehash_buf);
	j->rehash_buf = NULL;
	j->file_step = FILE_WRITE;
	stream_pump(l, j);
}

void job_file_complete(loop_t *l, job_t *j, int res)
{
	if (res < 0 || (j->file_step == FILE_WRITE && res == 0)) {
		/* The disk is the run's problem, not the job's: stop cleanly. A
		 * slot that failed to open or to close is given back as it is. */
		if (j->file_step == FILE_OPEN || j->file_step == FILE_CLOSE) {
			loop_slot_put(l, j->file_fd);
			j->file_fd = -1;
		}
		loop_fatal(l, "%s/%s: %s: %s", l->o->raw, j->raw_rel_part, file_step_name(j->file_step),
		           res ? strerror(-res) : "short write");
		job_abandon(l, j);
		return;
	}
	if (j->streaming && j->file_step == FILE_REHASH) {
		job_rehashed(l, j, (size_t)res);
		return;
	}
	if (j->streaming && (j->file_step == FILE_OPEN || j->file_step == FILE_WRITE)) {
		if (j->file_step == FILE_OPEN) {
			j->file_off = 0;
			j->file_step = j->file_resume ? FILE_REHASH : FILE_WRITE;
			if (j->file_resume && !j->aborting) {
				if (!(j->rehash_buf = malloc(CHUNK_BYTES))) {
					loop_fatal(l, "out of memory");
					job_abandon(l, j);
					return;
				}
				file_submit(l, j);
				return;
			}
		} else {
			stream_written(l, j, (size_t)res);
		}
		if (j->aborting && !j->write_busy)
			job_stream_abort_done(l, j);
		else
			stream_pump(l, j);
		return;
	}
	switch (j->file_step) {
	case FILE_OPEN: /* res is 0: the file is in slot j->file_fd */
		j->file_off = 0;
		j->file_step = job_stored(j)->len ? FILE_WRITE : FILE_CLOSE;
		break;
	case FILE_REHASH: /* streaming only: handled above */
		assert(0);
		return;
	case FILE_WRITE:
		j->file_off += (size_t)res;
		if (j->file_off < job_stored(j)->len)
			break;
		j->file_step = FILE_CLOSE;
		break;
	case FILE_CLOSE:
		loop_slot_put(l, j->file_fd);
		j->file_fd = -1;
		j->file_step = FILE_RENAME;
		break;
	case FILE_RENAME:
		if (j->streaming && job_stream_batch(l, j))
			return;
		if (batch_set_raw_path(j->batch, l->o->raw, j->raw_rel_final) != 0) {
			job_abandon(l, j); /* the file is in place; the job stays pending */
			loop_fatal(l, "out of memory");
			return;
		}
		job_ready(l, j);
		return;
	}
	file_submit(l, j);
}
