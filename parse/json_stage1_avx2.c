/* parse/json_stage1_avx2.c: stage-1 kernel for AVX2 + PCLMULQDQ + BMI1/2.
 *
 * Compiled alone with -mavx2 -mpclmul -mbmi -mbmi2 -mpopcnt (parse/meson.build);
 * json_stage1_dispatch.c calls it only on CPUs that have all of them. Here:
 * 64 bytes as two 32-byte vectors -> byte-class masks and UTF-8 validation;
 * json_stage1_simd.h does the rest, the same for every width. */
#include <immintrin.h>

#include "parse/json_stage1_simd.h"

/* UTF-8 validation, Keiser & Lemire, "Validating UTF-8 in less than one
 * instruction per byte" (2021): three nibble lookups classify each byte pair,
 * and continuation bytes required by a 3- or 4-byte lead 2 or 3 bytes back
 * must be exactly where the pair tables found them. Errors accumulate. */
struct s1_utf8 {
	__m256i error;      /* non-zero once any error was seen */
	__m256i prev;       /* the last 32 bytes of the previous block */
	__m256i incomplete; /* non-zero if the previous block ended mid-sequence */
};

#define TABLE16(...) _mm256_setr_epi8(__VA_ARGS__, __VA_ARGS__)

/* The 32 bytes ending N bytes before the end of `in`, spanning into prev. */
#define PREV(in, prev, N) _mm256_alignr_epi8(in, _mm256_permute2x128_si256(prev, in, 0x21), 16 - (N))

static inline __m256i hi_nibbles(__m256i v)
{
	return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F));
}

static inline __m256i utf8_check(__m256i in, __m256i prev)
{
	const __m256i byte_1_high = TABLE16(S1_UTF8_BYTE_1_HIGH);
	const __m256i byte_1_low = TABLE16(S1_UTF8_BYTE_1_LOW);
	const __m256i byte_2_high = TABLE16(S1_UTF8_BYTE_2_HIGH);
	__m256i prev1 = PREV(in, prev, 1);
	__m256i sc = _mm256_and_si256(
		_mm256_and_si256(_mm256_shuffle_epi8(byte_1_high, hi_nibbles(prev1)),
		                 _mm256_shuffle_epi8(byte_1_low,
		                                     _mm256_and_si256(prev1, _mm256_set1_epi8(0x0F)))),
		_mm256_shuffle_epi8(byte_2_high, hi_nibbles(in)));
	/* Saturating subtraction leaves the top bit only on 111_____ two back
	 * and 1111____ three back: there a continuation byte must stand. */
	__m256i third = _mm256_subs_epu8(PREV(in, prev, 2), _mm256_set1_epi8((char)(0xE0 - 0x80)));
	__m256i fourth = _mm256_subs_epu8(PREV(in, prev, 3), _mm256_set1_epi8((char)(0xF0 - 0x80)));
	__m256i must23 = _mm256_and_si256(_mm256_or_si256(third, fourth), _mm256_set1_epi8((char)0x80));
	return _mm256_xor_si256(must23, sc);
}

static inline void s1_utf8_init(s1_utf8_t *u)
{
	u->error = _mm256_setzero_si256();
	u->prev = _mm256_setzero_si256();
	u->incomplete = _mm256_setzero_si256();
}

static inline void utf8_block(s1_utf8_t *u, __m256i c0, __m256i c1)
{
	if (_mm256_movemask_epi8(_mm256_or_si256(c0, c1)) == 0) {
		/* All ASCII: fine unless the previous block left a sequence open.
		 * Zero is ASCII, so the next block sees the right predecessors. */
		u->error = _mm256_or_si256(u->error, u->incomplete);
		u->incomplete = _mm256_setzero_si256();
		u->prev = _mm256_setzero_si256();
		return;
	}
	u->error = _mm256_or_si256(u->error, utf8_check(c0, u->prev));
	u->error = _mm256_or_si256(u->error, utf8_check(c1, c0));
	/* A lead byte in the last 3 positions whose sequence would not fit. */
	const __m256i max_ok = _mm256_setr_epi8(
		-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
		-1, -1, -1, -1, -1, -1, -1, (char)(0xF0 - 1), (char)(0xE0 - 1), (char)(0xC0 - 1));
	u->incomplete = _mm256_subs_epu8(c1, max_ok);
	u->prev = c1;
}

static inline bool s1_utf8_bad(const s1_utf8_t *u)
{
	return !_mm256_testz_si256(u->error, u->error);
}

static inline uint64_t mask64(__m256i lo, __m256i hi)
{
	return (uint32_t)_mm256_movemask_epi8(lo) | ((uint64_t)(uint32_t)_mm256_movemask_epi8(hi) << 32);
}

/* Whitespace: each of the four bytes sits at its low nibble in ws_table and
 * every other entry has a different low nibble, so "byte == table[low
 * nibble]" holds for exactly the four (bytes >= 0x80 look up 0). Structure:
 * OR-ing 0x20 turns [ ] into { }, which with : and , have distinct low
 * nibbles; it also maps 0x0C and 0x1A onto , and :, removed with ctl. */
static inline void classify32(__m256i in, __m256i *ws, __m256i *op, __m256i *ctl)
{
	const __m256i ws_table = TABLE16(' ', 100, 100, 100, 17, 100, 113, 2, 100, '\t', '\n', 112,
	                                 100, '\r', 100, 100);
	const __m256i op_table = TABLE16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ':', '{', ',', '}', 0, 0);
	*ws = _mm256_cmpeq_epi8(_mm256_shuffle_epi8(ws_table, in), in);
	*op = _mm256_cmpeq_epi8(_mm256_shuffle_epi8(op_table, in),
	                        _mm256_or_si256(in, _mm256_set1_epi8(0x20)));
	*ctl = _mm256_cmpeq_epi8(_mm256_min_epu8(in, _mm256_set1_epi8(0x1F)), in);
}

static inline void s1_classify(const uint8_t *block, s1_masks_t *m, s1_utf8_t *u)
{
	__m256i c0 = _mm256_loadu_si256((const __m256i *)block);
	__m256i c1 = _mm256_loadu_si256((const __m256i *)(block + 32));
	__m256i ws0, ws1, op0, op1, ctl0, ctl1;
	classify32(c0, &ws0, &op0, &ctl0);
	classify32(c1, &ws1, &op1, &ctl1);
	m->ws = mask64(ws0, ws1);
	m->ctl = mask64(ctl0, ctl1);
	m->op = mask64(op0, op1) & ~m->ctl;
	m->quote = mask64(_mm256_cmpeq_epi8(c0, _mm256_set1_epi8('"')),
	                  _mm256_cmpeq_epi8(c1, _mm256_set1_epi8('"')));
	m->bslash = mask64(_mm256_cmpeq_epi8(c0, _mm256_set1_epi8('\\')),
	                   _mm256_cmpeq_epi8(c1, _mm256_set1_epi8('\\')));
	utf8_block(u, c0, c1);
}

static inline uint64_t s1_newlines(const uint8_t *block)
{
	const __m256i nl = _mm256_set1_epi8('\n');
	return mask64(_mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)block), nl),
	              _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(block + 32)), nl));
}

int json_stage1_avx2(const char *src, uint32_t len, uint32_t *idx, uint32_t *n_out,
                     uint64_t *bslash, bool newlines, json_error_t *err)
{
	s1_utf8_t utf8;
	return s1_run(src, len, idx, n_out, bslash, newlines, err, &utf8);
}
