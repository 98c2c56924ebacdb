/* per_second.c: a run second by second: answers, failures and a coarse latency histogram each. */
#include "per_second.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

uint32_t per_second_bucket_index(uint64_t us)
{
    if (us < PER_SECOND_SUB) return (uint32_t)us;
    unsigned msb = 63u - (unsigned)__builtin_clzll(us);
    if (msb >= PER_SECOND_MAX_BITS) return PER_SECOND_BUCKETS - 1;
    unsigned shift = msb - PER_SECOND_SUB_BITS;
    uint32_t sub = (uint32_t)(us >> shift) & (PER_SECOND_SUB - 1);
    return PER_SECOND_SUB + shift * PER_SECOND_SUB + sub;
}

uint64_t per_second_bucket_low(uint32_t index)
{
    if (index < PER_SECOND_SUB) return index;
    unsigned shift = (index - PER_SECOND_SUB) / PER_SECOND_SUB;
    uint64_t sub = (index - PER_SECOND_SUB) % PER_SECOND_SUB;
    return (PER_SECOND_SUB + sub) << shift;
}

uint64_t per_second_bucket_width(uint32_t index)
{
    if (index < PER_SECOND_SUB) return 1;
    return (uint64_t)1 << ((index - PER_SECOND_SUB) / PER_SECOND_SUB);
}

/* The slot of second k, the series grown (zeroed) to reach it. */
static per_second_slot_t *slot_at(per_second_t *s, uint64_t offset_ns)
{
    size_t k = (size_t)(offset_ns / 1000000000u);
    if (k >= s->cap) {
        size_t cap = s->cap ? s->cap : 64;
        while (cap <= k)
            cap *= 2;
        s->slots = xrealloc(s->slots, cap * sizeof(*s->slots));
        memset(s->slots + s->cap, 0, (cap - s->cap) * sizeof(*s->slots));
        s->cap = cap;
    }
    if (k >= s->count) s->count = k + 1;
    return &s->slots[k];
}

void per_second_response(per_second_t *s, uint64_t offset_ns, uint64_t latency_ns, int failed)
{
    per_second_slot_t *slot = slot_at(s, offset_ns);
    slot->requests++;
    if (failed) slot->failures++;
    uint32_t *bucket = &slot->latency[per_second_bucket_index(latency_ns / 1000u)];
    if (*bucket < UINT32_MAX) (*bucket)++;
}

void per_second_failure(per_second_t *s, uint64_t offset_ns)
{
    slot_at(s, offset_ns)->failures++;
}

void per_second_merge(per_second_t *into, const per_second_t *from)
{
    if (from->count == 0) return;
    slot_at(into, (uint64_t)(from->count - 1) * 1000000000u);
    for (size_t k = 0; k < from->count; k++) {
        per_second_slot_t *a = &into->slots[k];
        const per_second_slot_t *b = &from->slots[k];
        a->requests += b->requests;
        a->failures += b->failures;
        for (uint32_t i = 0; i < PER_SECOND_BUCKETS; i++) {
            uint64_t sum = (uint64_t)a->latency[i] + b->latency[i];
            a->latency[i] = sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
        }
    }
}

double per_second_percentile_ms(const per_second_slot_t *slot, double percentile)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < PER_SECOND_BUCKETS; i++)
        total += slot->latency[i];
    if (total == 0) return 0;
    if (percentile < 0) percentile = 0;
    if (percentile > 100) percentile = 100;
    /* The smallest bucket holding at least percentile% of the values (rank 1 at least). */
    uint64_t rank = (uint64_t)(percentile / 100.0 * (double)total + 0.999999);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < PER_SECOND_BUCKETS; i++) {
        seen += slot->latency[i];
        if (seen >= rank) {
            double width = (double)per_second_bucket_width(i);
            double mid = (double)per_second_bucket_low(i) + (width > 1 ? width / 2 : 0);
            return mid / 1000.0;
        }
    }
    return 0;
}

size_t per_second_summarise(const per_second_t *s, size_t seconds, loadtest_second_t **out)
{
    size_t count = s->count > seconds ? s->count : seconds;
    *out = count ? xcalloc(count, sizeof(**out)) : NULL;
    for (size_t k = 0; k < s->count; k++) {
        const per_second_slot_t *slot = &s->slots[k];
        (*out)[k].requests = slot->requests;
        (*out)[k].failures = slot->failures;
        (*out)[k].p50_ms = per_second_percentile_ms(slot, 50);
        (*out)[k].p99_ms = per_second_percentile_ms(slot, 99);
    }
    return count;
}

void per_second_free(per_second_t *s)
{
    if (!s) return;
    free(s->slots);
    memset(s, 0, sizeof(*s));
}
