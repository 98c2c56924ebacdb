/* format.c: money and time formatting, arithmetic only (no locale, no shared state). */
#include "format.h"

#include <stdio.h>

#include "number.h"

void format_money_cents(buf_t *b, int64_t cents)
{
    uint64_t magnitude = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    char text[32];
    size_t n = 0;
    if (cents < 0) text[n++] = '-';
    text[n++] = '$';
    n += number_format_u64(magnitude / 100, text + n);
    unsigned fraction = (unsigned)(magnitude % 100);
    text[n++] = '.';
    text[n++] = (char)('0' + fraction / 10);
    text[n++] = (char)('0' + fraction % 10);
    buf_append(b, text, n);
}

/* Floor division for a possibly negative numerator and a positive divisor. */
static int64_t floor_div(int64_t a, int64_t divisor)
{
    int64_t q = a / divisor;
    if ((a % divisor) != 0 && a < 0) q--;
    return q;
}

/* Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil inverse). */
static void civil_from_days(int64_t days, int64_t *year, unsigned *month, unsigned *day)
{
    days += 719468;
    int64_t era = floor_div(days, 146097);
    unsigned day_of_era = (unsigned)(days - era * 146097);
    unsigned year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    unsigned day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    unsigned shifted_month = (5 * day_of_year + 2) / 153;
    *day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    *month = shifted_month < 10 ? shifted_month + 3 : shifted_month - 9;
    *year = (int64_t)year_of_era + era * 400 + (*month <= 2);
}

/* Writes v as exactly width digits (v < 10^width). */
static void put_digits(char *out, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

size_t format_iso8601_text(char *out, int64_t unix_ms)
{
    int64_t days = floor_div(unix_ms, 86400000);
    int64_t remainder_ms = unix_ms % 86400000; /* not ms - days * 86400000: overflows at MIN */
    unsigned ms_of_day = (unsigned)(remainder_ms < 0 ? remainder_ms + 86400000 : remainder_ms);
    int64_t year;
    unsigned month, day;
    civil_from_days(days, &year, &month, &day);

    if (year >= 0 && year <= 9999) {
        put_digits(out, (unsigned)year, 4);
        out[4] = '-';
        put_digits(out + 5, month, 2);
        out[7] = '-';
        put_digits(out + 8, day, 2);
        out[10] = 'T';
        put_digits(out + 11, ms_of_day / 3600000, 2);
        out[13] = ':';
        put_digits(out + 14, ms_of_day / 60000 % 60, 2);
        out[16] = ':';
        put_digits(out + 17, ms_of_day / 1000 % 60, 2);
        out[19] = '.';
        put_digits(out + 20, ms_of_day % 1000, 3);
        out[23] = 'Z';
        out[24] = '\0';
        return 24;
    }
    /* Rare: far past or future; ISO 8601 expanded years. */
    int n = snprintf(out, FORMAT_ISO8601_MAX, "%s%04llu-%02u-%02uT%02u:%02u:%02u.%03uZ",
                     year < 0 ? "-" : "", (unsigned long long)(year < 0 ? -year : year), month, day,
                     ms_of_day / 3600000, ms_of_day / 60000 % 60, ms_of_day / 1000 % 60,
                     ms_of_day % 1000);
    return n < 0 ? 0 : (size_t)n;
}

void format_iso8601_ms(buf_t *b, int64_t unix_ms)
{
    char text[FORMAT_ISO8601_MAX];
    buf_append(b, text, format_iso8601_text(text, unix_ms));
}

/* Parses exactly width ASCII digits at p into *out; returns 0 or -1. */
static int parse_digits(const char *p, int width, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < width; i++) {
        unsigned d = (unsigned)(unsigned char)p[i] - '0';
        if (d > 9) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int is_leap_year(unsigned year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int format_pg_timestamp(buf_t *b, const char *text, size_t len)
{
    /* "YYYY-MM-DD HH:MM:SS" is 19 bytes; then optionally '.' and 1-6 digits. */
    if (len < 19 || len == 20 || len > 26) return -1;
    unsigned year, month, day, hour, minute, second, ms = 0;
    if (parse_digits(text, 4, &year) || text[4] != '-' || parse_digits(text + 5, 2, &month) ||
        text[7] != '-' || parse_digits(text + 8, 2, &day) || text[10] != ' ' ||
        parse_digits(text + 11, 2, &hour) || text[13] != ':' ||
        parse_digits(text + 14, 2, &minute) || text[16] != ':' ||
        parse_digits(text + 17, 2, &second))
        return -1;
    if (len > 19) {
        if (text[19] != '.') return -1;
        unsigned fraction;
        int digits = (int)(len - 20);
        if (parse_digits(text + 20, digits, &fraction)) return -1;
        /* Scale to exactly 3 digits: pad short fractions, truncate long ones. */
        for (int i = digits; i < 3; i++)
            fraction *= 10;
        for (int i = digits; i > 3; i--)
            fraction /= 10;
        ms = fraction;
    }
    static const unsigned char days_in_month[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return -1;
    unsigned max_day = days_in_month[month - 1] + (month == 2 && is_leap_year(year));
    if (day > max_day) return -1;

    char *out = buf_reserve(b, 24);
    memcpy(out, text, 10);
    out[10] = 'T';
    memcpy(out + 11, text + 11, 8);
    out[19] = '.';
    put_digits(out + 20, ms, 3);
    out[23] = 'Z';
    b->len += 24;
    return 0;
}
