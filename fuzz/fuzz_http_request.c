/* fuzz_http_request.c: libFuzzer driver for server/http_parse (request heads and chunked bodies
 * from untrusted clients), and for server/http_write's Content-Length on the same bytes.
 * Built by `make fuzzers` (clang, ASan, UBSan); scripts/fuzz.sh runs it, or by hand:
 *   build-fuzz/fuzz_http_request -dict=fuzz/http.dict -max_total_time=30 \
 *       fuzz/corpus/http_request */
#include "http_parse.h"
#include "http_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"

/* Small limits so the fuzzer reaches every limit with short inputs. */
static const http_limits_t limits = {
    .max_request_line = 64,
    .max_header_bytes = 256,
    .max_headers = 8,
    .max_body = 1000,
};

static http_request_t req, again;

/* A non-empty slice lies inside [base, base + len). */
static int slice_inside(slice_t s, const char *base, size_t len)
{
    if (s.len == 0) return 1;
    return s.base >= base && s.len <= len && (size_t)(s.base - base) <= len - s.len;
}

static int has_crlf(slice_t s)
{
    return s.len && (memchr(s.base, '\r', s.len) || memchr(s.base, '\n', s.len));
}

/* Parses the first len bytes of text from a heap copy of exactly len bytes, so ASan catches a
 * read past what the parser was given. */
static int parse_copy(const char *text, size_t len, http_request_t *out)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, text, len);
    int rc = http_parse_request(copy, len, &limits, out);
    free(copy);
    return rc;
}

static void check_complete_head(const char *text, size_t len, int rc, uint8_t seed)
{
    size_t head_len = (size_t)rc;
    INVARIANT(req.head_len == head_len);
    INVARIANT(head_len <= len && head_len <= limits.max_header_bytes && head_len >= 16);
    INVARIANT(memcmp(text + head_len - 4, "\r\n\r\n", 4) == 0);

    /* empty lines before the request line are skipped */
    INVARIANT(slice_inside(req.method_name, text, head_len) && req.method_name.len > 0);
    size_t skip = (size_t)(req.method_name.base - text);
    INVARIANT(skip % 2 == 0);
    for (size_t i = 0; i < skip; i += 2)
        INVARIANT(text[i] == '\r' && text[i + 1] == '\n');
    INVARIANT(text[skip] != '\r');
    INVARIANT(memmem(text + skip, head_len - skip - 2, "\r\n\r\n", 4) == NULL);
    INVARIANT(req.method >= HTTP_METHOD_OTHER && req.method <= HTTP_METHOD_OPTIONS);
    INVARIANT(slice_inside(req.target, text, head_len) && req.target.len > 0);
    INVARIANT(req.method_name.len + 1 + req.target.len + 9 <= limits.max_request_line);
    INVARIANT(slice_inside(req.query, text, head_len));
    INVARIANT(req.path.len > 0 && memchr(req.path.base, '?', req.path.len) == NULL);
    INVARIANT(memchr(req.target.base, '#', req.target.len) == NULL);
    if (req.target.base[0] == '/') {
        /* origin-form */
        INVARIANT(req.path.base == req.target.base && req.authority.len == 0);
        INVARIANT(req.path.len + (req.query.len ? 1 + req.query.len : 0) <= req.target.len);
    } else if (req.target.len == 1 && req.target.base[0] == '*') {
        INVARIANT(req.method == HTTP_METHOD_OPTIONS);
    } else {
        /* absolute-form: the authority, then the path ("/" when empty) and query */
        INVARIANT(strncasecmp(req.target.base, "http://", 7) == 0 ||
                  strncasecmp(req.target.base, "https://", 8) == 0);
        INVARIANT(req.authority.len > 0 &&
                  slice_inside(req.authority, req.target.base, req.target.len));
        INVARIANT(http_host_valid(req.authority));
        INVARIANT(req.path.base[0] == '/');
        INVARIANT(!memchr(req.authority.base, '/', req.authority.len) &&
                  !memchr(req.authority.base, '@', req.authority.len));
    }
    INVARIANT(req.chunked == 0 || req.chunked == 1);
    if (req.chunked) INVARIANT(req.content_length == -1 && req.version_minor == 1);
    INVARIANT(req.version_minor == 0 || req.version_minor == 1);
    INVARIANT(req.header_count <= limits.max_headers);
    INVARIANT(req.content_length >= -1 && req.content_length <= (int64_t)limits.max_body);
    INVARIANT(req.keep_alive == 0 || req.keep_alive == 1);
    INVARIANT(req.expect_continue == 0 || req.expect_continue == 1);
    INVARIANT(slice_inside(req.content_type, text, head_len) && !has_crlf(req.content_type));
    if (req.version_minor == 1)
        INVARIANT(http_request_header(&req, SLICE_LIT("host")).base != NULL);
    slice_t host = http_request_header(&req, SLICE_LIT("host"));
    if (host.base) INVARIANT(http_host_valid(host));
    for (unsigned i = 0; i < req.header_count; i++) {
        const http_header_t *h = &req.headers[i];
        INVARIANT(h->name.len > 0 && slice_inside(h->name, text, head_len));
        INVARIANT(slice_inside(h->value, text, head_len));
        INVARIANT(!has_crlf(h->name) && !has_crlf(h->value));
        INVARIANT(memchr(h->name.base, ':', h->name.len) == NULL);
        if (h->value.len) {
            INVARIANT(h->value.base[0] != ' ' && h->value.base[0] != '\t');
            char last = h->value.base[h->value.len - 1];
            INVARIANT(last != ' ' && last != '\t');
        }
        INVARIANT(http_request_header(&req, h->name).base != NULL);
    }

    /* The parser looks only at the head: the head alone parses the same. */
    INVARIANT(parse_copy(text, head_len, &again) == rc);
    INVARIANT(again.method == req.method && again.target.len == req.target.len);
    INVARIANT(again.header_count == req.header_count);
    INVARIANT(again.content_length == req.content_length && again.keep_alive == req.keep_alive);
    INVARIANT(again.expect_continue == req.expect_continue && again.chunked == req.chunked);

    /* Every proper prefix of a valid head only asks for more bytes. */
    size_t cuts[3] = {head_len - 1, head_len / 2, seed % head_len};
    for (int i = 0; i < 3; i++)
        INVARIANT(parse_copy(text, cuts[i], &again) == 0);
}

/* The chunked decoder on body[0..len): fed whole, and fed in two parts split at cut, it gives the
 * same answer, the same decoded bytes, never more than the limits, and never touches a byte after
 * the body. */
static void check_chunked(const char *body, size_t len, size_t cut)
{
    char *whole = malloc(len ? len : 1), *split = malloc(len ? len : 1);
    memcpy(whole, body, len);
    memcpy(split, body, len);
    http_chunked_t a, b;
    http_chunked_init(&a);
    http_chunked_init(&b);
    int ra = http_chunked_decode(&a, whole, len, &limits);
    int rb = http_chunked_decode(&b, split, cut, &limits);
    if (rb == 0) rb = http_chunked_decode(&b, split, len, &limits);
    INVARIANT(ra == 1 || ra == 0 || ra == -400 || ra == -413);
    INVARIANT(rb == ra);
    if (ra == 1) {
        INVARIANT(a.consumed == b.consumed && a.body_len == b.body_len);
        INVARIANT(a.consumed <= len && a.body_len <= a.consumed);
        INVARIANT(a.body_len <= limits.max_body);
        INVARIANT(a.framing <= limits.max_header_bytes);
        INVARIANT(a.body_len + a.framing == a.consumed);
        INVARIANT(memcmp(whole, split, a.body_len) == 0);
        INVARIANT(memcmp(whole + a.consumed, body + a.consumed, len - a.consumed) == 0);
        INVARIANT(memcmp(body + a.consumed - 2, "\r\n", 2) == 0);
    } else if (ra == 0) {
        INVARIANT(a.consumed == len && a.body_len <= limits.max_body);
    }
    free(whole);
    free(split);
}

/* The response writer: the patched Content-Length must equal the body written. */
static void check_response(const uint8_t *data, size_t size)
{
    static const int statuses[] = {200, 201, 204, 304, 400, 404, 405, 413, 500, 503, 42};
    int status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
    int head_only = data[0] & 0x80;
    buf_t out = {0};
    http_response_t resp;
    buf_append(&out, data, size % 7); /* an earlier response in the same buffer */
    http_response_begin(&out, &resp, status, (data[0] & 1) ? "application/json" : NULL,
                        slice_make("s1", data[0] & 2 ? 2 : 0), data[0] & 4, NULL);
    buf_append(&out, data, size);
    http_response_end(&out, &resp, head_only);
    INVARIANT(memcmp(out.data + resp.start, "HTTP/1.1 ", 9) == 0);
    INVARIANT(memcmp(out.data + resp.body_start - 4, "\r\n\r\n", 4) == 0);
    if (resp.length_field) {
        INVARIANT((size_t)strtoull(out.data + resp.length_field, NULL, 10) == size);
        INVARIANT(out.len == resp.body_start + (head_only ? 0 : size));
    } else {
        INVARIANT(out.len == resp.body_start);
        INVARIANT(memmem(out.data, out.len, "Content-Length", 14) == NULL);
    }
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    int rc = http_parse_request(text, size, &limits, &req);
    if (rc > 0) {
        check_complete_head(text, size, rc, size ? data[size - 1] : 0);
        if (req.chunked) check_chunked(text + rc, size - (size_t)rc, (size - (size_t)rc) / 2);
    } else if (rc == 0) {
        INVARIANT(size < limits.max_header_bytes);
        size_t skip = 0;
        while (size - skip >= 2 && text[skip] == '\r' && text[skip + 1] == '\n')
            skip += 2;
        INVARIANT(memmem(text + skip, size - skip, "\r\n\r\n", 4) == NULL);
    } else {
        INVARIANT(rc == -400 || rc == -413 || rc == -414 || rc == -431 || rc == -501 || rc == -505);
    }
    if (size) check_response(data, size);
    /* the whole input as a chunked body too */
    check_chunked(text, size, size ? data[0] % (size + 1) : 0);
    return 0;
}
