/* rows.h: the JSON of each route's answer, written straight from libpq's results (the product
 * rows decoded from PostgreSQL's binary format, the others from text). */
#ifndef CATALOG_ROWS_H
#define CATALOG_ROWS_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* 1 when res has the columns of sql/statements.sql's product statements in the binary formats
 * the product writers read: id, name, category, price_cents, stock, description, created_at
 * (with_category), or the category listing's, the same without category. */
int rows_product_result_ok(const PGresult *res, int with_category);

/* GET /products: a JSON array of the product rows of res (checked by rows_product_result_ok).
 * category NULL: the rows of list_cheapest, in their order.  Otherwise the rows of
 * list_category, which PostgreSQL sends in no order, written by price, then id, each with the
 * category asked for (category_len bytes, not escaped).  Allocates for the sort and frees it. */
void rows_write_products(buf_t *out, const PGresult *res, const char *category,
                         size_t category_len);

/* GET /products/:id: the product object of row 0 of res (checked by rows_product_result_ok,
 * with_category). */
void rows_write_product(buf_t *out, const PGresult *res);

/* GET /report: {"generated_at", "total_orders", "by_category": [...]} from res's rows
 * (category, orders, revenue_cents, avg_order_cents, as text), generated at now_ms (ms since
 * 1970). */
void rows_write_report(buf_t *out, const PGresult *res, int64_t now_ms);

/* POST /orders: the order object from columns first.. of row 0 of res (id, product_id,
 * quantity, total_cents, status, created_at, as text). */
void rows_write_order(buf_t *out, const PGresult *res, int first);

/* GET /health and /health/ready: {"status": "ok" or "ready", "server", "products"} with the
 * count in row 0 of res, and "schema" when schema_note is not NULL. */
void rows_write_health(buf_t *out, int ready, const char *server_id, const PGresult *res,
                       const char *schema_note);
/* The same in two halves, for a caller that adds fields between them (the database instances
 * of /health): the opening, up to "products", then the closing with "schema" and '}'. */
void rows_write_health_open(buf_t *out, int ready, const char *server_id, const PGresult *res);
void rows_write_health_close(buf_t *out, const char *schema_note);

#endif
