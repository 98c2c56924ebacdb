/* histogram.h: log-linear latency histogram (HdrHistogram-style), one flat array, mergeable. */
#ifndef CATALOG_HISTOGRAM_H
#define CATALOG_HISTOGRAM_H

#include <stdint.h>

/* Values are unitless integers; the load test records nanoseconds.  Every power of two from
 * 128 up is split into 128 linear sub-buckets, so a bucket is never wider than 1/128 of the
 * values it holds: queries answer with the bucket's midpoint, within 0.4% of any recorded value
 * (exact below 256).  Values up to 2^40 - 1 (about 18 minutes in ns) are kept; larger ones are
 * clamped into the top bucket but still counted, and max_value keeps the true maximum. */
#define HISTOGRAM_SUB_BUCKET_BITS 7
#define HISTOGRAM_SUB_BUCKETS (1u << HISTOGRAM_SUB_BUCKET_BITS)
#define HISTOGRAM_MAX_BITS 40
#define HISTOGRAM_BUCKETS                                                                          \
    ((HISTOGRAM_MAX_BITS - HISTOGRAM_SUB_BUCKET_BITS + 1) * HISTOGRAM_SUB_BUCKETS)

typedef struct histogram {
    uint64_t total_count;               /* values recorded */
    uint64_t min_value;                 /* smallest value recorded (UINT64_MAX when empty) */
    uint64_t max_value;                 /* largest value recorded, exact (0 when empty) */
    uint64_t sum;                       /* sum of values, for the mean (wraps after 2^64) */
    uint64_t counts[HISTOGRAM_BUCKETS]; /* one counter per bucket, see above */
} histogram_t;

/* Allocates an empty histogram (about 35 KB).  Aborts on out of memory; free with
 * histogram_free. */
histogram_t *histogram_new(void);
/* Frees h; accepts NULL. */
void histogram_free(histogram_t *h);
/* Empties h (or initialises caller-owned storage).  Can't fail. */
void histogram_reset(histogram_t *h);

/* Records one value.  Can't fail; constant time. */
void histogram_record(histogram_t *h, uint64_t value);
/* Records count occurrences of value.  Can't fail. */
void histogram_record_n(histogram_t *h, uint64_t value, uint64_t count);
/* Adds every count of from into into (totals of per-thread histograms).  Can't fail. */
void histogram_merge(histogram_t *into, const histogram_t *from);

/* The value at percentile (0..100; clamped): the smallest recorded value v such that at least
 * percentile% of the values are <= v, reported as its bucket's midpoint and clamped to
 * [min, max] recorded.  Percentile 0 is the exact minimum, 100 the exact maximum.  Returns 0 when
 * empty. */
uint64_t histogram_percentile(const histogram_t *h, double percentile);
/* Mean of the recorded values (exact, from the running sum); 0 when empty. */
double histogram_mean(const histogram_t *h);

/* Bucket index of value and the value range [low, low + width) of a bucket: exposed for tests. */
uint32_t histogram_bucket_index(uint64_t value);
uint64_t histogram_bucket_low(uint32_t index);
uint64_t histogram_bucket_width(uint32_t index);

#endif
