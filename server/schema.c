/* schema.c: checks at start-up that the database has the objects `catalog-db migrate` adds,
 * on a thread of its own with its own connection, so no event loop ever waits for it. */
#include "schema.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
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
    pthread_t thread;
    atomic_int stop_requested;
    int wake_fd; /* eventfd: written once to wake the thread from any wait; -1: no thread */
    /* read only by the thread */
    const char *keywords[8], *values[8];
    char application_name[96], connect_timeout[16];
    unsigned connect_timeout_ms;
} check = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake_fd = -1};

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

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits until fd (-1: none) is ready for events, or until deadline_ms (0: none).  Returns 1 when
 * it is ready, 0 when the thread is asked to stop, -1 when the deadline passed. */
static int wait_for(int fd, short events, uint64_t deadline_ms)
{
    for (;;) {
        if (atomic_load(&check.stop_requested)) return 0;
        int timeout = -1;
        if (deadline_ms) {
            uint64_t now = now_ms();
            if (now >= deadline_ms) return -1;
            timeout = (int)(deadline_ms - now);
        }
        struct pollfd fds[2] = {{.fd = check.wake_fd, .events = POLLIN},
                                {.fd = fd, .events = events}};
        int n = poll(fds, fd >= 0 ? 2 : 1, timeout);
        if (n < 0 && errno != EINTR) return -1;
        if (atomic_load(&check.stop_requested)) return 0;
        if (n > 0 && fd >= 0 && fds[1].revents) return 1;
    }
}

/* Sleeps ms; returns 0 when the thread is asked to stop meanwhile. */
static int sleep_ms(unsigned ms)
{
    return wait_for(-1, 0, now_ms() + ms) != 0;
}

/* Opens the connection without blocking in libpq (its waits are here, where a stop request ends
 * them), within the connect timeout.  Returns it, or NULL (failed, or asked to stop). */
static PGconn *connect_db(void)
{
    PGconn *conn = PQconnectStartParams(check.keywords, check.values, 0);
    uint64_t deadline_ms = now_ms() + check.connect_timeout_ms;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (conn && PQstatus(conn) != CONNECTION_BAD) {
        if (st == PGRES_POLLING_OK) return conn;
        if (st == PGRES_POLLING_FAILED) break;
        if (wait_for(PQsocket(conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline_ms) !=
            1)
            break;
        st = PQconnectPoll(conn);
    }
    PQfinish(conn);
    return NULL;
}

/* PQexec, with its waits here.  Returns the last result, or NULL (asked to stop, or the
 * connection failed). */
static PGresult *exec_query(PGconn *conn, const char *sql)
{
    if (PQsetnonblocking(conn, 1) != 0 || !PQsendQuery(conn, sql)) return NULL;
    int flushed;
    while ((flushed = PQflush(conn)) == 1)
        if (wait_for(PQsocket(conn), POLLOUT, 0) != 1) return NULL;
    if (flushed < 0) return NULL;
    PGresult *last = NULL, *res;
    for (;;) {
        while (PQisBusy(conn)) {
            if (wait_for(PQsocket(conn), POLLIN, 0) != 1 || !PQconsumeInput(conn)) {
                PQclear(last);
                return NULL;
            }
        }
        if (!(res = PQgetResult(conn))) return last;
        PQclear(last);
        last = res;
    }
}

/* Runs the check on conn.  Returns 1 when everything is there, 0 when something is missing
 * (recorded, and logged when it changed), -1 when the query failed (the connection is
 * dropped and made again) or the thread is asked to stop. */
static int check_once(PGconn *conn, int *logged)
{
    PGresult *res = exec_query(conn, CHECK_SQL);
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
    while (!atomic_load(&check.stop_requested)) {
        if (!conn) {
            conn = connect_db();
            if (!conn) {
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
    check.connect_timeout_ms = (timeout_s < 2 ? 2 : timeout_s) * 1000;
    check.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (check.wake_fd < 0) return -1;
    int rc = pthread_create(&check.thread, NULL, schema_thread, NULL);
    if (rc != 0) {
        close(check.wake_fd);
        check.wake_fd = -1;
        errno = rc;
        return -1;
    }
    return 0;
}

void schema_check_stop(unsigned wait_ms)
{
    static int stopped;
    if (check.wake_fd < 0 || stopped) return;
    stopped = 1;
    atomic_store(&check.stop_requested, 1);
    uint64_t one = 1;
    ssize_t w = write(check.wake_fd, &one, sizeof one);
    (void)w;
    struct timespec until = loop_deadline_after(CLOCK_REALTIME, wait_ms);
    /* Joined, not merely seen to return: OpenSSL's thread-exit handler must be done too. */
    if (pthread_timedjoin_np(check.thread, NULL, &until) != 0) pthread_detach(check.thread);
}
