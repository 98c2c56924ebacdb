/* fuzz_url.c: libFuzzer driver for server/url (percent-decoding and query-string lookup of the
 * untrusted request target; also url_parse_http for load-test targets).
 * Built by `make fuzzers` (clang, ASan, UBSan); scripts/fuzz.sh runs it, or by hand:
 *   build-fuzz/fuzz_url -dict=fuzz/url.dict -max_total_time=30 fuzz/corpus/url */
#include "url.h"
#include "url_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Reference check of url_decode: valid exactly when every '%' starts "%XX"; the decoded length
 * is len minus 2 per escape; without escapes or '+' the output is the input. */
static void check_decode(const char *in, size_t len)
{
    char *out = malloc(len ? len : 1); /* exactly len bytes: decoding never grows */
    long n = url_decode(in, len, out, 1);
    size_t escapes = 0;
    int valid = 1;
    for (size_t i = 0; i < len; i++) {
        if (in[i] != '%') continue;
        if (len - i < 3 || !is_hex((unsigned char)in[i + 1]) || !is_hex((unsigned char)in[i + 2])) {
            valid = 0;
            break;
        }
        escapes++;
        i += 2;
    }
    if (!valid) {
        INVARIANT(n == -1);
    } else {
        INVARIANT(n == (long)(len - 2 * escapes));
        if (escapes == 0) {
            for (size_t i = 0; i < len; i++)
                INVARIANT(out[i] == (in[i] == '+' ? ' ' : in[i]));
        }
        long again = url_decode(in, len, out, 0);
        INVARIANT(again == n);
    }
    free(out);
}

/* The first byte (mod 4) picks the key to look up; the rest is the query, copied to the heap so
 * ASan sees a read past its end. */
static void check_query(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"category", "", "a b", "x"};
    const char *name = names[data[0] % 4];
    size_t len = size - 1;
    char *query = malloc(len ? len : 1);
    memcpy(query, data + 1, len);
    buf_t value = {0};
    int rc = url_query_get(slice_make(query, len), name, &value);
    INVARIANT(rc == 1 || rc == 0 || rc == -1);
    if (rc != 1) INVARIANT(value.len == 0);
    if (rc == 1) INVARIANT(value.len <= len);
    /* A lookup is deterministic and leaves the query alone. */
    buf_t again = {0};
    INVARIANT(url_query_get(slice_make(query, len), name, &again) == rc);
    INVARIANT(again.len == value.len &&
              (value.len == 0 || memcmp(again.data, value.data, value.len) == 0));
    INVARIANT(memcmp(query, data + 1, len) == 0);
    buf_free(&again);
    buf_free(&value);
    free(query);
}

/* url_parse_http takes a C string: success fills a NUL-terminated host and a path starting with
 * '/'. */
static void check_parse_http(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    url_t url;
    char err[128];
    if (url_parse_http(text, &url, err, sizeof err) == 0) {
        INVARIANT(memchr(url.host, '\0', sizeof url.host) != NULL && url.host[0] != '\0');
        INVARIANT(memchr(url.path, '\0', sizeof url.path) != NULL && url.path[0] == '/');
        INVARIANT(url.port >= 1);
    } else {
        INVARIANT(memchr(err, '\0', sizeof err) != NULL);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    char *copy = malloc(size);
    memcpy(copy, data, size);
    check_decode(copy, size);
    free(copy);
    check_query(data, size);
    check_parse_http(data, size);
    return 0;
}
