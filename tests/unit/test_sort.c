/* test_sort.c: unit tests for server/sort (the radix sort that orders a category listing by
 * price, then id): against qsort on random, tied, extreme and already ordered keys. */
#include <stdlib.h>

#include "sort.h"
#include "test.h"

typedef struct pair {
    int32_t a, b;
    uint32_t row;
} pair_t;

/* The reference order: by a, then b, then the original position (stability). */
static int compare_pairs(const void *x, const void *y)
{
    const pair_t *p = x, *q = y;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    if (p->b != q->b) return p->b < q->b ? -1 : 1;
    return p->row < q->row ? -1 : p->row > q->row;
}

static uint32_t seed = 12345;
static uint32_t next_random(void)
{
    seed = seed * 1103515245u + 12345u;
    return seed >> 1;
}

/* Sorts n pairs made by make() both ways; returns 1 when the orders agree. */
static int agrees(size_t n, void (*make)(pair_t *, size_t))
{
    pair_t *pairs = malloc((n ? n : 1) * sizeof *pairs);
    sort_item_t *items = malloc((n ? n : 1) * sizeof *items);
    sort_item_t *tmp = malloc((n ? n : 1) * sizeof *tmp);
    make(pairs, n);
    for (size_t i = 0; i < n; i++) {
        pairs[i].row = (uint32_t)i;
        items[i].key = sort_key_i32_pair(pairs[i].a, pairs[i].b);
        items[i].row = (uint32_t)i;
    }
    sort_items(items, tmp, n);
    qsort(pairs, n, sizeof *pairs, compare_pairs);
    int same = 1;
    for (size_t i = 0; i < n; i++)
        same &= items[i].row == pairs[i].row;
    free(pairs);
    free(items);
    free(tmp);
    return same;
}

/* Prices and ids as a listing has them: prices in cents, ids unique, in no order. */
static void make_listing(pair_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i].a = (int32_t)(next_random() % 100000);
        p[i].b = (int32_t)(n - i);
    }
}

/* Many equal prices (ties broken by id), some ids equal too (then by position). */
static void make_ties(pair_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i].a = (int32_t)(next_random() % 4);
        p[i].b = (int32_t)(next_random() % 8);
    }
}

/* Every bit pattern: negatives, INT32_MIN and INT32_MAX. */
static void make_any(pair_t *p, size_t n)
{
    static const int32_t edge[] = {INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX - 1, INT32_MAX};
    for (size_t i = 0; i < n; i++) {
        p[i].a =
            i % 3 ? (int32_t)next_random() * (next_random() % 2 ? -1 : 1) : edge[next_random() % 7];
        p[i].b = i % 5 ? (int32_t)next_random() - (int32_t)next_random() : edge[next_random() % 7];
    }
}

static void make_ordered(pair_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i].a = (int32_t)(i / 3);
        p[i].b = (int32_t)i;
    }
}

static void make_reversed(pair_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i].a = (int32_t)(n - i);
        p[i].b = 0;
    }
}

static void make_equal(pair_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i].a = p[i].b = 7;
}

int main(void)
{
    /* The key orders as the pair does, across the sign boundary. */
    CHECK(sort_key_i32_pair(-1, 0) < sort_key_i32_pair(0, 0));
    CHECK(sort_key_i32_pair(INT32_MIN, INT32_MAX) < sort_key_i32_pair(INT32_MIN + 1, INT32_MIN));
    CHECK(sort_key_i32_pair(5, -3) < sort_key_i32_pair(5, 2));
    CHECK(sort_key_i32_pair(INT32_MAX, INT32_MAX) == UINT64_MAX);
    CHECK(sort_key_i32_pair(INT32_MIN, INT32_MIN) == 0);

    static const size_t sizes[] = {0, 1, 2, 3, 17, 256, 1000, 1025, 100000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        CHECK(agrees(n, make_listing));
        CHECK(agrees(n, make_ties));
        CHECK(agrees(n, make_any));
        CHECK(agrees(n, make_ordered));
        CHECK(agrees(n, make_reversed));
        CHECK(agrees(n, make_equal));
    }
    return test_report("test_sort");
}
