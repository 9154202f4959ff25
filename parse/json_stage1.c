/* parse/json_stage1.c: stage 1 of the JSON parser, in portable C.
 *
 * Input bytes (an HTTP body, a file, an NDJSON line) -> structural index
 * (offsets) for stage 2 in json.c, which builds the tape. One pass; string
 * bodies are skipped 8 bytes at a time while they hold nothing special.
 * The reference for the SIMD kernels (json_stage1_avx2.c, _sse42.c), which
 * also hand the rest of an invalid input to json_stage1_scalar_from. */
#include <assert.h>
#include <string.h>

#include "parse/json_internal.h"

enum { CLS_OTHER = 0, CLS_WS, CLS_STRUCT, CLS_QUOTE, CLS_BSLASH };

/* Byte classes outside strings. Only the four RFC 8259 whitespace bytes are
 * whitespace; anything else unknown is CLS_OTHER and starts a scalar run. */
static const uint8_t byte_class[256] = {
	[' '] = CLS_WS,     ['\t'] = CLS_WS,     ['\n'] = CLS_WS,     ['\r'] = CLS_WS,
	['{'] = CLS_STRUCT, ['}'] = CLS_STRUCT, ['['] = CLS_STRUCT, [']'] = CLS_STRUCT,
	[':'] = CLS_STRUCT, [','] = CLS_STRUCT, ['"'] = CLS_QUOTE,
	['\\'] = CLS_BSLASH, /* "other" (garbage outside a string), noted in the backslash map */
};

/* Notes a backslash at i in the backslash map, if there is one. */
static inline void note_bslash(uint64_t *bslash, uint32_t i)
{
	if (bslash)
		bslash[i / JSON_BSLASH_MAP_BYTES] |= 1ull << (i % JSON_BSLASH_MAP_BYTES);
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* True when the 8 bytes at p hold a quote, a backslash, a byte below 0x20 or
 * a non-ASCII byte: the bytes the string loop must look at one by one.
 * The zero-byte tricks may flag extra bytes past a true hit, never miss one,
 * and only the yes/no answer is used. */
static inline bool word_is_special(const char *p)
{
	uint64_t w;
	memcpy(&w, p, sizeof w);
	uint64_t q = w ^ (ONES * '"');
	uint64_t b = w ^ (ONES * '\\');
	uint64_t has_quote = (q - ONES) & ~q;
	uint64_t has_bslash = (b - ONES) & ~b;
	uint64_t has_ctl = (w - ONES * 0x20) & ~w;
	return ((has_quote | has_bslash | has_ctl | w) & HIGHS) != 0;
}

static inline bool is_cont(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

/* Length of the valid UTF-8 sequence starting with the non-ASCII byte at
 * s[i], or 0 if it is invalid (Unicode table 3-7: no overlong forms, no
 * UTF-16 surrogates, nothing above U+10FFFF, no truncation). */
static uint32_t utf8_seq_len(const unsigned char *s, uint32_t i, uint32_t len)
{
	unsigned char c = s[i];
	uint32_t left = len - i;
	if (c >= 0xC2 && c <= 0xDF)
		return (left >= 2 && is_cont(s[i + 1])) ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		if (left < 3 || !is_cont(s[i + 1]) || !is_cont(s[i + 2]))
			return 0;
		if (c == 0xE0 && s[i + 1] < 0xA0)
			return 0; /* overlong */
		if (c == 0xED && s[i + 1] > 0x9F)
			return 0; /* U+D800..U+DFFF */
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (left < 4 || !is_cont(s[i + 1]) || !is_cont(s[i + 2]) || !is_cont(s[i + 3]))
			return 0;
		if (c == 0xF0 && s[i + 1] < 0x90)
			return 0; /* overlong */
		if (c == 0xF4 && s[i + 1] > 0x8F)
			return 0; /* above U+10FFFF */
		return 4;
	}
	return 0; /* continuation byte as lead, C0/C1 overlongs, F5..FF */
}

/* Scans the body of the string whose opening quote is at `open`; returns the
 * offset of its closing quote, or -1 with err set. Notes its backslashes in
 * bslash (if not NULL). */
static int64_t scan_string(const char *src, uint32_t len, uint32_t open, uint64_t *bslash,
                           json_error_t *err)
{
	const unsigned char *s = (const unsigned char *)src;
	uint32_t i = open + 1;
	for (;;) {
		while (len - i >= 8 && !word_is_special(src + i))
			i += 8;
		if (i >= len)
			break;
		unsigned char c = s[i];
		if (c == '"')
			return i;
		if (c == '\\') {
			/* Only an escaped quote or backslash changes the string state;
			 * every other escape is checked by stage 2, and the byte after
			 * the backslash still gets the control/UTF-8 checks below. */
			note_bslash(bslash, i++);
			if (i < len && (s[i] == '"' || s[i] == '\\')) {
				if (s[i] == '\\')
					note_bslash(bslash, i);
				i++;
			}
			continue;
		}
		if (c < 0x20) {
			err->offset = i;
			err->reason = JSON_E_CONTROL;
			return -1;
		}
		if (c < 0x80) {
			i++;
			continue;
		}
		uint32_t n = utf8_seq_len(s, i, len);
		if (n == 0) {
			err->offset = i;
			err->reason = JSON_E_UTF8;
			return -1;
		}
		i += n;
	}
	/* Reported at the opening quote: that is where the reader should look. */
	err->offset = open;
	err->reason = JSON_E_UNTERMINATED;
	return -1;
}

/* json_stage1_scalar_from, noting every backslash in bslash (if not NULL;
 * the caller has zeroed it). */
static int scan_from(const char *src, uint32_t len, uint32_t pos, bool in_scalar, bool newlines,
                     uint32_t *idx, uint32_t n, uint32_t *n_out, uint64_t *bslash,
                     json_error_t *err)
{
	assert(len <= JSON_DOC_BYTES_MAX && pos <= len && n <= pos);
	const unsigned char *s = (const unsigned char *)src;
	uint32_t i = pos;
	while (i < len) {
		switch (byte_class[s[i]]) {
		case CLS_WS:
			if (newlines && s[i] == '\n')
				idx[n++] = i;
			in_scalar = false;
			i++;
			break;
		case CLS_STRUCT:
			idx[n++] = i++;
			in_scalar = false;
			break;
		case CLS_BSLASH:
			note_bslash(bslash, i); /* and it is an "other" byte */
			/* fall through */
		case CLS_OTHER:
			if (!in_scalar)
				idx[n++] = i;
			in_scalar = true;
			i++;
			break;
		default: { /* CLS_QUOTE */
			idx[n++] = i;
			int64_t close = scan_string(src, len, i, bslash, err);
			if (close < 0) {
				*n_out = n;
				return -1;
			}
			idx[n++] = (uint32_t)close;
			i = (uint32_t)close + 1;
			in_scalar = false;
			break;
		}
		}
	}
	assert(n <= len);
	*n_out = n;
	return 0;
}

int json_stage1_scalar_from(const char *src, uint32_t len, uint32_t pos, bool in_scalar,
                            bool newlines, uint32_t *idx, uint32_t n, uint32_t *n_out,
                            json_error_t *err)
{
	return scan_from(src, len, pos, in_scalar, newlines, idx, n, n_out, NULL, err);
}

void json_stage1_bslash_map(const char *src, uint32_t len, uint32_t from, uint64_t *bslash)
{
	assert(from % JSON_BSLASH_MAP_BYTES == 0);
	for (uint64_t pos = from; pos < len; pos += JSON_BSLASH_MAP_BYTES) {
		uint32_t n = len - pos < JSON_BSLASH_MAP_BYTES ? (uint32_t)(len - pos)
		                                               : JSON_BSLASH_MAP_BYTES;
		uint64_t bits = 0;
		uint32_t i = 0;
		/* Backslashes are rare: 8 bytes are looked at one by one only
		 * when they hold one (exact zero-byte test of w ^ '\\'). */
		for (; i + 8 <= n; i += 8) {
			uint64_t w;
			memcpy(&w, src + pos + i, sizeof w);
			uint64_t x = w ^ (ONES * '\\');
			if ((~(((x & ~HIGHS) + ~HIGHS) | x) & HIGHS) == 0)
				continue;
			for (uint32_t j = i; j < i + 8; j++)
				bits |= (uint64_t)(src[pos + j] == '\\') << j;
		}
		for (; i < n; i++)
			bits |= (uint64_t)(src[pos + i] == '\\') << i;
		bslash[pos / JSON_BSLASH_MAP_BYTES] = bits;
	}
}

int json_stage1_scalar(const char *src, uint32_t len, uint32_t *idx, uint32_t *n_out,
                       uint64_t *bslash, bool newlines, json_error_t *err)
{
	/* The scan meets every backslash (they are special inside strings, and
	 * a class of their own outside), so it notes them in a zeroed map; an
	 * error stops it early, and then the map is made from the bytes. */
	if (bslash)
		memset(bslash, 0, JSON_BSLASH_MAP_WORDS(len) * sizeof *bslash);
	int r = scan_from(src, len, 0, false, newlines, idx, 0, n_out, bslash, err);
	if (r < 0 && bslash)
		json_stage1_bslash_map(src, len, 0, bslash);
	return r;
}
