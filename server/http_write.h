/* http_write.h: HTTP/1.1 response head writer (server side); requests: http_parse.h. */
#ifndef CATALOG_HTTP_WRITE_H
#define CATALOG_HTTP_WRITE_H

#include <stddef.h>

#include "buf.h"

/* The reason phrase of status: "OK", "Not Found", ...; "Unknown" for others.  Static storage. */
const char *http_status_reason(int status);

/* Response writing: the body is written straight into the output buffer after the head, then the
 * Content-Length is patched in place (it is written as a fixed-width, space-padded field, which
 * RFC 9110's OWS allows), so a body is never copied twice.  Offsets, not pointers, so the buffer
 * may grow while the body is written. */
typedef struct http_response {
    size_t start;        /* offset in out of the status line */
    size_t length_field; /* offset of the padded Content-Length digits; 0 when the status takes
                            no Content-Length (1xx, 204, 304) */
    size_t body_start;   /* offset of the first body byte */
} http_response_t;

/* Width of the space-padded Content-Length field (bodies up to 9,999,999,999 bytes are patched in
 * place; longer ones, never seen in practice, shift the body). */
#define HTTP_CONTENT_LENGTH_WIDTH 10

/* Appends the status line and headers: Content-Type (if non-NULL), Content-Length placeholder,
 * X-Server-Id (if server_id.len), Date (IMF-fixdate, cached per second per thread), Connection:
 * keep-alive|close, then extra_headers verbatim (each ending in CRLF, may be NULL), then CRLF.
 * status must be 100..999 (others are written as 500).  1xx, 204 and 304 responses get no
 * Content-Length (RFC 9110 8.6) and http_response_end drops any body written for them.
 * content_type, server_id and extra_headers must not contain bare CR/LF: they are trusted.
 * Cannot fail (buf aborts on out of memory). */
void http_response_begin(buf_t *out, http_response_t *resp, int status, const char *content_type,
                         slice_t server_id, int keep_alive, const char *extra_headers);

/* Patches Content-Length = out->len - body_start.  With head_only (HEAD requests), drops the body
 * bytes but keeps the length of the body a GET would have had.  Cannot fail. */
void http_response_end(buf_t *out, http_response_t *resp, int head_only);

#endif
