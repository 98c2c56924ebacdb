/* test_number.c: unit tests for lib/number (strict decimal parsing). */
#include "number.h"
#include "test.h"

/* Parses text as int32; returns the status and stores the value (or 12345 when untouched). */
static int parse_i32(const char *text, int32_t *value)
{
    *value = 12345;
    return number_parse_i32(text, strlen(text), value);
}

static int parse_u64(const char *text, uint64_t *value)
{
    *value = 12345;
    return number_parse_u64(text, strlen(text), value);
}

int main(void)
{
    int32_t v;
    CHECK_INT(parse_i32("0", &v), 0);
    CHECK_INT(v, 0);
    CHECK_INT(parse_i32("1", &v), 0);
    CHECK_INT(v, 1);
    CHECK_INT(parse_i32("42", &v), 0);
    CHECK_INT(v, 42);
    CHECK_INT(parse_i32("007", &v), 0);
    CHECK_INT(v, 7);
    CHECK_INT(parse_i32("-0", &v), 0);
    CHECK_INT(v, 0);
    CHECK_INT(parse_i32("-17", &v), 0);
    CHECK_INT(v, -17);
    CHECK_INT(parse_i32("2147483647", &v), 0);
    CHECK_INT(v, INT32_MAX);
    CHECK_INT(parse_i32("-2147483648", &v), 0);
    CHECK_INT(v, INT32_MIN);
    CHECK_INT(parse_i32("00000000000000000000002147483647", &v), 0);
    CHECK_INT(v, INT32_MAX);

    const char *invalid[] = {
        "",        "-",    "12abc",      "abc",         "+5",
        " 5",      "5 ",   "1.5",        "1e3",         "--1",
        "-+1",     "0x10", "2147483648", "-2147483649", "99999999999999999999999",
        "\xd9\xa3" /* Arabic 3 */};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        int rc = parse_i32(invalid[i], &v);
        if (rc != -1) fprintf(stderr, "accepted \"%s\"\n", invalid[i]);
        CHECK_INT(rc, -1);
        CHECK_INT(v, 12345);
    }
    /* the length is honoured: "12" out of "123", and an embedded NUL is not a terminator */
    CHECK_INT(number_parse_i32("123", 2, &v), 0);
    CHECK_INT(v, 12);
    CHECK_INT(number_parse_i32("1\0"
                               "2",
                               3, &v),
              -1);
    CHECK_INT(number_parse_i32(NULL, 0, &v), -1);

    uint64_t u;
    CHECK_INT(parse_u64("0", &u), 0);
    CHECK_INT(u, 0);
    CHECK_INT(parse_u64("18446744073709551615", &u), 0);
    CHECK(u == UINT64_MAX);
    CHECK_INT(parse_u64("18446744073709551616", &u), -1);
    CHECK_INT(parse_u64("99999999999999999999", &u), -1);
    CHECK_INT(parse_u64("-1", &u), -1);
    CHECK_INT(parse_u64("+1", &u), -1);
    CHECK_INT(parse_u64("", &u), -1);
    CHECK_INT(parse_u64("1 ", &u), -1);
    CHECK_INT(u, 12345);
    return test_report("number");
}
