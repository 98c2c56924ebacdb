/* test_format.c: unit tests for server/format (money, ISO 8601, PostgreSQL timestamps). */
#include "buf.h"
#include "format.h"
#include "test.h"

/* CHECK_FORMATTED(format, value, want): format(&buf, value) on an empty buffer appends exactly
 * want. */
#define CHECK_FORMATTED(format, value, want)                                                       \
    do {                                                                                           \
        buf_t out_ = {0};                                                                          \
        format(&out_, (value));                                                                    \
        CHECK_MEM(out_.data, out_.len, (want));                                                    \
        buf_free(&out_);                                                                           \
    } while (0)
#define CHECK_MONEY(cents, want) CHECK_FORMATTED(format_money_cents, (cents), (want))
#define CHECK_ISO(ms, want) CHECK_FORMATTED(format_iso8601_ms, (ms), (want))

/* want NULL: the text must be rejected and nothing appended. */
static void check_pg(const char *text, const char *want, int line)
{
    buf_t out = {0};
    buf_append_cstr(&out, ">");
    int rc = format_pg_timestamp(&out, text, strlen(text));
    if (want) {
        if (rc != 0) fprintf(stderr, "line %d: \"%s\" rejected\n", line, text);
        CHECK_INT(rc, 0);
        CHECK_MEM(out.data + 1, out.len - 1, want);
    } else {
        if (rc != -1) fprintf(stderr, "line %d: \"%s\" accepted\n", line, text);
        CHECK_INT(rc, -1);
        CHECK_INT(out.len, 1);
    }
    buf_free(&out);
}
#define CHECK_PG(text, want) check_pg((text), (want), __LINE__)

int main(void)
{
    CHECK_MONEY(0, "$0.00");
    CHECK_MONEY(1, "$0.01");
    CHECK_MONEY(10, "$0.10");
    CHECK_MONEY(99, "$0.99");
    CHECK_MONEY(100, "$1.00");
    CHECK_MONEY(507, "$5.07");
    CHECK_MONEY(123456, "$1234.56");
    CHECK_MONEY(5072654592LL, "$50726545.92");
    CHECK_MONEY(-5, "-$0.05");
    CHECK_MONEY(-100, "-$1.00");
    CHECK_MONEY(-123456, "-$1234.56");
    CHECK_MONEY(INT64_MAX, "$92233720368547758.07");
    CHECK_MONEY(INT64_MIN, "-$92233720368547758.08");

    CHECK_ISO(0, "1970-01-01T00:00:00.000Z");
    CHECK_ISO(1795901899711LL, "2026-11-28T21:38:19.711Z");
    CHECK_ISO(951782400000LL, "2000-02-29T00:00:00.000Z");  /* leap day of a 400-year */
    CHECK_ISO(4107542399999LL, "2100-02-28T23:59:59.999Z"); /* 2100 is not leap */
    CHECK_ISO(4107542400000LL, "2100-03-01T00:00:00.000Z");
    CHECK_ISO(-1, "1969-12-31T23:59:59.999Z");
    CHECK_ISO(-86400000LL, "1969-12-31T00:00:00.000Z");
    CHECK_ISO(253402300799999LL, "9999-12-31T23:59:59.999Z");
    CHECK_ISO(-62167219200000LL, "0000-01-01T00:00:00.000Z");
    CHECK_ISO(253402300800000LL, "10000-01-01T00:00:00.000Z");
    CHECK_ISO(-62167219200001LL, "-0001-12-31T23:59:59.999Z");
    {
        buf_t extreme = {0};
        format_iso8601_ms(&extreme, INT64_MIN);
        CHECK(extreme.len > 24 && extreme.data[0] == '-' && extreme.data[extreme.len - 1] == 'Z');
        buf_reset(&extreme);
        format_iso8601_ms(&extreme, INT64_MAX);
        CHECK(extreme.len > 24 && extreme.data[extreme.len - 1] == 'Z');
        buf_free(&extreme);
        char text[FORMAT_ISO8601_MAX];
        CHECK_INT(format_iso8601_text(text, 1795901899711LL), 24);
        CHECK_STR(text, "2026-11-28T21:38:19.711Z");
        size_t n = format_iso8601_text(text, INT64_MIN);
        CHECK(n < FORMAT_ISO8601_MAX && strlen(text) == n && text[n - 1] == 'Z');
        n = format_iso8601_text(text, INT64_MAX);
        CHECK(n < FORMAT_ISO8601_MAX && strlen(text) == n && text[n - 1] == 'Z');
    }

    /* 0..6 fraction digits */
    CHECK_PG("2026-11-28 21:38:02", "2026-11-28T21:38:02.000Z");
    CHECK_PG("2026-11-28 21:38:02.3", "2026-11-28T21:38:02.300Z");
    CHECK_PG("2026-11-28 21:38:02.35", "2026-11-28T21:38:02.350Z");
    CHECK_PG("2026-11-28 21:38:02.359", "2026-11-28T21:38:02.359Z");
    CHECK_PG("2026-11-28 21:38:02.3591", "2026-11-28T21:38:02.359Z");
    CHECK_PG("2026-11-28 21:38:02.35912", "2026-11-28T21:38:02.359Z");
    CHECK_PG("2026-11-28 21:38:02.359123", "2026-11-28T21:38:02.359Z");
    CHECK_PG("2026-11-28 21:38:02.999999", "2026-11-28T21:38:02.999Z"); /* truncates */
    CHECK_PG("2024-02-29 00:00:00.05", "2024-02-29T00:00:00.050Z");
    CHECK_PG("0001-01-01 00:00:00", "0001-01-01T00:00:00.000Z");
    /* garbage */
    CHECK_PG("", NULL);
    CHECK_PG("2026-11-28", NULL);
    CHECK_PG("2026-11-28 21:38:02.", NULL);
    CHECK_PG("2026-11-28 21:38:02.1234567", NULL);
    CHECK_PG("2026-11-28T21:38:02", NULL);
    CHECK_PG("2026-11-28 21:38:02Z", NULL);
    CHECK_PG("2026-11-28 21:38:02+00", NULL);
    CHECK_PG("2026-11-28 21:38:0x", NULL);
    CHECK_PG("2026-11-28 21:38:02.12a", NULL);
    CHECK_PG("2026/11/28 21:38:02", NULL);
    CHECK_PG("26-11-28 21:38:02.000", NULL);
    CHECK_PG("12026-11-28 21:38:02", NULL);
    CHECK_PG("2026-11-28 21:38:02 BC", NULL);
    CHECK_PG("infinity", NULL);
    CHECK_PG("2026-13-28 21:38:02", NULL);
    CHECK_PG("2026-00-28 21:38:02", NULL);
    CHECK_PG("2026-11-31 21:38:02", NULL);
    CHECK_PG("2026-02-29 21:38:02", NULL);
    CHECK_PG("2026-11-28 24:00:00", NULL);
    CHECK_PG("2026-11-28 21:60:00", NULL);
    CHECK_PG("2026-11-28 21:38:60", NULL);
    return test_report("format");
}
