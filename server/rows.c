/* rows.c: the JSON of each route's answer, written straight from libpq's results. */
#include "rows.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "format.h"
#include "json.h"
#include "sort.h"

/* ---- values as text ------------------------------------------------------------------------ */

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
 * The product statements are asked for binary results (statements_binary): integers arrive as
 * 4 big-endian bytes and created_at as 8 (microseconds since 2000-01-01), so PostgreSQL skips
 * its output functions and the server skips parsing text; the strings arrive as the same bytes
 * either way.  The JSON is the same as from text results (docs/api.md's shapes). */

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

/* A binary `timestamp` in ISO 8601: "2026-11-28T21:38:02.359Z" (truncated to ms), with an
 * expanded year outside 1..9999 (as generated_at would be); "infinity"/"-infinity" as
 * PostgreSQL spells them.  Rows loaded together share their created_at, so the last one is kept
 * and reused. */
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

int rows_product_result_ok(const PGresult *res, int with_category)
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

/* One product object from row of a product result (binary), or of a category listing's result
 * when category (the quoted, escaped JSON string of category_len bytes) is given.
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

/* ---- the routes' answers ------------------------------------------------------------------- */

void rows_write_products(buf_t *out, const PGresult *res, const char *category, size_t category_len)
{
    buf_t quoted = {0};
    int rows = PQntuples(res);
    sort_item_t *order = NULL;
    if (category) {
        json_write_string(&quoted, category, category_len);
        /* PostgreSQL sent the rows in no order: by price, then id. */
        order = xmalloc(2 * (size_t)(rows ? rows : 1) * sizeof *order);
        for (int i = 0; i < rows; i++) {
            order[i].key =
                sort_key_i32_pair(get_int4(PQgetvalue(res, i, 2)), get_int4(PQgetvalue(res, i, 0)));
            order[i].row = (uint32_t)i;
        }
        sort_items(order, order + rows, (size_t)rows);
    }
    buf_append_char(out, '[');
    for (int i = 0; i < rows; i++) {
        if (i) buf_append_char(out, ',');
        write_product(out, res, order ? (int)order[i].row : i, quoted.data, quoted.len);
    }
    buf_append_char(out, ']');
    free(order);
    buf_free(&quoted);
}

void rows_write_product(buf_t *out, const PGresult *res)
{
    write_product(out, res, 0, NULL, 0);
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

void rows_write_report(buf_t *out, const PGresult *res, int64_t now_ms)
{
    int rows = PQntuples(res);
    int64_t total = 0;
    for (int i = 0; i < rows; i++)
        total += column_i64(res, i, 1);
    buf_append_cstr(out, "{\"generated_at\":\"");
    format_iso8601_ms(out, now_ms);
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
}

void rows_write_order(buf_t *out, const PGresult *res, int first)
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

void rows_write_health(buf_t *out, int ready, const char *server_id, const PGresult *res,
                       const char *schema_note)
{
    rows_write_health_open(out, ready, server_id, res);
    rows_write_health_close(out, schema_note);
}

void rows_write_health_open(buf_t *out, int ready, const char *server_id, const PGresult *res)
{
    buf_append_cstr(out,
                    ready ? "{\"status\":\"ready\",\"server\":" : "{\"status\":\"ok\",\"server\":");
    json_write_cstr(out, server_id);
    buf_append_cstr(out, ",\"products\":");
    write_raw(out, res, 0, 0);
}

void rows_write_health_close(buf_t *out, const char *schema_note)
{
    if (schema_note) {
        buf_append_cstr(out, ",\"schema\":");
        json_write_cstr(out, schema_note);
    }
    buf_append_char(out, '}');
}
