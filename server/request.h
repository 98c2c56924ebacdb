/* request.h: one HTTP request being answered: its route, method, typed parameters and database
 * query, and the calls a handler answers it with (req_begin, req_end, req_error). */
#ifndef CATALOG_REQUEST_H
#define CATALOG_REQUEST_H

#include <stdint.h>

#include "buf.h"
#include "http_parse.h"
#include "http_write.h"
#include "pool.h"
#include "replicas.h"
#include "route_table.h"

typedef struct req req_t;

/* What a request needs from the connection that carries it, and the only way a handler reaches
 * that connection: conn.c provides one (its connections' requests all point to it), so the
 * handlers never see a connection and the dependency runs one way, connection to request. */
typedef struct req_host {
    /* Writes the response head into the connection's output and returns the buffer to append
     * the body to. */
    buf_t *(*begin)(req_t *req, http_response_t *resp, int status, const char *content_type,
                    const char *extra_headers);
    /* Makes room for a large response before begin. */
    void (*reserve)(req_t *req, size_t bytes);
    /* Finishes the response, counts it, and goes on with the connection's next request. */
    void (*end)(req_t *req, http_response_t *resp, int status);
    /* Submits req->query from the connection's worker (a read, req->read, over the read
     * replicas and the primary; anything else on the primary) and marks the connection as
     * waiting on the database.  Returns 0, or the pool_error that refused it (then nothing
     * waits). */
    int (*submit)(req_t *req);
    /* Appends the database instances this server uses to /health's body (DB_READ_HOSTS only;
     * nothing without replicas). */
    void (*write_instances)(req_t *req, buf_t *out);
    /* 1 while the connection's worker shuts down. */
    int (*stopping)(req_t *req);
    /* Renders /metrics for the whole process into out. */
    void (*render_metrics)(req_t *req, buf_t *out);
} req_host_t;

/* Set by the connection when a request starts (req_start), read by the handlers. */
struct req {
    const req_host_t *host; /* the connection's side (set once, when it opens) */
    const char *server_id;  /* SERVER_ID, for /health (set once) */
    route_t route;          /* set by the dispatch; ROUTE_UNMATCHED until then */
    enum method_label method_label;
    int head_only;      /* HEAD: send the head of the GET response */
    int keep_alive;     /* keep the connection after this response */
    uint64_t start_ns;  /* when its head was complete */
    char log_line[192]; /* "METHOD target" for the access and error logs */
    /* typed parameters, valid for the route that sets them */
    int32_t product_id;       /* GET /products/:id, POST /orders */
    int32_t quantity;         /* POST /orders */
    buf_t category;           /* GET /products?category=, decoded, with a NUL after it */
    buf_t idempotency_key;    /* POST /orders' Idempotency-Key, with a NUL after it */
    pool_query_t query;       /* its database query, if any */
    int read;                 /* the query only reads: a replica may answer it */
    replicas_read_t replica;  /* where a read runs (server/replicas.h) */
    char product_id_text[12]; /* the decimal text libpq sends for product_id */
    char quantity_text[12];   /* ... and for quantity */
};

/* Starts the request whose head is in http (the connection has it complete): method, HEAD,
 * keep-alive, start time and log line; route ROUTE_UNMATCHED.  Keeps no pointer into http. */
void req_start(req_t *req, const http_request_t *http);
/* Starts a request that could not be parsed (answered with status and closed): route
 * ROUTE_UNMATCHED, method OTHER, no keep-alive, log line "-". */
void req_start_rejected(req_t *req);
/* Frees the parameters' buffers (at the connection's close). */
void req_free(req_t *req);

/* Starts the response: writes its head and returns the buffer to append the JSON body to.
 * Finish with req_end. */
buf_t *req_begin(req_t *req, http_response_t *resp, int status, const char *extra_headers);
/* The same with another Content-Type than JSON (/metrics). */
buf_t *req_begin_as(req_t *req, http_response_t *resp, int status, const char *content_type,
                    const char *extra_headers);
/* Makes room for a large response before req_begin (the worker's parked buffer is reused). */
void req_reserve_output(req_t *req, size_t bytes);
/* Finishes the response; the request is answered. */
void req_end(req_t *req, http_response_t *resp, int status);
/* A whole response with a {"error": message} body. */
void req_error(req_t *req, int status, const char *message, const char *extra_headers);

/* 1 while the server shuts down (the worker answering req stops). */
int req_stopping(req_t *req);
/* Renders /metrics for the whole process into out. */
void req_render_metrics(req_t *req, buf_t *out);

/* Runs prepared statement `statement` with req->query.params[0..param_count) (binary: the
 * result columns in binary format; read: it only reads, so a read replica may run it); fn
 * answers the request.  When the pool refuses it at once
 * fn is called before this returns, with res NULL and the pool error, as a later failure
 * would be.  Always answers. */
void req_submit(req_t *req, unsigned statement, int param_count, int binary, int read,
                pool_result_fn fn);
/* Appends the database instances this server uses to /health's body (with DB_READ_HOSTS). */
void req_write_instances(req_t *req, buf_t *out);

/* Sets product_id and its text (req->product_id_text). */
void req_set_product_id(req_t *req, int32_t product_id);
/* Sets quantity and its text (req->quantity_text). */
void req_set_quantity(req_t *req, int32_t quantity);

#endif
