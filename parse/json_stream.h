/* parse/json_stream.h: JSON documents that arrive in pieces and never sit in
 * memory whole.
 *
 * The caller (ringfill parse today, the engine's body loop later) feeds the
 * body as it arrives, split anywhere, and pulls out each record a rows path
 * such as `$.items[*]` selects as soon as the record's last byte is in. Each
 * record is a json_doc_t of its own (json_path_each, json_write work on it);
 * the values outside the records (the envelope) can be read as a document of
 * their own. The whole document is validated, and an error has the offset,
 * line and reason json_parse gives on the whole input (see docs/parse.md,
 * "Streaming", for the two documented exceptions: the size limit below, and
 * documents of 4 GiB and more, which json_parse refuses and the stream reads).
 *
 * Memory: the stream keeps one value at a time (a record, or a value of the
 * envelope being skipped), so it needs about 25 bytes per byte of the largest
 * such value (the value, when it crosses pieces, plus json_parse's index and
 * tape), plus the kept envelope, plus a few KiB. value_bytes_max caps the
 * value; a larger one fails with "value larger than the stream limit".
 * The rows path `$` makes the whole document one record: it cannot be bounded
 * by anything but value_bytes_max.
 *
 * No callbacks, nothing blocks; a loop feeds and pulls:
 *
 *     json_stream_feed(s, piece, n);
 *     while ((r = json_stream_next(s, &rec, &err)) == JSON_STREAM_RECORD)
 *             use(rec.doc);
 *     // JSON_STREAM_MORE: feed the next piece (or json_stream_finish at EOF);
 *     // JSON_STREAM_END: the document was complete and valid; -1: err. */
#ifndef RF_JSON_STREAM_H
#define RF_JSON_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "parse/json.h"

/* Default for json_stream_opts_t.value_bytes_max: 16 MiB. */
#define JSON_STREAM_VALUE_BYTES_MAX (16u << 20)
/* Default for json_stream_opts_t.envelope_bytes_max: 1 MiB. */
#define JSON_STREAM_ENVELOPE_BYTES_MAX (1u << 20)

typedef struct {
	size_t value_bytes_max;    /* 0: JSON_STREAM_VALUE_BYTES_MAX; at most JSON_DOC_BYTES_MAX */
	size_t envelope_bytes_max; /* 0: JSON_STREAM_ENVELOPE_BYTES_MAX */
	bool keep_envelope;        /* keep the envelope for json_stream_envelope */
	uint32_t depth_max;        /* 0: JSON_DEPTH_MAX */
	/* Fail with JSON_STREAM_E_REPEATED at the key where an object on a path
	 * holds a name that a path's name step selects a second time: the
	 * stream would take both members (or a column their first value),
	 * json_path_each on the whole tape the last (json_path_repeats). */
	bool refuse_repeated_names;
} json_stream_opts_t;

/* The reason (json_error_t.reason) of refuse_repeated_names. */
#define JSON_STREAM_E_REPEATED "member name repeated in an object on a path"

/* json_stream_next's results besides -1 (error, err filled; the stream then
 * stays failed and returns -1 again with the same error). */
enum {
	JSON_STREAM_MORE = 0,   /* the piece is used up: feed the next, or finish */
	JSON_STREAM_RECORD = 1, /* *rec holds the next record */
	JSON_STREAM_END = 2,    /* finished, and the document was valid */
};

/* A record: node 0 of doc. doc points into the caller's piece or into the
 * stream's own buffer, and stays valid until the next json_stream_next,
 * json_stream_feed or json_stream_free. As in any json_doc_t, node offsets
 * are relative to doc.src, which may start before the record; the record's
 * first byte is at `offset` in the whole input. */
typedef struct {
	json_doc_t doc;
	size_t offset;
	uint64_t paths; /* json_stream_new_paths: bit i for each rows[i] that selects it */
} json_stream_record_t;

typedef struct json_stream json_stream_t;

/* rows must start with '$' and stays the caller's: it must outlive the
 * stream. opts may be NULL (defaults, no envelope kept). Returns NULL with
 * errno EINVAL (a path starting with '@') or ENOMEM. */
json_stream_t *json_stream_new(const json_path_t *rows, const json_stream_opts_t *opts);
void json_stream_free(json_stream_t *s);

/* Ready for a new document with the same paths and options, as from
 * json_stream_new, but keeping the buffers grown so far: a caller streaming
 * many small documents allocates once (engine/docstream.c's pool). */
void json_stream_reset(json_stream_t *s);
/* Bytes s holds (its buffers as grown, the stream itself): what keeping it
 * for the next document costs. */
size_t json_stream_bytes(const json_stream_t *s);

/* Several rows paths followed in one pass (at most JSON_STREAM_PATHS_MAX):
 * each record says which paths select it (json_stream_record_t.paths; two
 * paths may select the same value, e.g. `$.a[*]` and `$.*[*]`). The paths
 * must not overlap: no value may be a record of one path and hold records
 * of another (`$.a` and `$.a.b[*]`, `$.*` and `$.a[*]`, `$` and anything;
 * json_stream_paths_overlap tells). keep_envelope needs a single path.
 * NULL with errno EINVAL (a path starting with '@', overlapping paths, too
 * many, keep_envelope with several) or ENOMEM. */
#define JSON_STREAM_PATHS_MAX 64u
json_stream_t *json_stream_new_paths(const json_path_t *const *rows, uint32_t n_paths,
                                     const json_stream_opts_t *opts);
/* Whether some value could be a record of one of a and b and hold records of
 * the other: a is a strict prefix of b, step for step, or the reverse. */
bool json_stream_paths_overlap(const json_path_t *a, const json_path_t *b);
/* Whether the rows path is `$` alone (the whole document: one record, not
 * bounded by anything but value_bytes_max). */
bool json_stream_path_is_root(const json_path_t *p);

/* Lends the stream the next piece of input: the piece must stay unchanged
 * until json_stream_next returns something other than JSON_STREAM_RECORD.
 * The stream copies only the bytes of a value that crosses the piece's end.
 * Call only after json_stream_next returned JSON_STREAM_MORE (or right after
 * json_stream_new). */
void json_stream_feed(json_stream_t *s, const char *piece, size_t len);
/* No more input: the next json_stream_next finishes the document. */
void json_stream_finish(json_stream_t *s);

int json_stream_next(json_stream_t *s, json_stream_record_t *rec, json_error_t *err);

/* The envelope as a document: every value of the input outside the records'
 * containers, as far as the input has been read when the first record is
 * returned (that view is kept from then on), or the whole envelope once the
 * input ended without a record. The containers that hold the records appear
 * empty; `$.meta.x` paths work on it as on the whole document when `meta`
 * comes before the records. Valid until json_stream_free. 0, or -1 when
 * opts.keep_envelope was not set, the envelope outgrew envelope_bytes_max,
 * or nothing has been read yet. */
int json_stream_envelope(json_stream_t *s, json_doc_t *out);

/* Bytes of input consumed so far (the offset of the next byte to read). */
size_t json_stream_offset(const json_stream_t *s);

/* ---- NDJSON in pieces: each line is a document (json_ndjson_each's rules).
 * Lines whole inside a piece are parsed where they are, in one
 * json_ndjson_each over the run of them; only a line cut by a piece's end is
 * copied, and completed from the next piece. fn gets each document with the
 * offset of its line in the whole input; the first invalid line fails with
 * the offset and line json_ndjson_each gives on the whole input. A line
 * longer than line_bytes_max that crosses a piece fails with "value larger
 * than the stream limit" at its first byte. Memory: the longest line that
 * crosses a piece, plus json_ndjson_each's batch index (docs/parse.md). */
typedef struct json_ndjson_stream json_ndjson_stream_t;

/* line_bytes_max 0: JSON_STREAM_VALUE_BYTES_MAX. NULL on ENOMEM. The
 * parser is the caller's and must outlive the stream. */
json_ndjson_stream_t *json_ndjson_stream_new(json_parser_t *p, size_t line_bytes_max);
void json_ndjson_stream_free(json_ndjson_stream_t *st);

/* The next piece (not kept after the call). 0, fn's non-zero return, or -1
 * with *err; after a non-zero return the stream must not be fed again. */
int json_ndjson_stream_feed(json_ndjson_stream_t *st, const char *piece, size_t len,
                            json_ndjson_fn fn, void *ctx, json_error_t *err);
/* Offset in the whole input of the first byte not yet handed to fn as part
 * of a whole line: the start of the line a piece's end cut (kept), or the
 * end of the input fed so far. A consumer's checkpoint ("every line before
 * this is in") after a feed. */
size_t json_ndjson_stream_offset(const json_ndjson_stream_t *st);
/* Whether err (from json_ndjson_stream_feed/finish) is the line limit. */
bool json_ndjson_stream_too_long(const json_error_t *err);

/* The end of the input: the last line, if it had no newline. */
int json_ndjson_stream_finish(json_ndjson_stream_t *st, json_ndjson_fn fn, void *ctx,
                              json_error_t *err);

#endif
