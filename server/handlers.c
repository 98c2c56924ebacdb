/* handlers.c: what each route does: its input checked, its statement run, its answer written
 * (the SQL is in sql/statements.sql, the JSON in rows.c, the failures in db_errors.c). */
#include "handlers.h"

#include <string.h>
#include <time.h>

#include "db_errors.h"
#include "json.h"
#include "log.h"
#include "number.h"
#include "order.h"
#include "rows.h"
#include "schema.h"
#include "statements.h"
#include "url.h"

/* Longest Idempotency-Key accepted (order_idempotency_keys.idempotency_key is varchar(255)). */
#define IDEMPOTENCY_KEY_MAX 255

/* Runs statement st for the request; fn answers it.  Always answers. */
static void submit(req_t *req, enum statement st, int param_count, pool_result_fn fn)
{
    req_submit(req, (unsigned)st, param_count, statements_binary(st), statements_read(st), fn);
}

/* ---- database callbacks: the answer of each route ------------------------------------------ */

static void on_products(pool_query_t *q, PGresult *res, int error, const char *message)
{
    req_t *req = q->user;
    if (error) {
        db_error_respond(req, DB_ROUTE_READ, error, res, message);
        return;
    }
    /* A category listing has the category in req->category (with its NUL). */
    int listing = q->statement == ST_LIST_CATEGORY;
    if (!rows_product_result_ok(res, !listing)) {
        log_error("%s: products result not in the expected binary shape", req->log_line);
        req_error(req, 500, "internal error", NULL);
        return;
    }
    http_response_t resp;
    req_reserve_output(req, (size_t)PQntuples(res) * 400 + 512);
    buf_t *out = req_begin(req, &resp, 200, NULL);
    if (listing)
        rows_write_products(out, res, req->category.data, req->category.len - 1);
    else
        rows_write_products(out, res, NULL, 0);
    req_end(req, &resp, 200);
}

/* For the routes about one product: answers a failure or an empty result (404) and returns 1,
 * or returns 0 when the row is there to be written. */
static int answered_without_row(req_t *req, enum db_route_kind kind, const PGresult *res, int error,
                                const char *message)
{
    if (error) {
        db_error_respond(req, kind, error, res, message);
        return 1;
    }
    if (PQntuples(res) == 0) {
        req_error(req, 404, "Product not found", NULL);
        return 1;
    }
    return 0;
}

static void on_product(pool_query_t *q, PGresult *res, int error, const char *message)
{
    req_t *req = q->user;
    if (answered_without_row(req, DB_ROUTE_READ, res, error, message)) return;
    if (!rows_product_result_ok(res, 1)) {
        log_error("%s: product result not in the expected binary shape", req->log_line);
        req_error(req, 500, "internal error", NULL);
        return;
    }
    http_response_t resp;
    rows_write_product(req_begin(req, &resp, 200, NULL), res);
    req_end(req, &resp, 200);
}

static void on_report(pool_query_t *q, PGresult *res, int error, const char *message)
{
    req_t *req = q->user;
    if (error) {
        db_error_respond(req, DB_ROUTE_READ, error, res, message);
        return;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    http_response_t resp;
    rows_write_report(req_begin(req, &resp, 200, NULL), res,
                      (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    req_end(req, &resp, 200);
}

static void on_order(pool_query_t *q, PGresult *res, int error, const char *message)
{
    req_t *req = q->user;
    if (answered_without_row(req, DB_ROUTE_ORDER, res, error, message)) return;
    http_response_t resp;
    rows_write_order(req_begin(req, &resp, 201, NULL), res, 0);
    req_end(req, &resp, 201);
}

static void on_order_with_key(pool_query_t *q, PGresult *res, int error, const char *message)
{
    req_t *req = q->user;
    if (answered_without_row(req, DB_ROUTE_ORDER_KEYED, res, error, message)) return;
    const char *outcome = PQgetvalue(res, 0, 0);
    if (strcmp(outcome, "in_progress") == 0) {
        req_error(req, 409, "a request with this Idempotency-Key is still being processed",
                  "Retry-After: 1\r\n");
        return;
    }
    if (strcmp(outcome, "mismatch") == 0) {
        req_error(req, 422, "Idempotency-Key reused with a different body", NULL);
        return;
    }
    /* created, or replayed: the first answer again, marked as such (as Stripe does). */
    int replayed = strcmp(outcome, "replayed") == 0;
    http_response_t resp;
    rows_write_order(req_begin(req, &resp, 201, replayed ? "Idempotent-Replayed: true\r\n" : NULL),
                     res, 1);
    req_end(req, &resp, 201);
}

static void on_health(pool_query_t *q, PGresult *res, int error, const char *message)
{
    req_t *req = q->user;
    int ready = req->route == ROUTE_HEALTH_READY;
    http_response_t resp;
    if (error) {
        db_error_answer_t answer =
            db_error_find(req, ready ? DB_ROUTE_READY : DB_ROUTE_HEALTH, error, res, message);
        buf_t *out = req_begin(req, &resp, answer.status, NULL);
        buf_append_cstr(out, "{\"status\":\"error\",\"message\":");
        json_write_cstr(out, answer.message);
        buf_append_char(out, '}');
        req_end(req, &resp, answer.status);
        return;
    }
    char missing[768];
    /* still ready with a schema missing: reads work; the body says what the check found */
    int schema_note = ready && schema_missing(missing, sizeof missing);
    buf_t *out = req_begin(req, &resp, 200, NULL);
    rows_write_health_open(out, ready, req->server_id, res);
    req_write_instances(req, out); /* with DB_READ_HOSTS only */
    rows_write_health_close(out, schema_note ? missing : NULL);
    req_end(req, &resp, 200);
}

/* ---- answered at once ---------------------------------------------------------------------- */

static void respond_live(req_t *req)
{
    http_response_t resp;
    buf_t *out = req_begin(req, &resp, 200, NULL);
    buf_append_cstr(out, "{\"status\":\"ok\",\"server\":");
    json_write_cstr(out, req->server_id);
    buf_append_char(out, '}');
    req_end(req, &resp, 200);
}

static void respond_metrics(req_t *req)
{
    http_response_t resp;
    buf_t *out = req_begin_as(req, &resp, 200, "text/plain; version=0.0.4; charset=utf-8", NULL);
    req_render_metrics(req, out);
    req_end(req, &resp, 200);
}

/* ---- input: each route's checks, then its statement ---------------------------------------- */

/* Content-Type must be application/json, parameters (charset) allowed. */
static int is_json_content_type(slice_t ct)
{
    static const char want[] = "application/json";
    size_t n = sizeof want - 1;
    if (ct.len < n || !slice_eq_nocase(slice_make(ct.base, n), slice_make(want, n))) return 0;
    return ct.len == n || ct.base[n] == ';' || ct.base[n] == ' ' || ct.base[n] == '\t';
}

/* Idempotency-Key (IETF httpapi draft; docs/api.md, POST /orders: 1 to 255 printable ASCII
 * characters): copies the key into req->idempotency_key as a C string.  Returns 1 with a key, 0
 * without one, or -1 after answering a 400. */
static int take_idempotency_key(req_t *req, const http_request_t *http)
{
    static const char name[] = "Idempotency-Key";
    const http_header_t *found = NULL;
    for (unsigned i = 0; i < http->header_count; i++) {
        if (!slice_eq_nocase(http->headers[i].name, slice_make(name, sizeof name - 1))) continue;
        if (found) {
            req_error(req, 400, "more than one Idempotency-Key header", NULL);
            return -1;
        }
        found = &http->headers[i];
    }
    if (!found) return 0;
    slice_t key = found->value;
    int valid = key.len >= 1 && key.len <= IDEMPOTENCY_KEY_MAX;
    for (size_t i = 0; valid && i < key.len; i++)
        valid = key.base[i] >= 0x20 && key.base[i] <= 0x7e;
    if (!valid) {
        req_error(req, 400, "Idempotency-Key must be 1 to 255 printable ASCII characters", NULL);
        return -1;
    }
    buf_reset(&req->idempotency_key);
    buf_append(&req->idempotency_key, key.base, key.len);
    buf_append_char(&req->idempotency_key, 0);
    return 1;
}

static void handle_order(req_t *req, const http_request_t *http, slice_t body)
{
    if (!is_json_content_type(http->content_type)) {
        req_error(req, 415, "Content-Type must be application/json", NULL);
        return;
    }
    order_request_t order;
    char err[256];
    if (order_parse_request(body.base, body.len, &order, err, sizeof err) < 0) {
        req_error(req, 400, err, NULL);
        return;
    }
    int keyed = take_idempotency_key(req, http);
    if (keyed < 0) return;
    req_set_product_id(req, order.product_id);
    req_set_quantity(req, order.quantity);
    req->query.params[0] = req->product_id_text;
    req->query.params[1] = req->quantity_text;
    if (keyed) {
        if (schema_keyed_orders_missing()) {
            db_error_respond_schema_missing(req);
            return;
        }
        req->query.params[2] = req->idempotency_key.data;
        submit(req, ST_INSERT_ORDER_WITH_KEY, 3, on_order_with_key);
        return;
    }
    submit(req, ST_INSERT_ORDER, 2, on_order);
}

static void handle_products(req_t *req, const http_request_t *http)
{
    if (http->query.len) {
        int found = url_query_get(http->query, "category", &req->category);
        if (found < 0) {
            req_error(req, 400, "invalid percent-encoding in the query string", NULL);
            return;
        }
        if (found) {
            /* PostgreSQL refuses both in a text parameter (SQLSTATE 22021), after a round
             * trip and as a server error: they are the client's mistake, answered here. */
            if (memchr(req->category.data, 0, req->category.len)) {
                req_error(req, 400, "category must not contain NUL bytes", NULL);
                return;
            }
            if (!json_utf8_valid(req->category.data, req->category.len)) {
                req_error(req, 400, "category must be UTF-8 (after percent-decoding)", NULL);
                return;
            }
            buf_append_char(&req->category, 0); /* libpq wants a C string */
            req->query.params[0] = req->category.data;
            submit(req, ST_LIST_CATEGORY, 1, on_products);
            return;
        }
    }
    submit(req, ST_LIST_CHEAPEST, 0, on_products);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

void handlers_dispatch(req_t *req, const http_request_t *http, slice_t body)
{
    slice_t id = {0};
    req->route = route_match(http->path, &id);
    /* A method the server does not implement anywhere (RFC 9110 9.1, "FOO"): 501 on any path.
     * The request's framing was understood (its body, if any, was read), so the connection
     * stays.  A method it knows but the route does not take is 405 below. */
    if (http->method == HTTP_METHOD_OTHER) {
        req_error(req, 501, "Method not implemented", NULL);
        return;
    }
    if (req->route == ROUTE_UNMATCHED) {
        req_error(req, 404, "Not found", NULL);
        return;
    }
    int is_get = http->method == HTTP_METHOD_GET || http->method == HTTP_METHOD_HEAD;
    if (req->route == ROUTE_ORDERS) {
        if (http->method != HTTP_METHOD_POST) {
            req_error(req, 405, "Method not allowed", "Allow: POST\r\n");
            return;
        }
        handle_order(req, http, body);
        return;
    }
    if (!is_get) {
        req_error(req, 405, "Method not allowed", "Allow: GET, HEAD\r\n");
        return;
    }
    switch (req->route) {
    case ROUTE_HEALTH:
    case ROUTE_HEALTH_READY:
        submit(req, ST_COUNT_PRODUCTS, 0, on_health);
        return;
    case ROUTE_HEALTH_LIVE:
        respond_live(req);
        return;
    case ROUTE_PRODUCTS:
        handle_products(req, http);
        return;
    case ROUTE_PRODUCT: {
        int32_t value;
        if (number_parse_i32(id.base, id.len, &value) < 0) {
            req_error(req, 400, "Invalid product ID", NULL);
            return;
        }
        req_set_product_id(req, value);
        req->query.params[0] = req->product_id_text;
        submit(req, ST_PRODUCT, 1, on_product);
        return;
    }
    case ROUTE_REPORT:
        submit(req, ST_REPORT, 0, on_report);
        return;
    case ROUTE_METRICS:
        respond_metrics(req);
        return;
    case ROUTE_ORDERS:    /* answered above */
    case ROUTE_UNMATCHED: /* answered above */
        return;
    }
}
