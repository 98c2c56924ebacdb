/* test_db_errors.c: unit tests for server/db_errors (the one table from a failed statement to
 * its answer), by pool error, kind of route and shutdown; a request whose host writes into a
 * buffer stands for the connection.  The SQLSTATE rules need a result from PostgreSQL: the
 * integration tests (test_server_orders, test_server_faults) cover them. */
#include "db_errors.h"
#include "log.h"
#include "test.h"

static int host_stopping_now;
static buf_t host_out;
static int host_status;

static buf_t *host_begin(req_t *req, http_response_t *resp, int status, const char *content_type,
                         const char *extra_headers)
{
    buf_reset(&host_out);
    if (extra_headers) buf_append_cstr(&host_out, extra_headers);
    resp->body_start = host_out.len;
    return &host_out;
}

static void host_reserve(req_t *req, size_t bytes) {}

static void host_end(req_t *req, http_response_t *resp, int status)
{
    host_status = status;
}

static int host_submit(req_t *req)
{
    return POOL_ERR_UNAVAILABLE;
}

static int host_stopping(req_t *req)
{
    return host_stopping_now;
}

static void host_render_metrics(req_t *req, buf_t *out) {}

static void host_write_instances(req_t *req, buf_t *out) {}

static const req_host_t HOST = {
    .begin = host_begin,
    .reserve = host_reserve,
    .end = host_end,
    .submit = host_submit,
    .write_instances = host_write_instances,
    .stopping = host_stopping,
    .render_metrics = host_render_metrics,
};

/* The answer for (kind, error) while the worker stops (stopping) or not. */
static void check_answer(enum db_route_kind kind, int error, int stopping, int want_status,
                         const char *want_message, int want_retry_after, int line)
{
    req_t req = {.host = &HOST};
    snprintf(req.log_line, sizeof req.log_line, "GET /test");
    host_stopping_now = stopping;
    db_error_answer_t a = db_error_find(&req, kind, error, NULL, "reason");
    if (a.status != want_status || strcmp(a.message, want_message) != 0 ||
        a.retry_after != want_retry_after)
        fprintf(stderr, "line %d: kind %d error %d stopping %d: %d \"%s\" %d\n", line, kind, error,
                stopping, a.status, a.message, a.retry_after);
    CHECK_INT(a.status, want_status);
    CHECK_STR(a.message, want_message);
    CHECK_INT(a.retry_after, want_retry_after);
}
#define CHECK_ANSWER(kind, error, stopping, status, message, retry)                                \
    check_answer((kind), (error), (stopping), (status), (message), (retry), __LINE__)

int main(void)
{
    const char *busy = pool_strerror(POOL_ERR_TIMEOUT), *down = pool_strerror(POOL_ERR_UNAVAILABLE),
               *lost = pool_strerror(POOL_ERR_CONNECTION),
               *shutdown = pool_strerror(POOL_ERR_SHUTDOWN),
               *failed = pool_strerror(POOL_ERR_QUERY);
    log_set_name("test_db_errors");

    /* reads: 503 with Retry-After when the statement did not run or may be retried */
    CHECK_ANSWER(DB_ROUTE_READ, POOL_ERR_TIMEOUT, 0, 503, busy, 1);
    CHECK_ANSWER(DB_ROUTE_READ, POOL_ERR_UNAVAILABLE, 0, 503, down, 1);
    CHECK_ANSWER(DB_ROUTE_READ, POOL_ERR_SHUTDOWN, 0, 503, shutdown, 1);
    CHECK_ANSWER(DB_ROUTE_READ, POOL_ERR_CONNECTION, 0, 503, lost, 1);
    CHECK_ANSWER(DB_ROUTE_READ, POOL_ERR_NOT_SENT, 0, 503, lost, 1);
    CHECK_ANSWER(DB_ROUTE_READ, POOL_ERR_CONNECTION, 1, 503, shutdown, 1); /* cut short */
    CHECK_ANSWER(DB_ROUTE_READ, POOL_ERR_QUERY, 0, 500, "internal error", 0);

    /* orders: a write whose connection broke after it was sent may have been committed */
    CHECK_ANSWER(DB_ROUTE_ORDER, POOL_ERR_CONNECTION, 0, 500, "outcome unknown", 0);
    CHECK_ANSWER(DB_ROUTE_ORDER, POOL_ERR_CONNECTION, 1, 500, "outcome unknown", 0);
    CHECK_ANSWER(DB_ROUTE_ORDER_KEYED, POOL_ERR_CONNECTION, 0, 500, "outcome unknown", 0);
    CHECK_ANSWER(DB_ROUTE_ORDER, POOL_ERR_NOT_SENT, 0, 503, lost, 1); /* it did not run */
    CHECK_ANSWER(DB_ROUTE_ORDER, POOL_ERR_NOT_SENT, 1, 503, shutdown, 1);
    CHECK_ANSWER(DB_ROUTE_ORDER_KEYED, POOL_ERR_TIMEOUT, 0, 503, busy, 1);
    CHECK_ANSWER(DB_ROUTE_ORDER, POOL_ERR_QUERY, 0, 500, "internal error", 0);

    /* /health 500 and /health/ready 503, the pool's reason, no Retry-After, even when stopping */
    CHECK_ANSWER(DB_ROUTE_HEALTH, POOL_ERR_UNAVAILABLE, 0, 500, down, 0);
    CHECK_ANSWER(DB_ROUTE_READY, POOL_ERR_UNAVAILABLE, 0, 503, down, 0);
    CHECK_ANSWER(DB_ROUTE_HEALTH, POOL_ERR_QUERY, 0, 500, failed, 0);
    CHECK_ANSWER(DB_ROUTE_READY, POOL_ERR_NOT_SENT, 0, 503, lost, 0);
    CHECK_ANSWER(DB_ROUTE_HEALTH, POOL_ERR_CONNECTION, 1, 500, lost, 0);

    /* db_error_respond: the {"error": ...} body and the Retry-After header */
    req_t req = {.host = &HOST};
    host_stopping_now = 0;
    db_error_respond(&req, DB_ROUTE_READ, POOL_ERR_TIMEOUT, NULL, "reason");
    CHECK_INT(host_status, 503);
    buf_append_char(&host_out, 0);
    CHECK(strstr(host_out.data, "Retry-After: 1\r\n") == host_out.data);
    CHECK(strstr(host_out.data, busy) != NULL);
    buf_free(&host_out);
    return test_report("db_errors");
}
