/* histogram.c: log-linear latency histogram (HdrHistogram-style), one flat array, mergeable. */
#include "histogram.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

histogram_t *histogram_new(void)
{
    histogram_t *h = xmalloc(sizeof(*h));
    histogram_reset(h);
    return h;
}

void histogram_free(histogram_t *h)
{
    free(h);
}

void histogram_reset(histogram_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min_value = UINT64_MAX;
}

uint32_t histogram_bucket_index(uint64_t value)
{
    if (value < HISTOGRAM_SUB_BUCKETS) return (uint32_t)value;
    if (value >> HISTOGRAM_MAX_BITS) return HISTOGRAM_BUCKETS - 1;
    unsigned top_bit = 63u - (unsigned)__builtin_clzll(value); /* >= SUB_BUCKET_BITS */
    unsigned shift = top_bit - HISTOGRAM_SUB_BUCKET_BITS;
    /* Block b >= 1 holds [2^(b+6), 2^(b+7)) in 128 steps of 2^(b-1). */
    return (shift + 1) * HISTOGRAM_SUB_BUCKETS +
           (uint32_t)((value >> shift) - HISTOGRAM_SUB_BUCKETS);
}

uint64_t histogram_bucket_low(uint32_t index)
{
    if (index < HISTOGRAM_SUB_BUCKETS) return index;
    uint32_t block = index / HISTOGRAM_SUB_BUCKETS, sub = index % HISTOGRAM_SUB_BUCKETS;
    return (uint64_t)(HISTOGRAM_SUB_BUCKETS + sub) << (block - 1);
}

uint64_t histogram_bucket_width(uint32_t index)
{
    if (index < HISTOGRAM_SUB_BUCKETS) return 1;
    return (uint64_t)1 << (index / HISTOGRAM_SUB_BUCKETS - 1);
}

void histogram_record_n(histogram_t *h, uint64_t value, uint64_t count)
{
    if (count == 0) return;
    h->counts[histogram_bucket_index(value)] += count;
    h->total_count += count;
    h->sum += value * count;
    if (value < h->min_value) h->min_value = value;
    if (value > h->max_value) h->max_value = value;
}

void histogram_record(histogram_t *h, uint64_t value)
{
    histogram_record_n(h, value, 1);
}

void histogram_merge(histogram_t *into, const histogram_t *from)
{
    if (from->total_count == 0) return;
    for (uint32_t i = 0; i < HISTOGRAM_BUCKETS; i++)
        into->counts[i] += from->counts[i];
    into->total_count += from->total_count;
    into->sum += from->sum;
    if (from->min_value < into->min_value) into->min_value = from->min_value;
    if (from->max_value > into->max_value) into->max_value = from->max_value;
}

uint64_t histogram_percentile(const histogram_t *h, double percentile)
{
    if (h->total_count == 0) return 0;
    if (!(percentile > 0)) return h->min_value; /* also catches NaN */
    if (percentile >= 100) return h->max_value;
    /* Rank of the wanted value, 1-based: ceil(p/100 * n), at least 1. */
    double exact_rank = percentile / 100.0 * (double)h->total_count;
    uint64_t rank = (uint64_t)exact_rank;
    if ((double)rank < exact_rank) rank++;
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < HISTOGRAM_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t value = histogram_bucket_low(i) + histogram_bucket_width(i) / 2;
            if (value < h->min_value) value = h->min_value;
            if (value > h->max_value) value = h->max_value;
            return value;
        }
    }
    return h->max_value;
}

double histogram_mean(const histogram_t *h)
{
    return h->total_count ? (double)h->sum / (double)h->total_count : 0;
}
