/* buf.c: growable byte buffers. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "alloc.h"
#include "number.h"

void buf_init(buf_t *b, size_t initial_cap)
{
    b->data = NULL;
    b->len = b->cap = 0;
    if (initial_cap) buf_reserve(b, initial_cap);
}

void buf_free(buf_t *b)
{
    if (!b) return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *buf_grow(buf_t *b, size_t extra)
{
    if (b->cap - b->len < extra) {
        size_t need = b->len + extra, cap = b->cap ? b->cap : 256;
        while (cap < need)
            cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    return b->data + b->len;
}

void buf_append(buf_t *b, const void *data, size_t len)
{
    if (!len) return;
    memcpy(buf_reserve(b, len), data, len);
    b->len += len;
}

void buf_append_slice(buf_t *b, slice_t s)
{
    buf_append(b, s.base, s.len);
}

void buf_append_cstr(buf_t *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_append_u64(buf_t *b, uint64_t v)
{
    b->len += number_format_u64(v, buf_reserve(b, NUMBER_U64_DIGITS_MAX));
}

void buf_append_i64(buf_t *b, int64_t v)
{
    if (v < 0) {
        buf_append_char(b, '-');
        buf_append_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        buf_append_u64(b, (uint64_t)v);
    }
}

void buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0) return;
    char *p = buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void buf_consume(buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}
