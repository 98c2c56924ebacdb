/* slice.h: {base, len} views of bytes someone else owns. */
#ifndef CATALOG_SLICE_H
#define CATALOG_SLICE_H

#include <stddef.h>
#include <string.h>

/* A view of bytes owned by someone else; never NUL-terminated by contract. */
typedef struct slice {
    const char *base; /* first byte; may be NULL when len == 0 */
    size_t len;       /* number of bytes */
} slice_t;

#define SLICE_LIT(s) ((slice_t){(s), sizeof(s) - 1})

static inline slice_t slice_make(const char *base, size_t len)
{
    return (slice_t){base, len};
}

static inline slice_t slice_cstr(const char *s)
{
    return (slice_t){s, s ? strlen(s) : 0};
}

/* Nonzero when a equals the bytes of b exactly. */
static inline int slice_eq(slice_t a, slice_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}

/* Nonzero when a equals b ignoring ASCII case (for header names and tokens). */
int slice_eq_nocase(slice_t a, slice_t b);

#endif
