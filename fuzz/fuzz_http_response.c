/* fuzz_http_response.c: libFuzzer driver for loadtest/http_client (bytes from an untrusted
 * server).
 * Built by `make fuzzers` (clang, ASan, UBSan); scripts/fuzz.sh runs it, or by hand:
 *   build-fuzz/fuzz_http_response -dict=fuzz/http_response.dict -max_total_time=30 \
 *       fuzz/corpus/http_response */
#include "http_client.h"

#include <stdlib.h>

static http_client_response_t parser;

/* The first byte picks how the input is cut into feeds, so splits get fuzzed too; the
 * parser must never read out of bounds, and whole-input and split parses must agree. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t step = (size_t)data[0] % 17 + 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    http_client_init(&parser, 0);
    size_t whole_used = 0;
    int whole = http_client_feed(&parser, text, len, &whole_used);
    int whole_status = parser.status;
    if (whole == HTTP_CLIENT_INCOMPLETE) whole = http_client_finish(&parser);

    http_client_init(&parser, 0);
    size_t pos = 0;
    int split = HTTP_CLIENT_INCOMPLETE;
    while (pos < len && split == HTTP_CLIENT_INCOMPLETE) {
        size_t n = len - pos < step ? len - pos : step, consumed = 0;
        split = http_client_feed(&parser, text + pos, n, &consumed);
        if (consumed > n) abort();
        pos += consumed;
    }
    if (split == HTTP_CLIENT_INCOMPLETE) split = http_client_finish(&parser);
    /* A line split across feeds is parsed from the copy: same verdict either way. */
    if (split != whole) abort();
    if (whole == HTTP_CLIENT_COMPLETE && (pos != whole_used || parser.status != whole_status))
        abort();
    return 0;
}
