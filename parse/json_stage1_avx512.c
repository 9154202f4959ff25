/* parse/json_stage1_avx512.c: stage-1 kernel for AVX-512 (F, BW, VBMI2) +
 * PCLMULQDQ + BMI1/2, the "icelake" level.
 *
 * Compiled alone with its own -m flags (parse/meson.build);
 * json_stage1_dispatch.c calls it only on CPUs (and kernels that save the
 * 512-bit state) that have all of them. A 64-byte block is one vector, so
 * each byte class is one compare straight into a 64-bit mask, and the index
 * is flattened with a byte compress (VBMI2) instead of a bit-by-bit loop.
 * json_stage1_simd.h does the rest, as for the other widths. */
#include <immintrin.h>

#define S1_OWN_FLATTEN 1
#include "parse/json_stage1_simd.h"

#define TABLE16(...) _mm512_broadcast_i32x4(_mm_setr_epi8(__VA_ARGS__))

/* UTF-8 validation (Keiser & Lemire 2021: see json_stage1_avx2.c) and the
 * constants of classification and validation, pinned (S1_PIN). */
struct s1_state {
	__m512i error;      /* non-zero once any error was seen */
	__m512i prev;       /* the previous block */
	__m512i incomplete; /* non-zero if the previous block ended mid-sequence */
	__m512i ws_table, op_table;                  /* s1_classify */
	__m512i ctl_max, lower, quote, bslash, newline;
	__m512i byte_1_high, byte_1_low, byte_2_high; /* utf8_check */
	__m512i low_nibble, lead_3, lead_4, top_bit, lanes_before, max_ok;
};

S1_INLINE void s1_state_init(s1_state_t *st)
{
	st->error = _mm512_setzero_si512();
	st->prev = _mm512_setzero_si512();
	st->incomplete = _mm512_setzero_si512();
	/* Whitespace and structure as in json_stage1_avx2.c's classify32. */
	st->ws_table = TABLE16(' ', 100, 100, 100, 17, 100, 113, 2, 100, '\t', '\n', 112, 100,
	                       '\r', 100, 100);
	st->op_table = TABLE16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ':', '{', ',', '}', 0, 0);
	st->ctl_max = _mm512_set1_epi8(0x1F);
	st->lower = _mm512_set1_epi8(0x20);
	st->quote = _mm512_set1_epi8('"');
	st->bslash = _mm512_set1_epi8('\\');
	st->newline = _mm512_set1_epi8('\n');
	st->byte_1_high = TABLE16(S1_UTF8_BYTE_1_HIGH);
	st->byte_1_low = TABLE16(S1_UTF8_BYTE_1_LOW);
	st->byte_2_high = TABLE16(S1_UTF8_BYTE_2_HIGH);
	st->low_nibble = _mm512_set1_epi8(0x0F);
	st->lead_3 = _mm512_set1_epi8((char)(0xE0 - 0x80));
	st->lead_4 = _mm512_set1_epi8((char)(0xF0 - 0x80));
	st->top_bit = _mm512_set1_epi8((char)0x80);
	st->lanes_before = _mm512_setr_epi64(14, 15, 0, 1, 2, 3, 4, 5);
	/* A lead byte in the last 3 positions whose sequence would not fit:
	 * above these limits, saturating subtraction leaves it non-zero. */
	st->max_ok = _mm512_inserti32x4(
		_mm512_set1_epi8(-1),
		_mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, (char)(0xF0 - 1),
		              (char)(0xE0 - 1), (char)(0xC0 - 1)),
		3);
	S1_PIN_CONSTANTS(st);
	S1_PIN(st->lanes_before);
}

S1_INLINE __m512i hi_nibbles(const s1_state_t *st, __m512i v)
{
	return _mm512_and_si512(_mm512_srli_epi16(v, 4), st->low_nibble);
}

S1_INLINE __m512i utf8_check(const s1_state_t *st, __m512i in, __m512i prev)
{
	/* Each 16-byte lane of `in` next to the lane before it (the last lane
	 * of prev for the first): per-lane alignr then shifts across lanes. */
	__m512i before = _mm512_permutex2var_epi64(in, st->lanes_before, prev);
	__m512i prev1 = _mm512_alignr_epi8(in, before, 15);
	__m512i prev2 = _mm512_alignr_epi8(in, before, 14);
	__m512i prev3 = _mm512_alignr_epi8(in, before, 13);
	__m512i sc = _mm512_and_si512(
		_mm512_and_si512(_mm512_shuffle_epi8(st->byte_1_high, hi_nibbles(st, prev1)),
		                 _mm512_shuffle_epi8(st->byte_1_low,
		                                     _mm512_and_si512(prev1, st->low_nibble))),
		_mm512_shuffle_epi8(st->byte_2_high, hi_nibbles(st, in)));
	/* Saturating subtraction leaves the top bit only on 111_____ two back
	 * and 1111____ three back: there a continuation byte must stand. */
	__m512i third = _mm512_subs_epu8(prev2, st->lead_3);
	__m512i fourth = _mm512_subs_epu8(prev3, st->lead_4);
	__m512i must23 = _mm512_and_si512(_mm512_or_si512(third, fourth), st->top_bit);
	return _mm512_xor_si512(must23, sc);
}

S1_INLINE void utf8_block(s1_state_t *st, __m512i in)
{
	if (_mm512_movepi8_mask(in) == 0) {
		/* All ASCII: fine unless the previous block left a sequence open.
		 * Zero is ASCII, so the next block sees the right predecessors. */
		st->error = _mm512_or_si512(st->error, st->incomplete);
		st->incomplete = _mm512_setzero_si512();
		st->prev = _mm512_setzero_si512();
		return;
	}
	st->error = _mm512_or_si512(st->error, utf8_check(st, in, st->prev));
	st->incomplete = _mm512_subs_epu8(in, st->max_ok);
	st->prev = in;
}

S1_INLINE bool s1_utf8_bad(const s1_state_t *st)
{
	return _mm512_test_epi8_mask(st->error, st->error) != 0;
}

S1_INLINE void s1_classify(const uint8_t *block, s1_masks_t *m, s1_state_t *st)
{
	__m512i in = _mm512_loadu_si512((const void *)block);
	m->ws = _mm512_cmpeq_epi8_mask(_mm512_shuffle_epi8(st->ws_table, in), in);
	m->ctl = _mm512_cmple_epu8_mask(in, st->ctl_max);
	m->op = _mm512_cmpeq_epi8_mask(_mm512_shuffle_epi8(st->op_table, in),
	                               _mm512_or_si512(in, st->lower)) &
	        ~m->ctl;
	m->quote = _mm512_cmpeq_epi8_mask(in, st->quote);
	m->bslash = _mm512_cmpeq_epi8_mask(in, st->bslash);
	utf8_block(st, in);
}

S1_INLINE uint64_t s1_newlines(const uint8_t *block, const s1_state_t *st)
{
	return _mm512_cmpeq_epi8_mask(_mm512_loadu_si512((const void *)block), st->newline);
}

/* s1_flatten's contract (json_stage1_simd.h): the bit positions are
 * compressed into consecutive bytes, then widened and stored 16 at a time,
 * whole: up to 15 slots past the result, within JSON_STAGE1_IDX_SLACK.
 * Storing the last 16 under a mask instead, with a branch on the count for
 * every 16, took 7-12% longer for stage 1 of the corpus files. */
S1_INLINE uint32_t s1_flatten(uint32_t *idx, uint32_t n, uint32_t base, uint64_t bits)
{
	if (bits == 0)
		return n;
	const __m512i iota = _mm512_setr_epi32(
		0x03020100, 0x07060504, 0x0B0A0908, 0x0F0E0D0C, 0x13121110, 0x17161514, 0x1B1A1918,
		0x1F1E1D1C, 0x23222120, 0x27262524, 0x2B2A2928, 0x2F2E2D2C, 0x33323130, 0x37363534,
		0x3B3A3938, 0x3F3E3D3C);
	uint32_t cnt = (uint32_t)__builtin_popcountll(bits);
	__m512i pos = _mm512_maskz_compress_epi8(bits, iota);
	__m512i vbase = _mm512_set1_epi32((int)base);
	uint32_t *out = idx + n;
#define S1_STORE_LANE(L)                                                                           \
	_mm512_storeu_si512((void *)(out + 16 * (L)),                                              \
	                    _mm512_add_epi32(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(pos, L)), \
	                                     vbase))
	S1_STORE_LANE(0);
	/* More than 16 entries in 64 bytes is rare outside dense numbers. */
	if (__builtin_expect(cnt > 16, 0)) {
		S1_STORE_LANE(1);
		if (cnt > 32) {
			S1_STORE_LANE(2);
			if (cnt > 48)
				S1_STORE_LANE(3);
		}
	}
#undef S1_STORE_LANE
	return n + cnt;
}

int json_stage1_avx512(const char *src, uint32_t len, uint32_t *idx, uint32_t *n_out,
                       uint64_t *bslash, bool newlines, json_error_t *err)
{
	s1_state_t st;
	return s1_run(src, len, idx, n_out, bslash, newlines, err, &st);
}
