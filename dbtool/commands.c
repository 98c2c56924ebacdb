/* commands.c: catalog-db's wait, migrate, seed and status (docs/api.md, Seed). */
#include "dbtool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"

/* The advisory lock every schema change and seed holds for its whole transaction, so two
 * catalog-db processes started together apply the schema once and seed once. */
#define SCHEMA_LOCK_SQL "SELECT pg_advisory_xact_lock(7236846773593650017)"

/* Product i gets id i, so the orders' uniform product_id 1..SEED_PRODUCTS always points at a
 * product.  The description is the reference's text byte for byte (ending with a space). */
static const char insert_products_sql[] =
    "INSERT INTO products (id, name, category, price_cents, stock, description) "
    "SELECT i, 'Product ' || i, "
    "(ARRAY['electronics','clothing','books','home','sports'])[1 + floor(random() * 5)::int], "
    "99 + floor(random() * 50000)::int, "
    "floor(random() * 500)::int, "
    "'Description for product ' || i || '. ' || repeat('Lorem ipsum dolor sit amet. ', 5) "
    "FROM generate_series(1, $1::int) AS i";

/* created_at is left to its default now(): the seed transaction's start, in UTC because every
 * catalog-db session runs with TimeZone=UTC. */
static const char insert_orders_sql[] =
    "INSERT INTO orders (id, product_id, quantity, total_cents, status) "
    "SELECT i, 1 + floor(random() * $2::int)::int, "
    "1 + floor(random() * 5)::int, "
    "99 + floor(random() * 100000)::int, "
    "(ARRAY['pending','processing','shipped','delivered'])[1 + floor(random() * 4)::int] "
    "FROM generate_series(1, $1::int) AS i";

/* The ids were given explicitly: move the serial sequences past them for the server's inserts. */
static const char reset_sequences_sql[] =
    "SELECT setval(pg_get_serial_sequence('products', 'id'), greatest($1::int, 1), $1::int > 0),"
    " setval(pg_get_serial_sequence('orders', 'id'), greatest($2::int, 1), $2::int > 0)";

/* Loading 500,000 orders row by row through their secondary indexes and the foreign-key
 * trigger takes about three times as long as loading them bare and then building the indexes
 * and checking the key once.  So, on the empty table and inside the seed transaction, the seed
 * drops orders' plain indexes and foreign keys and re-creates them afterwards from their own
 * catalog definitions (whatever sql/schema.sql says today).  Column 1: the statement that
 * drops one; column 2: the statement that re-creates it.  Indexes before keys, so the key
 * check can use the product_id index. */
static const char orders_rebuild_sql[] =
    "SELECT format('DROP INDEX %I.%I', n.nspname, c.relname), pg_get_indexdef(i.indexrelid), 1 "
    "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE i.indrelid = 'orders'::regclass "
    "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) "
    "UNION ALL "
    "SELECT format('ALTER TABLE orders DROP CONSTRAINT %I', conname), "
    "format('ALTER TABLE orders ADD CONSTRAINT %I %s', conname, pg_get_constraintdef(oid)), 2 "
    "FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'f' "
    "ORDER BY 3";

/* The orders go in with sql/rollup.sql's insert trigger paused: folding 500,000 rows into
 * product_sales through the trigger's transition table costs about as much as loading them,
 * while one grouped back-fill afterwards (product_sales_rebuild, same transaction, orders
 * locked by the index drops) costs a fraction and is exact by construction. */

/* Runs column `column` of every row of rebuild as a statement.  Returns 0 or -1. */
static int run_rebuild_column(PGconn *conn, const PGresult *rebuild, int column, const char *what)
{
    for (int row = 0; row < PQntuples(rebuild); row++)
        if (dbtool_exec(conn, PQgetvalue(rebuild, row, column), PGRES_COMMAND_OK, what) != 0)
            return -1;
    return 0;
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* Runs sql with param_count (1 or 2) integer parameters $1 = first, $2 = second.  Returns 0,
 * or -1 after printing why.  The result is always cleared. */
static int exec_with_counts(PGconn *conn, const char *sql, int param_count, unsigned long first,
                            unsigned long second, ExecStatusType want, const char *what)
{
    char first_text[24], second_text[24];
    snprintf(first_text, sizeof first_text, "%lu", first);
    snprintf(second_text, sizeof second_text, "%lu", second);
    const char *params[] = {first_text, second_text};
    PGresult *result = PQexecParams(conn, sql, param_count, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(result) != want) {
        fprintf(stderr, "catalog-db: %s: %s", what,
                result ? PQresultErrorMessage(result) : PQerrorMessage(conn));
        PQclear(result);
        return -1;
    }
    PQclear(result);
    return 0;
}

/* Ends the open transaction on an error path; the error itself was already reported. */
static void rollback(PGconn *conn)
{
    PGresult *result = PQexec(conn, "ROLLBACK");
    PQclear(result);
}

/* Applies the embedded schema, then the rollup (product_sales, its triggers and its one-time
 * back-fill), in one transaction under the advisory lock.  Returns 0 or -1. */
static int apply_schema(PGconn *conn)
{
    if (dbtool_exec(conn, "BEGIN", PGRES_COMMAND_OK, "begin the schema transaction") != 0)
        return -1;
    if (dbtool_exec(conn, SCHEMA_LOCK_SQL, PGRES_TUPLES_OK, "take the schema lock") != 0 ||
        dbtool_exec(conn, "SET LOCAL client_min_messages = warning", PGRES_COMMAND_OK,
                    "quiet the schema notices") != 0 ||
        dbtool_exec(conn, dbtool_schema_sql, PGRES_COMMAND_OK, "apply sql/schema.sql") != 0 ||
        dbtool_exec(conn, dbtool_rollup_sql, PGRES_COMMAND_OK, "apply sql/rollup.sql") != 0 ||
        dbtool_exec(conn, "COMMIT", PGRES_COMMAND_OK, "commit the schema") != 0) {
        rollback(conn);
        return -1;
    }
    return 0;
}

dbtool_exit_t dbtool_command_wait(const dbtool_config_t *config)
{
    int server_up = 0;
    PGconn *conn = dbtool_wait(config, 0, &server_up);
    if (!conn && !server_up) return DBTOOL_EXIT_NOT_DONE;
    printf("catalog-db: PostgreSQL is ready at %s:%s\n", config->host, config->port);
    PQfinish(conn);
    return DBTOOL_EXIT_OK;
}

dbtool_exit_t dbtool_command_migrate(const dbtool_config_t *config)
{
    PGconn *conn = dbtool_wait(config, 1, NULL);
    if (!conn) return DBTOOL_EXIT_NOT_DONE;
    int failed = apply_schema(conn);
    if (!failed) printf("catalog-db: schema applied to database \"%s\"\n", config->name);
    PQfinish(conn);
    return failed ? DBTOOL_EXIT_NOT_DONE : DBTOOL_EXIT_OK;
}

/* The seed proper, inside the caller's transaction (which holds the lock).  Returns 0 when
 * seeded or already complete, -1 after printing why (the caller rolls back). */
static int seed_in_transaction(PGconn *conn, const dbtool_config_t *config, int *seeded)
{
    long long products = 0, orders = 0;
    if (dbtool_query_count(conn, "SELECT count(*) FROM products", &products) != 0 ||
        dbtool_query_count(conn, "SELECT count(*) FROM orders", &orders) != 0)
        return -1;

    if (products == (long long)config->seed_products && orders >= (long long)config->seed_orders) {
        printf("catalog-db: already seeded (%lld products, %lld orders); nothing to do\n", products,
               orders);
        *seeded = 0;
        return 0;
    }
    if (products != 0 || orders != 0) {
        /* Our seed is one transaction, so this is not a seed of ours cut short: someone else's
         * data, or a seed of another size.  Building on it would mix the two. */
        fprintf(stderr,
                "catalog-db: refusing to seed database \"%s\": it holds %lld products and %lld "
                "orders, which is neither empty nor a complete seed (%lu products, at least "
                "%lu orders). Empty it first (TRUNCATE orders, products RESTART IDENTITY, or "
                "drop the database) or set SEED_PRODUCTS/SEED_ORDERS to match it.\n",
                config->name, products, orders, config->seed_products, config->seed_orders);
        return -1;
    }

    printf("catalog-db: seeding %lu products and %lu orders into \"%s\" (one transaction)\n",
           config->seed_products, config->seed_orders, config->name);
    fflush(stdout);
    PGresult *rebuild = PQexec(conn, orders_rebuild_sql);
    if (PQresultStatus(rebuild) != PGRES_TUPLES_OK) {
        fprintf(stderr, "catalog-db: list the orders' indexes and keys: %s",
                rebuild ? PQresultErrorMessage(rebuild) : PQerrorMessage(conn));
        PQclear(rebuild);
        return -1;
    }
    int failed =
        run_rebuild_column(conn, rebuild, 0, "drop an orders index or key") != 0 ||
        exec_with_counts(conn, insert_products_sql, 1, config->seed_products, 0, PGRES_COMMAND_OK,
                         "insert the products") != 0 ||
        dbtool_exec(conn, "ALTER TABLE orders DISABLE TRIGGER orders_product_sales_insert",
                    PGRES_COMMAND_OK, "pause the product_sales trigger for the bulk load") != 0 ||
        exec_with_counts(conn, insert_orders_sql, 2, config->seed_orders, config->seed_products,
                         PGRES_COMMAND_OK, "insert the orders") != 0 ||
        dbtool_exec(conn, "ALTER TABLE orders ENABLE TRIGGER orders_product_sales_insert",
                    PGRES_COMMAND_OK, "resume the product_sales trigger") != 0 ||
        dbtool_exec(conn, "SELECT product_sales_rebuild()", PGRES_TUPLES_OK,
                    "back-fill product_sales from the seeded orders") != 0 ||
        run_rebuild_column(conn, rebuild, 1, "re-create an orders index or key") != 0 ||
        exec_with_counts(conn, reset_sequences_sql, 2, config->seed_products, config->seed_orders,
                         PGRES_TUPLES_OK, "move the id sequences past the seed") != 0 ||
        dbtool_exec(conn, "ANALYZE products, orders, product_sales", PGRES_COMMAND_OK,
                    "analyze the seeded tables") != 0;
    PQclear(rebuild);
    if (failed) return -1;
    *seeded = 1;
    return 0;
}

dbtool_exit_t dbtool_command_seed(const dbtool_config_t *config)
{
    PGconn *conn = dbtool_wait(config, 1, NULL);
    if (!conn) return DBTOOL_EXIT_NOT_DONE;
    dbtool_exit_t status = DBTOOL_EXIT_NOT_DONE;
    if (apply_schema(conn) != 0) goto done;

    /* A seeder killed mid-seed: the server notices within a second (rather than after the
     * statement ends), rolls back and frees the lock for the next seeder. */
    if (dbtool_exec(conn, "SET client_connection_check_interval = '1s'", PGRES_COMMAND_OK,
                    "set client_connection_check_interval") != 0)
        goto done;

    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    if (dbtool_exec(conn, "BEGIN", PGRES_COMMAND_OK, "begin the seed transaction") != 0) goto done;
    /* A second seeder waits here until the first commits, then finds the seed complete. */
    int seeded = 0;
    if (dbtool_exec(conn, SCHEMA_LOCK_SQL, PGRES_TUPLES_OK, "take the seed lock") != 0 ||
        seed_in_transaction(conn, config, &seeded) != 0 ||
        dbtool_exec(conn, "COMMIT", PGRES_COMMAND_OK, "commit the seed") != 0) {
        rollback(conn);
        fprintf(stderr, "catalog-db: seed not done; the database is as it was before\n");
        goto done;
    }
    /* VACUUM (outside the transaction) marks the freshly written pages all-visible, so the
     * live report's index-only scans read no table pages from the start rather than after
     * autovacuum's first visit. */
    if (seeded && dbtool_exec(conn, "VACUUM products, orders", PGRES_COMMAND_OK,
                              "vacuum the seeded tables") != 0)
        fprintf(stderr, "catalog-db: warning: the seed is complete but VACUUM failed; "
                        "autovacuum will do it later\n");
    if (seeded)
        printf("catalog-db: seeded %lu products and %lu orders in %.1f s\n", config->seed_products,
               config->seed_orders, seconds_since(&start));
    status = DBTOOL_EXIT_OK;
done:
    PQfinish(conn);
    return status;
}

/* Counts the orders for `status`.  Returns 0 and sets *orders; 1 when the orders table is
 * locked by a seed in progress (seed locks it while it rebuilds its indexes, and only ever
 * seeds an empty table, so the committed count is 0); -1 with the reason in err otherwise
 * (no such table, connection lost...). */
static int count_orders_for_status(PGconn *conn, long long *orders, char *err, size_t err_size)
{
    /* Wait briefly for a lock: status must answer, not hang behind a seed. */
    if (dbtool_exec(conn, "SET lock_timeout = '1s'", PGRES_COMMAND_OK, "set lock_timeout") != 0) {
        return error_set(err, err_size, "cannot set lock_timeout");
    }
    PGresult *result = PQexec(conn, "SELECT count(*) FROM orders");
    int outcome = -1;
    if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1) {
        *orders = strtoll(PQgetvalue(result, 0, 0), NULL, 10);
        outcome = 0;
    } else {
        const char *state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
        if (state && strcmp(state, "55P03") == 0) { /* lock_not_available */
            *orders = 0;
            outcome = 1;
        } else {
            char message[600];
            snprintf(message, sizeof message, "%s",
                     result ? PQresultErrorMessage(result) : PQerrorMessage(conn));
            message[strcspn(message, "\n")] = '\0';
            error_set(err, err_size, "cannot count the orders: %s", message);
        }
    }
    PQclear(result);
    return outcome;
}

dbtool_exit_t dbtool_command_status(const dbtool_config_t *config)
{
    char err[1024];
    long long orders = 0;
    PGconn *conn = dbtool_connect(config, config->name, err, sizeof err);
    if (!conn || count_orders_for_status(conn, &orders, err, sizeof err) < 0) {
        fprintf(stderr, "catalog-db: %s\n", err);
        printf("❌ Database not ready yet.\n");
        PQfinish(conn);
        return DBTOOL_EXIT_NOT_READY;
    }
    PQfinish(conn);
    if (orders >= (long long)config->seed_orders) {
        printf("Orders in DB: %lld ✅ Ready\n", orders);
        return DBTOOL_EXIT_OK;
    }
    printf("Orders in DB: %lld ⏳ Still seeding...\n", orders);
    return DBTOOL_EXIT_NOT_DONE;
}
