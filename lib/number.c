/* number.c: strict decimal parsing without strtol's whitespace, sign and locale leniency;
 * decimal formatting. */
#include "number.h"

int number_parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned digit = (unsigned)(unsigned char)s[i] - '0';
        if (digit > 9) return -1;
        if (v > (UINT64_MAX - digit) / 10) return -1;
        v = v * 10 + digit;
    }
    *out = v;
    return 0;
}

int number_parse_i32(const char *s, size_t len, int32_t *out)
{
    if (len == 0) return -1;
    int negative = s[0] == '-';
    uint64_t magnitude;
    if (number_parse_u64(s + negative, len - (size_t)negative, &magnitude)) return -1;
    if (negative) {
        if (magnitude > (uint64_t)INT32_MAX + 1) return -1;
        *out = (int32_t)(-(int64_t)magnitude);
    } else {
        if (magnitude > INT32_MAX) return -1;
        *out = (int32_t)magnitude;
    }
    return 0;
}

size_t number_format_u64(uint64_t v, char *out)
{
    char tmp[NUMBER_U64_DIGITS_MAX];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}
