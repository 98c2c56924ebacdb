/* json.c: JSON writing: string escaping with UTF-8 validation, error bodies. */
#include "json.h"

#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* 1 for bytes that can be copied verbatim: printable ASCII other than '"' and '\\'. */
static const unsigned char plain_ascii[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, /* 0x70 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x80 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x90 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xa0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xb0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xc0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xd0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xe0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xf0 */
};

/* Length of the valid UTF-8 sequence starting at p (a byte >= 0x80), or 0 when the bytes
 * there do not start one (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_sequence_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    if (c >= 0xc2 && c <= 0xdf) {
        return avail >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    }
    if (c >= 0xe0 && c <= 0xef) {
        if (avail < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) return 0;
        if (c == 0xe0 && p[1] < 0xa0) return 0; /* overlong */
        if (c == 0xed && p[1] > 0x9f) return 0; /* surrogates U+D800..DFFF */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (avail < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && p[1] < 0x90) return 0; /* overlong */
        if (c == 0xf4 && p[1] > 0x8f) return 0; /* above U+10FFFF */
        return 4;
    }
    return 0; /* continuation byte, 0xc0/0xc1, 0xf5..0xff */
}

/* Nonzero when any of the 8 bytes in x needs more than a verbatim copy: a control byte (< 0x20),
 * '"', '\\', DEL or a byte >= 0x80.  False positives only send a block to the careful path. */
static inline uint64_t needs_care(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t quote = x ^ (ones * '"'), backslash = x ^ (ones * '\\'), del = x ^ (ones * 0x7f);
    return ((x - ones * 0x20) | (quote - ones) | (backslash - ones) | (del - ones) | x) & highs;
}

#ifdef __SSE2__
/* 0xff for each of the 16 bytes that needs care.  A signed compare with 0x20 catches both
 * control bytes and bytes >= 0x80 (negative as signed). */
static inline __m128i care_bytes(__m128i x)
{
    return _mm_or_si128(
        _mm_or_si128(_mm_cmplt_epi8(x, _mm_set1_epi8(0x20)), _mm_cmpeq_epi8(x, _mm_set1_epi8('"'))),
        _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('\\')),
                     _mm_cmpeq_epi8(x, _mm_set1_epi8(0x7f))));
}

static inline int block_needs_care(__m128i x)
{
    return _mm_movemask_epi8(care_bytes(x));
}
#endif

/* Copies the leading bytes of p that need no care to dst; returns how many (len when all).
 * A string of 8 bytes or more is checked in whole blocks and its tail as one last block that
 * overlaps the one before, so a plain name or description takes no byte-by-byte steps; the
 * overlapping store writes the same bytes again and never past dst + len. */
static size_t copy_plain_prefix(char *dst, const unsigned char *p, size_t len)
{
    size_t i = 0;
#ifdef __SSE2__
    if (len >= 16) {
        for (; i + 32 <= len; i += 32) { /* two blocks, one test */
            __m128i x = _mm_loadu_si128((const __m128i *)(p + i));
            __m128i y = _mm_loadu_si128((const __m128i *)(p + i + 16));
            if (_mm_movemask_epi8(_mm_or_si128(care_bytes(x), care_bytes(y)))) break;
            _mm_storeu_si128((__m128i *)(dst + i), x);
            _mm_storeu_si128((__m128i *)(dst + i + 16), y);
        }
        for (; i + 16 <= len; i += 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(p + i));
            if (block_needs_care(x)) return i;
            _mm_storeu_si128((__m128i *)(dst + i), x);
        }
        if (i < len) {
            __m128i x = _mm_loadu_si128((const __m128i *)(p + len - 16));
            if (block_needs_care(x)) return i;
            _mm_storeu_si128((__m128i *)(dst + len - 16), x);
        }
        return len;
    }
#endif
    if (len >= 8) {
        uint64_t x;
        for (; i + 8 <= len; i += 8) {
            memcpy(&x, p + i, 8);
            if (needs_care(x)) return i;
            memcpy(dst + i, &x, 8);
        }
        if (i < len) {
            memcpy(&x, p + len - 8, 8);
            if (needs_care(x)) return i;
            memcpy(dst + len - 8, &x, 8);
        }
        return len;
    }
    for (; i < len && plain_ascii[p[i]]; i++)
        dst[i] = (char)p[i];
    return i;
}

char *json_escape_into(char *dst, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    *dst++ = '"';
    size_t i = copy_plain_prefix(dst, p, len);
    dst += i;
    while (i < len) {
#ifdef __SSE2__
        /* Fast path: sixteen plain bytes at a time (the product rows are plain ASCII). */
        while (len - i >= 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(p + i));
            if (block_needs_care(x)) break;
            _mm_storeu_si128((__m128i *)dst, x);
            dst += 16;
            i += 16;
        }
#endif
        /* Eight plain bytes at a time. */
        while (len - i >= 8) {
            uint64_t x;
            memcpy(&x, p + i, 8);
            if (needs_care(x)) break;
            memcpy(dst, &x, 8);
            dst += 8;
            i += 8;
        }
        if (i == len) break;
        unsigned char c = p[i];
        if (plain_ascii[c]) {
            *dst++ = (char)c;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = utf8_sequence_len(p + i, len - i);
            if (n) {
                memcpy(dst, p + i, n);
                dst += n;
                i += n;
            } else {
                memcpy(dst, "\\ufffd", 6);
                dst += 6;
                i++;
            }
            continue;
        }
        *dst++ = '\\';
        switch (c) {
        case '"':
            *dst++ = '"';
            break;
        case '\\':
            *dst++ = '\\';
            break;
        case '\n':
            *dst++ = 'n';
            break;
        case '\r':
            *dst++ = 'r';
            break;
        case '\t':
            *dst++ = 't';
            break;
        case '\b':
            *dst++ = 'b';
            break;
        case '\f':
            *dst++ = 'f';
            break;
        default:
            *dst++ = 'u';
            *dst++ = '0';
            *dst++ = '0';
            *dst++ = hex[c >> 4];
            *dst++ = hex[c & 0xf];
        }
        i++;
    }
    *dst++ = '"';
    return dst;
}

int json_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_sequence_len(p + i, len - i);
        if (!n) return 0;
        i += n;
    }
    return 1;
}

void json_write_string(buf_t *b, const char *s, size_t len)
{
    char *start = buf_reserve(b, JSON_ESCAPED_MAX(len));
    b->len += (size_t)(json_escape_into(start, s, len) - start);
}

void json_write_cstr(buf_t *b, const char *s)
{
    if (!s) {
        buf_append(b, "null", 4);
        return;
    }
    json_write_string(b, s, strlen(s));
}

void json_write_error(buf_t *b, const char *message)
{
    buf_append(b, "{\"error\":", 9);
    json_write_cstr(b, message ? message : "");
    buf_append_char(b, '}');
}
