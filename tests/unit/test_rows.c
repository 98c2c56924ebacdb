/* test_rows.c: unit tests for server/rows (each route's JSON from libpq results), on PGresults
 * built in memory with libpq's PQmakeEmptyPGresult, PQsetResultAttrs and PQsetvalue: the
 * product rows in PostgreSQL's binary format, the report, the order and /health as text. */
#include <stdint.h>
#include <stdlib.h>

#include "rows.h"
#include "test.h"

#define INT4_OID 23
#define TEXT_OID 25
#define TIMESTAMP_OID 1114

/* A result with the given columns (name, binary format or text, type), no rows yet. */
typedef struct column {
    const char *name;
    int binary;
    Oid type;
} column_t;

static PGresult *result_new(const column_t *columns, int count)
{
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc attrs[8];
    for (int i = 0; i < count; i++)
        attrs[i] = (PGresAttDesc){
            (char *)(uintptr_t)columns[i].name, 0, 0, columns[i].binary, columns[i].type, -1, -1};
    CHECK(PQsetResultAttrs(res, count, attrs));
    return res;
}

/* Sets a text value (NULL: SQL NULL). */
static void set_text(PGresult *res, int row, int col, const char *text)
{
    CHECK(PQsetvalue(res, row, col, (char *)(uintptr_t)text, text ? (int)strlen(text) : -1));
}

/* Sets a binary int4: 4 bytes, big-endian. */
static void set_int4(PGresult *res, int row, int col, int32_t v)
{
    uint32_t be = __builtin_bswap32((uint32_t)v);
    CHECK(PQsetvalue(res, row, col, (char *)&be, 4));
}

/* Sets a binary timestamp: 8 bytes, big-endian microseconds since 2000-01-01 00:00:00. */
static void set_timestamp(PGresult *res, int row, int col, int64_t us)
{
    uint64_t be = __builtin_bswap64((uint64_t)us);
    CHECK(PQsetvalue(res, row, col, (char *)&be, 8));
}

static const column_t PRODUCT[7] = {
    {"id", 1, INT4_OID},
    {"name", 1, TEXT_OID},
    {"category", 1, TEXT_OID},
    {"price_cents", 1, INT4_OID},
    {"stock", 1, INT4_OID},
    {"description", 1, TEXT_OID},
    {"created_at", 1, TIMESTAMP_OID},
};
static const column_t LISTING[6] = {
    {"id", 1, INT4_OID},    {"name", 1, TEXT_OID},        {"price_cents", 1, INT4_OID},
    {"stock", 1, INT4_OID}, {"description", 1, TEXT_OID}, {"created_at", 1, TIMESTAMP_OID},
};

static void test_product(void)
{
    PGresult *res = result_new(PRODUCT, 7);
    set_int4(res, 0, 0, 42);
    set_text(res, 0, 1, "Desk \"oak\"");
    set_text(res, 0, 2, "office");
    set_int4(res, 0, 3, 12999);
    set_int4(res, 0, 4, 7);
    set_text(res, 0, 5, NULL);
    set_timestamp(res, 0, 6, 86401500000LL); /* 2000-01-02 00:00:01.5 */
    CHECK_INT(rows_product_result_ok(res, 1), 1);
    CHECK_INT(rows_product_result_ok(res, 0), 0); /* not a listing's columns */
    buf_t out = {0};
    rows_write_product(&out, res);
    CHECK_MEM(out.data, out.len,
              "{\"id\":42,\"name\":\"Desk \\\"oak\\\"\",\"category\":\"office\","
              "\"price_cents\":12999,\"stock\":7,\"description\":null,"
              "\"created_at\":\"2000-01-02T00:00:01.500Z\"}");

    /* the list of GET /products without a category: the rows in their order */
    set_int4(res, 1, 0, -5);
    set_text(res, 1, 1, "Lamp");
    set_text(res, 1, 2, "office");
    set_int4(res, 1, 3, 0);
    set_int4(res, 1, 4, 2147483647);
    set_text(res, 1, 5, "tab\there");
    set_timestamp(res, 1, 6, -500); /* 1999-12-31 23:59:59.9995: floored to the ms */
    buf_reset(&out);
    rows_write_products(&out, res, NULL, 0);
    CHECK_MEM(out.data, out.len,
              "[{\"id\":42,\"name\":\"Desk \\\"oak\\\"\",\"category\":\"office\","
              "\"price_cents\":12999,\"stock\":7,\"description\":null,"
              "\"created_at\":\"2000-01-02T00:00:01.500Z\"},"
              "{\"id\":-5,\"name\":\"Lamp\",\"category\":\"office\",\"price_cents\":0,"
              "\"stock\":2147483647,\"description\":\"tab\\there\","
              "\"created_at\":\"1999-12-31T23:59:59.999Z\"}]");
    buf_free(&out);
    PQclear(res);
}

static void test_listing(void)
{
    PGresult *res = result_new(LISTING, 6);
    static const int32_t ids[3] = {3, 9, 1}, prices[3] = {500, 100, 500};
    for (int i = 0; i < 3; i++) {
        set_int4(res, i, 0, ids[i]);
        set_text(res, i, 1, "n");
        set_int4(res, i, 2, prices[i]);
        set_int4(res, i, 3, 1);
        set_text(res, i, 4, "");
        set_timestamp(res, i, 5, INT64_MAX); /* infinity */
    }
    CHECK_INT(rows_product_result_ok(res, 0), 1);
    CHECK_INT(rows_product_result_ok(res, 1), 0);
    buf_t out = {0};
    /* by price, then id; the category asked for in every row, escaped */
    rows_write_products(&out, res, "a\"b", 3);
    CHECK_MEM(out.data, out.len,
              "[{\"id\":9,\"name\":\"n\",\"category\":\"a\\\"b\",\"price_cents\":100,\"stock\":1,"
              "\"description\":\"\",\"created_at\":\"infinity\"},"
              "{\"id\":1,\"name\":\"n\",\"category\":\"a\\\"b\",\"price_cents\":500,\"stock\":1,"
              "\"description\":\"\",\"created_at\":\"infinity\"},"
              "{\"id\":3,\"name\":\"n\",\"category\":\"a\\\"b\",\"price_cents\":500,\"stock\":1,"
              "\"description\":\"\",\"created_at\":\"infinity\"}]");
    PQclear(res);

    /* the same columns as text are not what the writers read */
    column_t text[6];
    for (int i = 0; i < 6; i++)
        text[i] = (column_t){LISTING[i].name, 0, LISTING[i].type};
    res = result_new(text, 6);
    CHECK_INT(rows_product_result_ok(res, 0), 0);
    PQclear(res);
    buf_free(&out);
}

static void test_report_body(void)
{
    static const column_t report[4] = {
        {"category", 0, TEXT_OID}, {"sum", 0, 20}, {"coalesce", 0, 20}, {"coalesce", 0, 20}};
    PGresult *res = result_new(report, 4);
    static const char *rows[2][4] = {{"books", "3", "4500", "1500"}, {"toys", "0", "0", "0"}};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            set_text(res, i, j, rows[i][j]);
    buf_t out = {0};
    rows_write_report(&out, res, 1000);
    CHECK_MEM(out.data, out.len,
              "{\"generated_at\":\"1970-01-01T00:00:01.000Z\",\"total_orders\":3,"
              "\"by_category\":[{\"category\":\"books\",\"orders\":3,\"revenue\":\"$45.00\","
              "\"avg_order\":\"$15.00\"},{\"category\":\"toys\",\"orders\":0,"
              "\"revenue\":\"$0.00\",\"avg_order\":\"$0.00\"}]}");
    buf_free(&out);
    PQclear(res);
}

static void test_order(void)
{
    static const column_t order[7] = {
        {"outcome", 0, TEXT_OID},         {"id", 0, INT4_OID},    {"product_id", 0, INT4_OID},
        {"quantity", 0, INT4_OID},        {"total_cents", 0, 20}, {"status", 0, TEXT_OID},
        {"created_at", 0, TIMESTAMP_OID},
    };
    PGresult *res = result_new(order, 7);
    static const char *row[7] = {
        "replayed", "7", "42", "2", "25998", "pending", "2026-11-28 21:38:02.359123"};
    for (int j = 0; j < 7; j++)
        set_text(res, 0, j, row[j]);
    buf_t out = {0};
    rows_write_order(&out, res, 1); /* after the outcome column */
    CHECK_MEM(out.data, out.len,
              "{\"id\":7,\"product_id\":42,\"quantity\":2,\"total_cents\":25998,"
              "\"status\":\"pending\",\"created_at\":\"2026-11-28T21:38:02.359Z\"}");
    buf_free(&out);
    PQclear(res);
}

static void test_health(void)
{
    static const column_t count[1] = {{"count", 0, 20}};
    PGresult *res = result_new(count, 1);
    set_text(res, 0, 0, "5000");
    buf_t out = {0};
    rows_write_health(&out, 0, "app-1", res, NULL);
    CHECK_MEM(out.data, out.len, "{\"status\":\"ok\",\"server\":\"app-1\",\"products\":5000}");
    buf_reset(&out);
    rows_write_health(&out, 1, "app-1", res, "missing \"x\"");
    CHECK_MEM(out.data, out.len,
              "{\"status\":\"ready\",\"server\":\"app-1\",\"products\":5000,"
              "\"schema\":\"missing \\\"x\\\"\"}");
    buf_free(&out);
    PQclear(res);
}

int main(void)
{
    test_product();
    test_listing();
    test_report_body();
    test_order();
    test_health();
    return test_report("rows");
}
