/* parse/json.h: ringfill's validating JSON parser (RFC 8259).
 *
 * Sits between the HTTP body (net/) and row extraction (store/batch.c).
 * Stage 1 scans the input once and records the byte offset of every
 * structural character and value start (the structural index), validating
 * UTF-8 and rejecting unescaped control characters inside strings. Stage 2
 * walks that index and builds a flat tape of nodes that point into the input:
 * nothing is copied, strings are unescaped only when asked for.
 * Issue 3 replaces stage 1 with per-ISA SIMD kernels behind this same API.
 *
 * Limits: a document is at most JSON_DOC_BYTES_MAX bytes (offsets are 32 bit)
 * and nests at most depth_max levels (default JSON_DEPTH_MAX). */
#ifndef RF_JSON_H
#define RF_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_DEPTH_MAX 1024u
#define JSON_DOC_BYTES_MAX 0xFFFFFFF0u
#define JSON_NONE UINT32_MAX /* "no node" */

typedef enum {
	JSON_NULL = 0,
	JSON_FALSE,
	JSON_TRUE,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT,
} json_type_t;

/* json_node_t.flags */
#define JSON_F_ESCAPED 0x01u  /* string: contains at least one backslash escape */
#define JSON_F_INTEGER 0x02u  /* number: no fraction, no exponent */
#define JSON_F_NEGATIVE 0x04u /* number: leading minus */

/* One tape entry. An object's children are key (a JSON_STRING node), value,
 * key, value, ... in order; an array's children are its elements. Nodes are
 * stored in document order, so a container's first child is at index+1. */
typedef struct {
	uint32_t start; /* offset of the value's first byte (the quote for strings) */
	uint32_t len;   /* bytes of the value's text, through the closing ] } or " */
	uint32_t next;  /* index just past this node's subtree: the next sibling, if any */
	uint32_t count; /* containers: number of elements, or of key/value pairs */
	uint8_t type;   /* json_type_t */
	uint8_t flags;  /* JSON_F_* */
} json_node_t;

/* A parsed document. The tape belongs to the parser that made it and stays
 * valid until that parser parses again or is freed; src belongs to the caller
 * and must outlive the document. */
typedef struct {
	const char *src;
	size_t len;
	const json_node_t *nodes;
	uint32_t n_nodes; /* the root is node 0 */
} json_doc_t;

typedef struct {
	size_t offset;      /* byte offset of the error in the input */
	size_t line;        /* 1-based line of offset (NDJSON: the record's line) */
	const char *reason; /* static string, e.g. "unexpected character" */
} json_error_t;

/* Reusable scratch memory (structural index, tape, stack). Not thread safe:
 * one parser per thread. */
typedef struct json_parser json_parser_t;

json_parser_t *json_parser_new(uint32_t depth_max); /* 0: JSON_DEPTH_MAX; NULL on ENOMEM */
void json_parser_free(json_parser_t *p);
/* Bytes the parser's buffers hold now (they only grow): what keeping it for
 * the next document costs. */
size_t json_parser_bytes(const json_parser_t *p);

/* Parse one whole document (leading/trailing whitespace allowed, nothing else).
 * Returns 0 and fills *doc, or -1 and fills *err (reason "out of memory" on
 * allocation failure). */
int json_parse(json_parser_t *p, const char *src, size_t len, json_doc_t *doc,
               json_error_t *err);

/* NDJSON: each non-blank line is one document ("\n" or "\r\n" endings; blank
 * lines skipped). fn is called for each document in order with the byte offset
 * of its line; a non-zero return from fn stops the walk and is returned.
 * Returns 0 when every line parsed, -1 on the first invalid line (err->offset is
 * absolute in src, err->line the 1-based line number). */
typedef int (*json_ndjson_fn)(void *ctx, const json_doc_t *doc, size_t line_offset);
int json_ndjson_each(json_parser_t *p, const char *src, size_t len, json_ndjson_fn fn,
                     void *ctx, json_error_t *err);

/* Accessors. */
static inline json_type_t json_type(const json_doc_t *d, uint32_t n)
{
	return (json_type_t)d->nodes[n].type;
}
/* Unescaped string value (n must be a JSON_STRING node). Writes at most cap
 * bytes (no terminator added) and returns the full unescaped length, so a
 * caller can retry with a bigger buffer. The input is already validated. */
size_t json_string_get(const json_doc_t *d, uint32_t n, char *out, size_t cap);
/* Numbers: 0 on success; -ERANGE when the value does not fit an int64 (a
 * uint64 for json_number_uint64: negative ones do not, but -0 is 0) or is
 * not an integer (a fraction or an exponent, even "1.0" or "1e2"). Integers
 * that fit neither are kept exactly by their text (node start/len). */
int json_number_int64(const json_doc_t *d, uint32_t n, int64_t *out);
int json_number_uint64(const json_doc_t *d, uint32_t n, uint64_t *out);
int json_number_double(const json_doc_t *d, uint32_t n, double *out);
/* The value of key in object obj, or JSON_NONE. Compares unescaped keys. */
uint32_t json_object_get(const json_doc_t *d, uint32_t obj, const char *key, size_t key_len);

/* Several member names looked up together: json_object_get_all finds all
 * of them in one pass over an object's members, where json_object_get
 * scans the members once per name. Built once (e.g. per table), read-only
 * afterwards. */
typedef struct json_names json_names_t;
/* names[i] of lens[i] bytes (unescaped; duplicates allowed); NULL on ENOMEM. */
json_names_t *json_names_new(const char *const *names, const size_t *lens, uint32_t n);
void json_names_free(json_names_t *ns);
/* out[i] = json_object_get(d, obj, names[i]) for every name of ns (the last
 * member of that name wins, as there), in one pass. */
void json_object_get_all(const json_doc_t *d, uint32_t obj, const json_names_t *ns,
                         uint32_t *out);

/* A growable output buffer (malloc'd; the holder frees data). */
typedef struct {
	char *data;
	size_t len, cap;
} json_buf_t;
int json_buf_reserve(json_buf_t *b, size_t extra); /* 0 or -ENOMEM */
int json_buf_append(json_buf_t *b, const void *p, size_t n);
void json_buf_free(json_buf_t *b);

/* Append node n as compact JSON (no insignificant whitespace; strings and
 * numbers exactly as written in the input). 0 or -ENOMEM. */
int json_write(const json_doc_t *d, uint32_t n, json_buf_t *out);

/* ---- JSONPath subset: $  .name  ['name']  [N]  [*]  (and @ for "the current
 * node", same steps). Compiled once, applied to many documents. */
typedef struct json_path json_path_t;

/* Returns 0, or -1 with err->offset the byte in expr and err->reason. */
int json_path_compile(const char *expr, json_path_t **out, json_error_t *err);
void json_path_free(json_path_t *p);
const char *json_path_text(const json_path_t *p); /* the expression as given */

/* Calls fn for each node that path selects, starting from node `from` (0 for
 * the root), in document order. A non-zero return from fn stops the walk and
 * is returned; 0 otherwise. Missing keys and out-of-range indexes select
 * nothing. */
typedef int (*json_visit_fn)(void *ctx, const json_doc_t *d, uint32_t node);
int json_path_each(const json_path_t *path, const json_doc_t *d, uint32_t from,
                   json_visit_fn fn, void *ctx);
/* True when an object that the path goes into by a name step (from node
 * `from`, as json_path_each walks) holds that name more than once: which
 * member json_path_each takes (the last) is then a choice a streaming reader,
 * which meets the first one first, cannot make the same way. *key: the node
 * of the second such key (its byte offset is d->nodes[*key].start). */
bool json_path_repeats(const json_path_t *path, const json_doc_t *d, uint32_t from,
                       uint32_t *key);
/* The name of the path's first step when it is a name ('@.a.b': "a", its
 * unescaped length in *len), else NULL. */
const char *json_path_first_name(const json_path_t *path, size_t *len);
/* As json_path_each, for a path whose first step is a name, from `value`:
 * the member that step selected (e.g. by json_object_get_all). */
int json_path_each_after_first(const json_path_t *path, const json_doc_t *d, uint32_t value,
                               json_visit_fn fn, void *ctx);

/* ---- Selection on demand: the values of several paths without the whole
 * tape. Stage 1 checks the whole document (UTF-8, control characters,
 * strings closed); then only the containers on each path are walked with the
 * grammar checks of json_parse, the selected values are checked completely,
 * and every other value is skipped by its brackets: a fault inside a skipped
 * value (a bad number or literal, a missing comma or colon, a bad escape, a
 * ']' closing a '{') goes unnoticed. docs/parse.md lists what is checked.
 * For a valid document the values, and their order, are those of
 * json_path_each on json_parse's tape, path by path ('@' paths start at the
 * root). Nothing is passed to fn before every path has been walked: an error
 * the walk finds comes first. Each value comes as node 0 of a document of its
 * own (offsets into src; valid during the call). fn must not parse or select
 * with p: the values still to come are read from its index. Returns 0, -1
 * with *err, or fn's non-zero return. */
typedef int (*json_select_fn)(void *ctx, uint32_t path, const json_doc_t *d, uint32_t node);
int json_select(json_parser_t *p, const char *src, size_t len, const json_path_t *const *paths,
                uint32_t n_paths, json_select_fn fn, void *ctx, json_error_t *err);
/* json_select on every line of NDJSON, as json_ndjson_each reads lines
 * (blank lines skipped, a '\r' before the '\n' dropped): the values and
 * errors of json_select on each line alone, in line order, with one stage 1
 * over a batch of lines. A value's document is its line: d->src - src is the
 * line's offset. As for json_select, fn must not use p. Returns 0, -1 with
 * *err (offset absolute in src, line 1-based; the values of the lines before
 * it were passed to fn), or fn's non-zero return (any value: it stops the
 * walk at once). */
int json_select_ndjson(json_parser_t *p, const char *src, size_t len,
                       const json_path_t *const *paths, uint32_t n_paths, json_select_fn fn,
                       void *ctx, json_error_t *err);

/* The stage-1 kernel in use ("avx2", "sse42" or "scalar"), chosen once at
 * run time from the CPU and RINGFILL_ISA. */
const char *json_stage1_name(void);

/* `ringfill parse [--select PATH]... FILE`: exit code 0 valid, 1 invalid
 * (prints "FILE:OFFSET: reason" to stderr), 2 usage. */
int parse_main(int argc, char **argv);

#endif
