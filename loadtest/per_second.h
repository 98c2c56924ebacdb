/* per_second.h: a run second by second: answers, failures and a coarse latency histogram each. */
#ifndef CATALOG_PER_SECOND_H
#define CATALOG_PER_SECOND_H

#include <stddef.h>
#include <stdint.h>

#include "loadtest_result.h"

/* Latencies are kept in microseconds, log-linear like histogram.h but coarse: every power of two
 * from 16 us up is split into 16 sub-buckets, so a bucket is at most 1/16 of its values wide and
 * a percentile (the bucket's midpoint) is within 3.2% of a recorded value (exact below 16 us).
 * Up to 2^36 us (19 hours) is kept; longer is clamped into the top bucket.  About 2 KB a second
 * per worker, so a soak of hours stays small. */
#define PER_SECOND_SUB_BITS 4
#define PER_SECOND_SUB (1u << PER_SECOND_SUB_BITS)
#define PER_SECOND_MAX_BITS 36
#define PER_SECOND_BUCKETS ((PER_SECOND_MAX_BITS - PER_SECOND_SUB_BITS + 1) * PER_SECOND_SUB)

typedef struct per_second_slot {
    uint64_t requests;                    /* responses received in this second, any status */
    uint64_t failures;                    /* errors, timeouts and 5xx answers in this second */
    uint32_t latency[PER_SECOND_BUCKETS]; /* the responses' latencies, see above */
} per_second_slot_t;

/* One worker's (or the merged) series.  Zero-initialise; per_second_free releases it. */
typedef struct per_second {
    per_second_slot_t *slots; /* slots[k]: the second [k, k + 1) s after the run's start */
    size_t count;             /* seconds with a slot (the last one that saw an event, + 1) */
    size_t cap;
} per_second_t;

/* A response at offset_ns after the run's start, latency_ns long; failed nonzero for a 5xx.
 * Can't fail (aborts on out of memory). */
void per_second_response(per_second_t *s, uint64_t offset_ns, uint64_t latency_ns, int failed);

/* A request that failed without a response (error, timeout) at offset_ns.  Can't fail. */
void per_second_failure(per_second_t *s, uint64_t offset_ns);

/* Adds every second of from into into.  Can't fail. */
void per_second_merge(per_second_t *into, const per_second_t *from);

/* The value at percentile (0..100) of one second's latencies, in milliseconds (the bucket's
 * midpoint); 0 when the second had no response. */
double per_second_percentile_ms(const per_second_slot_t *slot, double percentile);

/* The series as the result keeps it: *out gets at least seconds entries (a run of 30 s has 30
 * even when its last seconds saw nothing), each requests, failures, p50 and p99; returns the
 * count.  *out is owned by the caller (free); NULL when the count is 0. */
size_t per_second_summarise(const per_second_t *s, size_t seconds, loadtest_second_t **out);

/* Frees the slots and leaves s zeroed; accepts NULL. */
void per_second_free(per_second_t *s);

/* Bucket index of a latency in microseconds and the low end and width of a bucket (tests). */
uint32_t per_second_bucket_index(uint64_t us);
uint64_t per_second_bucket_low(uint32_t index);
uint64_t per_second_bucket_width(uint32_t index);

#endif
