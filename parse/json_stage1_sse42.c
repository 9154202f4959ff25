/* parse/json_stage1_sse42.c: stage-1 kernel for SSE4.2 + PCLMULQDQ + POPCNT.
 *
 * Compiled alone with -msse4.2 -mpclmul -mpopcnt (parse/meson.build);
 * json_stage1_dispatch.c calls it only on CPUs that have them. The same
 * algorithm as json_stage1_avx2.c with 64 bytes as four 16-byte vectors;
 * json_stage1_simd.h does the width-independent rest. */
#include <nmmintrin.h>
#include <tmmintrin.h>

#include "parse/json_stage1_simd.h"

/* UTF-8 validation, Keiser & Lemire (2021): see json_stage1_avx2.c. The
 * constants need no pinning (S1_PIN): without AVX, gcc loads them from
 * memory rather than building them from a register. */
struct s1_state {
	__m128i error;      /* non-zero once any error was seen */
	__m128i prev;       /* the last 16 bytes of the previous block */
	__m128i incomplete; /* non-zero if the previous block ended mid-sequence */
};

/* The 16 bytes ending N bytes before the end of `in`, spanning into prev. */
#define PREV(in, prev, N) _mm_alignr_epi8(in, prev, 16 - (N))

S1_INLINE __m128i hi_nibbles(__m128i v)
{
	return _mm_and_si128(_mm_srli_epi16(v, 4), _mm_set1_epi8(0x0F));
}

S1_INLINE __m128i utf8_check(__m128i in, __m128i prev)
{
	const __m128i byte_1_high = _mm_setr_epi8(S1_UTF8_BYTE_1_HIGH);
	const __m128i byte_1_low = _mm_setr_epi8(S1_UTF8_BYTE_1_LOW);
	const __m128i byte_2_high = _mm_setr_epi8(S1_UTF8_BYTE_2_HIGH);
	__m128i prev1 = PREV(in, prev, 1);
	__m128i sc = _mm_and_si128(
		_mm_and_si128(_mm_shuffle_epi8(byte_1_high, hi_nibbles(prev1)),
		              _mm_shuffle_epi8(byte_1_low, _mm_and_si128(prev1, _mm_set1_epi8(0x0F)))),
		_mm_shuffle_epi8(byte_2_high, hi_nibbles(in)));
	__m128i third = _mm_subs_epu8(PREV(in, prev, 2), _mm_set1_epi8((char)(0xE0 - 0x80)));
	__m128i fourth = _mm_subs_epu8(PREV(in, prev, 3), _mm_set1_epi8((char)(0xF0 - 0x80)));
	__m128i must23 = _mm_and_si128(_mm_or_si128(third, fourth), _mm_set1_epi8((char)0x80));
	return _mm_xor_si128(must23, sc);
}

S1_INLINE void s1_state_init(s1_state_t *u)
{
	u->error = _mm_setzero_si128();
	u->prev = _mm_setzero_si128();
	u->incomplete = _mm_setzero_si128();
}

S1_INLINE void utf8_block(s1_state_t *u, const __m128i c[4])
{
	__m128i any = _mm_or_si128(_mm_or_si128(c[0], c[1]), _mm_or_si128(c[2], c[3]));
	if (_mm_movemask_epi8(any) == 0) {
		/* All ASCII: fine unless the previous block left a sequence open.
		 * Zero is ASCII, so the next block sees the right predecessors. */
		u->error = _mm_or_si128(u->error, u->incomplete);
		u->incomplete = _mm_setzero_si128();
		u->prev = _mm_setzero_si128();
		return;
	}
	__m128i e = utf8_check(c[0], u->prev);
	e = _mm_or_si128(e, utf8_check(c[1], c[0]));
	e = _mm_or_si128(e, utf8_check(c[2], c[1]));
	e = _mm_or_si128(e, utf8_check(c[3], c[2]));
	u->error = _mm_or_si128(u->error, e);
	/* A lead byte in the last 3 positions whose sequence would not fit. */
	const __m128i max_ok = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	                                     (char)(0xF0 - 1), (char)(0xE0 - 1), (char)(0xC0 - 1));
	u->incomplete = _mm_subs_epu8(c[3], max_ok);
	u->prev = c[3];
}

S1_INLINE bool s1_utf8_bad(const s1_state_t *u)
{
	return !_mm_testz_si128(u->error, u->error);
}

S1_INLINE uint64_t mask64(__m128i a, __m128i b, __m128i c, __m128i d)
{
	return (uint64_t)(uint32_t)_mm_movemask_epi8(a) |
	       ((uint64_t)(uint32_t)_mm_movemask_epi8(b) << 16) |
	       ((uint64_t)(uint32_t)_mm_movemask_epi8(c) << 32) |
	       ((uint64_t)(uint32_t)_mm_movemask_epi8(d) << 48);
}

/* The same lookups as classify32 in json_stage1_avx2.c (why they work is
 * written there). */
S1_INLINE void s1_classify(const uint8_t *block, s1_masks_t *m, s1_state_t *u)
{
	const __m128i ws_table = _mm_setr_epi8(' ', 100, 100, 100, 17, 100, 113, 2, 100, '\t',
	                                       '\n', 112, 100, '\r', 100, 100);
	const __m128i op_table = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ':', '{', ',', '}', 0, 0);
	__m128i c[4], ws[4], op[4], ctl[4], q[4], bs[4];
	/* Unrolled, so c[], ws[] ... live in registers (as a loop gcc kept them
	 * on the stack: 191 -> 153 us for stage 1 of twitter.json). */
#pragma GCC unroll 4
	for (int i = 0; i < 4; i++) {
		c[i] = _mm_loadu_si128((const __m128i *)(block + 16 * i));
		ws[i] = _mm_cmpeq_epi8(_mm_shuffle_epi8(ws_table, c[i]), c[i]);
		op[i] = _mm_cmpeq_epi8(_mm_shuffle_epi8(op_table, c[i]),
		                       _mm_or_si128(c[i], _mm_set1_epi8(0x20)));
		ctl[i] = _mm_cmpeq_epi8(_mm_min_epu8(c[i], _mm_set1_epi8(0x1F)), c[i]);
		q[i] = _mm_cmpeq_epi8(c[i], _mm_set1_epi8('"'));
		bs[i] = _mm_cmpeq_epi8(c[i], _mm_set1_epi8('\\'));
	}
	m->ws = mask64(ws[0], ws[1], ws[2], ws[3]);
	m->ctl = mask64(ctl[0], ctl[1], ctl[2], ctl[3]);
	m->op = mask64(op[0], op[1], op[2], op[3]) & ~m->ctl;
	m->quote = mask64(q[0], q[1], q[2], q[3]);
	m->bslash = mask64(bs[0], bs[1], bs[2], bs[3]);
	utf8_block(u, c);
}

S1_INLINE uint64_t s1_newlines(const uint8_t *block, const s1_state_t *u)
{
	(void)u;
	const __m128i nl = _mm_set1_epi8('\n');
	__m128i c[4];
#pragma GCC unroll 4
	for (int i = 0; i < 4; i++)
		c[i] = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(block + 16 * i)), nl);
	return mask64(c[0], c[1], c[2], c[3]);
}

int json_stage1_sse42(const char *src, uint32_t len, uint32_t *idx, uint32_t *n_out,
                      uint64_t *bslash, bool newlines, json_error_t *err)
{
	s1_state_t st;
	return s1_run(src, len, idx, n_out, bslash, newlines, err, &st);
}
