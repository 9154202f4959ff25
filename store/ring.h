/* store/ring.h: lock-free single-producer/single-consumer ring of pointers,
 * and the doorbell a consumer sleeps on.
 *
 * The loop thread produces row batches into one ring, the writer thread
 * consumes them; a second ring carries job descriptors the other way. Each
 * ring has exactly one producer thread and one consumer thread. Indices are
 * free-running 32-bit counters on separate cache lines; each side keeps a
 * cached copy of the other side's index so the busy path touches no shared
 * line it does not own (see ring.c for the barrier pairing).
 *
 * Ownership: a pointer pushed into a ring belongs to the consumer from the
 * moment ring_push returns true. */
#ifndef RF_RING_H
#define RF_RING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RING_CACHELINE 64

typedef struct {
	alignas(RING_CACHELINE) _Atomic uint32_t head; /* written by the producer */
	uint32_t tail_cached;                          /* producer's copy of tail */
	alignas(RING_CACHELINE) _Atomic uint32_t tail; /* written by the consumer */
	uint32_t head_cached;                          /* consumer's copy of head */
	alignas(RING_CACHELINE) uint32_t mask;         /* capacity - 1 */
	void **slots;                                  /* owned by the ring */
} ring_t;

/* capacity: a power of two >= 2. 0 or -ENOMEM/-EINVAL. */
int ring_init(ring_t *r, uint32_t capacity);
void ring_destroy(ring_t *r);

/* Producer side. */
bool ring_push(ring_t *r, void *item); /* false when full */
/* As many of items[0..n) as fit, in order, published with one release store
 * (batched publication); returns how many were pushed (0 when full). */
uint32_t ring_push_many(ring_t *r, void *const *items, uint32_t n);
uint32_t ring_free_slots(ring_t *r);   /* lower bound, producer only */

/* Consumer side. */
void *ring_pop(ring_t *r); /* NULL when empty (NULL is never pushed) */
uint32_t ring_pop_many(ring_t *r, void **out, uint32_t max);
uint32_t ring_count(ring_t *r); /* lower bound, consumer only */

/* A doorbell: a thread that found nothing to do sleeps on it (futex), the
 * other side rings it after publishing work. No lost wake-ups: the sleeper
 * reads the sequence number *before* its last check for work and sleeps only
 * if the number is unchanged; ringing bumps the number and wakes only when a
 * sleeper announced itself, so the busy path makes no system call. */
typedef struct {
	alignas(RING_CACHELINE) _Atomic uint32_t seq;
	_Atomic uint32_t sleepers;
} doorbell_t;

void doorbell_init(doorbell_t *d);
uint32_t doorbell_seq(doorbell_t *d);                    /* read before checking for work */
void doorbell_wait(doorbell_t *d, uint32_t seen, int timeout_ms); /* returns on ring or timeout */
/* doorbell_wait that says why it returned: -ETIMEDOUT when timeout_ms passed
 * unrung, else 0 (rung, seq already moved, or a harmless early return such
 * as a late wake meant for an earlier wait). timeout_ms < 0: no timeout. */
int doorbell_wait_timed(doorbell_t *d, uint32_t seen, int timeout_ms);
void doorbell_ring(doorbell_t *d);

#endif
