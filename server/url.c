/* url.c: percent-decoding and query-string lookup of the request target. */
#include "url.h"

/* Value of an ASCII hex digit, or -1. */
static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long url_decode(const char *in, size_t len, char *out, int plus_is_space)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            if (len - i < 3) return -1;
            int high = hex_value((unsigned char)in[i + 1]);
            int low = hex_value((unsigned char)in[i + 2]);
            if (high < 0 || low < 0) return -1;
            out[n++] = (char)(high << 4 | low);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out[n++] = ' ';
        } else {
            out[n++] = c;
        }
    }
    return (long)n;
}

/* Resets value and decodes text into it; returns 0 or -1 on invalid encoding. */
static int decode_into(buf_t *value, const char *text, size_t len)
{
    buf_reset(value);
    if (len == 0) return 0;
    long n = url_decode(text, len, buf_reserve(value, len), 1);
    if (n < 0) return -1;
    value->len = (size_t)n;
    return 0;
}

int url_query_get(slice_t query, const char *name, buf_t *value)
{
    size_t name_len = strlen(name);
    const char *p = query.base, *end = query.base + query.len;
    buf_reset(value);
    while (query.len && p <= end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp ? amp : end;
        if (pair_end > p) {
            const char *eq = memchr(p, '=', (size_t)(pair_end - p));
            const char *key_end = eq ? eq : pair_end;
            if (decode_into(value, p, (size_t)(key_end - p))) goto invalid;
            /* An empty key leaves value->data NULL, which memcmp must not get (C11 7.24.1). */
            if (value->len == name_len &&
                (name_len == 0 || memcmp(value->data, name, name_len) == 0)) {
                const char *value_start = eq ? eq + 1 : pair_end;
                if (decode_into(value, value_start, (size_t)(pair_end - value_start))) goto invalid;
                return 1;
            }
        }
        if (!amp) break;
        p = amp + 1;
    }
    buf_reset(value);
    return 0;
invalid:
    buf_reset(value);
    return -1;
}
