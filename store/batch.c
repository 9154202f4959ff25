/* store/batch.c: a job's outcome and its rows, encoded for the writer.
 *
 * The loop (engine/) parses a body (parse/json.h), selects the records with a
 * JSONPath and calls batch_add_rows, which flattens each record into typed
 * fields (DESIGN §4) in one growable buffer; the batch then travels through
 * the SPSC ring (store/ring.h) to the writer (store/writer.c), which iterates
 * the fields and binds them. Encoding: see store/batch.h. */
#include "store/batch.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

/* FIELD_INT/FIELD_REAL values are memcpy'd in host order; the encoding says
 * little-endian, which every Linux target we build for is. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "batch encoding is little-endian");

#define BATCH_NAMESET_SLOTS_MIN 64u /* per-row duplicate-name check, grows as needed */
/* A string longer than this is not a number or a boolean when a column
 * converts it (the longest exact int64 or double spelling is far shorter). */
#define BATCH_CONVERT_TEXT_BYTES_MAX 64u
/* A rows buffer this large or larger is kept in whole transparent huge
 * pages (one is 2 MiB on x86-64): see rows_reserve. */
#define BATCH_ROWS_HUGE_BYTES (2u << 20)

/* A declared table's row columns whose path starts with a name ("@.id",
 * "@.actor.login") are found together, in one pass over the row object's
 * members (json_object_get_all), instead of one json_object_get scan per
 * column: an event of 8 members and 7 such columns is read once, not 7
 * times. The rest of each path is walked from the member found. */
struct batch_row_plan {
	json_names_t *names; /* one first name per planned column; NULL: none */
	uint32_t *col_at;    /* per column: its index in names, or UINT32_MAX */
	uint32_t *found;     /* json_object_get_all's out, per name */
	size_t *name_len;    /* per column: strlen of its name */
};

static void row_plan_free(struct batch_row_plan *p)
{
	if (!p)
		return;
	json_names_free(p->names);
	free(p->col_at);
	free(p->found);
	free(p->name_len);
	free(p);
}

/* NULL on out of memory, which leaves every column to json_path_each. */
static struct batch_row_plan *row_plan_make(const table_spec_t *t)
{
	struct batch_row_plan *p = calloc(1, sizeof *p);
	const char **names = calloc(t->n_cols, sizeof *names);
	size_t *lens = calloc(t->n_cols, sizeof *lens);
	if (!p || !names || !lens || !(p->col_at = calloc(t->n_cols, sizeof *p->col_at)) ||
	    !(p->found = calloc(t->n_cols, sizeof *p->found)) ||
	    !(p->name_len = calloc(t->n_cols, sizeof *p->name_len)))
		goto fail;
	uint32_t n = 0;
	for (uint32_t i = 0; i < t->n_cols; i++) {
		const column_spec_t *col = &t->cols[i];
		p->col_at[i] = UINT32_MAX;
		p->name_len[i] = strlen(col->name);
		if (col->from == COLUMN_FROM_ROW && col->path &&
		    (names[n] = json_path_first_name(col->path, &lens[n])) != NULL)
			p->col_at[i] = n++;
	}
	if (n && !(p->names = json_names_new(names, lens, n)))
		goto fail;
	free(names);
	free(lens);
	return p;
fail:
	free(names);
	free(lens);
	row_plan_free(p);
	return NULL;
}

void table_specs_free(table_spec_t *t, uint32_t n)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < n; i++) {
		for (uint32_t c = 0; c < t[i].n_cols; c++) {
			free(t[i].cols[c].name);
			free(t[i].cols[c].expr);
			free(t[i].cols[c].var);
			json_path_free(t[i].cols[c].path);
		}
		for (uint32_t k = 0; k < t[i].n_key; k++)
			free(t[i].key[k]);
		for (uint32_t k = 0; k < t[i].n_null_if; k++)
			free(t[i].null_if[k]);
		free(t[i].cols);
		free(t[i].key);
		free(t[i].null_if);
		free(t[i].name);
		json_path_free(t[i].rows);
		row_plan_free(t[i].plan);
	}
	free(t);
}

const char *column_type_name(column_type_t t)
{
	switch (t) {
	case COLUMN_AUTO: return "auto";
	case COLUMN_TEXT: return "text";
	case COLUMN_INTEGER: return "integer";
	case COLUMN_REAL: return "real";
	case COLUMN_JSON: return "json";
	case COLUMN_BOOLEAN: return "boolean";
	}
	return "?";
}

const char *table_mode_name(table_mode_t m)
{
	switch (m) {
	case TABLE_APPEND: return "append";
	case TABLE_UPSERT: return "upsert";
	case TABLE_IGNORE: return "ignore";
	}
	return "?";
}

batch_t *batch_new(batch_kind_t kind, int64_t job_id)
{
	assert(kind == BATCH_JOB_DONE || kind == BATCH_JOB_FAILED || kind == BATCH_END ||
	       kind == BATCH_JOB_CHECKPOINT);
	batch_t *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->kind = kind;
	b->job_id = job_id;
	return b;
}

void batch_free(batch_t *b)
{
	if (!b)
		return;
	json_buf_free(&b->rows);
	json_buf_free(&b->emit);
	free(b->raw_path);
	free(b);
}

size_t batch_mem_bytes(const batch_t *b)
{
	return sizeof(*b) + b->rows.cap + b->emit.cap + (b->raw_path ? strlen(b->raw_path) + 1 : 0);
}

int batch_set_raw_path(batch_t *b, const char *dir, const char *name)
{
	assert(b && name);
	size_t nd = dir ? strlen(dir) + 1 : 0, nn = strlen(name);
	char *p = malloc(nd + nn + 1);
	if (!p)
		return -ENOMEM;
	if (dir) {
		memcpy(p, dir, nd - 1);
		p[nd - 1] = '/';
	}
	memcpy(p + nd, name, nn + 1);
	free(b->raw_path);
	b->raw_path = p;
	return 0;
}

void batch_fail(batch_t *b, error_class_t cls, const char *fmt, ...)
{
	assert(cls == ERROR_CLASS_TRANSIENT || cls == ERROR_CLASS_PERMANENT);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b->error, sizeof(b->error), fmt, ap);
	va_end(ap);
	/* The reason is one line in `ringfill status`; a newline from a server's
	 * message must not break that. */
	for (char *p = b->error; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	b->kind = BATCH_JOB_FAILED;
	b->error_class = cls;
	/* A failed job inserts no rows (store/writer.c relies on it). */
	b->n_rows = 0;
	b->rows.len = 0;
	b->n_emit = 0; /* nor does it make jobs */
	b->emit.len = 0;
}

static int emit_part(json_buf_t *e, const char *p, size_t n)
{
	if (n > UINT32_MAX)
		return -ENOMEM;
	uint32_t len = (uint32_t)n;
	return json_buf_append(e, &len, sizeof(len)) || json_buf_append(e, p, n) ? -ENOMEM : 0;
}

int batch_add_job(batch_t *b, unsigned flags, const char *key, size_t key_len, const char *url,
                  size_t url_len, const char *text, size_t text_len)
{
	size_t mark = b->emit.len;
	uint8_t f = (uint8_t)flags;
	if (json_buf_append(&b->emit, &f, 1) || emit_part(&b->emit, key, key_len) ||
	    emit_part(&b->emit, url, url_len) || emit_part(&b->emit, text, text_len)) {
		b->emit.len = mark;
		return -ENOMEM;
	}
	b->n_emit++;
	return 0;
}

static const char *emit_take(const batch_t *b, size_t *pos, uint32_t *len)
{
	memcpy(len, b->emit.data + *pos, sizeof(*len));
	const char *p = b->emit.data + *pos + sizeof(*len);
	*pos += sizeof(*len) + *len;
	return p;
}

bool batch_next_job(const batch_t *b, size_t *pos, batch_job_t *out)
{
	if (*pos >= b->emit.len)
		return false;
	out->flags = (uint8_t)b->emit.data[(*pos)++];
	out->key = emit_take(b, pos, &out->key_len);
	out->url = emit_take(b, pos, &out->url_len);
	out->text = emit_take(b, pos, &out->text_len);
	if (!out->url_len)
		out->url = NULL;
	return true;
}

/* ---- the rows buffer ---------------------------------------------------- */

/* Room for `extra` more bytes in a rows buffer. A small one grows as every
 * json_buf does. From BATCH_ROWS_HUGE_BYTES on (a checkpoint batch of a
 * streamed NDJSON page holds several MB) it moves to memory aligned to and
 * sized in huge pages, marked MADV_HUGEPAGE: every byte of a batch is
 * written once into memory that is new (the writer frees the batch after
 * its commit), and faulting that in 4 KiB at a time was most of the cost
 * of extraction on the events (docs/benchmarks.md, branch `events`).
 * madvise is advice: where THP is off the pages are small, nothing else. */
static int rows_reserve(json_buf_t *r, size_t extra)
{
	if (extra <= r->cap - r->len)
		return 0;
	if (extra > SIZE_MAX / 4 - r->len)
		return -ENOMEM;
	size_t need = r->len + extra;
	if (need < BATCH_ROWS_HUGE_BYTES)
		return json_buf_reserve(r, extra);
	size_t cap = need > 2 * r->cap ? need : 2 * r->cap;
	cap = (cap + BATCH_ROWS_HUGE_BYTES - 1) & ~(size_t)(BATCH_ROWS_HUGE_BYTES - 1);
	char *m = aligned_alloc(BATCH_ROWS_HUGE_BYTES, cap);
	if (!m)
		return -ENOMEM;
	(void)madvise(m, cap, MADV_HUGEPAGE);
	if (r->len)
		memcpy(m, r->data, r->len);
	free(r->data); /* aligned_alloc's memory is free()d like malloc's: batch_free */
	r->data = m;
	r->cap = cap;
	return 0;
}

int batch_rows_reserve(batch_t *b, size_t bytes)
{
	return bytes > b->rows.len ? rows_reserve(&b->rows, bytes - b->rows.len) : 0;
}

/* ---- flattening ------------------------------------------------------- */

/* State of one batch_add_rows call. The name buffer holds the flattened
 * prefix of the object being walked ("user_address_"). The name set holds the
 * buffer offsets of the names written in the current row, so two keys that
 * flatten to the same column ({"a_b":1,"a":{"b":2}}) are reported instead of
 * one silently overwriting the other in the writer. */
typedef struct {
	batch_t *b;
	json_buf_t *rows; /* where fields go: &b->rows, or a batch_docvals_t's buffer */
	const char *reason;
	const table_spec_t *spec; /* the table being filled; NULL: inferred, no null_if */
	uint32_t table;           /* its index, written at the start of each row */
	const json_doc_t *vars;   /* the job's variables, or NULL */
	char name[BATCH_COLUMN_NAME_BYTES_MAX + 1];
	const char *fname; /* the name field_begin writes: a declared column's, or NULL: name */
	size_t row_start;   /* offset of the current row's field count */
	size_t field_start; /* offset of the type byte of the field being written */
	uint32_t row_fields;
	uint32_t *set;      /* open addressing: name offset + 1, 0 = empty */
	uint32_t set_slots; /* power of two, kept at least twice row_fields */
	const struct batch_docvals *dv; /* the document's `$` columns, or NULL */
	bool whole_doc;     /* declared row of a `$` table with no document: all from dv */
} flat_ctx_t;

static uint32_t name_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h;
}

/* The name stored at a field offset in the rows buffer. */
static const char *field_name_at(const flat_ctx_t *c, uint32_t off, uint16_t *len)
{
	memcpy(len, c->rows->data + off + 1, sizeof(*len));
	return c->rows->data + off + 3;
}

static int set_insert(flat_ctx_t *c, uint32_t off);

static int set_grow(flat_ctx_t *c)
{
	uint32_t old_slots = c->set_slots, *old = c->set;
	uint32_t slots = old_slots ? old_slots * 2 : BATCH_NAMESET_SLOTS_MIN;
	c->set = calloc(slots, sizeof(*c->set));
	if (!c->set) {
		c->set = old;
		return -ENOMEM;
	}
	c->set_slots = slots;
	for (uint32_t i = 0; i < old_slots; i++)
		if (old[i] && set_insert(c, old[i] - 1) != 0)
			assert(!"names were unique before growing");
	free(old);
	return 0;
}

/* 0, -EEXIST when the row already has a field of that name, or -ENOMEM. */
static int set_insert(flat_ctx_t *c, uint32_t off)
{
	if ((c->row_fields + 1) * 2 > c->set_slots && set_grow(c) != 0)
		return -ENOMEM;
	uint16_t len;
	const char *name = field_name_at(c, off, &len);
	uint32_t i = name_hash(name, len) & (c->set_slots - 1);
	for (; c->set[i]; i = (i + 1) & (c->set_slots - 1)) {
		uint16_t olen;
		const char *oname = field_name_at(c, c->set[i] - 1, &olen);
		if (olen == len && memcmp(oname, name, len) == 0)
			return -EEXIST;
	}
	c->set[i] = off + 1;
	return 0;
}

/* The reason for two fields of a record with the one column name
 * name[0..n): the name, printable bytes only and cut at 64, in a buffer of
 * the calling thread's, valid until its next failure. */
static const char *collision_reason(const char *name, size_t n)
{
	static _Thread_local char buf[320];
	char shown[3 * 64 + 4];
	size_t k = 0;
	size_t cut = n < 64 ? n : 64;
	while (cut < n && cut > 0 && ((unsigned char)name[cut] & 0xC0) == 0x80)
		cut--; /* not inside a UTF-8 character */
	for (size_t i = 0; i < cut; i++) {
		unsigned char ch = (unsigned char)name[i];
		shown[k++] = ch >= 0x20 && ch != 0x7f ? (char)ch : '?';
	}
	if (cut < n)
		shown[k++] = '.', shown[k++] = '.', shown[k++] = '.';
	shown[k] = '\0';
	snprintf(buf, sizeof(buf), "two fields of a record flatten to the column name \"%s\" "
	         "(a key written so, and a nested one or a repeated key)", shown);
	return buf;
}

/* Appends a field header for name[0..name_len) and returns the offset of the
 * u32 value length, which the caller fills once the value is written. */
static int field_begin(flat_ctx_t *c, field_type_t type, size_t name_len, size_t value_max,
                       size_t *len_off)
{
	json_buf_t *r = c->rows;
	if (r->len + BATCH_FIELD_HEADER_BYTES + name_len + value_max > UINT32_MAX) {
		c->reason = "batch larger than 4 GiB";
		return -1;
	}
	if (rows_reserve(r, BATCH_FIELD_HEADER_BYTES + name_len + value_max) != 0) {
		c->reason = "out of memory";
		return -1;
	}
	size_t start = r->len;
	c->field_start = start;
	uint8_t t = (uint8_t)type;
	uint16_t nl = (uint16_t)name_len;
	r->data[r->len++] = (char)t;
	memcpy(r->data + r->len, &nl, sizeof(nl));
	r->len += sizeof(nl);
	memcpy(r->data + r->len, c->fname ? c->fname : c->name, name_len);
	r->len += name_len;
	*len_off = r->len;
	r->len += sizeof(uint32_t);
	/* A declared table's fields are its columns, one each, whose names the
	 * job file made unique: only flattened names can collide. */
	int rc = c->spec && c->spec->n_cols ? 0 : set_insert(c, (uint32_t)start);
	if (rc != 0) {
		c->reason = rc == -EEXIST ? collision_reason(c->fname ? c->fname : c->name, name_len)
		                          : "out of memory";
		return -1;
	}
	c->row_fields++;
	return 0;
}

static void field_end(flat_ctx_t *c, size_t len_off)
{
	json_buf_t *r = c->rows;
	assert(r->len >= len_off + sizeof(uint32_t));
	uint32_t vlen = (uint32_t)(r->len - len_off - sizeof(uint32_t));
	memcpy(r->data + len_off, &vlen, sizeof(vlen));
}

static int field_fixed(flat_ctx_t *c, field_type_t type, size_t name_len, const void *v,
                       size_t n)
{
	size_t len_off;
	if (field_begin(c, type, name_len, n, &len_off) != 0)
		return -1;
	if (n)
		memcpy(c->rows->data + c->rows->len, v, n);
	c->rows->len += n;
	field_end(c, len_off);
	return 0;
}

/* True when the table turns this string value into NULL. */
static bool is_null_if(const flat_ctx_t *c, const char *s, size_t n)
{
	if (!c->spec)
		return false;
	for (uint32_t i = 0; i < c->spec->n_null_if; i++) {
		const char *v = c->spec->null_if[i];
		if (strlen(v) == n && memcmp(v, s, n) == 0)
			return true;
	}
	return false;
}

/* A string, unescaped straight into the buffer: the unescaped text is never
 * longer than the quoted source text. */
static int field_string(flat_ctx_t *c, const json_doc_t *d, uint32_t n, size_t name_len)
{
	size_t len_off, cap = d->nodes[n].len;
	if (field_begin(c, FIELD_TEXT, name_len, cap, &len_off) != 0)
		return -1;
	json_buf_t *r = c->rows;
	size_t got = json_string_get(d, n, r->data + r->len, cap);
	assert(got <= cap);
	if (is_null_if(c, r->data + r->len, got))
		r->data[c->field_start] = (char)FIELD_NULL; /* value length stays 0 */
	else
		r->len += got;
	field_end(c, len_off);
	return 0;
}

/* Integers that fit int64 → INT; other integers → their digits (BIGINT:
 * stored as TEXT, no precision lost; the writer refuses them for a numeric
 * column); fractions and exponents → REAL, or TEXT if out of range. */
static int field_number(flat_ctx_t *c, const json_doc_t *d, uint32_t n, size_t name_len)
{
	const json_node_t *node = &d->nodes[n];
	int64_t i;
	double x;
	if (json_number_int64(d, n, &i) == 0)
		return field_fixed(c, FIELD_INT, name_len, &i, sizeof(i));
	if (!(node->flags & JSON_F_INTEGER) && json_number_double(d, n, &x) == 0)
		return field_fixed(c, FIELD_REAL, name_len, &x, sizeof(x));
	return field_fixed(c, node->flags & JSON_F_INTEGER ? FIELD_BIGINT : FIELD_TEXT, name_len,
	                   d->src + node->start, node->len);
}

/* True when node n's source text is already compact JSON, which is what
 * json_write would make of it: no whitespace between its tokens. The
 * compact text is the tokens (keys and scalars as written), the brackets,
 * a ':' per member and a ',' between elements; the source text is that and
 * any whitespace, so the lengths are equal exactly when there is none. One
 * pass over the subtree's tape entries, without copying. */
static bool json_compact(const json_doc_t *d, uint32_t n)
{
	const json_node_t *nodes = d->nodes;
	uint64_t len = 0;
	for (uint32_t i = n, end = nodes[n].next; i < end; i++) {
		const json_node_t *node = &nodes[i];
		if (node->type == JSON_OBJECT)
			len += 2u + (uint64_t)node->count + (node->count ? node->count - 1u : 0u);
		else if (node->type == JSON_ARRAY)
			len += 2u + (node->count ? node->count - 1u : 0u);
		else
			len += node->len;
	}
	return len == nodes[n].len;
}

/* Arrays (and empty objects, which would otherwise leave no trace) are kept
 * as compact JSON text, which is never longer than the node's own text: the
 * room is made here, so json_write never grows the buffer itself. Text that
 * is compact already (the usual API output) is copied whole. */
static int field_json(flat_ctx_t *c, const json_doc_t *d, uint32_t n, size_t name_len)
{
	size_t len_off;
	const json_node_t *node = &d->nodes[n];
	if (field_begin(c, FIELD_JSON, name_len, node->len, &len_off) != 0)
		return -1;
	if (json_compact(d, n)) {
		memcpy(c->rows->data + c->rows->len, d->src + node->start, node->len);
		c->rows->len += node->len;
	} else if (json_write(d, n, c->rows) != 0) {
		c->reason = "out of memory";
		return -1;
	}
	field_end(c, len_off);
	return 0;
}

static int flatten_object(flat_ctx_t *c, const json_doc_t *d, uint32_t obj, size_t prefix_len);

/* One value whose column name is c->name[0..name_len). */
static int flatten_value(flat_ctx_t *c, const json_doc_t *d, uint32_t n, size_t name_len)
{
	uint8_t v;
	switch (json_type(d, n)) {
	case JSON_NULL:
		return field_fixed(c, FIELD_NULL, name_len, NULL, 0);
	case JSON_TRUE:
	case JSON_FALSE:
		v = json_type(d, n) == JSON_TRUE;
		return field_fixed(c, FIELD_BOOL, name_len, &v, 1);
	case JSON_NUMBER:
		return field_number(c, d, n, name_len);
	case JSON_STRING:
		return field_string(c, d, n, name_len);
	case JSON_ARRAY:
		return field_json(c, d, n, name_len);
	case JSON_OBJECT:
		if (d->nodes[n].count == 0)
			return field_json(c, d, n, name_len);
		if (name_len + 1 > BATCH_COLUMN_NAME_BYTES_MAX) {
			c->reason = "flattened column name longer than 256 bytes";
			return -1;
		}
		c->name[name_len] = '_';
		return flatten_object(c, d, n, name_len + 1);
	}
	c->reason = "unknown JSON node type";
	return -1;
}

/* Each key of obj, appended to the prefix already in c->name. */
static int flatten_object(flat_ctx_t *c, const json_doc_t *d, uint32_t obj, size_t prefix_len)
{
	assert(json_type(d, obj) == JSON_OBJECT);
	uint32_t key = obj + 1;
	for (uint32_t i = 0; i < d->nodes[obj].count; i++) {
		assert(json_type(d, key) == JSON_STRING);
		uint32_t val = d->nodes[key].next;
		size_t room = BATCH_COLUMN_NAME_BYTES_MAX - prefix_len;
		size_t klen = json_string_get(d, key, c->name + prefix_len, room);
		if (klen > room) {
			c->reason = "flattened column name longer than 256 bytes";
			return -1;
		}
		if (flatten_value(c, d, val, prefix_len + klen) != 0)
			return -1;
		key = d->nodes[val].next;
	}
	return 0;
}

/* Starts a row: its table index and a field count filled in by row_end. */
static int row_begin(flat_ctx_t *c)
{
	json_buf_t *r = c->rows;
	if (rows_reserve(r, 2 * sizeof(uint32_t)) != 0) {
		c->reason = "out of memory";
		return -1;
	}
	memcpy(r->data + r->len, &c->table, sizeof(c->table));
	r->len += sizeof(c->table);
	c->row_start = r->len;
	c->row_fields = 0;
	if (c->set)
		memset(c->set, 0, c->set_slots * sizeof(*c->set));
	r->len += sizeof(uint32_t);
	return 0;
}

static void row_end(flat_ctx_t *c)
{
	memcpy(c->rows->data + c->row_start, &c->row_fields, sizeof(c->row_fields));
	c->b->n_rows++;
}

/* An inferred row: the selected node flattened (DESIGN §4). */
static int add_row(void *ctx, const json_doc_t *d, uint32_t node)
{
	flat_ctx_t *c = ctx;
	if (row_begin(c) != 0)
		return -1;
	int rc;
	if (json_type(d, node) == JSON_OBJECT) {
		rc = flatten_object(c, d, node, 0);
	} else {
		memcpy(c->name, "value", 5);
		rc = flatten_value(c, d, node, 5);
	}
	if (rc != 0)
		return -1;
	row_end(c);
	return 0;
}

/* ---- declared columns: one value each, converted to the column's type --- */

typedef struct {
	uint32_t node;
} first_t;

static int take_first(void *ctx, const json_doc_t *d, uint32_t node)
{
	(void)d;
	((first_t *)ctx)->node = node;
	return 1; /* a column holds one value: the first the path selects */
}

/* The unescaped string into buf (cap bytes, NUL-terminated); false when it
 * is longer, so it cannot spell a number or a boolean. */
static bool short_string(const json_doc_t *d, uint32_t n, char *buf, size_t cap)
{
	size_t got = json_string_get(d, n, buf, cap - 1);
	if (got >= cap || memchr(buf, '\0', got)) /* "1\u0000x" is no number */
		return false;
	buf[got] = '\0';
	return true;
}

/* A decimal number's parts: an optional sign, digits with an optional
 * fraction, an optional exponent (JSON's number, with a '+' sign and "1."
 * or ".5" allowed too; no spaces, no hex, no "inf" or "nan"). */
typedef struct {
	bool neg;
	const char *digits; /* the integer part's digits, then the fraction's */
	size_t int_len, frac_len;
	const char *frac;
	long long exp; /* clamped to +-2^40: past any digit count a document can hold (4 GiB) */
} decimal_t;

/* Where decimal_scan stops reading an exponent: larger than any count of
 * digits, so int_len + exp decides "whole" as the true exponent would
 * (before 2026-12-08 it was 100000, and 100001 digits then e-1000000, not
 * whole, were taken for 1). */
#define DECIMAL_EXP_MAX (1LL << 40)

static bool decimal_scan(const char *s, size_t n, decimal_t *m)
{
	size_t i = 0;
	memset(m, 0, sizeof(*m));
	if (i < n && (s[i] == '-' || s[i] == '+'))
		m->neg = s[i++] == '-';
	m->digits = s + i;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++, m->int_len++;
	if (i < n && s[i] == '.') {
		m->frac = s + ++i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++, m->frac_len++;
	}
	if (m->int_len + m->frac_len == 0)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		bool eneg = false;
		if (++i < n && (s[i] == '+' || s[i] == '-'))
			eneg = s[i++] == '-';
		size_t at = i;
		for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			if (m->exp < DECIMAL_EXP_MAX)
				m->exp = m->exp * 10 + (s[i] - '0');
		if (i == at)
			return false;
		if (eneg)
			m->exp = -m->exp;
	}
	return i == n;
}

/* s[0..n) as a whole number ("42", "-7", "3.0", "1e3", "1.5e1"), exactly:
 * no double in between, so "1.0000000000000000001" and 1e-400 are not
 * whole, and "9223372036854775807.0" is. 1 with *out when it is within
 * int64; BATCH_WHOLE_BEYOND when it is whole but outside int64 ("1e30", twenty
 * digits); 0 when it is no whole decimal number. */
int batch_decimal_whole(const char *s, size_t n, int64_t *out)
{
	decimal_t m;
	if (!decimal_scan(s, n, &m))
		return 0;
	size_t len = m.int_len + m.frac_len;
	long long whole = (long long)m.int_len + m.exp; /* digits left of the point */
	uint64_t u = 0;
	bool beyond = false; /* past UINT64_MAX: only a fraction can still say "not whole" */
	for (size_t k = 0; k < len; k++) {
		int dg = (k < m.int_len ? m.digits[k] : m.frac[k - m.int_len]) - '0';
		if ((long long)k >= whole) {
			if (dg) /* a fraction that is not zero */
				return 0;
			continue;
		}
		if (beyond || u > (UINT64_MAX - (uint64_t)dg) / 10u)
			beyond = true;
		else
			u = u * 10u + (uint64_t)dg;
	}
	for (long long k = (long long)len; k < whole && u && !beyond; k++) { /* the exponent's zeros */
		if (u > UINT64_MAX / 10u)
			beyond = true;
		else
			u *= 10u;
	}
	if (beyond || u > (m.neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX))
		return BATCH_WHOLE_BEYOND;
	*out = m.neg ? (int64_t)(0 - u) : (int64_t)u;
	return 1;
}

/* s[0..n) as batch_decimal_whole reads it; leading or trailing spaces make it not
 * a number. */
static int text_whole(const char *s, size_t n, int64_t *out)
{
	if (!n || *s == ' ')
		return 0;
	/* Up to 18 digits (string ids, the usual case) cannot overflow: the
	 * value strtoll would give, without its locale and errno. */
	const char *p = s + (*s == '-');
	size_t k = 0, left = n - (size_t)(p - s);
	uint64_t u = 0;
	while (k <= 18 && k < left && p[k] >= '0' && p[k] <= '9')
		u = u * 10u + (uint64_t)(p[k++] - '0');
	if (k && k <= 18 && k == left) {
		*out = *s == '-' ? -(int64_t)u : (int64_t)u;
		return 1;
	}
	return batch_decimal_whole(s, n, out);
}

static bool text_to_double(const char *s, double *out)
{
	decimal_t m;
	if (!decimal_scan(s, strlen(s), &m)) /* strtod would take "0x10", " 1", "inf" */
		return false;
	char *end;
	double x = strtod(s, &end);
	if (*end || !isfinite(x))
		return false;
	*out = x;
	return true;
}

static int emit_null(flat_ctx_t *c, size_t name_len)
{
	return field_fixed(c, FIELD_NULL, name_len, NULL, 0);
}

static int emit_int(flat_ctx_t *c, size_t name_len, int64_t v)
{
	return field_fixed(c, FIELD_INT, name_len, &v, sizeof(v));
}

/* A whole number beyond int64 for an `integer` column: its text, as a
 * BIGINT field (the writer keeps it where the column stores text, and fails
 * the job where SQLite would keep 15 of its digits). Never NULL: a value
 * that is a number is not dropped for being large. */
static int emit_beyond(flat_ctx_t *c, size_t name_len, const char *s, size_t n)
{
	return field_fixed(c, FIELD_BIGINT, name_len, s, n);
}

/* A string for an `integer` column. One longer than the short buffer is
 * unescaped into the row and decided there (a number that long is beyond
 * int64 unless it is mostly zeros). */
static int integer_from_string(flat_ctx_t *c, const json_doc_t *d, uint32_t n, size_t name_len)
{
	char buf[BATCH_CONVERT_TEXT_BYTES_MAX];
	int64_t v;
	int w;
	size_t got = json_string_get(d, n, buf, sizeof(buf) - 1);
	if (got < sizeof(buf)) {
		if (memchr(buf, '\0', got)) /* "1\u0000x" is no number */
			return emit_null(c, name_len);
		w = text_whole(buf, got, &v);
		return w > 0 ? emit_int(c, name_len, v)
		       : w < 0 ? emit_beyond(c, name_len, buf, got)
		               : emit_null(c, name_len);
	}
	const char *raw = d->src + d->nodes[n].start + 1;
	if (!((*raw >= '0' && *raw <= '9') || *raw == '-' || *raw == '+' || *raw == '.' ||
	      *raw == '\\'))
		return emit_null(c, name_len); /* the usual long text: no room made for it */
	size_t len_off, cap = d->nodes[n].len;
	if (field_begin(c, FIELD_BIGINT, name_len, cap, &len_off) != 0)
		return -1;
	json_buf_t *r = c->rows;
	char *text = r->data + r->len;
	got = json_string_get(d, n, text, cap);
	assert(got <= cap && got >= sizeof(buf) && cap >= sizeof(v));
	w = memchr(text, '\0', got) ? 0 : text_whole(text, got, &v);
	if (w > 0) {
		r->data[c->field_start] = (char)FIELD_INT;
		memcpy(text, &v, sizeof(v));
		r->len += sizeof(v);
	} else if (w < 0) {
		r->len += got;
	} else {
		r->data[c->field_start] = (char)FIELD_NULL; /* value length stays 0 */
	}
	field_end(c, len_off);
	return 0;
}

static int convert_integer(flat_ctx_t *c, const json_doc_t *d, uint32_t n, size_t name_len)
{
	int64_t v;
	const json_node_t *node = &d->nodes[n];
	switch (json_type(d, n)) {
	case JSON_TRUE: return emit_int(c, name_len, 1);
	case JSON_FALSE: return emit_int(c, name_len, 0);
	case JSON_NUMBER:
		if (json_number_int64(d, n, &v) == 0)
			return emit_int(c, name_len, v);
		switch (batch_decimal_whole(d->src + node->start, node->len, &v)) {
		case 1: return emit_int(c, name_len, v);
		case BATCH_WHOLE_BEYOND:
			return emit_beyond(c, name_len, d->src + node->start, node->len);
		default: break;
		}
		break;
	case JSON_STRING: return integer_from_string(c, d, n, name_len);
	default: break;
	}
	return emit_null(c, name_len);
}

/* A string longer than the short buffer as a finite decimal number, read
 * whole ("0.000...0042", a long fraction): a `real` column takes it as it
 * takes a short one (before 2026-12-08 such a string was NULL). */
static bool real_from_long_string(const json_doc_t *d, uint32_t n, double *x)
{
	const char *raw = d->src + d->nodes[n].start + 1;
	if (!((*raw >= '0' && *raw <= '9') || *raw == '-' || *raw == '+' || *raw == '.' ||
	      *raw == '\\'))
		return false; /* the usual long text: no number */
	size_t cap = d->nodes[n].len;
	char *buf = malloc(cap + 1);
	if (!buf)
		return false;
	size_t got = json_string_get(d, n, buf, cap);
	bool ok = got <= cap && !memchr(buf, '\0', got);
	if (ok) {
		buf[got] = '\0';
		ok = text_to_double(buf, x);
	}
	free(buf);
	return ok;
}

static int convert_real(flat_ctx_t *c, const json_doc_t *d, uint32_t n, size_t name_len)
{
	char buf[BATCH_CONVERT_TEXT_BYTES_MAX];
	double x;
	switch (json_type(d, n)) {
	case JSON_TRUE:
	case JSON_FALSE:
		x = json_type(d, n) == JSON_TRUE ? 1.0 : 0.0;
		return field_fixed(c, FIELD_REAL, name_len, &x, sizeof(x));
	case JSON_NUMBER:
		if (json_number_double(d, n, &x) == 0 && isfinite(x))
			return field_fixed(c, FIELD_REAL, name_len, &x, sizeof(x));
		break;
	case JSON_STRING:
		if (short_string(d, n, buf, sizeof(buf))) {
			if (text_to_double(buf, &x))
				return field_fixed(c, FIELD_REAL, name_len, &x, sizeof(x));
		} else if (real_from_long_string(d, n, &x)) {
			return field_fixed(c, FIELD_REAL, name_len, &x, sizeof(x));
		}
		break;
	default: break;
	}
	return emit_null(c, name_len);
}

static int convert_boolean(flat_ctx_t *c, const json_doc_t *d, uint32_t n, size_t name_len)
{
	char buf[BATCH_CONVERT_TEXT_BYTES_MAX];
	int64_t v;
	int t = -1;
	switch (json_type(d, n)) {
	case JSON_TRUE: t = 1; break;
	case JSON_FALSE: t = 0; break;
	case JSON_NUMBER: /* whole, as for an integer column: 1.0 and 1e0 are 1 */
		if ((json_number_int64(d, n, &v) == 0 ||
		     batch_decimal_whole(d->src + d->nodes[n].start, d->nodes[n].len, &v) == 1) &&
		    (v == 0 || v == 1))
			t = (int)v;
		break;
	case JSON_STRING:
		if (!short_string(d, n, buf, sizeof(buf)))
			break;
		if (!strcasecmp(buf, "true") || !strcmp(buf, "1"))
			t = 1;
		else if (!strcasecmp(buf, "false") || !strcmp(buf, "0"))
			t = 0;
		break;
	default: break;
	}
	if (t < 0)
		return emit_null(c, name_len);
	uint8_t b = (uint8_t)t;
	return field_fixed(c, FIELD_BOOL, name_len, &b, 1);
}

/* Text: strings as they are; numbers exactly as written; true/false as
 * words; arrays and objects as compact JSON. */
static int convert_text(flat_ctx_t *c, const json_doc_t *d, uint32_t n, size_t name_len)
{
	const json_node_t *node = &d->nodes[n];
	switch (json_type(d, n)) {
	case JSON_STRING: return field_string(c, d, n, name_len);
	case JSON_NUMBER:
		return field_fixed(c, FIELD_TEXT, name_len, d->src + node->start, node->len);
	case JSON_TRUE: return field_fixed(c, FIELD_TEXT, name_len, "true", 4);
	case JSON_FALSE: return field_fixed(c, FIELD_TEXT, name_len, "false", 5);
	default: return field_json(c, d, n, name_len);
	}
}

/* One declared column's value: node n of d, or JSON_NONE when the path
 * selected nothing. Its name comes from the spec (c->fname, emit_column). */
static int emit_value(flat_ctx_t *c, const column_spec_t *col, size_t name_len,
                      const json_doc_t *d, uint32_t n)
{
	if (n == JSON_NONE || json_type(d, n) == JSON_NULL)
		return emit_null(c, name_len);
	if (json_type(d, n) == JSON_STRING && c->spec->n_null_if) {
		char buf[BATCH_NULL_IF_BYTES_MAX];
		size_t got = json_string_get(d, n, buf, sizeof(buf));
		if (got <= sizeof(buf) && is_null_if(c, buf, got))
			return emit_null(c, name_len);
	}
	switch (col->type) {
	case COLUMN_TEXT: return convert_text(c, d, n, name_len);
	case COLUMN_INTEGER: return convert_integer(c, d, n, name_len);
	case COLUMN_REAL: return convert_real(c, d, n, name_len);
	case COLUMN_BOOLEAN: return convert_boolean(c, d, n, name_len);
	case COLUMN_JSON: return field_json(c, d, n, name_len);
	case COLUMN_AUTO:
		if (json_type(d, n) == JSON_OBJECT)
			return field_json(c, d, n, name_len);
		return flatten_value(c, d, n, name_len);
	}
	c->reason = "unknown column type";
	return -1;
}

static int emit_column(flat_ctx_t *c, const column_spec_t *col, size_t name_len,
                       const json_doc_t *d, uint32_t n)
{
	assert(name_len == strlen(col->name) && name_len <= BATCH_COLUMN_NAME_BYTES_MAX);
	c->fname = col->name; /* a scalar or whole JSON: never a flattened prefix */
	int rc = emit_value(c, col, name_len, d, n);
	c->fname = NULL;
	return rc;
}

/* ---- `$` columns: evaluated once per document ----------------------------
 * A document's `$` columns (every column of a `$` table that is fed value by
 * value) are encoded once into the docvals' own buffer, as fields exactly as
 * a row holds them, and copied into each row. */

struct batch_docvals {
	const table_spec_t *spec;
	json_buf_t enc;   /* the encoded fields */
	uint32_t *at;     /* per column: [2i] start, [2i+1] end in enc; equal: not set */
	uint32_t *set;    /* the name set of the last batch_docvals_set (see flat_ctx_t) */
	uint32_t set_slots;
};

batch_docvals_t *batch_docvals_new(const table_spec_t *spec)
{
	batch_docvals_t *dv = calloc(1, sizeof *dv);
	if (!dv)
		return NULL;
	dv->spec = spec;
	dv->at = calloc(2 * (size_t)(spec->n_cols ? spec->n_cols : 1), sizeof *dv->at);
	if (!dv->at) {
		free(dv);
		return NULL;
	}
	return dv;
}

void batch_docvals_free(batch_docvals_t *dv)
{
	if (!dv)
		return;
	json_buf_free(&dv->enc);
	free(dv->at);
	free(dv->set);
	free(dv);
}

void batch_docvals_clear(batch_docvals_t *dv)
{
	dv->enc.len = 0;
	memset(dv->at, 0, 2 * (size_t)dv->spec->n_cols * sizeof *dv->at);
}

size_t batch_docvals_bytes(const batch_docvals_t *dv)
{
	if (!dv)
		return 0;
	return sizeof *dv + dv->enc.cap + 2 * (size_t)(dv->spec->n_cols ? dv->spec->n_cols : 1) *
	       sizeof *dv->at + dv->set_slots * sizeof *dv->set;
}

bool batch_docvals_has(const batch_docvals_t *dv, uint32_t col)
{
	return dv->at[2 * col + 1] > dv->at[2 * col];
}

int batch_docvals_set(batch_docvals_t *dv, uint32_t col, const json_doc_t *d, uint32_t node,
                      const char **reason)
{
	assert(col < dv->spec->n_cols);
	flat_ctx_t c = {.rows = &dv->enc, .spec = dv->spec, .set = dv->set,
	                .set_slots = dv->set_slots};
	if (c.set)
		memset(c.set, 0, c.set_slots * sizeof(*c.set));
	size_t start = dv->enc.len;
	int rc = emit_column(&c, &dv->spec->cols[col], strlen(dv->spec->cols[col].name), d, node);
	dv->set = c.set, dv->set_slots = c.set_slots;
	if (rc == 0 && dv->enc.len > UINT32_MAX)
		rc = -1, c.reason = "document values larger than 4 GiB";
	if (rc != 0) {
		dv->enc.len = start;
		*reason = c.reason ? c.reason : "row extraction failed";
		return -1;
	}
	dv->at[2 * col] = (uint32_t)start;
	dv->at[2 * col + 1] = (uint32_t)dv->enc.len;
	return 0;
}

/* Every `$` column of the spec from document d, once. */
static int docvals_from_doc(batch_docvals_t *dv, const json_doc_t *d, const char **reason)
{
	batch_docvals_clear(dv);
	for (uint32_t i = 0; i < dv->spec->n_cols; i++) {
		const column_spec_t *col = &dv->spec->cols[i];
		if (col->from != COLUMN_FROM_DOC)
			continue;
		first_t f = {JSON_NONE};
		json_path_each(col->path, d, 0, take_first, &f);
		if (batch_docvals_set(dv, i, d, f.node, reason) != 0)
			return -1;
	}
	return 0;
}

/* Copies column i's encoded field from the docvals into the row. */
static int emit_docval(flat_ctx_t *c, const batch_docvals_t *dv, uint32_t i)
{
	uint32_t a = dv->at[2 * i], z = dv->at[2 * i + 1];
	if (c->rows->len + (z - a) > UINT32_MAX) {
		c->reason = "batch larger than 4 GiB";
		return -1;
	}
	if (rows_reserve(c->rows, z - a) != 0 || json_buf_append(c->rows, dv->enc.data + a, z - a) != 0) {
		c->reason = "out of memory";
		return -1;
	}
	c->row_fields++; /* declared names are unique: the name set need not know it */
	return 0;
}

/* A declared row: every column of the spec, in order, NULL when missing.
 * `$` columns come from c->dv when set (NULL when not); with c->whole_doc
 * (a `$` table fed value by value) every column but the variables does. */
static int add_declared_row(void *ctx, const json_doc_t *d, uint32_t node)
{
	flat_ctx_t *c = ctx;
	if (row_begin(c) != 0)
		return -1;
	/* The spec is the extracting thread's (table_spec_t.plan). */
	table_spec_t *spec = (table_spec_t *)c->spec;
	if (!spec->plan)
		spec->plan = row_plan_make(spec);
	const struct batch_row_plan *plan = spec->plan;
	bool row_object = d && !c->whole_doc && json_type(d, node) == JSON_OBJECT;
	if (plan && plan->names && row_object)
		json_object_get_all(d, node, plan->names, plan->found);
	for (uint32_t i = 0; i < c->spec->n_cols; i++) {
		const column_spec_t *col = &c->spec->cols[i];
		const json_doc_t *src = d;
		first_t f = {JSON_NONE};
		if (col->from == COLUMN_FROM_VAR) {
			src = c->vars;
			if (src && json_type(src, 0) == JSON_OBJECT)
				f.node = json_object_get(src, 0, col->var, strlen(col->var));
		} else if (col->from == COLUMN_FROM_DOC || c->whole_doc) {
			if (c->dv && batch_docvals_has(c->dv, i)) {
				if (emit_docval(c, c->dv, i) != 0)
					return -1;
				continue;
			}
		} else if (plan && plan->col_at[i] != UINT32_MAX) {
			/* A name step selects nothing in a row that is no object. */
			uint32_t v = row_object ? plan->found[plan->col_at[i]] : JSON_NONE;
			if (v != JSON_NONE)
				json_path_each_after_first(col->path, d, v, take_first, &f);
		} else {
			json_path_each(col->path, d, node, take_first, &f);
		}
		size_t name_len = plan ? plan->name_len[i] : strlen(col->name);
		if (emit_column(c, col, name_len, src, f.node) != 0)
			return -1;
	}
	row_end(c);
	return 0;
}

void batch_names_free(batch_names_t *n)
{
	free(n->set);
	*n = (batch_names_t){0};
}

/* A failed extraction leaves the batch as it was before it (rows and count
 * cut back to len0/n_rows0) and says why. */
static int rows_settle(batch_t *b, int rc, size_t len0, uint32_t n_rows0, const char *why,
                       const char **reason)
{
	if (rc == 0)
		return 0;
	b->rows.len = len0;
	b->n_rows = n_rows0;
	*reason = why ? why : "row extraction failed";
	return -1;
}

int batch_add_record(batch_t *b, const table_spec_t *spec, uint32_t table, const json_doc_t *rec,
                     uint32_t node, const batch_docvals_t *dv, const json_doc_t *vars,
                     batch_names_t *names, const char **reason)
{
	assert(b && spec && reason && (rec || spec->n_cols));
	flat_ctx_t c = {.b = b, .rows = &b->rows, .spec = spec, .table = table, .vars = vars,
	                .dv = dv, .whole_doc = rec == NULL};
	if (names) /* row_begin clears it */
		c.set = names->set, c.set_slots = names->slots;
	size_t len0 = b->rows.len;
	uint32_t n_rows0 = b->n_rows;
	int rc = spec->n_cols ? add_declared_row(&c, rec, node) : add_row(&c, rec, node);
	if (names)
		names->set = c.set, names->slots = c.set_slots;
	else
		free(c.set);
	return rows_settle(b, rc, len0, n_rows0, c.reason, reason);
}

int batch_add_doc(batch_t *b, const table_spec_t *tables, uint32_t n_tables,
                  const json_doc_t *doc, const json_doc_t *vars, const char **reason)
{
	assert(b && tables && doc && reason && n_tables <= BATCH_TABLES_MAX);
	flat_ctx_t c = {.b = b, .rows = &b->rows, .vars = vars};
	size_t len0 = b->rows.len;
	uint32_t n_rows0 = b->n_rows;
	int rc = 0;
	for (uint32_t t = 0; t < n_tables && rc == 0; t++) {
		c.spec = &tables[t];
		c.table = t;
		c.dv = NULL;
		batch_docvals_t *dv = NULL;
		for (uint32_t i = 0; i < tables[t].n_cols && !dv; i++)
			if (tables[t].cols[i].from == COLUMN_FROM_DOC) {
				dv = batch_docvals_new(&tables[t]);
				if (!dv) {
					c.reason = "out of memory";
					rc = -1;
				} else if (docvals_from_doc(dv, doc, &c.reason) != 0) {
					rc = -1;
				}
			}
		c.dv = dv;
		if (rc == 0)
			rc = json_path_each(tables[t].rows, doc, 0,
			                    tables[t].n_cols ? add_declared_row : add_row, &c);
		batch_docvals_free(dv);
	}
	free(c.set);
	return rows_settle(b, rc, len0, n_rows0, c.reason, reason);
}

bool batch_doc_repeats(const table_spec_t *tables, uint32_t n_tables, const json_doc_t *doc,
                       size_t *offset)
{
	uint32_t key;
	for (uint32_t t = 0; t < n_tables; t++) {
		const table_spec_t *ts = &tables[t];
		bool whole = strlen(json_path_text(ts->rows)) == 1; /* `$` or `@`: the document */
		bool hit = json_path_repeats(ts->rows, doc, 0, &key);
		for (uint32_t i = 0; i < ts->n_cols && !hit; i++) {
			const column_spec_t *col = &ts->cols[i];
			if (col->from == COLUMN_FROM_DOC || (col->from == COLUMN_FROM_ROW && whole))
				hit = json_path_repeats(col->path, doc, 0, &key);
		}
		if (hit) {
			*offset = doc->nodes[key].start;
			return true;
		}
	}
	return false;
}

int batch_add_rows(batch_t *b, const json_doc_t *doc, const json_path_t *rows,
                   const char **reason)
{
	assert(b && doc && rows && reason);
	flat_ctx_t c = {.b = b, .rows = &b->rows};
	size_t len0 = b->rows.len;
	uint32_t n_rows0 = b->n_rows;
	int rc = json_path_each(rows, doc, 0, add_row, &c);
	free(c.set);
	if (rc != 0) {
		/* Leave the batch as it was, so the caller can still fail the job. */
		b->rows.len = len0;
		b->n_rows = n_rows0;
		*reason = c.reason ? c.reason : "row extraction failed";
		return -1;
	}
	return 0;
}

/* ---- iteration -------------------------------------------------------- */

void batch_iter_init(batch_iter_t *it, const batch_t *b)
{
	it->b = b;
	it->pos = 0;
	it->row = 0;
	it->table = 0;
}
