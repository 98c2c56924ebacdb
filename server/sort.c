/* sort.c: a stable LSD radix sort of 64-bit keys. */
#include "sort.h"

#include <string.h>

void sort_items(sort_item_t *items, sort_item_t *tmp, size_t n)
{
    if (n < 2) return;
    /* Every byte's histogram in one read of the keys. */
    size_t count[8][256];
    memset(count, 0, sizeof count);
    for (size_t i = 0; i < n; i++) {
        uint64_t k = items[i].key;
        for (int b = 0; b < 8; b++)
            count[b][(k >> (8 * b)) & 0xff]++;
    }
    sort_item_t *from = items, *to = tmp;
    for (int b = 0; b < 8; b++) {
        /* A byte all keys share orders nothing: skip its pass. */
        if (count[b][(from[0].key >> (8 * b)) & 0xff] == n) continue;
        size_t at[256], sum = 0;
        for (int v = 0; v < 256; v++) {
            at[v] = sum;
            sum += count[b][v];
        }
        for (size_t i = 0; i < n; i++)
            to[at[(from[i].key >> (8 * b)) & 0xff]++] = from[i];
        sort_item_t *swap = from;
        from = to;
        to = swap;
    }
    if (from != items) memcpy(items, from, n * sizeof *items);
}
