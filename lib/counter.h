/* counter.h: statistics counters with one writer thread and readers on any thread. */
#ifndef CATALOG_COUNTER_H
#define CATALOG_COUNTER_H

#include <stdint.h>

/* The owner thread is the only writer; a reader (/metrics, the load generator's progress line)
 * may be on another thread.  Relaxed atomic loads and stores keep that race-free without a
 * locked instruction on the hot path: a reader sees some recent value, never a torn one. */
static inline void counter_add(uint64_t *counter, uint64_t n)
{
    __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline uint64_t counter_get(const uint64_t *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

#endif
