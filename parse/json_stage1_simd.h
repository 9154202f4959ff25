/* parse/json_stage1_simd.h: the width-independent half of the SIMD stage-1
 * kernels, included by json_stage1_avx512.c, json_stage1_avx2.c and
 * json_stage1_sse42.c, which define struct s1_state and the four functions
 * declared below for their vector width (a kernel that defines S1_OWN_FLATTEN
 * brings s1_flatten too), and so compile this code with their own target
 * flags.
 * Here: 64-bit block masks -> escapes, strings (carry-less multiply), index
 * bits, the flattened index, and the hand-over to the scalar reference
 * (json_stage1.c) at the first block holding an error or a suspect byte. */
#ifndef RF_JSON_STAGE1_SIMD_H
#define RF_JSON_STAGE1_SIMD_H

#include <assert.h>
#include <string.h>
#include <immintrin.h>
#include <smmintrin.h>
#include <wmmintrin.h>

#include "parse/json_internal.h"

#define S1_BLOCK_BYTES 64u
_Static_assert(S1_BLOCK_BYTES == JSON_BSLASH_MAP_BYTES, "a block is one word of the backslash map");
#define S1_ODD_BITS 0xAAAAAAAAAAAAAAAAull

/* The per-block helpers here and in the kernels: the kernel body calls them
 * from two instantiations (s1_run), and gcc then stopped inlining some of
 * them (the AVX2 kernel called s1_classify, its state in memory: 10% slower). */
#define S1_INLINE __attribute__((always_inline)) static inline

/* UTF-8 validation tables (Keiser & Lemire 2021), the same for every vector
 * width: each kernel expands them into its own vector type. The error bits: */
#define TOO_SHORT (1 << 0)
#define TOO_LONG (1 << 1)
#define OVERLONG_3 (1 << 2)
#define TOO_LARGE (1 << 3)
#define SURROGATE (1 << 4)
#define OVERLONG_2 (1 << 5)
#define TOO_LARGE_1000 (1 << 6)
#define OVERLONG_4 (1 << 6)
#define TWO_CONTS ((char)0x80) /* bit 7: as a char, so the tables below hold chars */
#define CARRY (TOO_SHORT | TOO_LONG | TWO_CONTS)

/* Indexed by the high nibble of the first byte of a pair ... */
#define S1_UTF8_BYTE_1_HIGH \
	TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, \
	TWO_CONTS, TWO_CONTS, TWO_CONTS, TWO_CONTS, TOO_SHORT | OVERLONG_2, TOO_SHORT, \
	TOO_SHORT | OVERLONG_3 | SURROGATE, \
	TOO_SHORT | TOO_LARGE | TOO_LARGE_1000 | OVERLONG_4
/* ... by its low nibble ... */
#define S1_UTF8_BYTE_1_LOW \
	CARRY | OVERLONG_3 | OVERLONG_2 | OVERLONG_4, CARRY | OVERLONG_2, CARRY, CARRY, \
	CARRY | TOO_LARGE, CARRY | TOO_LARGE | TOO_LARGE_1000, \
	CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000, \
	CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000, \
	CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000, \
	CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000 | SURROGATE, \
	CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000
/* ... and by the high nibble of the second byte. */
#define S1_UTF8_BYTE_2_HIGH \
	TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, \
	TOO_SHORT, \
	TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE_1000 | OVERLONG_4, \
	TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE, \
	TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE, \
	TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE, TOO_SHORT, TOO_SHORT, \
	TOO_SHORT, TOO_SHORT

/* One bit per byte of a 64-byte block (bit i = byte i). */
typedef struct {
	uint64_t quote;  /* '"' */
	uint64_t bslash; /* '\\' */
	uint64_t op;     /* { } [ ] : , */
	uint64_t ws;     /* space, tab, LF, CR */
	uint64_t ctl;    /* bytes below 0x20 */
} s1_masks_t;

/* What one block tells the next. */
typedef struct {
	uint64_t next_escaped; /* 1: the next block's first byte follows an odd backslash run */
	uint64_t in_string;    /* all ones: the next block starts inside a string */
	uint64_t prev_other;   /* 1: the last byte is not structure, whitespace or a quote (even in a string) */
} s1_carry_t;

/* Where the scalar kernel can take over: the start of a block, with the
 * state the scalar loop would have there. */
typedef struct {
	uint64_t pos;   /* 64-bit: pos + S1_BLOCK_BYTES may pass 4 GiB */
	uint32_t n;     /* index entries below pos */
	bool in_string; /* then idx[n - 1] is the open string's opening quote */
	bool in_scalar;
} s1_snap_t;

/* Provided by the including kernel. */
typedef struct s1_state s1_state_t; /* one run's UTF-8 validator and vector constants */
static inline void s1_state_init(s1_state_t *st);
/* The block's byte classes into *m; feeds the block to the UTF-8 validator. */
static inline void s1_classify(const uint8_t *block, s1_masks_t *m, s1_state_t *st);
static inline bool s1_utf8_bad(const s1_state_t *st); /* an error seen so far */
static inline uint64_t s1_newlines(const uint8_t *block, const s1_state_t *st); /* its '\n' bytes */

/* Hides a vector constant's value from the compiler (s1_state_init applies it
 * to each constant it sets), so the constant stays in a register, or is
 * reloaded, for the whole run. Otherwise gcc rebuilds set1 constants in every
 * block as broadcasts, which take the shuffle ports the byte compares and
 * lookups need (on Intel, port 5 alone for 512-bit ones): 9% of the AVX-512
 * kernel's stage-1 time on twitter.json (AMD EPYC, 2026-12-06). */
#define S1_PIN(v) __asm__("" : "+v"(v))

/* S1_PIN on the constants the AVX2 and AVX-512 kernels' states both have, by
 * the same names: s1_classify's, then utf8_check's (SSE4.2 pins none). */
#define S1_PIN_CONSTANTS(st)                                                                       \
	do {                                                                                       \
		S1_PIN((st)->ws_table);                                                            \
		S1_PIN((st)->op_table);                                                            \
		S1_PIN((st)->ctl_max);                                                             \
		S1_PIN((st)->lower);                                                               \
		S1_PIN((st)->quote);                                                               \
		S1_PIN((st)->bslash);                                                              \
		S1_PIN((st)->newline);                                                             \
		S1_PIN((st)->byte_1_high);                                                         \
		S1_PIN((st)->byte_1_low);                                                          \
		S1_PIN((st)->byte_2_high);                                                         \
		S1_PIN((st)->low_nibble);                                                          \
		S1_PIN((st)->lead_3);                                                              \
		S1_PIN((st)->lead_4);                                                              \
		S1_PIN((st)->top_bit);                                                             \
		S1_PIN((st)->max_ok);                                                              \
	} while (0)

/* Bit i of the result = XOR of bits 0..i of x: the carry-less product with
 * all ones. Turns quote positions into "inside a string" runs. */
S1_INLINE uint64_t s1_prefix_xor(uint64_t x)
{
	__m128i v = _mm_set_epi64x(0, (long long)x);
	__m128i ones = _mm_set1_epi8((char)0xFF);
	return (uint64_t)_mm_cvtsi128_si64(_mm_clmulepi64_si128(v, ones, 0));
}

/* Index bits of one block, updating the carry. *suspect is non-zero when the
 * block holds a control byte inside a string or a backslash outside one: the
 * first is an error, the second a byte the SIMD escape rule (a backslash
 * escapes the next byte everywhere) would read differently from the scalar
 * rule (only inside strings). Up to the first such byte both rules agree. */
S1_INLINE uint64_t s1_block_bits(const s1_masks_t *m, s1_carry_t *c, uint64_t *suspect)
{
	uint64_t escaped;
	if (m->bslash == 0) {
		escaped = c->next_escaped;
		c->next_escaped = 0;
	} else {
		/* A backslash not itself escaped starts a run; subtracting each
		 * run's start from (run << 1 | odd bits) marks, by the parity the
		 * carry leaves, the bytes after odd-length runs. */
		uint64_t potential = m->bslash & ~c->next_escaped;
		uint64_t code = (((potential << 1) | S1_ODD_BITS) - potential) ^ S1_ODD_BITS;
		escaped = code ^ (m->bslash | c->next_escaped);
		c->next_escaped = (code & m->bslash) >> 63;
	}
	uint64_t quote = m->quote & ~escaped;
	/* From each opening quote (inclusive) to its closing quote (exclusive). */
	uint64_t in_str = s1_prefix_xor(quote) ^ c->in_string;
	c->in_string = (uint64_t)((int64_t)in_str >> 63);
	/* As simdjson: scalar runs found without regard to strings (their
	 * starts inside strings are masked off below), so the run carry does
	 * not wait for the string carry, and fewer operations: stage 1 2-5%
	 * faster with AVX-512 and AVX2. The carry is the scalar kernel's
	 * in_scalar wherever that matters: a block that starts outside a
	 * string follows a byte outside one or a closing quote. */
	uint64_t scalar = ~(m->op | m->ws);
	uint64_t nonquote = scalar & ~quote;
	uint64_t starts = scalar & ~((nonquote << 1) | c->prev_other);
	c->prev_other = nonquote >> 63;
	uint64_t tail = in_str ^ quote; /* string bodies and closing quotes */
	*suspect = (m->bslash & ~(in_str | quote)) | (m->ctl & in_str);
	return ((m->op | starts) & ~tail) | quote;
}

#if !defined(S1_OWN_FLATTEN)
/* For each byte value, the positions (0-7) of its set bits in increasing
 * order, one per byte from the lowest (the rest zero). Made by
 *   for b in range(256): sum(p << 8 * i for i, p in
 *                            enumerate(q for q in range(8) if b >> q & 1))
 */
static const uint64_t s1_byte_bits[256] = {
	0x0000000000000000ull, 0x0000000000000000ull, 0x0000000000000001ull, 0x0000000000000100ull,
	0x0000000000000002ull, 0x0000000000000200ull, 0x0000000000000201ull, 0x0000000000020100ull,
	0x0000000000000003ull, 0x0000000000000300ull, 0x0000000000000301ull, 0x0000000000030100ull,
	0x0000000000000302ull, 0x0000000000030200ull, 0x0000000000030201ull, 0x0000000003020100ull,
	0x0000000000000004ull, 0x0000000000000400ull, 0x0000000000000401ull, 0x0000000000040100ull,
	0x0000000000000402ull, 0x0000000000040200ull, 0x0000000000040201ull, 0x0000000004020100ull,
	0x0000000000000403ull, 0x0000000000040300ull, 0x0000000000040301ull, 0x0000000004030100ull,
	0x0000000000040302ull, 0x0000000004030200ull, 0x0000000004030201ull, 0x0000000403020100ull,
	0x0000000000000005ull, 0x0000000000000500ull, 0x0000000000000501ull, 0x0000000000050100ull,
	0x0000000000000502ull, 0x0000000000050200ull, 0x0000000000050201ull, 0x0000000005020100ull,
	0x0000000000000503ull, 0x0000000000050300ull, 0x0000000000050301ull, 0x0000000005030100ull,
	0x0000000000050302ull, 0x0000000005030200ull, 0x0000000005030201ull, 0x0000000503020100ull,
	0x0000000000000504ull, 0x0000000000050400ull, 0x0000000000050401ull, 0x0000000005040100ull,
	0x0000000000050402ull, 0x0000000005040200ull, 0x0000000005040201ull, 0x0000000504020100ull,
	0x0000000000050403ull, 0x0000000005040300ull, 0x0000000005040301ull, 0x0000000504030100ull,
	0x0000000005040302ull, 0x0000000504030200ull, 0x0000000504030201ull, 0x0000050403020100ull,
	0x0000000000000006ull, 0x0000000000000600ull, 0x0000000000000601ull, 0x0000000000060100ull,
	0x0000000000000602ull, 0x0000000000060200ull, 0x0000000000060201ull, 0x0000000006020100ull,
	0x0000000000000603ull, 0x0000000000060300ull, 0x0000000000060301ull, 0x0000000006030100ull,
	0x0000000000060302ull, 0x0000000006030200ull, 0x0000000006030201ull, 0x0000000603020100ull,
	0x0000000000000604ull, 0x0000000000060400ull, 0x0000000000060401ull, 0x0000000006040100ull,
	0x0000000000060402ull, 0x0000000006040200ull, 0x0000000006040201ull, 0x0000000604020100ull,
	0x0000000000060403ull, 0x0000000006040300ull, 0x0000000006040301ull, 0x0000000604030100ull,
	0x0000000006040302ull, 0x0000000604030200ull, 0x0000000604030201ull, 0x0000060403020100ull,
	0x0000000000000605ull, 0x0000000000060500ull, 0x0000000000060501ull, 0x0000000006050100ull,
	0x0000000000060502ull, 0x0000000006050200ull, 0x0000000006050201ull, 0x0000000605020100ull,
	0x0000000000060503ull, 0x0000000006050300ull, 0x0000000006050301ull, 0x0000000605030100ull,
	0x0000000006050302ull, 0x0000000605030200ull, 0x0000000605030201ull, 0x0000060503020100ull,
	0x0000000000060504ull, 0x0000000006050400ull, 0x0000000006050401ull, 0x0000000605040100ull,
	0x0000000006050402ull, 0x0000000605040200ull, 0x0000000605040201ull, 0x0000060504020100ull,
	0x0000000006050403ull, 0x0000000605040300ull, 0x0000000605040301ull, 0x0000060504030100ull,
	0x0000000605040302ull, 0x0000060504030200ull, 0x0000060504030201ull, 0x0006050403020100ull,
	0x0000000000000007ull, 0x0000000000000700ull, 0x0000000000000701ull, 0x0000000000070100ull,
	0x0000000000000702ull, 0x0000000000070200ull, 0x0000000000070201ull, 0x0000000007020100ull,
	0x0000000000000703ull, 0x0000000000070300ull, 0x0000000000070301ull, 0x0000000007030100ull,
	0x0000000000070302ull, 0x0000000007030200ull, 0x0000000007030201ull, 0x0000000703020100ull,
	0x0000000000000704ull, 0x0000000000070400ull, 0x0000000000070401ull, 0x0000000007040100ull,
	0x0000000000070402ull, 0x0000000007040200ull, 0x0000000007040201ull, 0x0000000704020100ull,
	0x0000000000070403ull, 0x0000000007040300ull, 0x0000000007040301ull, 0x0000000704030100ull,
	0x0000000007040302ull, 0x0000000704030200ull, 0x0000000704030201ull, 0x0000070403020100ull,
	0x0000000000000705ull, 0x0000000000070500ull, 0x0000000000070501ull, 0x0000000007050100ull,
	0x0000000000070502ull, 0x0000000007050200ull, 0x0000000007050201ull, 0x0000000705020100ull,
	0x0000000000070503ull, 0x0000000007050300ull, 0x0000000007050301ull, 0x0000000705030100ull,
	0x0000000007050302ull, 0x0000000705030200ull, 0x0000000705030201ull, 0x0000070503020100ull,
	0x0000000000070504ull, 0x0000000007050400ull, 0x0000000007050401ull, 0x0000000705040100ull,
	0x0000000007050402ull, 0x0000000705040200ull, 0x0000000705040201ull, 0x0000070504020100ull,
	0x0000000007050403ull, 0x0000000705040300ull, 0x0000000705040301ull, 0x0000070504030100ull,
	0x0000000705040302ull, 0x0000070504030200ull, 0x0000070504030201ull, 0x0007050403020100ull,
	0x0000000000000706ull, 0x0000000000070600ull, 0x0000000000070601ull, 0x0000000007060100ull,
	0x0000000000070602ull, 0x0000000007060200ull, 0x0000000007060201ull, 0x0000000706020100ull,
	0x0000000000070603ull, 0x0000000007060300ull, 0x0000000007060301ull, 0x0000000706030100ull,
	0x0000000007060302ull, 0x0000000706030200ull, 0x0000000706030201ull, 0x0000070603020100ull,
	0x0000000000070604ull, 0x0000000007060400ull, 0x0000000007060401ull, 0x0000000706040100ull,
	0x0000000007060402ull, 0x0000000706040200ull, 0x0000000706040201ull, 0x0000070604020100ull,
	0x0000000007060403ull, 0x0000000706040300ull, 0x0000000706040301ull, 0x0000070604030100ull,
	0x0000000706040302ull, 0x0000070604030200ull, 0x0000070604030201ull, 0x0007060403020100ull,
	0x0000000000070605ull, 0x0000000007060500ull, 0x0000000007060501ull, 0x0000000706050100ull,
	0x0000000007060502ull, 0x0000000706050200ull, 0x0000000706050201ull, 0x0000070605020100ull,
	0x0000000007060503ull, 0x0000000706050300ull, 0x0000000706050301ull, 0x0000070605030100ull,
	0x0000000706050302ull, 0x0000070605030200ull, 0x0000070605030201ull, 0x0007060503020100ull,
	0x0000000007060504ull, 0x0000000706050400ull, 0x0000000706050401ull, 0x0000070605040100ull,
	0x0000000706050402ull, 0x0000070605040200ull, 0x0000070605040201ull, 0x0007060504020100ull,
	0x0000000706050403ull, 0x0000070605040300ull, 0x0000070605040301ull, 0x0007060504030100ull,
	0x0000070605040302ull, 0x0007060504030200ull, 0x0007060504030201ull, 0x0706050403020100ull,
};

/* s1_flatten (below) for a block of more than 8 entries. A byte of bits at
 * a time: its positions come from s1_byte_bits, widened to 8 offsets and
 * stored whole, and the output moves on by the byte's bit count. No branch
 * depends on the bits (a bit-by-bit loop with a branch on the count was over
 * half of the AVX2 kernel's time on twitter.json, mostly mispredicted). The
 * last store may write up to 8 slots past the result. */
static inline uint32_t s1_flatten_bytes(uint32_t *idx, uint32_t n, uint32_t base, uint64_t bits)
{
	uint32_t *out = idx + n;
#if defined(__AVX2__)
	__m256i vbase = _mm256_set1_epi32((int)base);
	const __m256i eight = _mm256_set1_epi32(8);
#pragma GCC unroll 8
	for (int k = 0; k < 8; k++) {
		uint32_t byte = (uint32_t)(bits >> (8 * k)) & 0xFF;
		__m128i pos = _mm_loadl_epi64((const __m128i *)&s1_byte_bits[byte]);
		_mm256_storeu_si256((__m256i *)out, _mm256_add_epi32(_mm256_cvtepu8_epi32(pos), vbase));
		vbase = _mm256_add_epi32(vbase, eight);
		out += __builtin_popcount(byte);
	}
#else
	__m128i vbase = _mm_set1_epi32((int)base);
	const __m128i eight = _mm_set1_epi32(8);
#pragma GCC unroll 8
	for (int k = 0; k < 8; k++) {
		uint32_t byte = (uint32_t)(bits >> (8 * k)) & 0xFF;
		__m128i pos = _mm_loadl_epi64((const __m128i *)&s1_byte_bits[byte]);
		_mm_storeu_si128((__m128i *)out, _mm_add_epi32(_mm_cvtepu8_epi32(pos), vbase));
		_mm_storeu_si128((__m128i *)out + 1,
		                 _mm_add_epi32(_mm_cvtepu8_epi32(_mm_srli_epi64(pos, 32)), vbase));
		vbase = _mm_add_epi32(vbase, eight);
		out += __builtin_popcount(byte);
	}
#endif
	return (uint32_t)(out - idx);
}

/* The lowest set bit's position; x | 1 << 63 gives bsf (SSE4.2 has no tzcnt)
 * a defined answer when x is 0, for a slot past the result, and changes
 * nothing otherwise. */
S1_INLINE uint32_t s1_low_bit(uint64_t x)
{
	return (uint32_t)__builtin_ctzll(x | 0x8000000000000000ull);
}

/* Appends base + the position of each set bit to idx[n...]; returns the new
 * count. A block of at most 8 entries (most blocks, outside dense arrays of
 * numbers) takes them bit by bit as simdjson's bit indexer does, 8 steps
 * whatever the count, with no branch on it; a denser block goes through
 * s1_flatten_bytes. Either alone was slower (AVX2 stage 1, medians of 5
 * alternating runs of rf_parse_split, 2026-12-07): bytes always, 112 / 310 /
 * 404 us on twitter / citm_catalog / canada; bit by bit always (8, then 16
 * when more than 8, then a loop), 112 / 280 / 441; this, 106 / 275 / 403.
 * Up to 8 slots past the result are written; the result never has more
 * entries than the input has bytes, so JSON_STAGE1_IDX_SLACK covers them. */
S1_INLINE uint32_t s1_flatten(uint32_t *idx, uint32_t n, uint32_t base, uint64_t bits)
{
	if (bits == 0)
		return n;
	uint32_t cnt = (uint32_t)__builtin_popcountll(bits);
	if (cnt > 8)
		return s1_flatten_bytes(idx, n, base, bits);
	uint32_t *out = idx + n;
#pragma GCC unroll 8
	for (int i = 0; i < 8; i++) {
		out[i] = base + s1_low_bit(bits);
		bits &= bits - 1;
	}
	return n + cnt;
}
#else
/* The including kernel has a faster one with the same contract. */
static inline uint32_t s1_flatten(uint32_t *idx, uint32_t n, uint32_t base, uint64_t bits);
#endif

/* The scalar kernel from snapshot s on: from the opening quote of the string
 * s is inside of, or from s itself; the backslash map from s's block on. */
static int s1_hand_over(const char *src, uint32_t len, const s1_snap_t *s, uint32_t *idx,
                        uint32_t *n_out, uint64_t *bslash, bool newlines, json_error_t *err)
{
	if (bslash)
		json_stage1_bslash_map(src, len, (uint32_t)s->pos, bslash);
	uint32_t n = s->n;
	uint32_t pos = (uint32_t)s->pos;
	bool in_scalar = s->in_scalar;
	if (s->in_string) {
		assert(n > 0 && src[idx[n - 1]] == '"');
		pos = idx[--n];
		in_scalar = false;
	}
	return json_stage1_scalar_from(src, len, pos, in_scalar, newlines, idx, n, n_out, err);
}

/* Where a run stands between blocks. */
typedef struct {
	s1_carry_t carry;
	uint32_t *out;      /* the next index entry: a pointer, not a count, and */
	uint64_t prev_bits; /* the previous block's index bits, not yet flattened, */
	                    /* its offset implied (pos - S1_BLOCK_BYTES): each live */
	                    /* value less kept the in-string carry out of memory */
} s1_run_t;

/* Flattens the previous block's bits (at pos - S1_BLOCK_BYTES; none before
 * the first block) to r->out. */
S1_INLINE void s1_flatten_prev(s1_run_t *r, uint64_t pos)
{
	r->out += s1_flatten(r->out, 0, (uint32_t)pos - S1_BLOCK_BYTES, r->prev_bits);
}

/* One block at pos (read from `block`: src + pos, or a padded copy of the
 * tail). Returns false, with the entries below the block flattened, when the
 * scalar kernel must take over at the block. */
__attribute__((always_inline)) static inline bool s1_step(s1_run_t *r, const uint8_t *block,
                                                         uint64_t pos, uint64_t *bslash,
                                                         bool newlines, s1_state_t *st)
{
	s1_masks_t m;
	s1_classify(block, &m, st);
	if (bslash)
		bslash[pos / S1_BLOCK_BYTES] = m.bslash;
	uint64_t suspect;
	uint64_t bits = s1_block_bits(&m, &r->carry, &suspect);
	if (__builtin_expect(suspect != 0 || s1_utf8_bad(st), 0)) {
		s1_flatten_prev(r, pos);
		return false;
	}
	/* A '\n' in a string is a control byte, handed over above: every
	 * one left is outside strings. */
	if (newlines)
		bits |= s1_newlines(block, st);
	/* The block before is flattened now, a block late (as simdjson does),
	 * so its stores overlap this block's classification instead of waiting
	 * on its carries: stage 1 of citm_catalog.json 293 -> 264 us with AVX2,
	 * 1-4% with AVX-512. */
	s1_flatten_prev(r, pos);
	r->prev_bits = bits;
	return true;
}

/* The kernel body. Every block is checked as it is read; at the first block
 * with an error or a suspect byte, the scalar kernel takes over from the
 * block's start (or the open string's quote), which gives the reference
 * offset and reason for any error. A UTF-8 error seen in this block that
 * began in the one before matters only inside a string, and then this block
 * starts inside that string. Valid JSON never gets there. Always inlined: as
 * a call, gcc kept the SSE4.2 kernel's state in memory and went through it
 * in every block (stage 1 of twitter.json 245 us as a call, 191 us inlined).
 * The whole blocks run in a loop of their own and the short last one after
 * it: with the copy of the tail (a call to memcpy) inside the loop, gcc kept
 * the run's scalars (the count, the carries) on the stack. */
__attribute__((always_inline)) static inline int s1_run_with(const char *src, uint32_t len,
                                                            uint32_t *idx, uint32_t *n_out,
                                                            uint64_t *bslash, bool newlines,
                                                            json_error_t *err, s1_state_t *st)
{
	assert(len <= JSON_DOC_BYTES_MAX);
	s1_run_t r = {.out = idx};
	s1_state_init(st);
	/* The state at the start of the block, for a hand-over: plain values, so
	 * they stay in registers (a snapshot struct whose address escapes would
	 * be stored to memory in every block). */
	uint64_t pos = 0, in_string = 0, prev_other = 0;
	uint64_t whole = len - len % S1_BLOCK_BYTES;
	for (; pos < whole; pos += S1_BLOCK_BYTES) {
		in_string = r.carry.in_string;
		prev_other = r.carry.prev_other;
		if (!s1_step(&r, (const uint8_t *)src + pos, pos, bslash, newlines, st))
			goto hand_over;
	}
	if (pos < len) {
		/* Spaces: no index bits, no UTF-8 state, and nothing read past
		 * len. They also end, as an error, a UTF-8 sequence cut by the
		 * end of input. */
		uint8_t tail[S1_BLOCK_BYTES];
		memset(tail, ' ', sizeof tail);
		memcpy(tail, src + pos, len - pos);
		in_string = r.carry.in_string;
		prev_other = r.carry.prev_other;
		if (!s1_step(&r, tail, pos, bslash, newlines, st))
			goto hand_over;
		pos += S1_BLOCK_BYTES;
	}
	uint32_t block_n = (uint32_t)(r.out - idx); /* the entries below the last block */
	s1_flatten_prev(&r, pos);
	uint32_t n = (uint32_t)(r.out - idx);
	/* A string still open at the end (which also covers a UTF-8 sequence
	 * cut off inside it; outside strings that is stage 2's business). */
	if (r.carry.in_string) {
		s1_snap_t snap = {.pos = pos - S1_BLOCK_BYTES, .n = block_n,
		                  .in_string = in_string != 0, .in_scalar = prev_other != 0};
		return s1_hand_over(src, len, &snap, idx, n_out, bslash, newlines, err);
	}
	assert(n <= len);
	*n_out = n;
	return 0;
hand_over:;
	s1_snap_t snap = {.pos = pos, .n = (uint32_t)(r.out - idx), .in_string = in_string != 0,
	                  .in_scalar = prev_other != 0};
	return s1_hand_over(src, len, &snap, idx, n_out, bslash, newlines, err);
}

/* s1_run_with for the common case, the whole-document parse (a backslash
 * map, no newlines), with those known to the compiler, and for the rest. */
__attribute__((always_inline)) static inline int s1_run(const char *src, uint32_t len,
                                                       uint32_t *idx, uint32_t *n_out,
                                                       uint64_t *bslash, bool newlines,
                                                       json_error_t *err, s1_state_t *st)
{
	if (bslash && !newlines)
		return s1_run_with(src, len, idx, n_out, bslash, false, err, st);
	return s1_run_with(src, len, idx, n_out, bslash, newlines, err, st);
}

#endif
