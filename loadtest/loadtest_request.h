/* loadtest_request.h: the load test's routes: "--path" specs parsed, request bytes built once. */
#ifndef CATALOG_LOADTEST_REQUEST_H
#define CATALOG_LOADTEST_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The scenario's routes (docs/api.md, Load test), walked in this order by every connection. */
#define LOADTEST_DEFAULT_PATHS                                                                     \
    {                                                                                              \
        "/products?category=electronics", "/products/1", "/report"                                 \
    }
#define LOADTEST_DEFAULT_PATH_COUNT 3

/* One route.  Zero-initialise, fill with loadtest_request_parse, release with
 * loadtest_request_free. */
typedef struct loadtest_request {
    char method[16]; /* "GET", "POST"... */
    char path[2048]; /* origin-form path with query, starts with '/' */
    buf_t body;      /* request body; empty for none */
    char name[256];  /* "GET /products/1", for tables (truncated for very long paths) */
    int is_head;     /* HEAD: the response has no body */
    buf_t bytes;     /* the whole request, built by loadtest_request_build */
} loadtest_request_t;

/* Parses a --path spec: "/products/1" (a GET), or "METHOD /path [body]", e.g.
 * "POST /orders {\"product_id\":1,\"quantity\":1}".  A body is sent as application/json.
 * prefix (may be NULL or "") is put before the path, for a base URL with a path.  Returns 0,
 * or -1 with a sentence in err; on -1 out holds nothing to free. */
int loadtest_request_parse(const char *spec, const char *prefix, loadtest_request_t *out, char *err,
                           size_t err_len);

/* Builds r->bytes: request line, Host (host, with the port unless it is 80; IPv6 in
 * brackets), User-Agent, Accept, "Connection: close" unless keep_alive, and Content-Type and
 * Content-Length when there is a body (or the method is POST, PUT or PATCH).  Can't fail. */
void loadtest_request_build(loadtest_request_t *r, const char *host, uint16_t port, int keep_alive);

/* Frees the body and bytes; accepts NULL. */
void loadtest_request_free(loadtest_request_t *r);

#endif
