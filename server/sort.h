/* sort.h: ordering rows by a 64-bit key in the server instead of in PostgreSQL (the category
 * listing by price, then id). */
#ifndef CATALOG_SORT_H
#define CATALOG_SORT_H

#include <stddef.h>
#include <stdint.h>

/* A row to order: its key and where it is. */
typedef struct sort_item {
    uint64_t key;
    uint32_t row;
} sort_item_t;

/* The key for (a, b), ordered by a then by b, both signed: compared as unsigned 64-bit
 * integers, keys order exactly as the pairs do. */
static inline uint64_t sort_key_i32_pair(int32_t a, int32_t b)
{
    return (uint64_t)((uint32_t)a ^ 0x80000000u) << 32 | ((uint32_t)b ^ 0x80000000u);
}

/* Sorts items[0..n) by key, ascending; items with equal keys keep their order (stable).  An
 * LSD radix sort, one pass per key byte in which the keys differ, so O(n) for any key.  tmp has
 * room for n items; the result is in items.  Can't fail. */
void sort_items(sort_item_t *items, sort_item_t *tmp, size_t n);

#endif
