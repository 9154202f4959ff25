/* store/ring.c: the lock-free SPSC ring that carries row batches from a loop
 * thread (engine/) to the writer thread (store/writer.c), and job
 * descriptors back; plus the futex doorbell either side sleeps on.
 *
 * Barrier pairing: the producer publishes a slot with a release store of
 * head, which the consumer's acquire load of head pairs with; the consumer
 * frees a slot with a release store of tail, which the producer's acquire
 * load of tail pairs with. Each side reads the other's index only when its
 * cached copy says empty (consumer) or full (producer). */
#include "store/ring.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Indices are free-running uint32_t; head - tail must tell full from empty,
 * so the capacity must stay below 2^32. */
#define RING_CAPACITY_MAX (UINT32_C(1) << 31)

static bool is_pow2(uint32_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

int ring_init(ring_t *r, uint32_t capacity)
{
	assert(r != NULL);
	if (capacity < 2 || capacity > RING_CAPACITY_MAX || !is_pow2(capacity))
		return -EINVAL;
	r->slots = calloc(capacity, sizeof(*r->slots));
	if (r->slots == NULL)
		return -ENOMEM;
	r->mask = capacity - 1;
	r->tail_cached = 0;
	r->head_cached = 0;
	/* Before any other thread sees the ring: publication to them is the
	 * caller's job (e.g. pthread_create), so relaxed is enough. */
	atomic_store_explicit(&r->head, 0, memory_order_relaxed);
	atomic_store_explicit(&r->tail, 0, memory_order_relaxed);
	return 0;
}

void ring_destroy(ring_t *r)
{
	assert(r != NULL);
	free(r->slots);
	r->slots = NULL;
}

/* ---- producer --------------------------------------------------------- */

bool ring_push(ring_t *r, void *item)
{
	assert(item != NULL); /* NULL is the consumer's "empty" */
	/* Relaxed: only this thread writes head. */
	uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint32_t capacity = r->mask + 1;
	if (head - r->tail_cached == capacity) {
		/* Acquire pairs with the consumer's release store of tail: the
		 * consumer's read of the slot we are about to overwrite happened
		 * before. */
		r->tail_cached = atomic_load_explicit(&r->tail, memory_order_acquire);
		if (head - r->tail_cached == capacity)
			return false;
	}
	assert(head - r->tail_cached < capacity);
	r->slots[head & r->mask] = item;
	/* Release pairs with the consumer's acquire load of head: the slot write
	 * above (and everything the item points to) is visible before head. */
	atomic_store_explicit(&r->head, head + 1, memory_order_release);
	return true;
}

uint32_t ring_push_many(ring_t *r, void *const *items, uint32_t n)
{
	uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed); /* ours */
	uint32_t capacity = r->mask + 1;
	if (capacity - (head - r->tail_cached) < n)
		/* Acquire: as in ring_push, for every slot about to be overwritten. */
		r->tail_cached = atomic_load_explicit(&r->tail, memory_order_acquire);
	uint32_t room = capacity - (head - r->tail_cached);
	if (n > room)
		n = room;
	for (uint32_t i = 0; i < n; i++) {
		assert(items[i] != NULL);
		r->slots[(head + i) & r->mask] = items[i];
	}
	if (n > 0)
		/* Release: as in ring_push, for all n slots at once. */
		atomic_store_explicit(&r->head, head + n, memory_order_release);
	return n;
}

uint32_t ring_free_slots(ring_t *r)
{
	uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed); /* ours */
	/* Acquire pairs with the consumer's release of tail, as in ring_push. */
	r->tail_cached = atomic_load_explicit(&r->tail, memory_order_acquire);
	assert(head - r->tail_cached <= r->mask + 1);
	return r->mask + 1 - (head - r->tail_cached);
}

/* ---- consumer --------------------------------------------------------- */

/* Slots readable now; refreshes head_cached when the cached view has fewer
 * than want. */
static uint32_t readable(ring_t *r, uint32_t tail, uint32_t want)
{
	uint32_t avail = r->head_cached - tail;
	if (avail < want) {
		/* Acquire pairs with the producer's release store of head: the slot
		 * contents written before it are visible to our reads. */
		r->head_cached = atomic_load_explicit(&r->head, memory_order_acquire);
		avail = r->head_cached - tail;
	}
	assert(avail <= r->mask + 1);
	return avail;
}

void *ring_pop(ring_t *r)
{
	/* Relaxed: only this thread writes tail. */
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	if (readable(r, tail, 1) == 0)
		return NULL;
	void *item = r->slots[tail & r->mask];
	assert(item != NULL);
	/* Release pairs with the producer's acquire load of tail: our read of the
	 * slot completes before the producer may reuse it. */
	atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
	return item;
}

uint32_t ring_pop_many(ring_t *r, void **out, uint32_t max)
{
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed); /* ours */
	uint32_t n = readable(r, tail, max);
	if (n > max)
		n = max;
	for (uint32_t i = 0; i < n; i++) {
		out[i] = r->slots[(tail + i) & r->mask];
		assert(out[i] != NULL);
	}
	if (n > 0)
		/* Release: as in ring_pop, for all n slots at once. */
		atomic_store_explicit(&r->tail, tail + n, memory_order_release);
	return n;
}

uint32_t ring_count(ring_t *r)
{
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed); /* ours */
	return readable(r, tail, r->mask + 1);
}

/* ---- doorbell --------------------------------------------------------- */

/* The pairing that prevents a lost wake-up is a store-load pattern (Dekker):
 *   ringer:  seq += 1;        then load sleepers
 *   sleeper: sleepers += 1;   then load seq
 * Release/acquire cannot forbid both loads seeing the old values, so all
 * four operations are seq_cst: in their single total order, either the
 * sleeper's increment comes first (the ringer sees a sleeper and wakes it;
 * the kernel's own check of seq == seen makes a wake that lands before the
 * sleep a no-op return), or the ringer's increment does (the sleeper sees
 * seq != seen and does not sleep). */

void doorbell_init(doorbell_t *d)
{
	atomic_store_explicit(&d->seq, 0, memory_order_relaxed); /* not yet shared */
	atomic_store_explicit(&d->sleepers, 0, memory_order_relaxed);
}

uint32_t doorbell_seq(doorbell_t *d)
{
	/* Acquire pairs with the ringer's increment (seq_cst, so also a release):
	 * seeing a new seq means the work published before it is visible to the
	 * check the caller makes next. */
	return atomic_load_explicit(&d->seq, memory_order_acquire);
}

static long futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

int doorbell_wait_timed(doorbell_t *d, uint32_t seen, int timeout_ms)
{
	struct timespec ts;
	const struct timespec *tsp = NULL; /* negative timeout: until rung */
	int rc = 0;
	if (timeout_ms >= 0) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
		tsp = &ts;
	}
	/* seq_cst: see the pairing comment above. */
	atomic_fetch_add_explicit(&d->sleepers, 1, memory_order_seq_cst);
	/* The futex returns on a wake, on timeout, at once with EAGAIN if seq
	 * moved since the load, or on a signal. A wake can also be late: a
	 * ringer that saw an earlier sleeper may call FUTEX_WAKE after that
	 * sleeper left and this one arrived. All are returns to a caller who
	 * re-checks for work; only the timeout is reported. */
	if (atomic_load_explicit(&d->seq, memory_order_seq_cst) == seen &&
	    futex(&d->seq, FUTEX_WAIT_PRIVATE, seen, tsp) != 0 && errno == ETIMEDOUT)
		rc = -ETIMEDOUT;
	/* Relaxed: a stale count only costs a ringer one spare wake call. */
	atomic_fetch_sub_explicit(&d->sleepers, 1, memory_order_relaxed);
	return rc;
}

void doorbell_wait(doorbell_t *d, uint32_t seen, int timeout_ms)
{
	(void)doorbell_wait_timed(d, seen, timeout_ms);
}

void doorbell_ring(doorbell_t *d)
{
	/* seq_cst (which includes release for the work published before): see
	 * the pairing comment above. */
	atomic_fetch_add_explicit(&d->seq, 1, memory_order_seq_cst);
	if (atomic_load_explicit(&d->sleepers, memory_order_seq_cst) > 0)
		(void)futex(&d->seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}
