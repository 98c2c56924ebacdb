/* db_errors.c: every database failure of every route, mapped to one answer in one table. */
#include "db_errors.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "schema.h"

/* The log line a failure gets (each names the request line but LOG_HEALTH). */
enum db_log {
    LOG_NONE,
    LOG_LOST,            /* "<request>: <reason>" */
    LOG_CANCELLED,       /* statement_timeout cancelled it */
    LOG_FAILED,          /* the statement failed: SQLSTATE and PostgreSQL's first line */
    LOG_OUTCOME_UNKNOWN, /* a write lost its connection after it was sent */
    LOG_HEALTH,          /* "health: <PostgreSQL's first line>" */
};

/* The message of an answer. */
enum db_say {
    SAY_TEXT,           /* the rule's text */
    SAY_ERROR,          /* pool_strerror of the failure's own error */
    SAY_CONNECTION,     /* pool_strerror(POOL_ERR_CONNECTION) */
    SAY_SHUTDOWN,       /* pool_strerror(POOL_ERR_SHUTDOWN) */
    SAY_SCHEMA_MISSING, /* what the schema check found missing */
};

#define KIND(k) (1u << DB_ROUTE_##k)
#define WITH_STATEMENT (KIND(READ) | KIND(ORDER) | KIND(ORDER_KEYED))
#define ORDERS (KIND(ORDER) | KIND(ORDER_KEYED))
#define HEALTH (KIND(HEALTH) | KIND(READY))
#define ERR(e) (1u << POOL_ERR_##e)
#define ANY_ERROR (~0u)
#define RETRY 1

/* The rules, tried in order; the first that matches answers.  A rule matches a failure when the
 * route's kind and the pool error are in its sets, the SQLSTATE is its own (or it names none),
 * and, for a rule `stopping`, when the worker is shutting down. */
static const struct db_error_rule {
    unsigned kinds;       /* KIND() set */
    unsigned errors;      /* ERR() set */
    const char *sqlstate; /* NULL: any */
    int stopping;         /* 1: only while the worker stops */
    int status;
    enum db_say say;
    const char *text; /* for SAY_TEXT */
    int retry_after;
    enum db_log log;
} RULES[] = {
    /* undefined_function, undefined_table: the check at start-up has not finished, or the
     * schema changed under a running server */
    {KIND(ORDER_KEYED), ERR(QUERY), "42883", 0, 503, SAY_SCHEMA_MISSING, NULL, 0, LOG_NONE},
    {KIND(ORDER_KEYED), ERR(QUERY), "42P01", 0, 503, SAY_SCHEMA_MISSING, NULL, 0, LOG_NONE},
    /* price_cents * quantity is integer arithmetic (sql/statements.sql, insert_order) */
    {ORDERS, ERR(QUERY), "22003", 0, 400, SAY_TEXT,
     "quantity too large: price_cents * quantity overflows total_cents", 0, LOG_NONE},
    /* the product was deleted meanwhile */
    {ORDERS, ERR(QUERY), "23503", 0, 404, SAY_TEXT, "Product not found", 0, LOG_NONE},
    /* The INSERT was sent and the connection broke before its answer: it may have been
     * committed.  A 503 with Retry-After would invite a second order; say what is known.  With
     * an Idempotency-Key the client can find out safely by sending it again. */
    {ORDERS, ERR(CONNECTION), NULL, 0, 500, SAY_TEXT, "outcome unknown", 0, LOG_OUTCOME_UNKNOWN},
    /* /health and /health/ready: their own status, the pool's reason, no Retry-After. */
    {KIND(HEALTH), ERR(QUERY), NULL, 0, 500, SAY_ERROR, NULL, 0, LOG_HEALTH},
    {KIND(READY), ERR(QUERY), NULL, 0, 503, SAY_ERROR, NULL, 0, LOG_HEALTH},
    {KIND(HEALTH), ERR(NOT_SENT), NULL, 0, 500, SAY_CONNECTION, NULL, 0, LOG_NONE},
    {KIND(READY), ERR(NOT_SENT), NULL, 0, 503, SAY_CONNECTION, NULL, 0, LOG_NONE},
    {KIND(HEALTH), ANY_ERROR, NULL, 0, 500, SAY_ERROR, NULL, 0, LOG_NONE},
    {KIND(READY), ANY_ERROR, NULL, 0, 503, SAY_ERROR, NULL, 0, LOG_NONE},
    /* No connection, or none in time, or the pool closing: the statement did not run. */
    {WITH_STATEMENT, ERR(TIMEOUT) | ERR(UNAVAILABLE) | ERR(SHUTDOWN), NULL, 0, 503, SAY_ERROR, NULL,
     RETRY, LOG_NONE},
    /* A read (the orders answer a lost connection above), or a statement that did not run:
     * trying again is safe.  A backend terminated under the statement (57P01-57P05, any FATAL)
     * comes here too: the pool reports it as a lost connection (pool.h).  While the worker
     * stops, the forced shutdown cut the statement short (pool_shutdown, pool.h). */
    {WITH_STATEMENT, ERR(CONNECTION) | ERR(NOT_SENT), NULL, 1, 503, SAY_SHUTDOWN, NULL, RETRY,
     LOG_NONE},
    {WITH_STATEMENT, ERR(CONNECTION) | ERR(NOT_SENT), NULL, 0, 503, SAY_CONNECTION, NULL, RETRY,
     LOG_LOST},
    /* statement_timeout (DB_STATEMENT_TIMEOUT_MS) */
    {WITH_STATEMENT, ANY_ERROR, "57014", 0, 503, SAY_TEXT, "database query timed out", RETRY,
     LOG_CANCELLED},
    {WITH_STATEMENT, ANY_ERROR, NULL, 0, 500, SAY_TEXT, "internal error", 0, LOG_FAILED},
};

static void log_failure(enum db_log log, const req_t *req, const PGresult *res, const char *message)
{
    int first_line = (int)strcspn(message, "\n");
    switch (log) {
    case LOG_NONE:
        return;
    case LOG_LOST:
        log_error("%s: %s", req->log_line, message);
        return;
    case LOG_CANCELLED:
        log_error("%s: query cancelled after DB_STATEMENT_TIMEOUT_MS", req->log_line);
        return;
    case LOG_FAILED:
        log_error("%s: query failed: SQLSTATE %s: %.*s", req->log_line, pool_result_sqlstate(res),
                  first_line, message);
        return;
    case LOG_OUTCOME_UNKNOWN:
        log_error("%s: database connection lost during the INSERT; outcome unknown: %.*s",
                  req->log_line, first_line, message);
        return;
    case LOG_HEALTH:
        log_error("health: %.*s", first_line, message);
        return;
    }
}

db_error_answer_t db_error_find(req_t *req, enum db_route_kind kind, int error, const PGresult *res,
                                const char *message)
{
    const char *sqlstate = pool_result_sqlstate(res);
    const struct db_error_rule *rule = NULL;
    for (size_t i = 0; i < sizeof RULES / sizeof RULES[0] && !rule; i++) {
        const struct db_error_rule *r = &RULES[i];
        if ((r->kinds & (1u << kind)) && (r->errors & (1u << error)) &&
            (!r->sqlstate || strcmp(r->sqlstate, sqlstate) == 0) &&
            (!r->stopping || req_stopping(req)))
            rule = r;
    }
    /* The last rules of each kind match any failure. */
    db_error_answer_t answer = {rule->status, rule->text, rule->retry_after};
    switch (rule->say) {
    case SAY_TEXT:
    case SAY_SCHEMA_MISSING:
        break;
    case SAY_ERROR:
        answer.message = pool_strerror(error);
        break;
    case SAY_CONNECTION:
        answer.message = pool_strerror(POOL_ERR_CONNECTION);
        break;
    case SAY_SHUTDOWN:
        answer.message = pool_strerror(POOL_ERR_SHUTDOWN);
        break;
    }
    log_failure(rule->log, req, res, message);
    return answer;
}

void db_error_respond_schema_missing(req_t *req)
{
    char message[768];
    if (!schema_missing(message, sizeof message))
        snprintf(message, sizeof message,
                 "the database schema is older than this server: missing function "
                 "place_order_with_key; run catalog-db migrate");
    req_error(req, 503, message, NULL);
}

void db_error_respond(req_t *req, enum db_route_kind kind, int error, const PGresult *res,
                      const char *message)
{
    db_error_answer_t answer = db_error_find(req, kind, error, res, message);
    if (!answer.message) {
        db_error_respond_schema_missing(req);
        return;
    }
    req_error(req, answer.status, answer.message, answer.retry_after ? "Retry-After: 1\r\n" : NULL);
}
