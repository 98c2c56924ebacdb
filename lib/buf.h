/* buf.h: growable byte buffers, the currency of every module (with slice_t, slice.h). */
#ifndef CATALOG_BUF_H
#define CATALOG_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "slice.h"

/* A growable buffer.  Zero-initialise ({0}) or buf_init; release with buf_free.
 * Allocation failure aborts the process (lib/alloc.h). */
typedef struct buf {
    char *data; /* heap bytes, or NULL before the first append */
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated */
} buf_t;

void buf_init(buf_t *b, size_t initial_cap);
/* Frees the bytes and leaves b empty and reusable.  Accepts NULL. */
void buf_free(buf_t *b);
/* buf_reserve's slow path: grows b (doubling) to hold at least extra more bytes; returns a
 * pointer to data + len. */
char *buf_grow(buf_t *b, size_t extra);
/* Makes room for at least extra more bytes; returns a pointer to data + len.  Inline: the
 * writers call it once per row or field. */
static inline char *buf_reserve(buf_t *b, size_t extra)
{
    if (b->cap - b->len < extra) return buf_grow(b, extra);
    return b->data + b->len;
}
void buf_append(buf_t *b, const void *data, size_t len);
void buf_append_slice(buf_t *b, slice_t s);
void buf_append_cstr(buf_t *b, const char *s);
static inline void buf_append_char(buf_t *b, char c)
{
    *buf_reserve(b, 1) = c;
    b->len++;
}
/* Decimal text of v, no padding. */
void buf_append_u64(buf_t *b, uint64_t v);
void buf_append_i64(buf_t *b, int64_t v);
/* printf-style append; for rare paths (messages, metrics labels), not per-row output. */
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Removes the first n bytes (n <= len), keeping the rest. */
void buf_consume(buf_t *b, size_t n);
static inline void buf_reset(buf_t *b)
{
    b->len = 0;
}

#endif
