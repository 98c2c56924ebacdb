/* schema.c: checks at start-up that the database has the objects `catalog-db migrate` adds,
 * on a thread of its own with its own connection, so no event loop ever waits for it. */
#include "schema.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "pool.h"

/* How often a database that lacks something is looked at again. */
#define SCHEMA_RECHECK_MS 5000
/* How long to wait before trying to connect again after a failure. */
#define SCHEMA_RETRY_MS 2000

/* One row, one column: the missing objects, ", "-separated, empty when none, in the order of
 * sql/schema.sql and sql/rollup.sql; each says what it serves.  The first two are what a keyed
 * order needs (column 2: 1 when either is missing).  Name lookups only: no lock is taken. */
static const char CHECK_SQL[] =
    "SELECT concat_ws(', ',"
    " CASE WHEN to_regclass('order_idempotency_keys') IS NULL"
    "  THEN 'table order_idempotency_keys (POST /orders with Idempotency-Key)' END,"
    " CASE WHEN to_regprocedure('place_order_with_key(integer, integer, character varying)')"
    "  IS NULL THEN 'function place_order_with_key (POST /orders with Idempotency-Key)' END,"
    " CASE WHEN to_regclass('products_price_id_idx') IS NULL"
    "  THEN 'index products_price_id_idx (GET /products is slower)' END,"
    " CASE WHEN to_regclass('orders_product_id_total_cents_idx') IS NULL"
    "  THEN 'index orders_product_id_total_cents_idx (GET /report is slower)' END,"
    " CASE WHEN to_regclass('product_sales') IS NULL"
    "  THEN 'table product_sales (REPORT_MODE=rollup)' END,"
    " CASE WHEN NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'orders_product_sales_insert')"
    "  THEN 'trigger orders_product_sales_insert (REPORT_MODE=rollup)' END),"
    " (to_regclass('order_idempotency_keys') IS NULL OR"
    "  to_regprocedure('place_order_with_key(integer, integer, character varying)') IS NULL)::int";

static struct {
    pthread_mutex_t lock;
    char missing[768]; /* the message; empty when nothing is missing (guarded by lock) */
    atomic_int any_missing, keyed_missing;
    /* read only by the thread */
    const char *keywords[8], *values[8];
    char application_name[96], connect_timeout[16];
} check = {.lock = PTHREAD_MUTEX_INITIALIZER};

int schema_missing(char *out, size_t out_len)
{
    if (!atomic_load_explicit(&check.any_missing, memory_order_relaxed)) return 0;
    pthread_mutex_lock(&check.lock);
    snprintf(out, out_len, "%s", check.missing);
    pthread_mutex_unlock(&check.lock);
    return 1;
}

int schema_keyed_orders_missing(void)
{
    return atomic_load_explicit(&check.keyed_missing, memory_order_relaxed);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Runs the check on conn.  Returns 1 when everything is there, 0 when something is missing
 * (recorded, and logged when it changed), -1 when the query failed (the connection is
 * dropped and made again). */
static int check_once(PGconn *conn, int *logged)
{
    PGresult *res = PQexec(conn, CHECK_SQL);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        PQclear(res);
        return -1;
    }
    const char *missing = PQgetvalue(res, 0, 0);
    int keyed = strcmp(PQgetvalue(res, 0, 1), "1") == 0;
    char message[sizeof check.missing] = "";
    if (*missing)
        snprintf(message, sizeof message,
                 "the database schema is older than this server: missing %s; run catalog-db "
                 "migrate",
                 missing);
    PQclear(res);
    pthread_mutex_lock(&check.lock);
    int changed = strcmp(check.missing, message) != 0;
    memcpy(check.missing, message, sizeof message);
    pthread_mutex_unlock(&check.lock);
    atomic_store(&check.keyed_missing, keyed);
    atomic_store(&check.any_missing, *message != 0);
    if (changed && *message) {
        log_warn("%s", message);
        *logged = 1;
    } else if (!*message && *logged) {
        log_info("schema: everything this server needs is in the database now");
    }
    return *message ? 0 : 1;
}

static void *schema_thread(void *arg)
{
    (void)arg;
    int logged = 0;
    PGconn *conn = NULL;
    for (;;) {
        if (!conn) {
            conn = PQconnectdbParams(check.keywords, check.values, 0);
            if (PQstatus(conn) != CONNECTION_OK) {
                PQfinish(conn);
                conn = NULL;
                sleep_ms(SCHEMA_RETRY_MS);
                continue;
            }
            pool_log_notices(conn);
        }
        int rc = check_once(conn, &logged);
        if (rc == 1) break;
        if (rc < 0) {
            PQfinish(conn);
            conn = NULL;
            sleep_ms(SCHEMA_RETRY_MS);
            continue;
        }
        sleep_ms(SCHEMA_RECHECK_MS);
    }
    PQfinish(conn);
    return NULL;
}

int schema_check_start(const server_config_t *config)
{
    snprintf(check.application_name, sizeof check.application_name, "catalog-server-%s-schema",
             config->server_id);
    /* libpq's connect_timeout is in whole seconds (2 at least) */
    unsigned timeout_s = (config->db_connect_timeout_ms + 999) / 1000;
    snprintf(check.connect_timeout, sizeof check.connect_timeout, "%u",
             timeout_s < 2 ? 2 : timeout_s);
    const char *names[] = {
        "host", "port", "dbname", "user", "password", "connect_timeout", "application_name"};
    const char *values[] = {config->db_host,       config->db_port,     config->db_name,
                            config->db_user,       config->db_password, check.connect_timeout,
                            check.application_name};
    int k = 0;
    for (int i = 0; i < 7; i++) {
        if (!values[i] || !*values[i]) continue;
        check.keywords[k] = names[i];
        check.values[k++] = values[i];
    }
    check.keywords[k] = check.values[k] = NULL;
    pthread_t thread;
    if (pthread_create(&thread, NULL, schema_thread, NULL) != 0) return -1;
    pthread_detach(thread);
    return 0;
}
