/* db_errors.h: what every route answers when its statement fails: one table from (pool error,
 * SQLSTATE, kind of route) to (status, message, Retry-After), and the log line that goes with
 * it. */
#ifndef CATALOG_DB_ERRORS_H
#define CATALOG_DB_ERRORS_H

#include <libpq-fe.h>

#include "request.h"

/* The kinds of route whose failures are answered differently. */
enum db_route_kind {
    DB_ROUTE_READ,        /* GET /products, /products/:id, /report: trying again is safe */
    DB_ROUTE_ORDER,       /* POST /orders: a write whose outcome may be unknown */
    DB_ROUTE_ORDER_KEYED, /* POST /orders with an Idempotency-Key: also needs the schema's
                           * function place_order_with_key */
    DB_ROUTE_HEALTH,      /* GET /health: 500, in /health's own body */
    DB_ROUTE_READY,       /* GET /health/ready: 503 (take the server out), in /health's body */
};

/* The answer to one failure. */
typedef struct db_error_answer {
    int status;          /* HTTP status */
    const char *message; /* the body's message (static text); NULL: the schema check's */
    int retry_after;     /* 1: send Retry-After: 1 */
} db_error_answer_t;

/* Finds the answer to a failed statement of a route of this kind (error and res as the pool's
 * callback got them, message its reason for the log) and writes the log line the table asks
 * for, naming req's request line.  Never fails. */
db_error_answer_t db_error_find(req_t *req, enum db_route_kind kind, int error, const PGresult *res,
                                const char *message);

/* Answers req with db_error_find's answer in the {"error": message} shape.  For every route
 * but /health and /health/ready, which write their own body. */
void db_error_respond(req_t *req, enum db_route_kind kind, int error, const PGresult *res,
                      const char *message);

/* Answers 503 with what the schema check found missing: what POST /orders with an
 * Idempotency-Key needs is not in the database (`catalog-db migrate` has not run); nothing is
 * broken in the server. */
void db_error_respond_schema_missing(req_t *req);

#endif
