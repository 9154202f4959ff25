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
struct s1_state {
	__m256i error;      /* non-zero once any error was seen */
	__m256i prev;       /* the last 32 bytes of the previous block */
	__m256i incomplete; /* non-zero if the previous block ended mid-sequence */
	/* Constants, pinned (S1_PIN): s1_classify's, then utf8_check's. */
	__m256i ws_table, op_table, ctl_max, lower, quote, bslash, newline;
	__m256i byte_1_high, byte_1_low, byte_2_high, low_nibble, lead_3, lead_4, top_bit, max_ok;
};

#define TABLE16(...) _mm256_setr_epi8(__VA_ARGS__, __VA_ARGS__)

/* The 32 bytes ending N bytes before the end of `in`, spanning into prev. */
#define PREV(in, prev, N) _mm256_alignr_epi8(in, _mm256_permute2x128_si256(prev, in, 0x21), 16 - (N))

S1_INLINE void s1_state_init(s1_state_t *st)
{
	st->error = _mm256_setzero_si256();
	st->prev = _mm256_setzero_si256();
	st->incomplete = _mm256_setzero_si256();
	st->ws_table = TABLE16(' ', 100, 100, 100, 17, 100, 113, 2, 100, '\t', '\n', 112, 100,
	                       '\r', 100, 100);
	st->op_table = TABLE16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ':', '{', ',', '}', 0, 0);
	st->ctl_max = _mm256_set1_epi8(0x1F);
	st->lower = _mm256_set1_epi8(0x20);
	st->quote = _mm256_set1_epi8('"');
	st->bslash = _mm256_set1_epi8('\\');
	st->newline = _mm256_set1_epi8('\n');
	st->byte_1_high = TABLE16(S1_UTF8_BYTE_1_HIGH);
	st->byte_1_low = TABLE16(S1_UTF8_BYTE_1_LOW);
	st->byte_2_high = TABLE16(S1_UTF8_BYTE_2_HIGH);
	st->low_nibble = _mm256_set1_epi8(0x0F);
	st->lead_3 = _mm256_set1_epi8((char)(0xE0 - 0x80));
	st->lead_4 = _mm256_set1_epi8((char)(0xF0 - 0x80));
	st->top_bit = _mm256_set1_epi8((char)0x80);
	/* A lead byte in the last 3 positions whose sequence would not fit. */
	st->max_ok = _mm256_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	                              -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	                              (char)(0xF0 - 1), (char)(0xE0 - 1), (char)(0xC0 - 1));
	S1_PIN_CONSTANTS(st);
}

S1_INLINE __m256i hi_nibbles(const s1_state_t *st, __m256i v)
{
	return _mm256_and_si256(_mm256_srli_epi16(v, 4), st->low_nibble);
}

S1_INLINE __m256i utf8_check(const s1_state_t *st, __m256i in, __m256i prev)
{
	__m256i prev1 = PREV(in, prev, 1);
	__m256i sc = _mm256_and_si256(
		_mm256_and_si256(_mm256_shuffle_epi8(st->byte_1_high, hi_nibbles(st, prev1)),
		                 _mm256_shuffle_epi8(st->byte_1_low,
		                                     _mm256_and_si256(prev1, st->low_nibble))),
		_mm256_shuffle_epi8(st->byte_2_high, hi_nibbles(st, in)));
	/* Saturating subtraction leaves the top bit only on 111_____ two back
	 * and 1111____ three back: there a continuation byte must stand. */
	__m256i third = _mm256_subs_epu8(PREV(in, prev, 2), st->lead_3);
	__m256i fourth = _mm256_subs_epu8(PREV(in, prev, 3), st->lead_4);
	__m256i must23 = _mm256_and_si256(_mm256_or_si256(third, fourth), st->top_bit);
	return _mm256_xor_si256(must23, sc);
}

S1_INLINE void utf8_block(s1_state_t *st, __m256i c0, __m256i c1)
{
	if (_mm256_movemask_epi8(_mm256_or_si256(c0, c1)) == 0) {
		/* All ASCII: fine unless the previous block left a sequence open.
		 * Zero is ASCII, so the next block sees the right predecessors. */
		st->error = _mm256_or_si256(st->error, st->incomplete);
		st->incomplete = _mm256_setzero_si256();
		st->prev = _mm256_setzero_si256();
		return;
	}
	st->error = _mm256_or_si256(st->error, utf8_check(st, c0, st->prev));
	st->error = _mm256_or_si256(st->error, utf8_check(st, c1, c0));
	st->incomplete = _mm256_subs_epu8(c1, st->max_ok);
	st->prev = c1;
}

S1_INLINE bool s1_utf8_bad(const s1_state_t *st)
{
	return !_mm256_testz_si256(st->error, st->error);
}

S1_INLINE uint64_t mask64(__m256i lo, __m256i hi)
{
	return (uint32_t)_mm256_movemask_epi8(lo) | ((uint64_t)(uint32_t)_mm256_movemask_epi8(hi) << 32);
}

/* Whitespace: each of the four bytes sits at its low nibble in ws_table and
 * every other entry has a different low nibble, so "byte == table[low
 * nibble]" holds for exactly the four (bytes >= 0x80 look up 0). Structure:
 * OR-ing 0x20 turns [ ] into { }, which with : and , have distinct low
 * nibbles; it also maps 0x0C and 0x1A onto , and :, removed with ctl. */
S1_INLINE void classify32(const s1_state_t *st, __m256i in, __m256i *ws, __m256i *op,
                              __m256i *ctl)
{
	*ws = _mm256_cmpeq_epi8(_mm256_shuffle_epi8(st->ws_table, in), in);
	*op = _mm256_cmpeq_epi8(_mm256_shuffle_epi8(st->op_table, in), _mm256_or_si256(in, st->lower));
	*ctl = _mm256_cmpeq_epi8(_mm256_min_epu8(in, st->ctl_max), in);
}

S1_INLINE void s1_classify(const uint8_t *block, s1_masks_t *m, s1_state_t *st)
{
	__m256i c0 = _mm256_loadu_si256((const __m256i *)block);
	__m256i c1 = _mm256_loadu_si256((const __m256i *)(block + 32));
	__m256i ws0, ws1, op0, op1, ctl0, ctl1;
	classify32(st, c0, &ws0, &op0, &ctl0);
	classify32(st, c1, &ws1, &op1, &ctl1);
	m->ws = mask64(ws0, ws1);
	m->ctl = mask64(ctl0, ctl1);
	m->op = mask64(op0, op1) & ~m->ctl;
	m->quote = mask64(_mm256_cmpeq_epi8(c0, st->quote), _mm256_cmpeq_epi8(c1, st->quote));
	m->bslash = mask64(_mm256_cmpeq_epi8(c0, st->bslash), _mm256_cmpeq_epi8(c1, st->bslash));
	utf8_block(st, c0, c1);
}

S1_INLINE uint64_t s1_newlines(const uint8_t *block, const s1_state_t *st)
{
	return mask64(_mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)block), st->newline),
	              _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(block + 32)),
	                                st->newline));
}

int json_stage1_avx2(const char *src, uint32_t len, uint32_t *idx, uint32_t *n_out,
                     uint64_t *bslash, bool newlines, json_error_t *err)
{
	s1_state_t st;
	return s1_run(src, len, idx, n_out, bslash, newlines, err, &st);
}
