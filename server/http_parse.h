/* http_parse.h: HTTP/1.1 request head parser and chunked body decoder (server side): pure, no
 * allocation, fuzzed (fuzz/fuzz_http_request.c).  Responses: http_write.h. */
#ifndef CATALOG_HTTP_PARSE_H
#define CATALOG_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "slice.h"

enum http_method {
    HTTP_METHOD_OTHER = 0, /* a valid token we do not know: the router answers 501 */
    HTTP_METHOD_GET,
    HTTP_METHOD_HEAD,
    HTTP_METHOD_POST,
    HTTP_METHOD_PUT,
    HTTP_METHOD_DELETE,
    HTTP_METHOD_PATCH,
    HTTP_METHOD_OPTIONS
};

typedef struct http_header {
    slice_t name;  /* field name as sent (compare with slice_eq_nocase) */
    slice_t value; /* field value, leading and trailing SP/HTAB trimmed; may be empty */
} http_header_t;

typedef struct http_limits {
    size_t max_request_line; /* bytes of the request line without CRLF; over -> 414 */
    size_t max_header_bytes; /* bytes of the whole head incl. request line; over -> 431 */
    unsigned max_headers;    /* header fields; over -> 431 (must be <= HTTP_MAX_HEADERS) */
    uint64_t max_body;       /* Content-Length above this -> 413 */
} http_limits_t;

#define HTTP_MAX_HEADERS 100

/* The server's default limits (HTTP_MAX_REQUEST_LINE, HTTP_MAX_HEADER_BYTES, HTTP_MAX_HEADERS,
 * HTTP_MAX_BODY_BYTES in server/config.c), also used when http_parse_request gets NULL. */
#define HTTP_DEFAULT_MAX_REQUEST_LINE 8192
#define HTTP_DEFAULT_MAX_HEADER_BYTES 16384
#define HTTP_DEFAULT_MAX_HEADERS HTTP_MAX_HEADERS
#define HTTP_DEFAULT_MAX_BODY 16384
extern const http_limits_t http_default_limits;

typedef struct http_request {
    enum http_method method;
    slice_t method_name;                     /* the method token as sent */
    slice_t target;                          /* request-target as sent */
    slice_t path;                            /* target up to '?' (not decoded) */
    slice_t query;                           /* after '?', len 0 if none */
    int version_minor;                       /* 0 or 1 */
    http_header_t headers[HTTP_MAX_HEADERS]; /* in the order sent */
    unsigned header_count;                   /* entries used in headers */
    slice_t authority;                       /* host[:port] of an absolute-form target */
    int64_t content_length;                  /* -1 when absent */
    int chunked;                             /* Transfer-Encoding: chunked (no Content-Length) */
    slice_t content_type;                    /* value of Content-Type, len 0 if absent */
    int keep_alive;      /* 1.1 default on unless "Connection: close"; 1.0 default off unless
                            "keep-alive" */
    int expect_continue; /* "Expect: 100-continue" (ignored in HTTP/1.0, RFC 9110 10.1.1) */
    size_t head_len;     /* bytes of request line + headers + final CRLF */
} http_request_t;

/* Parses one request head at the start of buf (len bytes). Pure, no allocation; slices point into
 * buf, so they are valid only while buf's bytes stay where they are.  limits may be NULL
 * (http_default_limits).
 * Returns head_len (> 0) when a whole head is present, 0 when more bytes are needed (and no limit
 * is exceeded yet), or a negative HTTP status when the request must be refused:
 * -400 malformed (including an invalid Host, "*" with another method than OPTIONS, and a
 * Transfer-Encoding with Content-Length, in HTTP/1.0, or whose final coding is not chunked),
 * -413 body too large, -414 request line too long, -431 headers too large or too many, -501 a
 * transfer coding other than chunked before it, -505 HTTP version not supported.  Targets may be
 * origin-form, absolute-form ("http://host/path": path and query are taken from it, authority
 * holds the host) or "*" (OPTIONS).  Empty lines before the request line are skipped (and
 * counted in head_len).  *req is filled only when the return is > 0; otherwise its contents are
 * unspecified. Bytes after head_len (a body, a pipelined request) are never looked at. */
int http_parse_request(const char *buf, size_t len, const http_limits_t *limits,
                       http_request_t *req);

/* The bytes of the whole empty lines (CRLF) at the start of buf, which RFC 9112 2.2 says a server
 * ignores before a request line (some clients send one after a body).  0 when there are none. */
size_t http_empty_lines(const char *buf, size_t len);

/* RFC 3986 uri-host [":" port] (an IP literal in brackets or a reg-name; port 0-5 digits), as a
 * Host field or the authority of an absolute-form target must be.  Empty is valid. */
int http_host_valid(slice_t host);

/* A chunked request body (RFC 9112 7.1), decoded in place as its bytes arrive: the decoded data
 * is moved to the front of the bytes after the head (it can never overtake the framing it came
 * from), so a body is copied at most once and never allocated.  Chunk extensions and trailer
 * fields are checked for shape and ignored. */
typedef struct http_chunked {
    int state;
    uint64_t chunk_left;  /* data bytes left in the current chunk */
    size_t consumed;      /* bytes of framed input taken so far */
    size_t body_len;      /* decoded bytes, at the front of the input */
    size_t framing;       /* bytes that were not data: sizes, extensions, CRLFs, trailers */
    unsigned size_digits; /* of the size being read */
    int in_ext;           /* past the first ';' of the size line */
} http_chunked_t;

void http_chunked_init(http_chunked_t *d);
/* Goes on decoding data[0..len) (the bytes after the head so far, the same buffer each call,
 * possibly longer).  Returns 1 when the body is complete (d->consumed framed bytes are the whole
 * body; d->body_len decoded bytes are at data[0..]), 0 when more bytes are needed, or a negative
 * status: -400 malformed (a size that is not hex or over 16 digits, a bad extension, a missing
 * CRLF, a bad trailer line), -413 the decoded body over limits->max_body or the framing over
 * limits->max_header_bytes.  Bytes after the body are never looked at. */
int http_chunked_decode(http_chunked_t *d, char *data, size_t len, const http_limits_t *limits);

/* Looks up the first header named name (case-insensitive); returns its value or a slice with base
 * NULL when absent (a present but empty header has a non-NULL base and len 0). */
slice_t http_request_header(const http_request_t *req, slice_t name);

#endif
