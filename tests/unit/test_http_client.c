/* test_http_client.c: unit tests for loadtest/http_client: splits at every byte, chunked,
 * keep-alive rules, malformed responses. */
#include "http_client.h"
#include "test.h"

#include <stdlib.h>

static http_client_response_t parser;

/* Feeds text in two pieces split at `split`; returns the final result and sets *used to the
 * bytes the parser took as this response's. */
static int feed_split(const char *text, size_t len, size_t split, int head, size_t *used)
{
    http_client_init(&parser, head);
    size_t consumed = 0;
    int result = http_client_feed(&parser, text, split, &consumed);
    *used = consumed;
    if (result != HTTP_CLIENT_INCOMPLETE) return result;
    if (consumed != split) return -99;
    result = http_client_feed(&parser, text + split, len - split, &consumed);
    *used += consumed;
    return result;
}

/* Byte by byte: every line split everywhere at once. */
static int feed_bytes(const char *text, size_t len, size_t *used)
{
    http_client_init(&parser, 0);
    for (size_t i = 0; i < len; i++) {
        size_t consumed = 0;
        int result = http_client_feed(&parser, text + i, 1, &consumed);
        if (result != HTTP_CLIENT_INCOMPLETE) {
            *used = i + consumed;
            return result;
        }
    }
    *used = len;
    return HTTP_CLIENT_INCOMPLETE;
}

/* Checks that a complete response parses the same at every split point and byte by byte,
 * taking exactly `want_used` bytes. */
static void check_every_split(const char *text, size_t want_used, int want_status,
                              int want_keep_alive, uint64_t want_body, const char *want_id)
{
    size_t len = strlen(text);
    int bad = 0;
    for (size_t split = 0; split <= len; split++) {
        size_t used = 0;
        int result = feed_split(text, len, split, 0, &used);
        if (result != HTTP_CLIENT_COMPLETE || used != want_used || parser.status != want_status ||
            parser.keep_alive != want_keep_alive || parser.body_bytes != want_body ||
            !slice_eq(http_client_server_id(&parser), slice_cstr(want_id))) {
            if (!bad++)
                fprintf(stderr,
                        "split at %zu: result %d used %zu status %d keep_alive %d body %" PRIu64
                        " id '%.*s' error %s\n",
                        split, result, used, parser.status, parser.keep_alive, parser.body_bytes,
                        (int)parser.server_id_len, parser.server_id,
                        parser.error ? parser.error : "-");
        }
    }
    CHECK_INT(bad, 0);
    size_t used = 0;
    CHECK_INT(feed_bytes(text, len, &used), HTTP_CLIENT_COMPLETE);
    CHECK_INT(used, want_used);
    CHECK_INT(parser.status, want_status);
}

static int parse_all(const char *text, int head)
{
    size_t used;
    return feed_split(text, strlen(text), 0, head, &used);
}

static void test_well_formed(void)
{
    const char *simple = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         "X-Server-Id: server-2\r\nContent-Length: 13\r\n\r\n{\"ok\":true}\r\n";
    check_every_split(simple, strlen(simple), 200, 1, 13, "server-2");
    CHECK_INT(parser.content_length, 13);
    CHECK_INT(parser.chunked, 0);

    /* A second response behind the first (pipelining) is left unconsumed. */
    char two[512];
    snprintf(two, sizeof(two), "%sHTTP/1.1 204 No Content\r\n\r\n", simple);
    check_every_split(two, strlen(simple), 200, 1, 13, "server-2");

    const char *chunked = "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n"
                          "x-server-id:   a b  \r\n\r\n"
                          "5\r\nhello\r\n1A;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n"
                          "0\r\nTrailer: x\r\n\r\n";
    check_every_split(chunked, strlen(chunked), 503, 1, 31, "a b");
    CHECK_INT(parser.chunked, 1);

    const char *close = "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    check_every_split(close, strlen(close), 404, 0, 0, "");

    const char *http10 = "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok";
    check_every_split(http10, strlen(http10), 200, 1, 2, "");
    CHECK_INT(parser.version_minor, 0);
    CHECK_INT(parse_all("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0), HTTP_CLIENT_COMPLETE);
    CHECK_INT(parser.keep_alive, 0);

    const char *bare_newlines = "HTTP/1.1 200 OK\nContent-Length: 3\n\nabc";
    check_every_split(bare_newlines, strlen(bare_newlines), 200, 1, 3, "");

    const char *interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
                          "Content-Length: 2\r\n\r\n{}";
    check_every_split(interim, strlen(interim), 201, 1, 2, "");

    /* Bodies that are not there. */
    CHECK_INT(parse_all("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", 1), HTTP_CLIENT_COMPLETE);
    CHECK_INT(parse_all("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", 0),
              HTTP_CLIENT_COMPLETE);
    CHECK_INT(
        parse_all("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 0),
        HTTP_CLIENT_COMPLETE);

    /* Long X-Server-Id values are truncated, not rejected. */
    char long_id[300];
    memset(long_id, 'i', sizeof(long_id));
    char text[600];
    snprintf(text, sizeof(text),
             "HTTP/1.1 200 OK\r\nX-Server-Id: %.*s\r\nContent-Length: 0\r\n\r\n",
             (int)sizeof(long_id), long_id);
    CHECK_INT(parse_all(text, 0), HTTP_CLIENT_COMPLETE);
    CHECK_INT(parser.server_id_len, HTTP_CLIENT_SERVER_ID_MAX);
}

static void test_body_until_close(void)
{
    const char *text = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome body";
    CHECK_INT(parse_all(text, 0), HTTP_CLIENT_INCOMPLETE);
    CHECK_INT(parser.body_bytes, 9);
    CHECK_INT(http_client_finish(&parser), HTTP_CLIENT_COMPLETE);
    CHECK_INT(parser.keep_alive, 0);

    http_client_init(&parser, 0);
    CHECK_INT(http_client_finish(&parser), HTTP_CLIENT_ERROR);
    CHECK_STR(parser.error, "connection closed before any response byte");
    CHECK_INT(parse_all("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0),
              HTTP_CLIENT_INCOMPLETE);
    CHECK_INT(http_client_finish(&parser), HTTP_CLIENT_ERROR);
    CHECK_STR(parser.error, "connection closed before the response ended");
}

static void check_malformed(const char *text, const char *want_error)
{
    size_t len = strlen(text), used;
    int bad = 0;
    for (size_t split = 0; split <= len; split++) {
        int result = feed_split(text, len, split, 0, &used);
        if (result != HTTP_CLIENT_ERROR || strcmp(parser.error, want_error) != 0) {
            if (!bad++)
                fprintf(stderr, "split %zu of \"%s\": result %d error %s, want \"%s\"\n", split,
                        text, result, parser.error ? parser.error : "-", want_error);
        }
    }
    CHECK_INT(bad, 0);
    /* Feeding after an error keeps failing. */
    size_t consumed;
    CHECK_INT(http_client_feed(&parser, "x", 1, &consumed), HTTP_CLIENT_ERROR);
}

static void test_malformed(void)
{
    check_malformed("HTTP/2 200 OK\r\n\r\n",
                    "malformed status line (expected \"HTTP/1.x NNN reason\")");
    check_malformed("ICY 200 OK\r\n\r\n",
                    "malformed status line (expected \"HTTP/1.x NNN reason\")");
    check_malformed("HTTP/1.1 2x0 OK\r\n\r\n", "malformed status code in the status line");
    check_malformed("HTTP/1.1 2000 OK\r\n\r\n", "malformed status code in the status line");
    check_malformed("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
                    "malformed header line (no name or no ':')");
    check_malformed("HTTP/1.1 200 OK\r\nA: b\r\n  folded\r\n\r\n",
                    "folded header line (obsolete line folding)");
    check_malformed("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                    "bad Content-Length (not a decimal number)");
    check_malformed("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                    "two different Content-Length headers");
    check_malformed("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                    "bad Content-Length (empty or too large)");
    check_malformed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                    "malformed chunk size line");
    check_malformed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
                    "chunk data longer than its size");
    check_malformed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n",
                    "chunk size too large");
    check_malformed("HTTP/1.1 101 Switching Protocols\r\n\r\n",
                    "unexpected 101 Switching Protocols");

    /* A line longer than the limit, delivered in one piece or in many. */
    size_t len = HTTP_CLIENT_LINE_MAX + 100;
    char *huge = malloc(len + 1);
    memcpy(huge, "HTTP/1.1 200 OK\r\nX-Big: ", 24);
    memset(huge + 24, 'b', len - 24);
    huge[len] = 0;
    huge[len - 1] = '\n';
    size_t used;
    CHECK_INT(feed_split(huge, len, 0, 0, &used), HTTP_CLIENT_ERROR);
    CHECK_STR(parser.error, "response line too long");
    CHECK_INT(feed_split(huge, len, 100, 0, &used), HTTP_CLIENT_ERROR);
    CHECK_STR(parser.error, "response line too long");
    free(huge);

    /* Many short headers adding up past the header limit. */
    buf_t many = {0};
    buf_append_cstr(&many, "HTTP/1.1 200 OK\r\n");
    while (many.len <= HTTP_CLIENT_HEADERS_MAX)
        buf_append_cstr(&many, "X-Filler: 0123456789\r\n");
    buf_append_cstr(&many, "\r\n");
    CHECK_INT(feed_split(many.data, many.len, 7, 0, &used), HTTP_CLIENT_ERROR);
    CHECK_STR(parser.error, "response headers too large");
    buf_free(&many);
}

int main(void)
{
    test_well_formed();
    test_body_until_close();
    test_malformed();
    return test_report("http_client");
}
