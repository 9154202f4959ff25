/* parse/json_internal.h: what the parts of parse/ share and nobody else sees.
 *
 * Stage 1 (json_stage1*.c: one kernel per ISA, chosen at run time by
 * json_stage1_dispatch.c) turns input bytes into the structural index that
 * stage 2 (json.c) walks to build the tape; json_value.c reads the tape back
 * (accessors, compact writer). Tests reach every kernel through here. */
#ifndef RF_JSON_INTERNAL_H
#define RF_JSON_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parse/json.h"

/* Error reasons (static strings; docs/parse.md lists them for users). */
#define JSON_E_UNEXPECTED "unexpected character"
#define JSON_E_UTF8 "invalid UTF-8"
#define JSON_E_CONTROL "control character in string"
#define JSON_E_TRAILING_COMMA "trailing comma"
#define JSON_E_UNTERMINATED "unterminated string"
#define JSON_E_DEPTH "nesting too deep"
#define JSON_E_NUMBER "invalid number"
#define JSON_E_ESCAPE "invalid escape"
#define JSON_E_SURROGATE "lone surrogate"
#define JSON_E_TRAILING_DATA "trailing data after document"
#define JSON_E_EMPTY "empty document"
#define JSON_E_TOO_LARGE "document too large"
#define JSON_E_NOMEM "out of memory"
#define JSON_E_END "unexpected end of input"
#define JSON_E_VALUE_TOO_LARGE "value larger than the stream limit"

/* Entries of index room a caller gives stage 1 beyond one per input byte:
 * the SIMD kernels store offsets 8 or 16 at a time and may write up to 15
 * slots past the last real entry (whose index is below len). */
#define JSON_STAGE1_IDX_SLACK 16u

/* Stage 1 contract (every kernel; json_stage1_scalar is the reference and
 * the others must match it entry for entry and error for error).
 * In:  src[0, len), len <= JSON_DOC_BYTES_MAX; idx with room for
 *      len + JSON_STAGE1_IDX_SLACK entries.
 * Out: idx[0, *n_out) holds, in increasing order, the offset of every
 *      structural character { } [ ] : , outside strings, of every string's
 *      opening and closing quote, and of the first byte of every other run of
 *      non-whitespace bytes outside strings (a literal, a number, or garbage
 *      that stage 2 will reject). A backslash outside a string is such a
 *      garbage byte: it escapes nothing.
 * It validates what needs the in-string state: UTF-8 inside strings (no
 * overlongs, no encoded surrogates, nothing above U+10FFFF, no truncated
 * sequence), no unescaped byte below 0x20 inside strings, every string closed.
 * Bytes outside strings are left to stage 2's grammar check.
 * Returns 0, or -1 with err->offset/reason set (err->line is left to the
 * caller) and idx[0, *n_out) holding the entries found so far: all at or
 * below err->offset, the last one the opening quote of the string that holds
 * the error. Stage 2 walks them first, so an earlier grammar error wins.
 * bslash: NULL, or room for JSON_BSLASH_MAP_WORDS(len) words, which are
 * filled (on success and on error) with the backslash map: bit b of word w is
 * set exactly when src[w * 64 + b] is a backslash (bits past len are clear).
 * Stage 2 reads a string's escapes off it instead of searching the bytes.
 * newlines: every '\n' outside strings is an entry too (NDJSON: a batch of
 * lines indexed at once marks where its lines end; a '\n' inside a string
 * is a control character, an error). */
typedef int (*json_stage1_fn)(const char *src, uint32_t len, uint32_t *idx, uint32_t *n_out,
                              uint64_t *bslash, bool newlines, json_error_t *err);

/* Bytes one word of the backslash map covers, and its words for len bytes. */
#define JSON_BSLASH_MAP_BYTES 64u
#define JSON_BSLASH_MAP_WORDS(len)                                                                 \
	(((size_t)(len) + JSON_BSLASH_MAP_BYTES - 1) / JSON_BSLASH_MAP_BYTES)

int json_stage1_scalar(const char *src, uint32_t len, uint32_t *idx, uint32_t *n_out,
                       uint64_t *bslash, bool newlines, json_error_t *err);
#if defined(JSON_STAGE1_X86)
/* Compiled with their own target flags (parse/meson.build); call them only
 * when json_stage1_kernels lists them. */
int json_stage1_avx512(const char *src, uint32_t len, uint32_t *idx, uint32_t *n_out,
                       uint64_t *bslash, bool newlines, json_error_t *err);
int json_stage1_avx2(const char *src, uint32_t len, uint32_t *idx, uint32_t *n_out,
                     uint64_t *bslash, bool newlines, json_error_t *err);
int json_stage1_sse42(const char *src, uint32_t len, uint32_t *idx, uint32_t *n_out,
                      uint64_t *bslash, bool newlines, json_error_t *err);
#endif

/* The scalar kernel from byte pos on, for a SIMD kernel that met something it
 * leaves to the reference (any error, a backslash outside a string): pos is
 * outside every string (src[pos] may open one), in_scalar says whether
 * src[pos - 1] belongs to a run of "other" bytes, and idx[0, n) already holds
 * every entry below pos. Same result as json_stage1_scalar. */
int json_stage1_scalar_from(const char *src, uint32_t len, uint32_t pos, bool in_scalar,
                            bool newlines, uint32_t *idx, uint32_t n, uint32_t *n_out,
                            json_error_t *err);

/* The words of the backslash map (see json_stage1_fn) for src[from, len),
 * from a multiple of JSON_BSLASH_MAP_BYTES: what the scalar kernel makes,
 * and a SIMD kernel for the part it hands over to the scalar one. */
void json_stage1_bslash_map(const char *src, uint32_t len, uint32_t from, uint64_t *bslash);

/* Stage 1 with the kernel in use (json_stage1_name() says which). */
int json_stage1(const char *src, uint32_t len, uint32_t *idx, uint32_t *n_out,
                uint64_t *bslash, bool newlines, json_error_t *err);

typedef struct {
	const char *name; /* "avx512", "avx2", "sse42", "scalar": the RINGFILL_ISA values */
	json_stage1_fn fn;
} json_stage1_kernel_t;

/* The kernels this build has and this CPU runs, best first (scalar is always
 * last). Sets *out to a static array and returns its length. */
size_t json_stage1_kernels(const json_stage1_kernel_t **out);

/* Makes the kernel called `name` the one json_stage1 uses, for the whole
 * process (tests and benchmarks compare kernels this way; do not call it
 * while another thread parses). 0, -EINVAL for an unknown name, -ENOTSUP for
 * a kernel this build or CPU lacks. */
int json_stage1_use(const char *name);

/* Steps of a compiled path, for json_stream.c, which walks them over a
 * document that is never whole (json_path.c keeps the layout private). */
typedef enum { JSON_STEP_NAME, JSON_STEP_INDEX, JSON_STEP_ALL } json_step_kind_t;
typedef struct {
	json_step_kind_t kind;
	uint32_t index;   /* JSON_STEP_INDEX */
	const char *name; /* JSON_STEP_NAME: the unescaped name, name_len bytes, owned by the path */
	size_t name_len;
} json_step_t;
bool json_path_is_rooted(const json_path_t *p); /* starts with '$' */
uint32_t json_path_n_steps(const json_path_t *p);
json_step_t json_path_step(const json_path_t *p, uint32_t i); /* i < json_path_n_steps */

/* json_parse of a value that sits `depth_used` containers deep in a larger
 * document: the nesting limit counts those too, so the error (offset,
 * reason) is the one json_parse of the whole document gives inside it. */
int json_parse_nested(json_parser_t *p, uint32_t depth_used, const char *src, size_t len,
                      json_doc_t *doc, json_error_t *err);
uint32_t json_parser_depth_max(const json_parser_t *p);

/* Stage 2 of the one value whose first index entry is idx[0], in a window
 * src[0, len) of a larger document that stage 1 indexed into idx[0, n_idx)
 * (offsets into src; entries only where stage 1 is sure of them) and whose
 * backslash map it wrote to bslash (JSON_BSLASH_MAP_WORDS(len) words; NULL:
 * strings are searched for escapes byte by byte). Returns
 * 0 with *doc (node 0 the value, offsets into src) and *used, the entries it
 * took; 1 when the window ends before the value provably does (the caller
 * must parse it some other way); -1 with *err for an error, which is the
 * one json_parse gives on the whole document (err->line is not set). */
int json_parse_value_indexed(json_parser_t *p, uint32_t depth_used, const char *src, size_t len,
                             const uint32_t *idx, uint32_t n_idx, const uint64_t *bslash,
                             json_doc_t *doc, uint32_t *used, json_error_t *err);

/* json_ndjson_each that, when it returns 0 and src[0, len) ends with a '\n',
 * also gives the number of '\n' bytes in it: the lines it went through,
 * which stage 1 indexed anyway (json_stream.c keeps line numbers across
 * pieces with it instead of counting them again). */
int json_ndjson_each_counted(json_parser_t *p, const char *src, size_t len, json_ndjson_fn fn,
                             void *ctx, json_error_t *err, size_t *newlines);

/* Whether the string node k (a key, in the document at src) unescapes to
 * key[0, key_len). */
bool json_key_equals(const char *src, const json_node_t *k, const char *key, size_t key_len);

/* An ASCII decimal digit: stage 2's number grammar, json_value.c's fast
 * path for doubles. */
static inline bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* 0x10 | the value of each hex digit byte, 0 for every other byte. */
extern const uint8_t json_hex_digit[256];

/* Value of the four hex digits at p, or -1 if one is not a hex digit. Four
 * table lookups and no branch per digit: \u escapes mix digits and letters
 * unpredictably. */
static inline int32_t json_hex4(const char *p)
{
	uint32_t a = json_hex_digit[(unsigned char)p[0]], b = json_hex_digit[(unsigned char)p[1]];
	uint32_t c = json_hex_digit[(unsigned char)p[2]], d = json_hex_digit[(unsigned char)p[3]];
	if (!(a & b & c & d & 0x10))
		return -1;
	return (int32_t)(((a & 15) << 12) | ((b & 15) << 8) | ((c & 15) << 4) | (d & 15));
}

/* 1-based line of byte `offset` in src (counts '\n' before it). O(offset),
 * only used when reporting an error. */
size_t json_line_of(const char *src, size_t len, size_t offset);

#endif
