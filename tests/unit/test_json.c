/* test_json.c: unit tests for lib/json (string escaping, UTF-8 validation, error bodies). */
#include "buf.h"
#include "json.h"
#include "test.h"

/* Escapes len bytes of s and compares the whole output with want. */
#define CHECK_ESCAPE(s, n, want)                                                                   \
    do {                                                                                           \
        buf_t out_ = {0};                                                                          \
        json_write_string(&out_, (s), (n));                                                        \
        CHECK_MEM(out_.data, out_.len, (want));                                                    \
        buf_free(&out_);                                                                           \
    } while (0)

#define CHECK_ESCAPE_LIT(lit, want) CHECK_ESCAPE((lit), sizeof(lit) - 1, (want))

/* The escaping rules byte by byte, for ASCII input: what the 16- and 8-byte fast paths must
 * produce whatever the position of the bytes that need care. */
static void reference_escape(buf_t *b, const unsigned char *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    buf_append_char(b, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            buf_append_char(b, '\\');
            buf_append_char(b, (char)c);
        } else if (c == '\n') {
            buf_append(b, "\\n", 2);
        } else if (c == '\r') {
            buf_append(b, "\\r", 2);
        } else if (c == '\t') {
            buf_append(b, "\\t", 2);
        } else if (c == '\b') {
            buf_append(b, "\\b", 2);
        } else if (c == '\f') {
            buf_append(b, "\\f", 2);
        } else if (c < 0x20 || c == 0x7f) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
            buf_append(b, esc, 6);
        } else {
            buf_append_char(b, (char)c);
        }
    }
    buf_append_char(b, '"');
}

static void test_fast_paths_match_reference(void)
{
    static const unsigned char special[] = {'"', '\\', '\n', 0x01, 0x1f, 0x7f, '\t', 0};
    unsigned seed = 12345;
    int mismatches = 0;
    for (int round = 0; round < 3000; round++) {
        unsigned char text[80];
        seed = seed * 1103515245u + 12345u;
        size_t len = (seed >> 16) % sizeof text;
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = seed >> 16;
            text[i] =
                r % 9 == 0 ? special[(r / 9) % sizeof special] : (unsigned char)(0x20 + r % 95);
            if (text[i] == 0x7f && r % 2) text[i] = 'a';
        }
        buf_t fast = {0}, want = {0};
        json_write_string(&fast, (const char *)text, len);
        reference_escape(&want, text, len);
        if (fast.len != want.len || memcmp(fast.data, want.data, fast.len) != 0) mismatches++;
        buf_free(&fast);
        buf_free(&want);
    }
    CHECK_INT(mismatches, 0);
}

/* Every length up to 70, plain and with one byte that needs care (or a valid UTF-8 sequence) at
 * every position: the whole-block and overlapping-tail copies of copy_plain_prefix must give
 * the byte-by-byte result, and write nothing past the escaped string. */
static void test_every_length_and_position(void)
{
    static const unsigned char special[] = {'"', '\\', '\n', 0x01, 0x1f, 0x7f, 0xc3};
    int mismatches = 0, overruns = 0;
    for (size_t len = 0; len <= 70; len++) {
        for (size_t at = 0; at <= len; at++) {
            for (size_t k = 0; k < sizeof special; k++) {
                unsigned char text[72];
                for (size_t i = 0; i < len; i++)
                    text[i] = (unsigned char)('a' + i % 26);
                size_t n = len;
                if (at < len) {
                    text[at] = special[k];
                    if (special[k] == 0xc3) { /* U+00E9, two bytes: copied as they are */
                        if (at + 1 == len) continue;
                        text[at + 1] = 0xa9;
                    }
                } else if (k) {
                    continue; /* the plain string once */
                }
                char out[72 * 6 + 2 + 16];
                memset(out, '#', sizeof out);
                char *end = json_escape_into(out, (const char *)text, n);
                buf_t want = {0};
                reference_escape(&want, text, n);
                if ((size_t)(end - out) != want.len || memcmp(out, want.data, want.len) != 0)
                    mismatches++;
                for (char *q = end; q < out + sizeof out; q++)
                    if (*q != '#') overruns++;
                buf_free(&want);
            }
        }
    }
    CHECK_INT(mismatches, 0);
    CHECK_INT(overruns, 0);
}

int main(void)
{
    /* plain ASCII and the empty string */
    CHECK_ESCAPE_LIT("", "\"\"");
    CHECK_ESCAPE_LIT("Product 1", "\"Product 1\"");
    CHECK_ESCAPE_LIT("a/b~{}", "\"a/b~{}\"");

    /* quotes, backslash and the short escapes */
    CHECK_ESCAPE_LIT("say \"hi\"", "\"say \\\"hi\\\"\"");
    CHECK_ESCAPE_LIT("C:\\dir", "\"C:\\\\dir\"");
    CHECK_ESCAPE_LIT("a\nb\rc\td\be\ff", "\"a\\nb\\rc\\td\\be\\ff\"");

    /* other control characters, NUL and DEL as \u00XX */
    CHECK_ESCAPE("\0", 1, "\"\\u0000\"");
    CHECK_ESCAPE_LIT("\x01\x1f", "\"\\u0001\\u001f\"");
    CHECK_ESCAPE_LIT("x\x7fy", "\"x\\u007fy\"");
    CHECK_ESCAPE_LIT("\x0b", "\"\\u000b\"");

    /* valid UTF-8 passes through: 2, 3 and 4 bytes, and the edges of each range */
    CHECK_ESCAPE_LIT("caf\xc3\xa9", "\"caf\xc3\xa9\"");
    CHECK_ESCAPE_LIT("\xc2\x80", "\"\xc2\x80\"");
    CHECK_ESCAPE_LIT("\xe2\x82\xac 5", "\"\xe2\x82\xac 5\"");
    CHECK_ESCAPE_LIT("\xe0\xa0\x80", "\"\xe0\xa0\x80\"");           /* U+0800 */
    CHECK_ESCAPE_LIT("\xed\x9f\xbf", "\"\xed\x9f\xbf\"");           /* U+D7FF */
    CHECK_ESCAPE_LIT("\xee\x80\x80", "\"\xee\x80\x80\"");           /* U+E000 */
    CHECK_ESCAPE_LIT("\xef\xbf\xbf", "\"\xef\xbf\xbf\"");           /* U+FFFF */
    CHECK_ESCAPE_LIT("\xf0\x9f\x98\x80!", "\"\xf0\x9f\x98\x80!\""); /* U+1F600 */
    CHECK_ESCAPE_LIT("\xf0\x90\x80\x80", "\"\xf0\x90\x80\x80\"");   /* U+10000 */
    CHECK_ESCAPE_LIT("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\"");   /* U+10FFFF */

    /* invalid UTF-8: each offending byte becomes \ufffd */
    CHECK_ESCAPE_LIT("\x80", "\"\\ufffd\""); /* stray continuation */
    CHECK_ESCAPE_LIT("a\xbf"
                     "b",
                     "\"a\\ufffdb\"");
    CHECK_ESCAPE_LIT("\xc0\xaf", "\"\\ufffd\\ufffd\"");                       /* overlong '/' */
    CHECK_ESCAPE_LIT("\xc1\xbf", "\"\\ufffd\\ufffd\"");                       /* overlong */
    CHECK_ESCAPE_LIT("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"");            /* overlong 3-byte */
    CHECK_ESCAPE_LIT("\xf0\x80\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* overlong 4 */
    CHECK_ESCAPE_LIT("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");            /* U+D800 */
    CHECK_ESCAPE_LIT("\xed\xbf\xbf", "\"\\ufffd\\ufffd\\ufffd\"");            /* U+DFFF */
    CHECK_ESCAPE_LIT("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* U+110000 */
    CHECK_ESCAPE_LIT("\xf5\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
    CHECK_ESCAPE_LIT("\xff\xfe", "\"\\ufffd\\ufffd\"");
    CHECK_ESCAPE_LIT("\xc3", "\"\\ufffd\""); /* truncated at end */
    CHECK_ESCAPE_LIT("\xe2\x82", "\"\\ufffd\\ufffd\"");
    CHECK_ESCAPE_LIT("\xf0\x9f\x98", "\"\\ufffd\\ufffd\\ufffd\"");
    CHECK_ESCAPE_LIT("\xe2\x82z", "\"\\ufffd\\ufffdz\"");    /* truncated mid-string */
    CHECK_ESCAPE_LIT("\xc3\xc3\xa9", "\"\\ufffd\xc3\xa9\""); /* recovers at next lead */

    /* json_utf8_valid: the same rule as the escaping, as a yes or no */
    CHECK_INT(json_utf8_valid("", 0), 1);
    CHECK_INT(json_utf8_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14), 1);
    CHECK_INT(json_utf8_valid("\xf4\x8f\xbf\xbf", 4), 1);
    CHECK_INT(json_utf8_valid("a\0b", 3), 1); /* NUL is the caller's business */
    CHECK_INT(json_utf8_valid("\xff", 1), 0);
    CHECK_INT(json_utf8_valid("abc\x80", 4), 0);
    CHECK_INT(json_utf8_valid("\xc0\xaf", 2), 0);     /* overlong */
    CHECK_INT(json_utf8_valid("\xed\xa0\x80", 3), 0); /* surrogate */
    CHECK_INT(json_utf8_valid("\xf4\x90\x80\x80", 4), 0);
    CHECK_INT(json_utf8_valid("\xc3\xa9", 1), 0); /* cut by len */

    /* length is honoured: bytes after len are not read */
    CHECK_ESCAPE("abcdef", 3, "\"abc\"");

    /* appends, does not reset */
    buf_t b = {0};
    buf_append_cstr(&b, "[");
    json_write_string(&b, "x", 1);
    buf_append_char(&b, ',');
    json_write_cstr(&b, NULL);
    buf_append_char(&b, ']');
    CHECK_MEM(b.data, b.len, "[\"x\",null]");

    /* a long plain run around an escape (the memcpy fast path) */
    buf_reset(&b);
    char long_text[3001];
    memset(long_text, 'a', sizeof long_text);
    long_text[1500] = '"';
    json_write_string(&b, long_text, sizeof long_text);
    CHECK_INT(b.len, 3001 + 1 + 2);
    CHECK_MEM(b.data + 1500, 4, "a\\\"a");

    buf_reset(&b);
    json_write_error(&b, "Product not found");
    CHECK_MEM(b.data, b.len, "{\"error\":\"Product not found\"}");
    buf_reset(&b);
    json_write_error(&b, "bad \"x\"\n");
    CHECK_MEM(b.data, b.len, "{\"error\":\"bad \\\"x\\\"\\n\"}");
    buf_free(&b);
    test_fast_paths_match_reference();
    test_every_length_and_position();
    return test_report("json");
}
