/* routes.c: the API's routes: matching, parameters, SQL, and JSON written straight from libpq. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "format.h"
#include "json.h"
#include "log.h"
#include "number.h"
#include "order.h"
#include "schema.h"
#include "server.h"
#include "sort.h"
#include "url.h"

/* ---- SQL: every statement is prepared once per connection -------------------------------- */

enum statement {
    ST_COUNT_PRODUCTS,
    ST_LIST_CHEAPEST,
    ST_LIST_CATEGORY,
    ST_PRODUCT,
    ST_REPORT,
    ST_INSERT_ORDER,
    ST_INSERT_ORDER_WITH_KEY,
    ST_COUNT
};

/* Longest Idempotency-Key accepted (order_idempotency_keys.idempotency_key is varchar(255)). */
#define IDEMPOTENCY_KEY_MAX 255

#define PRODUCT_COLUMNS "id, name, category, price_cents, stock, description, created_at"
/* A category listing's rows all have the category asked for: `category = $1` is byte equality
 * (text's equality under the database's deterministic collation), so the server writes the
 * parameter in each row and PostgreSQL need not send the same bytes a thousand times. */
#define LISTING_COLUMNS "id, name, price_cents, stock, description, created_at"

static const pool_statement_t STATEMENTS_LIVE[ST_COUNT] = {
    {"count_products", "SELECT count(*) FROM products", POOL_SHARED},
    {"list_cheapest", "SELECT " PRODUCT_COLUMNS " FROM products ORDER BY price_cents, id LIMIT 100",
     POOL_SHARED},
    /* About 1,000 rows: alone on its connection, so no cheap statement waits behind it.  In
     * no order: the server orders the rows by price, then id (on_products), which costs it a
     * fraction of what PostgreSQL's sort of the whole wide rows costs PostgreSQL. */
    {"list_category", "SELECT " LISTING_COLUMNS " FROM products WHERE category = $1", POOL_ALONE},
    {"product", "SELECT " PRODUCT_COLUMNS " FROM products WHERE id = $1", POOL_SHARED},
    /* A live, exact aggregate of every order (docs/api.md, GET /report): the expensive route.  Each
     * product's orders are counted and summed by a lateral subquery, which PostgreSQL runs as
     * an index-only scan of orders_product_id_total_cents_idx (product_id INCLUDE total_cents,
     * sql/schema.sql): 5,000 short range reads of a narrow index instead of a scan of every
     * order row and a hash of 500,000 rows; about twice the reports per second of summing per
     * product before a join, and three times the reference's join of every order row.  The
     * per-product totals are then summed per category; a product without orders counts 0,
     * so a category without orders still appears ($0.00). */
    {"report",
     "SELECT p.category, sum(s.orders)::bigint, coalesce(sum(s.revenue), 0)::bigint,"
     " coalesce(round(sum(s.revenue) / nullif(sum(s.orders), 0)), 0)::bigint"
     " FROM products p CROSS JOIN LATERAL"
     " (SELECT count(*) AS orders, sum(o.total_cents) AS revenue"
     " FROM orders o WHERE o.product_id = p.id) s"
     " GROUP BY p.category ORDER BY 3 DESC, 1",
     POOL_ALONE},
    /* One statement: the price lookup and the insert are atomic.  price_cents * quantity is
     * integer arithmetic, so an overflow is SQLSTATE 22003, answered with a 400. */
    {"insert_order",
     "INSERT INTO orders (product_id, quantity, total_cents)"
     " SELECT id, $2::integer, price_cents * $2::integer FROM products WHERE id = $1::integer"
     " RETURNING id, product_id, quantity, total_cents, status, created_at",
     POOL_LAST}, /* a write may wait on a lock: nothing is queued behind it */
    /* With an Idempotency-Key: sql/schema.sql's function checks and records the key in the
     * order's own transaction.  Column 0 is its outcome, then the order's columns. */
    {"insert_order_with_key",
     "SELECT outcome, id, product_id, quantity, total_cents, status, created_at"
     " FROM place_order_with_key($1::integer, $2::integer, $3::varchar)",
     POOL_LAST},
};

/* REPORT_MODE=rollup: per-product totals kept exact by a trigger (sql/rollup.sql). */
static const char REPORT_ROLLUP_SQL[] =
    "SELECT p.category, coalesce(sum(r.orders), 0)::bigint, coalesce(sum(r.revenue_cents), 0),"
    " coalesce(round(sum(r.revenue_cents)::numeric / nullif(sum(r.orders), 0)), 0)::bigint"
    " FROM products p LEFT JOIN product_sales r ON r.product_id = p.id"
    " GROUP BY p.category ORDER BY 3 DESC, 1";

const pool_statement_t *routes_statements(const server_config_t *config, unsigned *count)
{
    static pool_statement_t rollup[ST_COUNT];
    *count = ST_COUNT;
    if (!config->report_rollup) return STATEMENTS_LIVE;
    memcpy(rollup, STATEMENTS_LIVE, sizeof rollup);
    rollup[ST_REPORT].name = "report_rollup";
    rollup[ST_REPORT].sql = REPORT_ROLLUP_SQL;
    return rollup;
}

/* ---- errors: every database failure maps to one status here ------------------------------ */

static void respond_db_error(conn_t *c, int error, const PGresult *res, const char *message)
{
    switch (error) {
    case POOL_ERR_TIMEOUT:
    case POOL_ERR_UNAVAILABLE:
    case POOL_ERR_SHUTDOWN:
        conn_respond_error(c, 503, pool_strerror(error), "Retry-After: 1\r\n");
        return;
    /* A read (the order routes answer a lost connection themselves), or a statement that did
     * not run: trying again is safe.  A backend terminated under the statement (57P01-57P05,
     * any FATAL) comes here too: the pool reports it as a lost connection (pool.h). */
    case POOL_ERR_CONNECTION:
    case POOL_ERR_NOT_SENT:
        /* The forced shutdown cut the statement short (pool_shutdown, pool.h). */
        if (c->worker->stopping) {
            conn_respond_error(c, 503, pool_strerror(POOL_ERR_SHUTDOWN), "Retry-After: 1\r\n");
            return;
        }
        log_error("%s: %s", c->log_line, message);
        conn_respond_error(c, 503, pool_strerror(POOL_ERR_CONNECTION), "Retry-After: 1\r\n");
        return;
    default:
        if (strcmp(pool_result_sqlstate(res), "57014") == 0) { /* statement_timeout */
            log_error("%s: query cancelled after DB_STATEMENT_TIMEOUT_MS", c->log_line);
            conn_respond_error(c, 503, "database query timed out", "Retry-After: 1\r\n");
            return;
        }
        log_error("%s: query failed: SQLSTATE %s: %.*s", c->log_line, pool_result_sqlstate(res),
                  (int)strcspn(message, "\n"), message);
        conn_respond_error(c, 500, "internal error", NULL);
    }
}

/* Runs statement st for the connection's request; fn answers it.  Always answers. */
static void submit(conn_t *c, int st, int param_count, pool_result_fn fn)
{
    c->query.statement = (unsigned)st;
    c->query.param_count = param_count;
    /* The product rows are read in binary (write_product); the rest as text. */
    c->query.binary_results = st == ST_LIST_CHEAPEST || st == ST_LIST_CATEGORY || st == ST_PRODUCT;
    c->query.fn = fn;
    c->query.user = c;
    c->busy = 1;
    /* Reads go to a replica or the primary (replicas.h); writes, and /health, to the primary. */
    int read =
        st == ST_LIST_CHEAPEST || st == ST_LIST_CATEGORY || st == ST_PRODUCT || st == ST_REPORT;
    int e = read ? replicas_submit_read(c->worker->server->replicas, c->worker->index, &c->read,
                                        &c->query)
                 : pool_submit(c->worker->pool_worker, &c->query);
    if (e) {
        /* Refused at once (database down, shutting down): the route's handler answers, in
         * its own shape, as it would a later failure. */
        c->busy = 0;
        fn(&c->query, NULL, e, "");
    }
}

/* ---- JSON from results ------------------------------------------------------------------- */

static void write_raw(buf_t *out, const PGresult *res, int row, int col)
{
    buf_append(out, PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
}

static void write_text(buf_t *out, const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        buf_append_cstr(out, "null");
    else
        json_write_string(out, PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
}

/* Writes a timestamp column as a quoted ISO 8601 string.  Rows loaded together share their
 * created_at, so the last conversion is kept and reused when the text is the same. */
static void write_timestamp_text(buf_t *out, const char *text, size_t len)
{
    static __thread char last_text[40], last_json[40];
    static __thread size_t last_text_len, last_json_len;
    if (len == last_text_len && len && memcmp(text, last_text, len) == 0) {
        buf_append(out, last_json, last_json_len);
        return;
    }
    size_t start = out->len;
    buf_append_char(out, '"');
    if (format_pg_timestamp(out, text, len) < 0) buf_append(out, text, len);
    buf_append_char(out, '"');
    if (len <= sizeof last_text && out->len - start <= sizeof last_json) {
        memcpy(last_text, text, len);
        last_text_len = len;
        last_json_len = out->len - start;
        memcpy(last_json, out->data + start, last_json_len);
    }
}

static void write_timestamp(buf_t *out, const PGresult *res, int row, int col)
{
    write_timestamp_text(out, PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
}

/* Appends a string literal without strlen. */
#define PUT_LIT(dst, lit) (memcpy((dst), (lit), sizeof(lit) - 1), (dst) += sizeof(lit) - 1)

/* ---- product rows in binary format ---------------------------------------------------------
 * The product statements are asked for binary results (pool_query.binary_results): integers
 * arrive as 4 big-endian bytes and created_at as 8 (microseconds since 2000-01-01), so
 * PostgreSQL skips its output functions and we skip parsing text; the strings arrive as the
 * same bytes either way.  The JSON is byte for byte what the text results gave. */

#define INT4_OID 23
#define TIMESTAMP_OID 1114
/* 2000-01-01 00:00:00 UTC, PostgreSQL's epoch, in ms since 1970. */
#define PG_EPOCH_UNIX_MS 946684800000LL
static const char DIGIT_PAIRS[201] =
    "00010203040506070809101112131415161718192021222324252627282930"
    "31323334353637383940414243444546474849505152535455565758596061"
    "62636465666768697071727374757677787980818283848586878889909192"
    "93949596979899";

/* Number of decimal digits of v. */
static int decimal_digits(uint32_t v)
{
    int n = 1;
    while (v >= 10000) {
        v /= 10000;
        n += 4;
    }
    return n + (v >= 10) + (v >= 100) + (v >= 1000);
}

/* Writes the decimal text of v at d; returns the end.  Same text as PostgreSQL's int4out.
 * Two digits at a time from the end, straight into d. */
static char *put_u32(char *d, uint32_t v)
{
    char *end = d + decimal_digits(v), *t = end;
    while (v >= 100) {
        t -= 2;
        memcpy(t, DIGIT_PAIRS + (v % 100) * 2, 2);
        v /= 100;
    }
    if (v >= 10)
        memcpy(t - 2, DIGIT_PAIRS + v * 2, 2);
    else
        t[-1] = (char)('0' + v);
    return end;
}

/* A binary int4 column value. */
static int32_t get_int4(const char *value)
{
    uint32_t be;
    memcpy(&be, value, 4);
    return (int32_t)__builtin_bswap32(be);
}

static char *put_int4(char *d, const char *value)
{
    int32_t v = get_int4(value);
    if (v >= 0) return put_u32(d, (uint32_t)v);
    *d++ = '-';
    return put_u32(d, (uint32_t)0 - (uint32_t)v);
}

/* Room a quoted created_at may take: the longest of ISO 8601 and "-infinity". */
#define TIMESTAMP_JSON_MAX (FORMAT_ISO8601_MAX + 2)

/* A binary `timestamp` as the text results wrote it: "2026-11-28T21:38:02.359Z" (truncated
 * to ms), "infinity"/"-infinity" as PostgreSQL spells them.  (Years outside 1..9999, which the
 * text had as PostgreSQL spells them, "10000-01-01 00:00:00" or "0044-03-15 00:00:00 BC", now
 * come out as ISO 8601 with an expanded year, like generated_at would.)  Rows loaded together
 * share their created_at, so the last one is kept and reused. */
static char *put_timestamp(char *d, const char *value)
{
    static __thread int64_t last_us = INT64_MIN;
    static __thread char last_json[TIMESTAMP_JSON_MAX];
    static __thread size_t last_len;
    uint64_t be;
    memcpy(&be, value, 8);
    int64_t us = (int64_t)__builtin_bswap64(be);
    if (us == last_us && last_len) {
        memcpy(d, last_json, last_len);
        return d + last_len;
    }
    char *start = d;
    if (us == INT64_MAX) {
        PUT_LIT(d, "\"infinity\"");
    } else if (us == INT64_MIN) {
        PUT_LIT(d, "\"-infinity\"");
    } else {
        /* floor to ms: the text had the fraction's first three digits, also before 2000 */
        int64_t ms = us / 1000 - (us % 1000 < 0);
        *d++ = '"';
        d += format_iso8601_text(d, ms + PG_EPOCH_UNIX_MS);
        *d++ = '"';
    }
    last_us = us;
    last_len = (size_t)(d - start);
    memcpy(last_json, start, last_len);
    return d;
}

/* 1 when res has the PRODUCT_COLUMNS (with_category) or the LISTING_COLUMNS in the binary
 * formats write_product reads. */
static int product_result_ok(const PGresult *res, int with_category)
{
    static const Oid product[7] = {INT4_OID, 0, 0, INT4_OID, INT4_OID, 0, TIMESTAMP_OID};
    static const Oid listing[6] = {INT4_OID, 0, INT4_OID, INT4_OID, 0, TIMESTAMP_OID};
    const Oid *want = with_category ? product : listing;
    int n = with_category ? 7 : 6;
    if (PQnfields(res) != n) return 0;
    for (int i = 0; i < n; i++)
        if (PQfformat(res, i) != 1 || (want[i] && PQftype(res, i) != want[i])) return 0;
    return 1;
}

/* One product object from row of a PRODUCT_COLUMNS result (binary), or of a LISTING_COLUMNS
 * result when category (the quoted, escaped JSON string of category_len bytes) is given.
 * This runs ~1,000 times for a category listing, so it reserves room for the worst case once
 * and writes with a raw pointer: no per-field bounds checks, no strlen, no allocation. */
static void write_product(buf_t *out, const PGresult *res, int row, const char *category,
                          size_t category_len)
{
    int k = category ? 1 : 0; /* columns after name sit one to the left without category */
    size_t name_len = (size_t)PQgetlength(res, row, 1);
    size_t category_room =
        category ? category_len : JSON_ESCAPED_MAX((size_t)PQgetlength(res, row, 2));
    int no_description = PQgetisnull(res, row, 5 - k);
    size_t description_len = no_description ? 0 : (size_t)PQgetlength(res, row, 5 - k);
    size_t need = 160 + 3 * 11 + TIMESTAMP_JSON_MAX + JSON_ESCAPED_MAX(name_len) + category_room +
                  JSON_ESCAPED_MAX(description_len);
    char *start = buf_reserve(out, need), *d = start;
    PUT_LIT(d, "{\"id\":");
    d = put_int4(d, PQgetvalue(res, row, 0));
    PUT_LIT(d, ",\"name\":");
    d = json_escape_into(d, PQgetvalue(res, row, 1), name_len);
    PUT_LIT(d, ",\"category\":");
    if (category) {
        memcpy(d, category, category_len);
        d += category_len;
    } else {
        d = json_escape_into(d, PQgetvalue(res, row, 2), (size_t)PQgetlength(res, row, 2));
    }
    PUT_LIT(d, ",\"price_cents\":");
    d = put_int4(d, PQgetvalue(res, row, 3 - k));
    PUT_LIT(d, ",\"stock\":");
    d = put_int4(d, PQgetvalue(res, row, 4 - k));
    PUT_LIT(d, ",\"description\":");
    if (no_description)
        PUT_LIT(d, "null");
    else
        d = json_escape_into(d, PQgetvalue(res, row, 5 - k), description_len);
    PUT_LIT(d, ",\"created_at\":");
    d = put_timestamp(d, PQgetvalue(res, row, 6 - k));
    *d++ = '}';
    out->len += (size_t)(d - start);
}

/* ---- handlers ----------------------------------------------------------------------------- */

static void on_products(pool_query_t *q, PGresult *res, int error, const char *message)
{
    conn_t *c = q->user;
    if (error) {
        respond_db_error(c, error, res, message);
        return;
    }
    /* A category listing (LISTING_COLUMNS) has the category in c->param (with its NUL). */
    int listing = q->statement == ST_LIST_CATEGORY;
    if (!product_result_ok(res, !listing)) {
        log_error("%s: products result not in the expected binary shape", c->log_line);
        conn_respond_error(c, 500, "internal error", NULL);
        return;
    }
    buf_t category = {0};
    int rows = PQntuples(res);
    sort_item_t *order = NULL;
    if (listing) {
        json_write_string(&category, c->param.data, c->param.len - 1);
        /* PostgreSQL sent the rows in no order: by price, then id (LISTING_COLUMNS). */
        order = xmalloc(2 * (size_t)(rows ? rows : 1) * sizeof *order);
        for (int i = 0; i < rows; i++) {
            order[i].key =
                sort_key_i32_pair(get_int4(PQgetvalue(res, i, 2)), get_int4(PQgetvalue(res, i, 0)));
            order[i].row = (uint32_t)i;
        }
        sort_items(order, order + rows, (size_t)rows);
    }
    http_response_t resp;
    conn_reserve_output(c, (size_t)rows * 400 + 512);
    buf_t *out = conn_begin(c, &resp, 200, NULL);
    buf_append_char(out, '[');
    for (int i = 0; i < rows; i++) {
        if (i) buf_append_char(out, ',');
        write_product(out, res, order ? (int)order[i].row : i, category.data, category.len);
    }
    buf_append_char(out, ']');
    conn_end(c, &resp, 200);
    free(order);
    buf_free(&category);
}

/* For the routes about one product: answers a failure or an empty result (404) and returns 1,
 * or returns 0 when the row is there to be written. */
static int answered_without_row(conn_t *c, const PGresult *res, int error, const char *message)
{
    if (error) {
        respond_db_error(c, error, res, message);
        return 1;
    }
    if (PQntuples(res) == 0) {
        conn_respond_error(c, 404, "Product not found", NULL);
        return 1;
    }
    return 0;
}

static void on_product(pool_query_t *q, PGresult *res, int error, const char *message)
{
    conn_t *c = q->user;
    if (answered_without_row(c, res, error, message)) return;
    if (!product_result_ok(res, 1)) {
        log_error("%s: product result not in the expected binary shape", c->log_line);
        conn_respond_error(c, 500, "internal error", NULL);
        return;
    }
    http_response_t resp;
    buf_t *out = conn_begin(c, &resp, 200, NULL);
    write_product(out, res, 0, NULL, 0);
    conn_end(c, &resp, 200);
}

static int64_t column_i64(const PGresult *res, int row, int col)
{
    int64_t v = 0;
    const char *s = PQgetvalue(res, row, col);
    int neg = *s == '-';
    for (s += neg; *s >= '0' && *s <= '9'; s++)
        v = v * 10 + (*s - '0');
    return neg ? -v : v;
}

static void on_report(pool_query_t *q, PGresult *res, int error, const char *message)
{
    conn_t *c = q->user;
    if (error) {
        respond_db_error(c, error, res, message);
        return;
    }
    int rows = PQntuples(res);
    int64_t total = 0;
    for (int i = 0; i < rows; i++)
        total += column_i64(res, i, 1);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    http_response_t resp;
    buf_t *out = conn_begin(c, &resp, 200, NULL);
    buf_append_cstr(out, "{\"generated_at\":\"");
    format_iso8601_ms(out, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    buf_append_cstr(out, "\",\"total_orders\":");
    buf_append_i64(out, total);
    buf_append_cstr(out, ",\"by_category\":[");
    for (int i = 0; i < rows; i++) {
        if (i) buf_append_char(out, ',');
        buf_append_cstr(out, "{\"category\":");
        write_text(out, res, i, 0);
        buf_append_cstr(out, ",\"orders\":");
        buf_append_i64(out, column_i64(res, i, 1));
        buf_append_cstr(out, ",\"revenue\":\"");
        format_money_cents(out, column_i64(res, i, 2));
        buf_append_cstr(out, "\",\"avg_order\":\"");
        format_money_cents(out, column_i64(res, i, 3));
        buf_append_cstr(out, "\"}");
    }
    buf_append_cstr(out, "]}");
    conn_end(c, &resp, 200);
}

/* Writes the order object from columns first.. of row 0 (id, product_id, quantity,
 * total_cents, status, created_at). */
static void write_order(buf_t *out, const PGresult *res, int first)
{
    buf_append_cstr(out, "{\"id\":");
    write_raw(out, res, 0, first);
    buf_append_cstr(out, ",\"product_id\":");
    write_raw(out, res, 0, first + 1);
    buf_append_cstr(out, ",\"quantity\":");
    write_raw(out, res, 0, first + 2);
    buf_append_cstr(out, ",\"total_cents\":");
    write_raw(out, res, 0, first + 3);
    buf_append_cstr(out, ",\"status\":");
    write_text(out, res, 0, first + 4);
    buf_append_cstr(out, ",\"created_at\":");
    write_timestamp(out, res, 0, first + 5);
    buf_append_char(out, '}');
}

/* The failures the two order statements share.  Returns 1 when it answered. */
static int answered_order_failure(conn_t *c, const PGresult *res, int error, const char *message)
{
    if (error == POOL_ERR_QUERY) {
        const char *state = pool_result_sqlstate(res);
        if (strcmp(state, "22003") == 0) {
            conn_respond_error(
                c, 400, "quantity too large: price_cents * quantity overflows total_cents", NULL);
            return 1;
        }
        if (strcmp(state, "23503") == 0) { /* the product was deleted meanwhile */
            conn_respond_error(c, 404, "Product not found", NULL);
            return 1;
        }
    }
    if (error == POOL_ERR_CONNECTION) {
        /* The INSERT was sent and the connection broke before its answer: it may have been
         * committed.  A 503 with Retry-After would invite a second order; say what is known.
         * With an Idempotency-Key the client can find out safely by sending it again. */
        log_error("%s: database connection lost during the INSERT; outcome unknown: %.*s",
                  c->log_line, (int)strcspn(message, "\n"), message);
        conn_respond_error(c, 500, "outcome unknown", NULL);
        return 1;
    }
    return answered_without_row(c, res, error, message);
}

static void on_order(pool_query_t *q, PGresult *res, int error, const char *message)
{
    conn_t *c = q->user;
    if (answered_order_failure(c, res, error, message)) return;
    http_response_t resp;
    write_order(conn_begin(c, &resp, 201, NULL), res, 0);
    conn_end(c, &resp, 201);
}

/* POST /orders with an Idempotency-Key against a database `catalog-db migrate` has not
 * brought up to date: 503 with what is missing (not a 500: nothing is broken in the server). */
static void respond_schema_missing(conn_t *c)
{
    char message[768];
    if (!schema_missing(message, sizeof message))
        snprintf(message, sizeof message,
                 "the database schema is older than this server: missing function "
                 "place_order_with_key; run catalog-db migrate");
    conn_respond_error(c, 503, message, NULL);
}

static void on_order_with_key(pool_query_t *q, PGresult *res, int error, const char *message)
{
    conn_t *c = q->user;
    if (error == POOL_ERR_QUERY) {
        /* undefined_function, undefined_table: the check at start-up has not finished, or the
         * schema changed under a running server */
        const char *state = pool_result_sqlstate(res);
        if (strcmp(state, "42883") == 0 || strcmp(state, "42P01") == 0) {
            respond_schema_missing(c);
            return;
        }
    }
    if (answered_order_failure(c, res, error, message)) return;
    const char *outcome = PQgetvalue(res, 0, 0);
    if (strcmp(outcome, "in_progress") == 0) {
        conn_respond_error(c, 409, "a request with this Idempotency-Key is still being processed",
                           "Retry-After: 1\r\n");
        return;
    }
    if (strcmp(outcome, "mismatch") == 0) {
        conn_respond_error(c, 422, "Idempotency-Key reused with a different body", NULL);
        return;
    }
    /* created, or replayed: the first answer again, marked as such (as Stripe does). */
    int replayed = strcmp(outcome, "replayed") == 0;
    http_response_t resp;
    write_order(conn_begin(c, &resp, 201, replayed ? "Idempotent-Replayed: true\r\n" : NULL), res,
                1);
    conn_end(c, &resp, 201);
}

static void on_health(pool_query_t *q, PGresult *res, int error, const char *message)
{
    conn_t *c = q->user;
    const char *id = c->worker->server->config.server_id;
    http_response_t resp;
    if (error) {
        const char *reason =
            pool_strerror(error == POOL_ERR_NOT_SENT ? POOL_ERR_CONNECTION : error);
        if (error == POOL_ERR_QUERY)
            log_error("health: %.*s", (int)strcspn(message, "\n"), message);
        int status = c->route == ROUTE_HEALTH_READY ? 503 : 500;
        buf_t *out = conn_begin(c, &resp, status, NULL);
        buf_append_cstr(out, "{\"status\":\"error\",\"message\":");
        json_write_cstr(out, reason);
        buf_append_char(out, '}');
        conn_end(c, &resp, status);
        return;
    }
    buf_t *out = conn_begin(c, &resp, 200, NULL);
    buf_append_cstr(out, c->route == ROUTE_HEALTH_READY ? "{\"status\":\"ready\",\"server\":"
                                                        : "{\"status\":\"ok\",\"server\":");
    json_write_cstr(out, id);
    buf_append_cstr(out, ",\"products\":");
    write_raw(out, res, 0, 0);
    replicas_write_health(c->worker->server->replicas, out); /* with DB_READ_HOSTS only */
    char missing[768];
    if (c->route == ROUTE_HEALTH_READY && schema_missing(missing, sizeof missing)) {
        /* still ready: reads work; the body says what the start-up check found */
        buf_append_cstr(out, ",\"schema\":");
        json_write_cstr(out, missing);
    }
    buf_append_char(out, '}');
    conn_end(c, &resp, 200);
}

static void respond_live(conn_t *c)
{
    http_response_t resp;
    buf_t *out = conn_begin(c, &resp, 200, NULL);
    buf_append_cstr(out, "{\"status\":\"ok\",\"server\":");
    json_write_cstr(out, c->worker->server->config.server_id);
    buf_append_char(out, '}');
    conn_end(c, &resp, 200);
}

static void respond_metrics(conn_t *c)
{
    http_response_t resp;
    buf_t *out = conn_begin_as(c, &resp, 200, "text/plain; version=0.0.4; charset=utf-8", NULL);
    stats_render(c->worker->server, out);
    conn_end(c, &resp, 200);
}

/* Content-Type must be application/json, parameters (charset) allowed. */
static int is_json_content_type(slice_t ct)
{
    static const char want[] = "application/json";
    size_t n = sizeof want - 1;
    if (ct.len < n || !slice_eq_nocase(slice_make(ct.base, n), slice_make(want, n))) return 0;
    return ct.len == n || ct.base[n] == ';' || ct.base[n] == ' ' || ct.base[n] == '\t';
}

/* Idempotency-Key (IETF httpapi draft; docs/api.md, POST /orders: 1 to 255 printable ASCII
 * characters): copies the key into c->param as a C string.  Returns 1 with a key, 0 without
 * one, or -1 after answering a 400. */
static int take_idempotency_key(conn_t *c, const http_request_t *req)
{
    static const char name[] = "Idempotency-Key";
    const http_header_t *found = NULL;
    for (unsigned i = 0; i < req->header_count; i++) {
        if (!slice_eq_nocase(req->headers[i].name, slice_make(name, sizeof name - 1))) continue;
        if (found) {
            conn_respond_error(c, 400, "more than one Idempotency-Key header", NULL);
            return -1;
        }
        found = &req->headers[i];
    }
    if (!found) return 0;
    slice_t key = found->value;
    int valid = key.len >= 1 && key.len <= IDEMPOTENCY_KEY_MAX;
    for (size_t i = 0; valid && i < key.len; i++)
        valid = key.base[i] >= 0x20 && key.base[i] <= 0x7e;
    if (!valid) {
        conn_respond_error(c, 400, "Idempotency-Key must be 1 to 255 printable ASCII characters",
                           NULL);
        return -1;
    }
    buf_reset(&c->param);
    buf_append(&c->param, key.base, key.len);
    buf_append_char(&c->param, 0);
    return 1;
}

static void handle_order(conn_t *c, const http_request_t *req, slice_t body)
{
    if (!is_json_content_type(req->content_type)) {
        conn_respond_error(c, 415, "Content-Type must be application/json", NULL);
        return;
    }
    order_request_t order;
    char err[256];
    if (order_parse_request(body.base, body.len, &order, err, sizeof err) < 0) {
        conn_respond_error(c, 400, err, NULL);
        return;
    }
    int keyed = take_idempotency_key(c, req);
    if (keyed < 0) return;
    snprintf(c->param_id, sizeof c->param_id, "%d", (int)order.product_id);
    snprintf(c->param_quantity, sizeof c->param_quantity, "%d", (int)order.quantity);
    c->query.params[0] = c->param_id;
    c->query.params[1] = c->param_quantity;
    if (keyed) {
        if (schema_keyed_orders_missing()) {
            respond_schema_missing(c);
            return;
        }
        c->query.params[2] = c->param.data;
        submit(c, ST_INSERT_ORDER_WITH_KEY, 3, on_order_with_key);
        return;
    }
    submit(c, ST_INSERT_ORDER, 2, on_order);
}

static void handle_products(conn_t *c, const http_request_t *req)
{
    if (req->query.len) {
        int found = url_query_get(req->query, "category", &c->param);
        if (found < 0) {
            conn_respond_error(c, 400, "invalid percent-encoding in the query string", NULL);
            return;
        }
        if (found) {
            /* PostgreSQL refuses both in a text parameter (SQLSTATE 22021), after a round
             * trip and as a server error: they are the client's mistake, answered here. */
            if (memchr(c->param.data, 0, c->param.len)) {
                conn_respond_error(c, 400, "category must not contain NUL bytes", NULL);
                return;
            }
            if (!json_utf8_valid(c->param.data, c->param.len)) {
                conn_respond_error(c, 400, "category must be UTF-8 (after percent-decoding)", NULL);
                return;
            }
            buf_append_char(&c->param, 0); /* libpq wants a C string */
            c->query.params[0] = c->param.data;
            submit(c, ST_LIST_CATEGORY, 1, on_products);
            return;
        }
    }
    submit(c, ST_LIST_CHEAPEST, 0, on_products);
}

/* ---- routing ------------------------------------------------------------------------------ */

route_t routes_match(slice_t path, slice_t *id)
{
    static const struct {
        const char *path;
        size_t len;
        int has_param;
    } table[ROUTE_UNMATCHED] = {
#define ROUTE_PATTERN(name, path, param) {path, sizeof path - 1, sizeof param > 1},
        ROUTE_MAP(ROUTE_PATTERN)
#undef ROUTE_PATTERN
    };
    for (route_t r = 0; r < ROUTE_UNMATCHED; r++) {
        size_t n = table[r].len;
        if (!table[r].has_param) {
            if (path.len == n && memcmp(path.base, table[r].path, n) == 0) return r;
        } else if (path.len >= n && memcmp(path.base, table[r].path, n) == 0 &&
                   !memchr(path.base + n, '/', path.len - n)) {
            *id = slice_make(path.base + n, path.len - n);
            return r;
        }
    }
    return ROUTE_UNMATCHED;
}

void routes_dispatch(conn_t *c, const http_request_t *req, slice_t body)
{
    slice_t id = {0};
    c->route = routes_match(req->path, &id);
    /* A method the server does not implement anywhere (RFC 9110 9.1, "FOO"): 501 on any path.
     * The request's framing was understood (its body, if any, was read), so the connection
     * stays.  A method it knows but the route does not take is 405 below. */
    if (req->method == HTTP_METHOD_OTHER) {
        conn_respond_error(c, 501, "Method not implemented", NULL);
        return;
    }
    if (c->route == ROUTE_UNMATCHED) {
        conn_respond_error(c, 404, "Not found", NULL);
        return;
    }
    int is_get = req->method == HTTP_METHOD_GET || req->method == HTTP_METHOD_HEAD;
    if (c->route == ROUTE_ORDERS) {
        if (req->method != HTTP_METHOD_POST) {
            conn_respond_error(c, 405, "Method not allowed", "Allow: POST\r\n");
            return;
        }
        handle_order(c, req, body);
        return;
    }
    if (!is_get) {
        conn_respond_error(c, 405, "Method not allowed", "Allow: GET, HEAD\r\n");
        return;
    }
    switch (c->route) {
    case ROUTE_HEALTH:
    case ROUTE_HEALTH_READY:
        submit(c, ST_COUNT_PRODUCTS, 0, on_health);
        return;
    case ROUTE_HEALTH_LIVE:
        respond_live(c);
        return;
    case ROUTE_PRODUCTS:
        handle_products(c, req);
        return;
    case ROUTE_PRODUCT: {
        int32_t value;
        if (number_parse_i32(id.base, id.len, &value) < 0) {
            conn_respond_error(c, 400, "Invalid product ID", NULL);
            return;
        }
        snprintf(c->param_id, sizeof c->param_id, "%d", (int)value);
        c->query.params[0] = c->param_id;
        submit(c, ST_PRODUCT, 1, on_product);
        return;
    }
    case ROUTE_REPORT:
        submit(c, ST_REPORT, 0, on_report);
        return;
    case ROUTE_METRICS:
        respond_metrics(c);
        return;
    case ROUTE_ORDERS:    /* answered above */
    case ROUTE_UNMATCHED: /* answered above */
        return;
    }
}
