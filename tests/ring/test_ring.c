/* tests/ring/test_ring.c: proves store/ring.c's SPSC ring delivers every
 * item once and in order between two real threads, and that its doorbell
 * never loses a wake-up; plus the capacity edge cases.
 *
 * Usage: test_ring [ITEMS]   (default 20,000,000; fewer under sanitizers) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "store/ring.h"

#define ITEMS_DEFAULT 20000000ull
#define RING_CAPACITY 1024u /* small, so the producer often finds it full */
#define POP_BATCH_MAX 256u
/* Long enough that no healthy run reaches it: a wait that times out is
 * counted as a lost wake-up (the count is asserted, not the time). */
#define WAIT_TIMEOUT_MS 10000
#define PING_PONG_ROUNDS_MAX 100000ull

static uint64_t items_total = ITEMS_DEFAULT;

static void *item_of(uint64_t i)
{
	return (void *)(uintptr_t)(i + 1);
}

/* Sleeps on d unless, after reading the sequence, the ring shows items
 * (want_items) or free slots. Returns 1 when the wait ran into its timeout:
 * with a healthy doorbell the other side always rings first. */
static int sleep_unless(doorbell_t *d, ring_t *r, bool want_items)
{
	uint32_t seen = doorbell_seq(d);
	bool ready = want_items ? ring_count(r) > 0 : ring_free_slots(r) > 0;
	if (ready)
		return 0;
	return doorbell_wait_timed(d, seen, WAIT_TIMEOUT_MS) == -ETIMEDOUT;
}

/* ---- two threads, N items -------------------------------------------- */

typedef struct {
	ring_t ring;
	doorbell_t work;  /* rung by the producer after each push */
	doorbell_t space; /* rung by the consumer after each pop batch */
	uint64_t n;
	/* results, read by the main thread after pthread_join */
	uint64_t received;
	uint64_t out_of_order;
	uint64_t consumer_waits;
	uint64_t producer_waits;
	uint64_t timeouts;          /* consumer side */
	uint64_t producer_timeouts;
} stream_t;

static void *producer_main(void *arg)
{
	stream_t *s = arg;
	for (uint64_t i = 0; i < s->n; i++) {
		while (!ring_push(&s->ring, item_of(i))) {
			s->producer_waits++;
			s->producer_timeouts += (uint64_t)sleep_unless(&s->space, &s->ring, false);
		}
		doorbell_ring(&s->work);
	}
	return NULL;
}

static void *consumer_main(void *arg)
{
	stream_t *s = arg;
	void *batch[POP_BATCH_MAX];
	while (s->received < s->n) {
		uint32_t got = ring_pop_many(&s->ring, batch, POP_BATCH_MAX);
		if (got == 0) {
			s->consumer_waits++;
			s->timeouts += (uint64_t)sleep_unless(&s->work, &s->ring, true);
			continue;
		}
		for (uint32_t k = 0; k < got; k++)
			if (batch[k] != item_of(s->received + k))
				s->out_of_order++;
		s->received += got;
		doorbell_ring(&s->space);
	}
	return NULL;
}

/* The producer publishes runs of 1 to POP_BATCH_MAX items with one
 * ring_push_many each (the run lengths from a fixed seed). */
static void *producer_many_main(void *arg)
{
	stream_t *s = arg;
	void *run[POP_BATCH_MAX];
	uint64_t seed = 0x9E3779B97F4A7C15ull;
	for (uint64_t i = 0; i < s->n;) {
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		uint32_t want = 1 + (uint32_t)(seed % POP_BATCH_MAX);
		if (want > s->n - i)
			want = (uint32_t)(s->n - i);
		for (uint32_t k = 0; k < want; k++)
			run[k] = item_of(i + k);
		for (uint32_t done = 0; done < want;) {
			uint32_t got = ring_push_many(&s->ring, run + done, want - done);
			if (got == 0) {
				s->producer_waits++;
				s->producer_timeouts +=
					(uint64_t)sleep_unless(&s->space, &s->ring, false);
			}
			done += got;
		}
		i += want;
		doorbell_ring(&s->work);
	}
	return NULL;
}

static void run_stream(stream_t *s, void *(*producer)(void *))
{
	pthread_t prod, cons;
	assert_int_equal(ring_init(&s->ring, RING_CAPACITY), 0);
	doorbell_init(&s->work);
	doorbell_init(&s->space);
	s->n = items_total;
	assert_int_equal(pthread_create(&cons, NULL, consumer_main, s), 0);
	assert_int_equal(pthread_create(&prod, NULL, producer, s), 0);
	assert_int_equal(pthread_join(prod, NULL), 0);
	assert_int_equal(pthread_join(cons, NULL), 0);
	assert_int_equal(s->received, s->n);
	assert_int_equal(s->out_of_order, 0);
	assert_int_equal(s->timeouts, 0);
	assert_int_equal(s->producer_timeouts, 0);
	assert_null(ring_pop(&s->ring));
	ring_destroy(&s->ring);
}

static void test_two_threads_push_many(void **state)
{
	(void)state;
	static stream_t s;
	run_stream(&s, producer_many_main);
	printf("# %llu items in runs; consumer slept %llu times, producer %llu times\n",
	       (unsigned long long)s.n, (unsigned long long)s.consumer_waits,
	       (unsigned long long)s.producer_waits);
}

/* ring_push_many alone: all that fit, in order, across the wrap; none when full. */
static void test_push_many(void **state)
{
	(void)state;
	ring_t r;
	void *in[8], *out[8];
	for (uint32_t i = 0; i < 8; i++)
		in[i] = item_of(i);
	assert_int_equal(ring_init(&r, 4), 0);
	assert_int_equal(ring_push_many(&r, in, 0), 0);
	assert_int_equal(ring_push_many(&r, in, 3), 3);
	assert_int_equal(ring_push_many(&r, in + 3, 5), 1); /* one slot was left */
	assert_int_equal(ring_push_many(&r, in + 4, 1), 0); /* full */
	assert_int_equal(ring_pop_many(&r, out, 2), 2);
	assert_ptr_equal(out[0], in[0]);
	assert_ptr_equal(out[1], in[1]);
	assert_int_equal(ring_push_many(&r, in + 4, 4), 2);
	assert_int_equal(ring_pop_many(&r, out, 8), 4);
	for (uint32_t i = 0; i < 4; i++)
		assert_ptr_equal(out[i], in[2 + i]);
	assert_int_equal(ring_count(&r), 0);
	/* Head and tail are at 6 (slot 2): a run of three goes into slots 2, 3
	 * and then 0, across the array's end. */
	assert_int_equal(ring_push_many(&r, in + 5, 3), 3);
	assert_ptr_equal(r.slots[0], in[7]);
	assert_int_equal(ring_pop_many(&r, out, 8), 3);
	for (uint32_t i = 0; i < 3; i++)
		assert_ptr_equal(out[i], in[5 + i]);
	ring_destroy(&r);
}

static void test_two_threads(void **state)
{
	(void)state;
	static stream_t s;
	run_stream(&s, producer_main);
	printf("# %llu items; consumer slept %llu times, producer %llu times\n",
	       (unsigned long long)s.n, (unsigned long long)s.consumer_waits,
	       (unsigned long long)s.producer_waits);
}

/* ---- ping-pong: a sleep on every hand-off ----------------------------- */

/* One item bounces between two threads through two rings, so each side
 * finds its ring empty and goes to sleep almost every round: the window
 * between "checked, empty" and "asleep" is hit as often as possible. */
typedef struct {
	ring_t ring[2];
	doorbell_t bell[2];
	uint64_t rounds;
	uint64_t timeouts[2];
	uint64_t bad[2];
} pingpong_t;

static void bounce(pingpong_t *p, int side)
{
	int in = side, out = 1 - side;
	for (uint64_t i = 0; i < p->rounds; i++) {
		if (side == 0) {
			p->bad[side] += !ring_push(&p->ring[out], item_of(i));
			doorbell_ring(&p->bell[out]);
		}
		void *item;
		while ((item = ring_pop(&p->ring[in])) == NULL)
			p->timeouts[side] += (uint64_t)sleep_unless(&p->bell[in], &p->ring[in], true);
		p->bad[side] += item != item_of(i);
		if (side == 1) {
			p->bad[side] += !ring_push(&p->ring[out], item);
			doorbell_ring(&p->bell[out]);
		}
	}
}

static void *pong_main(void *arg)
{
	bounce(arg, 1);
	return NULL;
}

static void test_ping_pong(void **state)
{
	(void)state;
	static pingpong_t p;
	pthread_t t;
	for (int k = 0; k < 2; k++) {
		assert_int_equal(ring_init(&p.ring[k], 2), 0);
		doorbell_init(&p.bell[k]);
	}
	p.rounds = items_total / 200 < PING_PONG_ROUNDS_MAX ? items_total / 200 + 1
	                                                      : PING_PONG_ROUNDS_MAX;
	assert_int_equal(pthread_create(&t, NULL, pong_main, &p), 0);
	bounce(&p, 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(p.bad[0] + p.bad[1], 0);
	assert_int_equal(p.timeouts[0], 0);
	assert_int_equal(p.timeouts[1], 0);
	for (int k = 0; k < 2; k++)
		ring_destroy(&p.ring[k]);
}

/* ---- single-thread edge cases ---------------------------------------- */

static void test_init_rejects(void **state)
{
	(void)state;
	ring_t r;
	const uint32_t bad[] = {0, 1, 3, 6, 1000, UINT32_C(0x80000001), UINT32_MAX};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(ring_init(&r, bad[i]), -EINVAL);
	assert_int_equal(ring_init(&r, 2), 0);
	ring_destroy(&r);
	assert_null(r.slots);
}

static void test_full_and_empty(void **state)
{
	(void)state;
	ring_t r;
	assert_int_equal(ring_init(&r, 4), 0);
	assert_null(ring_pop(&r));
	assert_int_equal(ring_count(&r), 0);
	assert_int_equal(ring_free_slots(&r), 4);
	for (uint64_t i = 0; i < 4; i++)
		assert_true(ring_push(&r, item_of(i)));
	assert_false(ring_push(&r, item_of(99))); /* full rejects */
	assert_false(ring_push(&r, item_of(99)));
	assert_int_equal(ring_free_slots(&r), 0);
	assert_int_equal(ring_count(&r), 4);
	assert_ptr_equal(ring_pop(&r), item_of(0));
	assert_true(ring_push(&r, item_of(4))); /* one freed, one fits */
	assert_false(ring_push(&r, item_of(99)));
	for (uint64_t i = 1; i <= 4; i++)
		assert_ptr_equal(ring_pop(&r), item_of(i));
	assert_null(ring_pop(&r));
	ring_destroy(&r);
}

static void test_pop_many(void **state)
{
	(void)state;
	ring_t r;
	void *out[16];
	assert_int_equal(ring_init(&r, 8), 0);
	assert_int_equal(ring_pop_many(&r, out, 16), 0);
	for (uint64_t i = 0; i < 8; i++)
		assert_true(ring_push(&r, item_of(i)));
	assert_int_equal(ring_pop_many(&r, out, 0), 0);
	assert_int_equal(ring_pop_many(&r, out, 3), 3); /* max smaller than count */
	for (uint64_t i = 0; i < 3; i++)
		assert_ptr_equal(out[i], item_of(i));
	for (uint64_t i = 8; i < 11; i++) /* wrap the slot index */
		assert_true(ring_push(&r, item_of(i)));
	assert_false(ring_push(&r, item_of(99)));
	assert_int_equal(ring_pop_many(&r, out, 16), 8); /* max larger: all there is */
	for (uint64_t i = 0; i < 8; i++)
		assert_ptr_equal(out[i], item_of(i + 3));
	assert_int_equal(ring_pop_many(&r, out, 16), 0);
	assert_int_equal(ring_free_slots(&r), 8);
	ring_destroy(&r);
}

/* Free-running 32-bit indices wrap around after 2^32 items; full and empty
 * must still be told apart across the wrap. */
static void test_index_wrap(void **state)
{
	(void)state;
	ring_t r;
	void *out[4];
	assert_int_equal(ring_init(&r, 4), 0);
	uint32_t start = UINT32_MAX - 1;
	atomic_store(&r.head, start);
	atomic_store(&r.tail, start);
	r.tail_cached = start;
	r.head_cached = start;
	for (uint64_t round = 0; round < 3; round++) {
		for (uint64_t i = 0; i < 4; i++)
			assert_true(ring_push(&r, item_of(round * 4 + i)));
		assert_false(ring_push(&r, item_of(99)));
		assert_int_equal(ring_count(&r), 4);
		assert_ptr_equal(ring_pop(&r), item_of(round * 4));
		assert_int_equal(ring_pop_many(&r, out, 4), 3);
		assert_ptr_equal(out[2], item_of(round * 4 + 3));
		assert_null(ring_pop(&r));
	}
	ring_destroy(&r);
}

/* A doorbell rung after the sequence was read must not let the waiter
 * sleep: with an infinite timeout a wrong implementation hangs here (and the
 * meson timeout fails the test). */
static void test_doorbell_rung_before_wait(void **state)
{
	(void)state;
	doorbell_t d;
	doorbell_init(&d);
	uint32_t seen = doorbell_seq(&d);
	doorbell_ring(&d);
	assert_int_not_equal(doorbell_seq(&d), seen);
	doorbell_wait(&d, seen, -1);
	assert_int_equal(atomic_load(&d.sleepers), 0);
	assert_int_equal(doorbell_wait_timed(&d, seen, -1), 0);
	/* nothing rang: a zero timeout returns, and says it timed out */
	seen = doorbell_seq(&d);
	doorbell_wait(&d, seen, 0);
	assert_int_equal(doorbell_wait_timed(&d, seen, 0), -ETIMEDOUT);
	assert_int_equal(doorbell_seq(&d), seen);
	assert_int_equal(atomic_load(&d.sleepers), 0);
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		char *end;
		items_total = strtoull(argv[1], &end, 10);
		if (*end != '\0' || items_total == 0) {
			fprintf(stderr, "usage: %s [ITEMS]\n", argv[0]);
			return 2;
		}
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_rejects),
	    cmocka_unit_test(test_full_and_empty),
	    cmocka_unit_test(test_pop_many),
	    cmocka_unit_test(test_push_many),
	    cmocka_unit_test(test_two_threads_push_many),
	    cmocka_unit_test(test_index_wrap),
	    cmocka_unit_test(test_doorbell_rung_before_wait),
	    cmocka_unit_test(test_ping_pong),
	    cmocka_unit_test(test_two_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
