/* http_client.h: incremental HTTP/1.1 response parser for clients (the load test). */
#ifndef CATALOG_HTTP_CLIENT_H
#define CATALOG_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Longest status or header line, and the longest header block, accepted. */
#define HTTP_CLIENT_LINE_MAX 8192
#define HTTP_CLIENT_HEADERS_MAX 65536
/* X-Server-Id values longer than this are truncated (the id is for tallies, not routing). */
#define HTTP_CLIENT_SERVER_ID_MAX 64

/* What http_client_feed and http_client_finish return. */
#define HTTP_CLIENT_INCOMPLETE 0 /* every byte consumed; feed more */
#define HTTP_CLIENT_COMPLETE 1   /* one whole response parsed; the rest is not its bytes */
#define HTTP_CLIENT_ERROR (-1)   /* malformed; `error` says why; the connection is unusable */

/* One response being parsed.  The caller allocates it (it holds a line buffer, about 8 KB,
 * used only when a line arrives split across reads) and calls http_client_init before each
 * response.  Nothing is allocated; nothing needs freeing.  The body is skipped, not kept. */
typedef struct http_client_response {
    /* Results: valid once the headers are parsed (state past the header block). */
    int status;             /* 100..999 */
    int version_minor;      /* HTTP/1.<minor>: 0 or 1 */
    int64_t content_length; /* Content-Length, -1 when absent */
    int chunked;            /* Transfer-Encoding: chunked */
    int keep_alive;         /* nonzero when the connection may carry another request after this */
    char server_id[HTTP_CLIENT_SERVER_ID_MAX]; /* X-Server-Id value (not NUL-terminated) */
    size_t server_id_len;                      /* 0 when the header is absent or empty */
    uint64_t body_bytes; /* body bytes seen (chunk payload only, for chunked) */
    const char *error;   /* static sentence when feed returned HTTP_CLIENT_ERROR */

    /* Parser state; private. */
    int state;                 /* see http_client.c */
    int head_request;          /* the request was HEAD: no body whatever the headers say */
    int connection_close;      /* Connection: close seen */
    int connection_keep_alive; /* Connection: keep-alive seen */
    uint64_t remaining;        /* body or chunk bytes still to skip */
    size_t header_bytes;       /* bytes of status line and headers so far */
    size_t line_len;           /* bytes held in line (a line split across feeds) */
    char line[HTTP_CLIENT_LINE_MAX];
} http_client_response_t;

/* Prepares r for the next response; head_request nonzero when it answers a HEAD request.
 * Can't fail. */
void http_client_init(http_client_response_t *r, int head_request);

/* Parses data[0..len), which continues what earlier calls were given.  Sets *consumed to
 * the bytes that belong to this response (all of len unless it returns COMPLETE).  Returns
 * HTTP_CLIENT_INCOMPLETE, HTTP_CLIENT_COMPLETE (status, keep_alive... are final; call
 * http_client_init before parsing the next one) or HTTP_CLIENT_ERROR (r->error says why;
 * feeding again returns the error again).  Interim 1xx responses (100 Continue) are skipped. */
int http_client_feed(http_client_response_t *r, const char *data, size_t len, size_t *consumed);

/* Tells the parser the peer closed the connection.  Returns HTTP_CLIENT_COMPLETE when the
 * response was delimited by the close (no Content-Length, not chunked), else
 * HTTP_CLIENT_ERROR with r->error set ("connection closed before the response ended"). */
int http_client_finish(http_client_response_t *r);

/* The X-Server-Id value as a slice into r (empty when absent). */
static inline slice_t http_client_server_id(const http_client_response_t *r)
{
    return slice_make(r->server_id, r->server_id_len);
}

#endif
