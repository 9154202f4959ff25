/* store/batch.h: what the loop hands the writer for one job.
 *
 * The loop (engine/loop.c) fills a batch_t with the job's outcome and, on
 * success, the rows extracted from its body (json parse → JSONPath → flatten),
 * then pushes it into the ring. The writer (store/writer.c) applies it in one
 * transaction: the rows and the job's new state together.
 *
 * Ownership: allocated by the loop with batch_new; after ring_push it belongs
 * to the writer, which frees it with batch_free once it is committed.
 * Rows are copied into the batch (issue 4 makes them point into the body). */
#ifndef RF_BATCH_H
#define RF_BATCH_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "parse/json.h"

#define BATCH_ERROR_BYTES_MAX 512u
#define BATCH_PATH_BYTES_MAX 4096u
#define BATCH_VALIDATOR_BYTES_MAX 256u /* a strong ETag or a Last-Modified date (If-Range) */
#define BATCH_COLUMN_NAME_BYTES_MAX 256u /* a flattened key longer than this is an error */
#define BATCH_TABLES_MAX 64u             /* tables one document fills */
#define BATCH_TABLE_COLUMNS_MAX 1000u    /* declared columns per table (SQLite allows 2000) */
#define BATCH_KEY_COLUMNS_MAX 16u        /* columns in one table's key */
#define BATCH_NULL_IF_MAX 64u            /* null_if values per table */
#define BATCH_NULL_IF_BYTES_MAX 256u     /* the longest null_if value */

typedef enum {
	BATCH_JOB_DONE = 1,   /* rows + job done */
	BATCH_JOB_FAILED = 2, /* job failed for good: no rows */
	BATCH_END = 3,        /* the loop has finished: commit and stop */
	BATCH_JOB_CHECKPOINT = 4, /* rows of a streamed body so far + its checkpoint; job stays pending */
} batch_kind_t;

typedef enum {
	ERROR_CLASS_NONE = 0,
	ERROR_CLASS_TRANSIENT = 1,
	ERROR_CLASS_PERMANENT = 2,
} error_class_t;

/* Field value types in the encoded rows. */
typedef enum {
	FIELD_NULL = 0,
	FIELD_INT = 1,  /* int64, 8 bytes little-endian in the encoding */
	FIELD_REAL = 2, /* double, 8 bytes */
	FIELD_TEXT = 3, /* UTF-8 bytes (unescaped JSON strings) */
	FIELD_JSON = 4, /* compact JSON text of an array (stored as TEXT) */
	FIELD_BOOL = 5, /* stored as INTEGER 0/1; 1 byte */
	FIELD_BIGINT = 6, /* a JSON integer beyond int64: its digits, stored as TEXT */
} field_type_t;

/* ---- what to extract: one spec per table ----------------------------------
 * Built before the run (engine/jobfile.c, or main.c for --rows/--table) and
 * read, never written, by the loop (extraction) and the writer (schema,
 * keys, mode) for the whole run; whoever built them frees them with
 * table_specs_free after both threads have stopped. */

typedef enum {
	COLUMN_FROM_ROW = 0, /* "@.x": relative to the selected row */
	COLUMN_FROM_DOC,     /* "$.x": relative to the document root */
	COLUMN_FROM_VAR,     /* "{name}": a job variable (manifest field, template key) */
} column_from_t;

typedef enum {
	COLUMN_AUTO = 0, /* as inferred: string TEXT, number INTEGER/REAL, bool 0/1, else JSON */
	COLUMN_TEXT,
	COLUMN_INTEGER,
	COLUMN_REAL,
	COLUMN_JSON,
	COLUMN_BOOLEAN,
} column_type_t;

typedef enum {
	TABLE_APPEND = 0, /* plain INSERT */
	TABLE_UPSERT,     /* a row whose key exists replaces its values */
	TABLE_IGNORE,     /* a row whose key exists is dropped: the first one stays */
} table_mode_t;

typedef struct {
	char *name;        /* the column */
	char *expr;        /* as written in the job file */
	column_from_t from;
	json_path_t *path; /* ROW and DOC; NULL for VAR */
	char *var;         /* VAR: the variable's name */
	column_type_t type;
} column_spec_t;

typedef struct {
	char *name;          /* the table */
	json_path_t *rows;   /* selects the rows in each document */
	column_spec_t *cols; /* NULL (n_cols 0): columns inferred, DESIGN §4 */
	uint32_t n_cols;
	char **key;          /* column names (flattened keys when inferred) */
	uint32_t n_key;
	table_mode_t mode;   /* UPSERT and IGNORE need a key */
	char **null_if;      /* string values stored as NULL */
	uint32_t n_null_if;
	/* How the row's columns are found (store/batch.c): made at the first
	 * row extracted, by the one thread that extracts rows with this spec;
	 * freed by table_specs_free. Zero-initialise it with the rest. */
	struct batch_row_plan *plan;
} table_spec_t;

/* Frees every spec's members and the array itself. */
void table_specs_free(table_spec_t *t, uint32_t n);
const char *column_type_name(column_type_t t);
const char *table_mode_name(table_mode_t m);

/* Fields that every batch writes come first and the string arrays last
 * (most of their bytes are never written): a batch is held until its
 * transaction commits, in fresh memory, so the fewer pages its writes touch
 * the better (about 1 KB; the raw path lives on the heap, raw_path). */
typedef struct batch {
	struct batch *next; /* free for the holder's lists */
	batch_kind_t kind;
	int64_t job_id;
	int attempts;           /* attempts made, including this one */
	int http_status;        /* last HTTP status, 0 if none */
	error_class_t error_class;
	uint64_t body_bytes;    /* bytes of the body as stored */
	/* BATCH_JOB_CHECKPOINT: the rows are those of records ckpt_from..
	 * ckpt_records; applied only when the job's committed checkpoint is
	 * still ckpt_from records (so a batch can never be applied twice). */
	uint64_t ckpt_offset;  /* decoded body bytes just past the last complete line */
	uint64_t ckpt_records; /* records consumed up to ckpt_offset */
	uint64_t ckpt_from;    /* the committed checkpoint's records this batch continues */
	/* BATCH_JOB_DONE of a streamed job: applied only while the job is pending
	 * at checkpoint ckpt_from (a checkpoint the database refused failed the
	 * job; the rest of its rows must not follow). */
	bool streamed;
	/* What pipe_push_batch counted in pipe_t.to_writer_bytes for it (0 when
	 * pushed otherwise): the writer takes the same amount off as it pops. */
	uint64_t ring_bytes;
	/* Encoded rows: for each row a u32 table index (into the table specs),
	 * a u32 field count, then per field: u8 type, u16 name length, name
	 * bytes, u32 value length, value bytes. Names are flattened keys
	 * ("user_name") for inferred tables, column names for declared ones. */
	uint32_t n_rows;
	json_buf_t rows;
	/* Jobs this job makes (a `paginate` page: the next page and the emitted
	 * item jobs), inserted into _ringfill_jobs in the transaction that marks
	 * this job done (store_jobs_emit). Encoded per job: u8 flags
	 * (BATCH_EMIT_*), then key, url and text, each a u32 length and bytes;
	 * text is the job's variables (JSON) or, with BATCH_EMIT_FAILED, why it
	 * failed. Once pushed, the loop counts the batch in
	 * pipe_t.emits_unsettled until the writer has applied it. */
	uint32_t n_emit;
	json_buf_t emit;
	char sha256_hex[65];                 /* of the body as stored, "" if none */
	/* Where the body is kept (--raw, or a `files` job's own file), NULL
	 * when nowhere; owned (batch_set_raw_path). Not inline: 4 KiB in every
	 * batch, zeroed and paged in per job, was 2,450 of the 10,500 page
	 * faults of a 4,000-file load (docs/store.md). */
	char *raw_path;
	char error[BATCH_ERROR_BYTES_MAX];   /* one readable line, "" when done */
	char ckpt_validator[BATCH_VALIDATOR_BYTES_MAX]; /* If-Range value, "" if not resumable */
	char content_encoding[32];           /* the body's codings as sent, "" for identity */
} batch_t;

/* The memory the batch holds: itself, its rows' and emitted jobs' buffers
 * as allocated (their capacity, not only what is used). */
size_t batch_mem_bytes(const batch_t *b);

#define BATCH_EMIT_NEXT_PAGE 1u /* the next page: its key must be new (repeated cursor) */
#define BATCH_EMIT_FAILED 2u    /* an item that makes no job: recorded failed/permanent */

typedef struct {
	unsigned flags;
	const char *key, *url, *text; /* not NUL-terminated; url NULL when empty */
	uint32_t key_len, url_len, text_len;
} batch_job_t;

/* Appends an emitted job. 0 or -ENOMEM. */
int batch_add_job(batch_t *b, unsigned flags, const char *key, size_t key_len, const char *url,
                  size_t url_len, const char *text, size_t text_len);
/* The emitted job at *pos (start at 0); advances *pos. false at the end. */
bool batch_next_job(const batch_t *b, size_t *pos, batch_job_t *out);

batch_t *batch_new(batch_kind_t kind, int64_t job_id); /* NULL on ENOMEM */
void batch_free(batch_t *b);

/* Sets b->raw_path to "dir/name" (dir NULL: name alone), whole. 0, or
 * -ENOMEM (raw_path unchanged). */
int batch_set_raw_path(batch_t *b, const char *dir, const char *name);
/* Sets a failure: kind FAILED, class, and a formatted one-line reason. */
void batch_fail(batch_t *b, error_class_t cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Appends one row per node that `rows` selects in doc, flattened per DESIGN §4:
 * an object's top-level keys become columns, nested objects are flattened with
 * '_' ("user":{"name":..} → user_name), arrays become FIELD_JSON text; a
 * selected value that is not an object becomes one column named "value".
 * Returns 0, or -1 with a reason in *reason (static) e.g. on ENOMEM or a
 * column name over BATCH_COLUMN_NAME_BYTES_MAX. */
int batch_add_rows(batch_t *b, const json_doc_t *doc, const json_path_t *rows,
                   const char **reason);

/* True when an object on a path the tables read from the document as a
 * whole (a rows path, a `$` column's path, any column of a table whose rows
 * are the document itself) holds a name that the path selects twice
 * (json_path_repeats): json_path_each would take the last member, a stream
 * of the same document (engine/docstream.c, refuse_repeated_names) refuses
 * it. *offset: the second key's byte offset. */
bool batch_doc_repeats(const table_spec_t *tables, uint32_t n_tables, const json_doc_t *doc,
                       size_t *offset);

/* s[0..n) as a whole decimal number ("42", "-7", "3.0", "1e3", "+5", "1.",
 * ".5e1"; no spaces, no hex), decided on the text, exactly: 1 with *out
 * when it is within int64; BATCH_WHOLE_BEYOND when it is whole but outside
 * int64 ("1e30", twenty digits, "12345678901234567890.0"); 0 when it is no
 * whole decimal number ("4.5", "1e-400", "x"). */
#define BATCH_WHOLE_BEYOND (-1)
int batch_decimal_whole(const char *s, size_t n, int64_t *out);

/* Appends the rows of every table in `tables` from one parsed document, table
 * by table in order. Inferred tables flatten as batch_add_rows; declared
 * columns take their value from the row, the document or `vars` (the job's
 * variables as a parsed JSON object, or NULL: such columns are then NULL) and
 * convert it to the column's type, NULL when it does not convert
 * (docs/jobfile.md). String values equal to one of the table's null_if
 * values are stored as NULL. Returns 0, or -1 with a static *reason and the
 * batch as it was before the call. */
int batch_add_doc(batch_t *b, const table_spec_t *tables, uint32_t n_tables,
                  const json_doc_t *doc, const json_doc_t *vars, const char **reason);

/* Makes room for `bytes` bytes of rows in all (a caller that knows how
 * many are coming, such as the next checkpoint batch of a page, spares the
 * buffer its growth). 0 or -ENOMEM. */
int batch_rows_reserve(batch_t *b, size_t bytes);

/* A document's `$` columns for one declared table, each evaluated once per
 * document (not once per row) and kept encoded as a row field. Owned by the
 * caller; the spec must outlive it. A streamed document (engine/ndstream.c)
 * sets each value as it arrives; a column not set is NULL in the rows. */
typedef struct batch_docvals batch_docvals_t;
batch_docvals_t *batch_docvals_new(const table_spec_t *spec); /* NULL on ENOMEM */
void batch_docvals_free(batch_docvals_t *dv);
void batch_docvals_clear(batch_docvals_t *dv); /* the next document */
size_t batch_docvals_bytes(const batch_docvals_t *dv); /* memory held; 0 for NULL */
bool batch_docvals_has(const batch_docvals_t *dv, uint32_t col);
/* Column col's value: node of d (JSON_NONE: the path selected nothing),
 * converted as batch_add_doc converts it. 0, or -1 with a static *reason. */
int batch_docvals_set(batch_docvals_t *dv, uint32_t col, const json_doc_t *d, uint32_t node,
                      const char **reason);
/* The name set a row is checked with (two fields of one name), kept by the
 * caller of batch_add_record between records so it is not made per record.
 * Zero-initialised; batch_names_free frees it. */
typedef struct {
	uint32_t *set;
	uint32_t slots;
} batch_names_t;
void batch_names_free(batch_names_t *n);

/* One row of table index `table` (spec) from one selected node of rec, as
 * batch_add_doc makes it, `$` columns taken from dv (NULL: none). rec NULL:
 * the one row of a declared `$` table, every column but the variables from
 * dv. names: the caller's reusable name set, or NULL. 0, or -1 with a static
 * *reason and the batch as it was. */
int batch_add_record(batch_t *b, const table_spec_t *spec, uint32_t table, const json_doc_t *rec,
                     uint32_t node, const batch_docvals_t *dv, const json_doc_t *vars,
                     batch_names_t *names, const char **reason);

/* Iterating the encoded rows (used by the writer and by tests). */
typedef struct {
	field_type_t type;
	const char *name;
	uint16_t name_len;
	const char *value; /* FIELD_INT/REAL: 8 bytes (memcpy them out); FIELD_BOOL: 1 byte */
	uint32_t value_len;
} batch_field_t;

typedef struct {
	const batch_t *b;
	size_t pos;
	uint32_t row;
	uint32_t table; /* the table index of the row batch_next_row returned last */
} batch_iter_t;

#define BATCH_FIELD_HEADER_BYTES 7u /* u8 type + u16 name length + u32 value length */

void batch_iter_init(batch_iter_t *it, const batch_t *b);

/* Next row: returns its field count and sets it->table; its fields follow
 * through batch_next_field. -1 when no row is left. Inline (as is
 * batch_next_field): the writer reads every field of every row with them. */
static inline int batch_next_row(batch_iter_t *it)
{
	if (it->row >= it->b->n_rows)
		return -1;
	assert(it->pos + 2 * sizeof(uint32_t) <= it->b->rows.len);
	uint32_t n;
	memcpy(&it->table, it->b->rows.data + it->pos, sizeof(it->table));
	it->pos += sizeof(it->table);
	memcpy(&n, it->b->rows.data + it->pos, sizeof(n));
	it->pos += sizeof(n);
	it->row++;
	assert(n <= INT32_MAX);
	return (int)n;
}

/* The field at p (a field's first byte in the encoding) into *f; returns
 * the byte after it. */
static inline const char *batch_field_at(const char *p, batch_field_t *f)
{
	f->type = (field_type_t)(uint8_t)p[0];
	memcpy(&f->name_len, p + 1, sizeof(f->name_len));
	f->name = p + 3;
	memcpy(&f->value_len, p + 3 + f->name_len, sizeof(f->value_len));
	f->value = p + 3 + f->name_len + sizeof(uint32_t);
	return f->value + f->value_len;
}

static inline void batch_next_field(batch_iter_t *it, batch_field_t *f)
{
	assert(it->pos + BATCH_FIELD_HEADER_BYTES <= it->b->rows.len);
	it->pos = (size_t)(batch_field_at(it->b->rows.data + it->pos, f) - it->b->rows.data);
	assert(it->pos <= it->b->rows.len);
}

#endif
