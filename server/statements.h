/* statements.h: the server's prepared statements: their names, how each shares a connection,
 * and their SQL, read from sql/statements.sql (embedded at build time). */
#ifndef CATALOG_STATEMENTS_H
#define CATALOG_STATEMENTS_H

#include <stddef.h>

#include "pool.h"

/* Every statement the routes run; the index into the table statements_load returns. */
enum statement {
    ST_COUNT_PRODUCTS,
    ST_LIST_CHEAPEST,
    ST_LIST_CATEGORY,
    ST_PRODUCT,
    ST_REPORT, /* "report", or "report_rollup" under REPORT_MODE=rollup */
    ST_INSERT_ORDER,
    ST_INSERT_ORDER_WITH_KEY,
    ST_COUNT
};

/* The pool's statement table (ST_COUNT entries, in enum statement's order, *count set to
 * ST_COUNT), each with its SQL found by name in sql/statements.sql; report_rollup picks the
 * rollup's report.  The table and its strings live until the process exits.  Returns NULL with
 * a message in err when a statement is missing from the file.  Call once, at start-up. */
const pool_statement_t *statements_load(int report_rollup, unsigned *count, char *err,
                                        size_t err_len);

/* 1 when statement st's result columns are read in binary (the product rows: server/rows.h),
 * 0 for text. */
int statements_binary(enum statement st);
/* 1 when statement st only reads and may run on a read replica (DB_READ_HOSTS: the listings,
 * the product page, the report); 0 for writes and what must see its own writes. */
int statements_read(enum statement st);

#endif
