/* test_http.c: unit tests for server/http_parse (request head parsing, limits, chunked bodies)
 * and server/http_write (response heads). */
#include "http_parse.h"
#include "http_write.h"
#include "test.h"

#include <stdlib.h>
#include <time.h>

static const http_limits_t limits = {
    .max_request_line = 64,
    .max_header_bytes = 256,
    .max_headers = 8,
    .max_body = 1000,
};

static http_request_t req;

/* Parses a NUL-terminated head (copied to an exact-size heap block so ASan sees overreads). */
static int parse(const char *text)
{
    size_t len = strlen(text);
    char *copy = malloc(len ? len : 1);
    memcpy(copy, text, len);
    int rc = http_parse_request(copy, len, &limits, &req);
    free(copy);
    return rc;
}

/* Parses text in place (slices stay valid while text lives). */
static int parse_in_place(const char *text)
{
    return http_parse_request(text, strlen(text), &limits, &req);
}

#define CHECK_SLICE(s, want) CHECK_MEM((s).base, (s).len, (want))

static void test_get(void)
{
    const char *text = "GET /products/42?fields=name&x=1 HTTP/1.1\r\n"
                       "Host: localhost:3000\r\n"
                       "User-Agent:  curl/8.0 \t\r\n"
                       "Accept: */*\r\n"
                       "X-Empty:\r\n"
                       "\r\n";
    CHECK_INT(parse_in_place(text), strlen(text));
    CHECK_INT(req.head_len, strlen(text));
    CHECK_INT(req.method, HTTP_METHOD_GET);
    CHECK_SLICE(req.method_name, "GET");
    CHECK_SLICE(req.target, "/products/42?fields=name&x=1");
    CHECK_SLICE(req.path, "/products/42");
    CHECK_SLICE(req.query, "fields=name&x=1");
    CHECK_INT(req.version_minor, 1);
    CHECK_INT(req.header_count, 4);
    CHECK_SLICE(req.headers[0].name, "Host");
    CHECK_SLICE(req.headers[0].value, "localhost:3000");
    CHECK_SLICE(req.headers[1].value, "curl/8.0");
    CHECK_SLICE(req.headers[3].name, "X-Empty");
    CHECK_INT(req.headers[3].value.len, 0);
    CHECK_INT(req.content_length, -1);
    CHECK_INT(req.content_type.len, 0);
    CHECK_INT(req.keep_alive, 1);
    CHECK_INT(req.expect_continue, 0);

    /* header lookup: case-insensitive, absent gives base NULL, empty value keeps a base */
    slice_t v = http_request_header(&req, SLICE_LIT("user-agent"));
    CHECK_SLICE(v, "curl/8.0");
    v = http_request_header(&req, SLICE_LIT("X-Missing"));
    CHECK(v.base == NULL);
    CHECK_INT(v.len, 0);
    v = http_request_header(&req, SLICE_LIT("x-empty"));
    CHECK(v.base != NULL);
    CHECK_INT(v.len, 0);

    CHECK_INT(parse_in_place("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 27);
    CHECK_SLICE(req.path, "/");
    CHECK_INT(req.query.len, 0);
    CHECK_INT(parse_in_place("GET /a? HTTP/1.1\r\nHost: a\r\n\r\n"), 29);
    CHECK_SLICE(req.path, "/a");
    CHECK_INT(req.query.len, 0);
    CHECK_INT(parse_in_place("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 31);
    CHECK_INT(req.method, HTTP_METHOD_OPTIONS);
    CHECK_SLICE(req.path, "*");
}

static void test_post(void)
{
    const char *text = "POST /orders HTTP/1.1\r\n"
                       "host: x\r\n"
                       "Content-Type: application/json\r\n"
                       "content-length: 27\r\n"
                       "Content-Length: 27\r\n"
                       "Expect: 100-Continue\r\n"
                       "\r\n"
                       "{\"product_id\":1,\"quantity\":2}";
    size_t head = strstr(text, "\r\n\r\n") + 4 - text;
    CHECK_INT(parse_in_place(text), head);
    CHECK_INT(req.method, HTTP_METHOD_POST);
    CHECK_INT(req.content_length, 27);
    CHECK_SLICE(req.content_type, "application/json");
    CHECK_INT(req.expect_continue, 1);
    CHECK_INT(req.keep_alive, 1);

    CHECK_INT(parse("PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n") > 0, 1);
    CHECK_INT(req.method, HTTP_METHOD_PUT);
    CHECK_INT(req.content_length, 0);
    CHECK_INT(parse("PATCH /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n") > 0, 1);
    CHECK_INT(req.method, HTTP_METHOD_PATCH);
    CHECK_INT(req.content_length, 1000);
    CHECK_INT(parse("DELETE /a HTTP/1.1\r\nHost: x\r\n\r\n") > 0, 1);
    CHECK_INT(req.method, HTTP_METHOD_DELETE);
    CHECK_INT(parse("HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n") > 0, 1);
    CHECK_INT(req.method, HTTP_METHOD_HEAD);
    /* unknown or lower-case methods are tokens the router refuses, not parse errors */
    CHECK_INT(parse("BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n") > 0, 1);
    CHECK_INT(req.method, HTTP_METHOD_OTHER);
    CHECK_INT(parse("get / HTTP/1.1\r\nHost: x\r\n\r\n") > 0, 1);
    CHECK_INT(req.method, HTTP_METHOD_OTHER);
    /* leading zeros are digits */
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 007\r\n\r\n") > 0, 1);
    CHECK_INT(req.content_length, 7);
}

static void test_keep_alive(void)
{
    CHECK_INT(parse("GET / HTTP/1.0\r\n\r\n"), 18);
    CHECK_INT(req.version_minor, 0);
    CHECK_INT(req.keep_alive, 0);
    CHECK_INT(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") > 0, 1);
    CHECK_INT(req.keep_alive, 1);
    CHECK_INT(parse("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n") > 0, 1);
    CHECK_INT(req.keep_alive, 0);
    CHECK_INT(parse("GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n") > 0, 1);
    CHECK_INT(req.expect_continue, 0);
    CHECK_INT(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n") > 0, 1);
    CHECK_INT(req.keep_alive, 0);
    CHECK_INT(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade ,CLOSE\r\n\r\n") > 0, 1);
    CHECK_INT(req.keep_alive, 0);
    CHECK_INT(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: te\r\nConnection: close\r\n\r\n") > 0,
              1);
    CHECK_INT(req.keep_alive, 0);
    CHECK_INT(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n") > 0, 1);
    CHECK_INT(req.keep_alive, 1);
    CHECK_INT(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n") > 0, 1);
    CHECK_INT(req.keep_alive, 1);
}

/* Every proper prefix of a head gives 0; the whole buffer gives want. */
static void check_every_split(const char *text, int want)
{
    size_t len = strlen(text);
    int prefixes_ok = 1;
    for (size_t cut = 0; cut < len; cut++) {
        char *copy = malloc(cut ? cut : 1);
        memcpy(copy, text, cut);
        int rc = http_parse_request(copy, cut, &limits, &req);
        free(copy);
        if (rc != 0) {
            fprintf(stderr, "prefix of %zu bytes of %s gave %d\n", cut, text, rc);
            prefixes_ok = 0;
        }
    }
    CHECK(prefixes_ok);
    CHECK_INT(parse(text), want);
}

static void test_partial(void)
{
    const char *get = "GET /products?limit=5 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
    check_every_split(get, (int)strlen(get));
    const char *post = "POST /orders HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n";
    check_every_split(post, (int)strlen(post));
    /* errors only visible once the head is complete */
    check_every_split("GET / HTTP/1.1\r\nX: y\r\n\r\n", -400);
    check_every_split("GET / HTTP/2.0\r\nHost: a\r\n\r\n", -505);
    check_every_split("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                      -501);
    const char *chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    check_every_split(chunked, (int)strlen(chunked));
    check_every_split("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n", -413);
}

static void test_errors(void)
{
    /* bare LF, bare CR: refused even before the head is complete */
    CHECK_INT(parse("GET / HTTP/1.1\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET / HTTP/1.1\r\nHost: a\n"), -400);
    CHECK_INT(parse("GET / HTTP/1.1\r\nHost: a\n\r\n"), -400);
    CHECK_INT(parse("GET / HTTP/1.1\r\nHost: a\rb\r\n"), -400);
    CHECK_INT(parse("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"), -400);
    CHECK_INT(parse("\n"), -400);
    CHECK_INT(parse("\r\n\r\n"), 0); /* empty lines before a request: wait for it */
    CHECK_INT(parse("\r\n\n"), -400);
    /* control bytes */
    CHECK_INT(parse_in_place("GET / HTTP/1.1\r\nHost: a\r\nX: a\001b\r\n\r\n"), -400);
    CHECK_INT(parse_in_place("GET / HTTP/1.1\r\nHost: a\r\nX: a\177b\r\n\r\n"), -400);
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\0\r\n\r\n";
    CHECK_INT(http_parse_request(nul, sizeof(nul) - 1, &limits, &req), -400);
    CHECK_INT(parse("GET /\tx HTTP/1.1\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse_in_place("GET / HTTP/1.1\r\nHost: a\r\nX: tab\there \xc3\xa9\r\n\r\n") > 0, 1);
    CHECK_SLICE(http_request_header(&req, SLICE_LIT("x")), "tab\there \xc3\xa9");
    /* request line shape */
    CHECK_INT(parse("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n") > 0, 1);
    CHECK_INT(parse("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET ** HTTP/1.1\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET /\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET / http/1.1\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET / HTTP/2\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET / HTTP/1.x\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), -505);
    CHECK_INT(parse("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), -505);
    CHECK_INT(parse("GET / HTTP/3.0\r\nHost: a\r\n\r\n"), -505);
    /* header shape */
    CHECK_INT(parse("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), -400);
    CHECK_INT(parse("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET / HTTP/1.1\r\nHost a\r\n\r\n"), -400);
    CHECK_INT(parse("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n  c\r\n\r\n"), -400);
    CHECK_INT(parse("GET / HTTP/1.1\r\n\tHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET / HTTP/1.1\r\nHo(st: a\r\n\r\n"), -400);
    /* Host */
    CHECK_INT(parse("GET / HTTP/1.1\r\n\r\n"), -400);
    CHECK_INT(parse("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), -400);
    /* Content-Length */
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), -400);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n"), -400);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,2\r\n\r\n"), -400);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,5\r\n\r\n"), -400);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"), -400);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n"), -400);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n"), -400);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456\r\n\r\n"),
              -400);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999\r\n\r\n"), -413);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n"), -413);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
              -400);
    /* Transfer-Encoding */

    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                    "Content-Length: 5\r\n\r\n"),
              -400);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                    "transfer-encoding: identity\r\n\r\n"),
              -400);
}

static void test_limits(void)
{
    char big[600];
    static const char tail[] = " HTTP/1.1\r\nHost: a\r\n\r\n";
    const size_t tail_len = sizeof(tail) - 1, after_line = tail_len - 9;
    /* request line: 64 bytes is fine, 65 is refused, before and after the CRLF arrives */
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    memcpy(big + 64 - 9, tail, tail_len);
    CHECK_INT(http_parse_request(big, 64 + after_line, &limits, &req), 64 + after_line);
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    memcpy(big + 65 - 9, tail, tail_len);
    CHECK_INT(http_parse_request(big, 65 + after_line, &limits, &req), -414);
    CHECK_INT(http_parse_request(big, 65, &limits, &req), -414); /* no CRLF yet */
    CHECK_INT(http_parse_request(big, 66, &limits, &req), -414); /* CR only */
    CHECK_INT(http_parse_request(big, 67, &limits, &req), -414); /* CRLF */
    CHECK_INT(http_parse_request(big, 64, &limits, &req), 0);    /* could still end at 64 */
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    CHECK_INT(http_parse_request(big, 65, &limits, &req), -414);
    CHECK_INT(http_parse_request(big, 64, &limits, &req), 0);

    /* head bytes: exactly 256 parses, 257 is refused, also while incomplete */
    size_t n = 0;
    n += (size_t)sprintf(big + n, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    while (n < 256 - 4)
        big[n++] = 'v';
    memcpy(big + n, "\r\n\r\n", 4);
    CHECK_INT(http_parse_request(big, 256, &limits, &req), 256);
    CHECK_INT(http_parse_request(big, 255, &limits, &req), 0);
    memmove(big + 253, big + 252, 4);
    big[252] = 'v';
    CHECK_INT(http_parse_request(big, 257, &limits, &req), -431);
    CHECK_INT(http_parse_request(big, 256, &limits, &req), -431); /* cannot end by 256 */
    CHECK_INT(http_parse_request(big, 255, &limits, &req), 0);

    /* header count: 8 fine, 9 refused, also while incomplete */
    const char *eight =
        "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\n"
        "G: 1\r\n\r\n";
    CHECK_INT(parse(eight), strlen(eight));
    CHECK_INT(req.header_count, 8);
    CHECK_INT(parse("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\n"
                    "G: 1\r\nH: 1\r\n\r\n"),
              -431);
    CHECK_INT(parse("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\n"
                    "G: 1\r\nH: 1\r\n"),
              -431);

    /* NULL limits: the defaults */
    const char *get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK_INT(http_parse_request(get, strlen(get), NULL, &req), (int)strlen(get));
    http_limits_t many = limits;
    many.max_headers = 1000; /* clamped to HTTP_MAX_HEADERS */
    many.max_header_bytes = 100000;
    buf_t head = {0};
    buf_append_cstr(&head, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < HTTP_MAX_HEADERS; i++)
        buf_append_cstr(&head, "X: 1\r\n");
    buf_append_cstr(&head, "\r\n");
    CHECK_INT(http_parse_request(head.data, head.len, &many, &req), (int)head.len);
    head.len -= 2;
    buf_append_cstr(&head, "X: 1\r\n\r\n");
    CHECK_INT(http_parse_request(head.data, head.len, &many, &req), -431);
    buf_free(&head);
}

static void test_pipelined(void)
{
    const char *text = "POST /orders HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"
                       "GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    size_t len = strlen(text);
    int first = http_parse_request(text, len, &limits, &req);
    CHECK_INT(first, strstr(text, "{}") - text);
    CHECK_INT(req.content_length, 2);
    CHECK_INT(req.keep_alive, 1);
    size_t next = (size_t)first + (size_t)req.content_length;
    int second = http_parse_request(text + next, len - next, &limits, &req);
    CHECK_INT(second, len - next);
    CHECK_SLICE(req.path, "/health");
    CHECK_INT(req.keep_alive, 0);
    CHECK_INT(req.content_length, -1);
    /* a body with bad bytes after the head is not the parser's business */
    CHECK_INT(parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n\n\r\001"), 27);
}

/* Content-Length of a response head, the way a client reads it: OWS around 1*DIGIT. */
static long response_content_length(const char *head, size_t len)
{
    const char *field = memmem(head, len, "\r\nContent-Length:", 17);
    if (!field) return -1;
    const char *p = field + 17, *end = memmem(p, len - (size_t)(p - head), "\r\n", 2);
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    long n = 0;
    const char *digits = p;
    while (p < end && *p >= '0' && *p <= '9')
        n = n * 10 + (*p++ - '0');
    if (p == digits) return -1;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p == end ? n : -1;
}

static void test_response(void)
{
    buf_t out = {0};
    http_response_t resp;
    buf_append_cstr(&out, "previous;");
    http_response_begin(&out, &resp, 200, "application/json", SLICE_LIT("server-1"), 1, NULL);
    buf_append_cstr(&out, "{\"ok\":1}");
    http_response_end(&out, &resp, 0);
    CHECK_INT(resp.start, 9);
    /* the Date changes every second: check it separately and compare the rest byte for byte */
    const char *date = memmem(out.data, out.len, "Date: ", 6);
    CHECK(date != NULL);
    if (date) {
        CHECK(date[9] == ',' && memcmp(date + 6 + 25, " GMT\r\n", 6) == 0);
        char want_date[40];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(want_date, sizeof(want_date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        CHECK_MEM(date + 6, 29, want_date); /* flaky only across a second boundary */
        size_t date_at = (size_t)(date - out.data);
        char expected[512];
        snprintf(expected, sizeof(expected),
                 "previous;HTTP/1.1 200 OK\r\n"
                 "Content-Type: application/json\r\n"
                 "Content-Length:          8\r\n"
                 "X-Server-Id: server-1\r\n"
                 "Date: %.29s\r\n"
                 "Connection: keep-alive\r\n"
                 "\r\n"
                 "{\"ok\":1}",
                 date + 6);
        CHECK_MEM(out.data, out.len, expected);
        CHECK_INT(date_at, strstr(expected, "Date: ") - expected);
    }
    CHECK_INT(resp.body_start, out.len - 8);
    CHECK_INT(response_content_length(out.data, out.len), 8);

    /* HEAD: same head as the GET, no body */
    buf_reset(&out);
    http_response_begin(&out, &resp, 404, "application/json", slice_make(NULL, 0), 0,
                        "Allow: GET, HEAD\r\n");
    buf_append_cstr(&out, "{\"error\":\"not found\"}");
    http_response_end(&out, &resp, 1);
    CHECK_INT(out.len, resp.body_start);
    CHECK(memcmp(out.data, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    CHECK_INT(response_content_length(out.data, out.len), 21);
    CHECK(memmem(out.data, out.len, "X-Server-Id", 11) == NULL);
    CHECK(memmem(out.data, out.len, "\r\nConnection: close\r\nAllow: GET, HEAD\r\n\r\n", 41) !=
          NULL);

    /* empty body, no content type */
    buf_reset(&out);
    http_response_begin(&out, &resp, 500, NULL, SLICE_LIT("s"), 1, NULL);
    http_response_end(&out, &resp, 0);
    CHECK_INT(response_content_length(out.data, out.len), 0);
    CHECK(memmem(out.data, out.len, "Content-Type", 12) == NULL);
    CHECK_INT(out.len, resp.body_start);

    /* a body that grows the buffer many times over */
    buf_reset(&out);
    http_response_begin(&out, &resp, 201, "text/plain", SLICE_LIT("s"), 1, NULL);
    for (int i = 0; i < 100000; i++)
        buf_append_cstr(&out, "0123456789");
    http_response_end(&out, &resp, 0);
    CHECK_INT(response_content_length(out.data, out.len), 1000000);
    CHECK_INT(out.len - resp.body_start, 1000000);
    CHECK(memcmp(out.data, "HTTP/1.1 201 Created\r\n", 22) == 0);

    /* 204: no Content-Length, and any body is dropped */
    buf_reset(&out);
    http_response_begin(&out, &resp, 204, NULL, SLICE_LIT("s"), 1, NULL);
    buf_append_cstr(&out, "oops");
    http_response_end(&out, &resp, 0);
    CHECK_INT(response_content_length(out.data, out.len), -1);
    CHECK_INT(out.len, resp.body_start);
    CHECK(memcmp(out.data + out.len - 4, "\r\n\r\n", 4) == 0);
    buf_free(&out);
}

static void test_reasons(void)
{
    CHECK_STR(http_status_reason(200), "OK");
    CHECK_STR(http_status_reason(201), "Created");
    CHECK_STR(http_status_reason(400), "Bad Request");
    CHECK_STR(http_status_reason(404), "Not Found");
    CHECK_STR(http_status_reason(405), "Method Not Allowed");
    CHECK_STR(http_status_reason(413), "Content Too Large");
    CHECK_STR(http_status_reason(414), "URI Too Long");
    CHECK_STR(http_status_reason(431), "Request Header Fields Too Large");
    CHECK_STR(http_status_reason(500), "Internal Server Error");
    CHECK_STR(http_status_reason(501), "Not Implemented");
    CHECK_STR(http_status_reason(503), "Service Unavailable");
    CHECK_STR(http_status_reason(505), "HTTP Version Not Supported");
    CHECK_STR(http_status_reason(299), "Unknown");
    CHECK_STR(http_status_reason(-1), "Unknown");
}

/* RFC 9112 points: target forms, empty lines, Host, Transfer-Encoding. */
static void test_rfc9112(void)
{
    /* absolute-form: path and query from the target, the authority kept */
    CHECK_INT(parse_in_place(
                  "GET http://example.com:3000/health?x=1 HTTP/1.1\r\nHost: other\r\n\r\n") > 0,
              1);
    CHECK_SLICE(req.path, "/health");
    CHECK_SLICE(req.query, "x=1");
    CHECK_SLICE(req.authority, "example.com:3000");
    CHECK_SLICE(req.target, "http://example.com:3000/health?x=1");
    CHECK_INT(parse_in_place("GET HTTPS://a HTTP/1.1\r\nHost: a\r\n\r\n") > 0, 1);
    CHECK_SLICE(req.path, "/");
    CHECK_INT(req.query.len, 0);
    CHECK_INT(parse_in_place("GET http://a?q HTTP/1.1\r\nHost: a\r\n\r\n") > 0, 1);
    CHECK_SLICE(req.path, "/");
    CHECK_SLICE(req.query, "q");
    CHECK_INT(parse("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET http://u@a/x HTTP/1.1\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET http://a/x#f HTTP/1.1\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("GET /x#f HTTP/1.1\r\nHost: a\r\n\r\n"), -400);
    /* asterisk-form is for OPTIONS only */
    CHECK_INT(parse("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), -400);
    CHECK_INT(parse("HEAD * HTTP/1.1\r\nHost: a\r\n\r\n"), -400);
    /* empty lines before the request line */
    const char *lead = "\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK_INT(parse_in_place(lead), strlen(lead));
    CHECK_INT(req.head_len, strlen(lead));
    CHECK_SLICE(req.path, "/x");
    CHECK_INT(parse("\r\n"), 0);
    CHECK_INT(parse("\r\n\r"), 0);
    CHECK_INT(parse("\r\nGET /x HTTP/1.1\r\nHost: a\r\n"), 0);
    CHECK_INT(parse("\r\n\rGET /x HTTP/1.1\r\nHost: a\r\n\r\n"), -400);
    char many[300];
    for (size_t i = 0; i < sizeof many; i += 2)
        memcpy(many + i, "\r\n", 2);
    CHECK_INT(http_parse_request(many, sizeof many, &limits, &req), -431);
    /* the empty lines a connection drops between requests: whole CRLFs only */
    CHECK_INT(http_empty_lines("", 0), 0);
    CHECK_INT(http_empty_lines("\r\n", 2), 2);
    CHECK_INT(http_empty_lines("\r\n\r\n", 4), 4);
    CHECK_INT(http_empty_lines("\r\n\r", 3), 2);
    CHECK_INT(http_empty_lines("\r\nGET", 5), 2);
    CHECK_INT(http_empty_lines("\n\r\n", 3), 0);
    CHECK_INT(http_empty_lines("GET /x", 6), 0);
    CHECK_INT(http_empty_lines(many, sizeof many), sizeof many);
    /* Host */
    static const char *const good_hosts[] = {"a",
                                             "a:1",
                                             "a:",
                                             "127.0.0.1:3000",
                                             "[::1]:80",
                                             "[2001:db8::1]",
                                             "xn--bcher-kva.example",
                                             "a%41b",
                                             "a-b_c~d!$&'()*+,;=",
                                             ""};
    for (size_t i = 0; i < sizeof good_hosts / sizeof good_hosts[0]; i++) {
        char text[200];
        snprintf(text, sizeof text, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", good_hosts[i]);
        int rc = parse(text);
        if (rc <= 0) fprintf(stderr, "  host '%s': %d\n", good_hosts[i], rc);
        CHECK(rc > 0);
    }
    static const char *const bad_hosts[] = {"a b/c@@", "a/b",  "u@a",  "a:b", "a:123456",
                                            "[::1",    "[]",   "[x]",  "a%4", "a%zz",
                                            "a\"b",    "a\\b", "a:1:2"};
    for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++) {
        char text[200];
        snprintf(text, sizeof text, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", bad_hosts[i]);
        int rc = parse(text);
        if (rc != -400) fprintf(stderr, "  host '%s': %d\n", bad_hosts[i], rc);
        CHECK(rc == -400);
    }
    /* Transfer-Encoding: chunked, alone and last; anything else refused */
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n") > 0, 1);
    CHECK_INT(req.chunked, 1);
    CHECK_INT(req.content_length, -1);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n") > 0, 1);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
              -501);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n"),
              -501);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
              -400);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), -400);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
              -400);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n"), -400);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n"), -400);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chun ked\r\n\r\n"), -400);
    CHECK_INT(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n"), -400);
    CHECK_INT(parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), -400);
}

/* Decodes body (a chunked body, maybe followed by more bytes) fed in two parts split at cut;
 * returns the final decode result and leaves the decoded body in out. */
static int decode_split(const char *body, size_t len, size_t cut, http_chunked_t *d, char *out)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, body, len);
    http_chunked_init(d);
    int rc = http_chunked_decode(d, copy, cut, &limits);
    if (rc == 0) rc = http_chunked_decode(d, copy, len, &limits);
    if (rc == 1) memcpy(out, copy, d->body_len);
    free(copy);
    return rc;
}

static void test_chunked(void)
{
    static const char body[] = "5\r\nhello\r\n1;ext=\"v\" ; e2\r\n,\r\n6 \r\n world\r\n"
                               "0\r\nTrailer: x\r\n\r\nGET /next";
    const size_t framed = sizeof(body) - 1 - strlen("GET /next");
    int every_split_ok = 1;
    for (size_t cut = 0; cut <= sizeof(body) - 1; cut++) {
        http_chunked_t d;
        char out[64];
        int rc = decode_split(body, sizeof(body) - 1, cut, &d, out);
        if (rc != 1 || d.consumed != framed || d.body_len != 12 ||
            memcmp(out, "hello, world", 12)) {
            fprintf(stderr, "split at %zu: rc %d consumed %zu body %zu\n", cut, rc, d.consumed,
                    d.body_len);
            every_split_ok = 0;
        }
        /* every proper prefix of the framing asks for more */
        if (cut < framed) {
            http_chunked_t p;
            http_chunked_init(&p);
            char *copy = malloc(cut ? cut : 1);
            memcpy(copy, body, cut);
            if (http_chunked_decode(&p, copy, cut, &limits) != 0) every_split_ok = 0;
            free(copy);
        }
    }
    CHECK(every_split_ok);

    /* fed one byte at a time */
    {
        char copy[sizeof body];
        memcpy(copy, body, sizeof body);
        http_chunked_t d;
        http_chunked_init(&d);
        int rc = 0;
        for (size_t n = 1; n <= sizeof(body) - 1 && rc == 0; n++)
            rc = http_chunked_decode(&d, copy, n, &limits);
        CHECK_INT(rc, 1);
        CHECK_INT(d.consumed, framed);
        CHECK_MEM(copy, d.body_len, "hello, world");
    }

    http_chunked_t d;
    char out[2048];
#define DECODE(text) decode_split((text), strlen(text), strlen(text), &d, out)
    CHECK_INT(DECODE("0\r\n\r\n"), 1);
    CHECK_INT(d.body_len, 0);
    CHECK_INT(DECODE("000\r\n\r\n"), 1);
    CHECK_INT(DECODE("A\r\n0123456789\r\n0\r\n\r\n"), 1);
    CHECK_INT(d.body_len, 10);
    /* malformed sizes */
    CHECK_INT(DECODE("\r\n"), -400);
    CHECK_INT(DECODE("-1\r\n"), -400);
    CHECK_INT(DECODE("+1\r\nx\r\n0\r\n\r\n"), -400);
    CHECK_INT(DECODE("0x1\r\nx\r\n0\r\n\r\n"), -400);
    CHECK_INT(DECODE("1 1\r\nx\r\n0\r\n\r\n"), -400);
    CHECK_INT(DECODE("g\r\n"), -400);
    CHECK_INT(DECODE("00000000000000001\r\nx\r\n0\r\n\r\n"), -400); /* 17 digits */
    CHECK_INT(DECODE("0000000000000001\r\nx\r\n0\r\n\r\n"), 1);
    CHECK_INT(DECODE("ffffffffffffffff\r\n"), -413);
    CHECK_INT(DECODE("1\nx\r\n0\r\n\r\n"), -400);
    CHECK_INT(DECODE("1\rx"), -400);
    CHECK_INT(DECODE("1\r\nxy\r\n"), -400);                /* data longer than its size */
    CHECK_INT(DECODE("1\r\nx\n0\r\n\r\n"), -400);          /* bare LF after data */
    CHECK_INT(DECODE("1;\001\r\n"), -400);                 /* control byte in an extension */
    CHECK_INT(DECODE("0\r\nbad trailer\r\n\r\n") == 1, 1); /* shape only: a name first */
    CHECK_INT(DECODE("0\r\n:x\r\n\r\n"), -400);
    CHECK_INT(DECODE("0\r\nX: \001\r\n\r\n"), -400);
    CHECK_INT(DECODE("0\r\n\r\r"), -400);
    /* limits: the decoded body (1000 here), then the framing (256) */
    char text[2048];
    int n = snprintf(text, sizeof text, "3e8\r\n%1000s\r\n0\r\n\r\n", "");
    CHECK_INT(decode_split(text, (size_t)n, (size_t)n, &d, out), 1);
    CHECK_INT(d.body_len, 1000);
    n = snprintf(text, sizeof text, "3e9\r\n%1001s\r\n0\r\n\r\n", "");
    CHECK_INT(decode_split(text, (size_t)n, 3, &d, out), -413); /* refused at the size */
    n = snprintf(text, sizeof text, "3e8\r\n%1000s\r\n1\r\nx\r\n0\r\n\r\n", "");
    CHECK_INT(decode_split(text, (size_t)n, (size_t)n, &d, out), -413);
    size_t len = 0;
    for (int i = 0; i < 60; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "1\r\nx\r\n");
    len += (size_t)snprintf(text + len, sizeof text - len, "0\r\n\r\n");
    CHECK_INT(decode_split(text, len, len, &d, out), -413); /* 60 x 5 bytes of framing > 256 */
#undef DECODE
}

int main(void)
{
    test_get();
    test_post();
    test_keep_alive();
    test_partial();
    test_rfc9112();
    test_chunked();
    test_errors();
    test_limits();
    test_pipelined();
    test_response();
    test_reasons();
    return test_report("http");
}
