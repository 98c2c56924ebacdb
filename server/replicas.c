/* replicas.c: reads over hot standbys: a pool per replica, the choice of an instance per read,
 * the retry on the primary, and the replay-lag monitor on a thread of its own. */
#include "replicas.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "error.h"
#include "json.h"
#include "log.h"

/* A check (connect, or one query) that takes longer fails: the instance is down. */
#define CHECK_TIMEOUT_MS 1000
/* After a failed check, the next connection attempt to that instance waits this long. */
#define RECONNECT_MS 1000
/* The primary's WAL positions kept for the lag: 1024 samples, 102 s at REPLICAS_CHECK_MS, more
 * than DB_READ_MAX_LAG_MS may be (60 s). */
#define HISTORY 1024

enum replica_state { R_UNKNOWN, R_UP, R_DOWN, R_LAGGING };
static const char *const STATE_NAME[] = {"unknown", "up", "down", "lagging"};

typedef struct instance {
    pool_t *pool;
    char host[256], port[8], address[270];
    atomic_int usable; /* takes reads now (replicas only) */
    /* below: the monitor thread's, read for /health under the set's lock */
    enum replica_state state;
    int64_t lag_ms;    /* -1: unknown (the primary could not be sampled) */
    int64_t lag_bytes; /* -1: unknown */
    char reason[160];  /* why it is down */
    /* the monitor thread's alone */
    PGconn *conn;
    uint64_t retry_at_ms;
} instance_t;

typedef struct worker_pools {
    pool_worker_t *pool_worker[REPLICAS_MAX + 1]; /* [0]: the primary's (the caller's) */
    unsigned submitted; /* bit per instance given a query since its last tick */
    unsigned next;      /* the instance the next read tries first */
} worker_pools_t;

struct replicas {
    unsigned count; /* replicas; instances are 0..count */
    int read_primary;
    unsigned max_lag_ms;
    instance_t inst[REPLICAS_MAX + 1];
    worker_pools_t *workers;
    unsigned worker_count;
    pthread_mutex_t lock; /* the instances' state, lag and reason for /health */
    /* the monitor */
    pthread_t thread;
    int thread_started;
    atomic_int stop_requested;
    int wake_fd;
    const char *keywords[10], *values[10]; /* the primary's login; host and port per instance */
    int host_at, port_at;
    char connect_timeout[16];
    uint64_t times_ms[HISTORY], lsns[HISTORY];
    unsigned samples;
};

static const char *const NAMES[REPLICAS_MAX + 1] = {"primary",  "replica1", "replica2",
                                                    "replica3", "replica4", "replica5",
                                                    "replica6", "replica7", "replica8"};

const char *replicas_name(unsigned i)
{
    return i <= REPLICAS_MAX ? NAMES[i] : "replica";
}

unsigned replicas_count(const replicas_t *set)
{
    return set->count;
}

pool_t *replicas_pool(const replicas_t *set, unsigned i)
{
    return set->inst[i].pool;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- DB_READ_HOSTS ------------------------------------------------------------------------ */

int replicas_parse_hosts(const char *list, const char *default_port, char hosts[][256],
                         char ports[][8], unsigned *count, char *err, size_t err_len)
{
    *count = 0;
    if (!list || !*list) return 0;
    const char *p = list;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (len == 0)
            return error_set(err, err_len,
                             "DB_READ_HOSTS must be host:port items separated by commas, got '%s'",
                             list);
        if (*count == REPLICAS_MAX)
            return error_set(err, err_len, "DB_READ_HOSTS may name at most %d replicas",
                             REPLICAS_MAX);
        const char *colon = memchr(p, ':', len);
        size_t host_len = colon ? (size_t)(colon - p) : len;
        const char *port = colon ? colon + 1 : default_port;
        size_t port_len = colon ? len - host_len - 1 : strlen(default_port);
        unsigned long port_value = 0;
        int port_ok = port_len >= 1 && port_len <= 5;
        for (size_t i = 0; port_ok && i < port_len; i++) {
            port_ok = port[i] >= '0' && port[i] <= '9';
            port_value = port_value * 10 + (unsigned long)(port[i] - '0');
        }
        if (host_len == 0 || host_len >= 256 || !port_ok || port_value < 1 || port_value > 65535)
            return error_set(err, err_len,
                             "DB_READ_HOSTS: '%.*s' is not host:port (port 1 to 65535)", (int)len,
                             p);
        memcpy(hosts[*count], p, host_len);
        hosts[*count][host_len] = 0;
        memcpy(ports[*count], port, port_len);
        ports[*count][port_len] = 0;
        (*count)++;
        if (!p[len]) return 0;
        p += len + 1;
    }
}

/* ---- the lag ------------------------------------------------------------------------------ */

int64_t replicas_lag_ms(const uint64_t *times_ms, const uint64_t *lsns, unsigned n,
                        uint64_t replay_lsn, uint64_t now_ms)
{
    if (n == 0) return -1;
    if (replay_lsn >= lsns[n - 1]) return 0;
    unsigned i = n;
    while (i > 0 && lsns[i - 1] > replay_lsn)
        i--;
    uint64_t since = times_ms[i > 0 ? i - 1 : 0];
    return now_ms > since ? (int64_t)(now_ms - since) : 0;
}

/* ---- the monitor thread ------------------------------------------------------------------- */

/* Waits until fd is ready for events or deadline_ms.  Returns 1 when ready, 0 when asked to
 * stop, -1 when the deadline passed. */
static int wait_fd(replicas_t *set, int fd, short events, uint64_t deadline_ms)
{
    for (;;) {
        if (atomic_load(&set->stop_requested)) return 0;
        uint64_t now = now_ms();
        if (now >= deadline_ms) return -1;
        struct pollfd fds[2] = {{.fd = set->wake_fd, .events = POLLIN},
                                {.fd = fd, .events = events}};
        int n = poll(fds, fd >= 0 ? 2 : 1, (int)(deadline_ms - now));
        if (n < 0 && errno != EINTR) return -1;
        if (atomic_load(&set->stop_requested)) return 0;
        if (n > 0 && fd >= 0 && fds[1].revents) return 1;
    }
}

/* Connects to instance i without blocking inside libpq.  Returns the connection or NULL. */
static PGconn *monitor_connect(replicas_t *set, unsigned i)
{
    set->values[set->host_at] = set->inst[i].host;
    set->values[set->port_at] = set->inst[i].port;
    PGconn *conn = PQconnectStartParams(set->keywords, set->values, 0);
    uint64_t deadline = now_ms() + CHECK_TIMEOUT_MS;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (conn && PQstatus(conn) != CONNECTION_BAD) {
        if (st == PGRES_POLLING_OK) {
            pool_log_notices(conn);
            if (PQsetnonblocking(conn, 1) == 0) return conn;
            break;
        }
        if (st == PGRES_POLLING_FAILED) break;
        if (wait_fd(set, PQsocket(conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                    deadline) != 1)
            break;
        st = PQconnectPoll(conn);
    }
    snprintf(set->inst[i].reason, sizeof set->inst[i].reason, "%.*s",
             conn ? (int)strcspn(PQerrorMessage(conn), "\n") : 0, conn ? PQerrorMessage(conn) : "");
    if (!set->inst[i].reason[0])
        snprintf(set->inst[i].reason, sizeof set->inst[i].reason, "connect timed out");
    PQfinish(conn);
    return NULL;
}

/* One single-value query on conn within CHECK_TIMEOUT_MS.  Returns 1 with *value (0 and
 * *is_null when the value is NULL), or 0 when it failed (reason written). */
static int monitor_query(replicas_t *set, instance_t *in, const char *sql, uint64_t *value,
                         int *is_null)
{
    PGconn *conn = in->conn;
    uint64_t deadline = now_ms() + CHECK_TIMEOUT_MS;
    if (!PQsendQuery(conn, sql)) goto failed;
    int flushed;
    while ((flushed = PQflush(conn)) == 1)
        if (wait_fd(set, PQsocket(conn), POLLOUT, deadline) != 1) goto timed_out;
    if (flushed < 0) goto failed;
    PGresult *last = NULL, *res;
    for (;;) {
        while (PQisBusy(conn)) {
            int w = wait_fd(set, PQsocket(conn), POLLIN, deadline);
            if (w != 1 || !PQconsumeInput(conn)) {
                PQclear(last);
                if (w != 1) goto timed_out;
                goto failed;
            }
        }
        if (!(res = PQgetResult(conn))) break;
        PQclear(last);
        last = res;
    }
    if (PQresultStatus(last) != PGRES_TUPLES_OK || PQntuples(last) != 1) {
        snprintf(in->reason, sizeof in->reason, "%.*s",
                 (int)strcspn(PQresultErrorMessage(last), "\n"), PQresultErrorMessage(last));
        PQclear(last);
        return 0;
    }
    *is_null = PQgetisnull(last, 0, 0);
    *value = *is_null ? 0 : strtoull(PQgetvalue(last, 0, 0), NULL, 10);
    PQclear(last);
    return 1;
timed_out:
    snprintf(in->reason, sizeof in->reason, "no answer within %d ms", CHECK_TIMEOUT_MS);
    return 0;
failed:
    snprintf(in->reason, sizeof in->reason, "%.*s", (int)strcspn(PQerrorMessage(conn), "\n"),
             PQerrorMessage(conn));
    return 0;
}

/* Runs sql on instance i, connecting first if need be.  Returns as monitor_query; a failure
 * drops the connection. */
static int monitor_read(replicas_t *set, unsigned i, const char *sql, uint64_t *value, int *is_null)
{
    instance_t *in = &set->inst[i];
    uint64_t now = now_ms();
    if (!in->conn) {
        if (now < in->retry_at_ms) return 0; /* the reason of the last failure stays */
        in->conn = monitor_connect(set, i);
        if (!in->conn) {
            in->retry_at_ms = now_ms() + RECONNECT_MS;
            return 0;
        }
    }
    if (monitor_query(set, in, sql, value, is_null)) return 1;
    PQfinish(in->conn);
    in->conn = NULL;
    in->retry_at_ms = now_ms() + RECONNECT_MS;
    return 0;
}

/* Sets replica i's state; logs a change of whether it takes reads. */
static void set_state(replicas_t *set, unsigned i, enum replica_state state, int64_t lag_ms,
                      int64_t lag_bytes)
{
    instance_t *in = &set->inst[i];
    pthread_mutex_lock(&set->lock);
    enum replica_state was = in->state;
    in->state = state;
    in->lag_ms = lag_ms;
    in->lag_bytes = lag_bytes;
    pthread_mutex_unlock(&set->lock);
    int usable = state == R_UP;
    int was_usable = atomic_exchange(&in->usable, usable);
    if (usable && (!was_usable || was != R_UP))
        log_info("%s (%s): taking reads%s", NAMES[i], in->address,
                 was == R_UNKNOWN ? "" : " again");
    else if (state == R_DOWN && was != R_DOWN)
        log_warn("%s (%s): no reads while it is down: %s", NAMES[i], in->address, in->reason);
    else if (state == R_LAGGING && was != R_LAGGING)
        log_warn("%s (%s): no reads while its replay lags %lld ms behind the primary "
                 "(DB_READ_MAX_LAG_MS=%u)",
                 NAMES[i], in->address, (long long)lag_ms, set->max_lag_ms);
}

static void monitor_round(replicas_t *set)
{
    uint64_t lsn = 0;
    int is_null = 0;
    int primary_ok = monitor_read(
        set, 0, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint", &lsn, &is_null);
    if (primary_ok && !is_null) {
        if (set->samples == HISTORY) {
            memmove(set->times_ms, set->times_ms + 1, (HISTORY - 1) * sizeof set->times_ms[0]);
            memmove(set->lsns, set->lsns + 1, (HISTORY - 1) * sizeof set->lsns[0]);
            set->samples--;
        }
        set->times_ms[set->samples] = now_ms();
        set->lsns[set->samples++] = lsn;
    }
    for (unsigned i = 1; i <= set->count; i++) {
        uint64_t replay = 0;
        if (!monitor_read(set, i, "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint",
                          &replay, &is_null)) {
            set_state(set, i, R_DOWN, -1, -1);
            continue;
        }
        if (is_null) { /* not in recovery: promoted, or not a standby at all */
            snprintf(set->inst[i].reason, sizeof set->inst[i].reason,
                     "not a standby (pg_last_wal_replay_lsn() is NULL)");
            set_state(set, i, R_DOWN, -1, -1);
            continue;
        }
        if (!primary_ok) { /* no measure of the lag: judged by being up */
            set_state(set, i, R_UP, -1, -1);
            continue;
        }
        int64_t lag_ms = replicas_lag_ms(set->times_ms, set->lsns, set->samples, replay, now_ms());
        int64_t lag_bytes = replay >= lsn ? 0 : (int64_t)(lsn - replay);
        set_state(set, i, lag_ms > (int64_t)set->max_lag_ms ? R_LAGGING : R_UP, lag_ms, lag_bytes);
    }
}

static void *monitor_thread(void *arg)
{
    replicas_t *set = arg;
    while (!atomic_load(&set->stop_requested)) {
        uint64_t start = now_ms();
        monitor_round(set);
        wait_fd(set, -1, 0, start + REPLICAS_CHECK_MS);
    }
    for (unsigned i = 0; i <= set->count; i++) {
        PQfinish(set->inst[i].conn);
        set->inst[i].conn = NULL;
    }
    return NULL;
}

/* ---- the set ------------------------------------------------------------------------------ */

replicas_t *replicas_new(const char *read_hosts, int read_primary, unsigned max_lag_ms,
                         pool_t *primary, const pool_config_t *primary_config,
                         const char *monitor_name, unsigned worker_count, char *err, size_t err_len)
{
    char hosts[REPLICAS_MAX][256], ports[REPLICAS_MAX][8];
    unsigned count;
    if (replicas_parse_hosts(read_hosts, primary_config->port, hosts, ports, &count, err, err_len) <
        0)
        return NULL;
    replicas_t *set = xcalloc(1, sizeof *set);
    pthread_mutex_init(&set->lock, NULL);
    set->count = count;
    set->read_primary = read_primary || count == 0;
    set->max_lag_ms = max_lag_ms;
    set->wake_fd = -1;
    set->worker_count = worker_count;
    set->workers = xcalloc(worker_count, sizeof *set->workers);
    set->inst[0].pool = primary;
    snprintf(set->inst[0].host, sizeof set->inst[0].host, "%s", primary_config->host);
    snprintf(set->inst[0].port, sizeof set->inst[0].port, "%s", primary_config->port);
    for (unsigned i = 0; i <= count; i++) {
        instance_t *in = &set->inst[i];
        if (i > 0) {
            memcpy(in->host, hosts[i - 1], sizeof in->host);
            memcpy(in->port, ports[i - 1], sizeof in->port);
            pool_config_t pc = *primary_config;
            pc.host = in->host;
            pc.port = in->port;
            in->pool = pool_new(&pc, err, err_len);
            if (!in->pool) {
                replicas_free(set, 0);
                return NULL;
            }
        }
        /* "host:port" (copied piecewise: GCC's -Wrestrict cannot tell the fields apart). */
        size_t host_len = strnlen(in->host, sizeof in->host - 1);
        memcpy(in->address, in->host, host_len);
        in->address[host_len] = ':';
        size_t port_len = strnlen(in->port, sizeof in->port - 1);
        memcpy(in->address + host_len + 1, in->port, port_len);
        in->address[host_len + 1 + port_len] = 0;
        in->lag_ms = in->lag_bytes = -1;
    }
    if (count == 0) return set;
    /* The monitor's login: the primary's, with each instance's host and port. */
    unsigned timeout_s = (CHECK_TIMEOUT_MS + 999) / 1000;
    snprintf(set->connect_timeout, sizeof set->connect_timeout, "%u",
             timeout_s < 2 ? 2 : timeout_s);
    const char *names[] = {
        "host",   "port", "dbname", "user", "password", "connect_timeout", "application_name",
        "options"};
    const char *values[] = {"",
                            "",
                            primary_config->dbname,
                            primary_config->user,
                            primary_config->password,
                            set->connect_timeout,
                            monitor_name,
                            CONFIG_DB_SESSION_OPTIONS};
    int k = 0;
    for (int i = 0; i < 8; i++) {
        if (i >= 2 && (!values[i] || !*values[i])) continue;
        if (i == 0) set->host_at = k;
        if (i == 1) set->port_at = k;
        set->keywords[k] = names[i];
        set->values[k++] = values[i];
    }
    set->keywords[k] = set->values[k] = NULL;
    set->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int rc = set->wake_fd < 0 ? errno : pthread_create(&set->thread, NULL, monitor_thread, set);
    if (rc != 0) {
        error_set(err, err_len, "cannot start the replicas' monitor: %s", strerror(rc));
        replicas_free(set, 0);
        return NULL;
    }
    set->thread_started = 1;
    return set;
}

int replicas_worker_attach(replicas_t *set, unsigned index, loop_t *loop,
                           pool_worker_t *primary_worker)
{
    worker_pools_t *w = &set->workers[index];
    w->pool_worker[0] = primary_worker;
    w->next = index; /* the workers start their turns at different instances */
    for (unsigned i = 1; i <= set->count; i++) {
        w->pool_worker[i] = pool_worker_new(set->inst[i].pool, loop);
        if (!w->pool_worker[i]) return -1;
    }
    return 0;
}

int replicas_tick(replicas_t *set, unsigned index)
{
    worker_pools_t *w = &set->workers[index];
    int due = 1000;
    /* The replicas first: their callbacks may send a read again on the primary.  Then whatever
     * a callback submitted to a pool already ticked this turn (a pipelined request's read after
     * an answer) gets its tick, so it leaves now, not at the next turn. */
    for (unsigned i = set->count + 1; i-- > 0;) {
        w->submitted &= ~(1u << i);
        int d = pool_worker_tick(w->pool_worker[i]);
        if (d < due) due = d;
    }
    for (int round = 0; round < 4 && w->submitted; round++)
        for (unsigned i = set->count + 1; i-- > 0;)
            if (w->submitted & (1u << i)) {
                w->submitted &= ~(1u << i);
                int d = pool_worker_tick(w->pool_worker[i]);
                if (d < due) due = d;
            }
    return w->submitted ? 0 : due;
}

int replicas_busy(replicas_t *set, unsigned index)
{
    for (unsigned i = 0; i <= set->count; i++)
        if (pool_worker_busy(set->workers[index].pool_worker[i])) return 1;
    return 0;
}

void replicas_shutdown(replicas_t *set)
{
    for (unsigned i = 1; i <= set->count; i++)
        pool_shutdown(set->inst[i].pool);
}

void replicas_worker_free(replicas_t *set, unsigned index)
{
    for (unsigned i = 1; i <= set->count; i++) {
        pool_worker_free(set->workers[index].pool_worker[i]);
        set->workers[index].pool_worker[i] = NULL;
    }
}

void replicas_free(replicas_t *set, unsigned wait_ms)
{
    if (!set) return;
    if (set->thread_started) {
        atomic_store(&set->stop_requested, 1);
        uint64_t one = 1;
        ssize_t w = write(set->wake_fd, &one, sizeof one);
        (void)w;
        struct timespec until = loop_deadline_after(CLOCK_REALTIME, wait_ms);
        if (pthread_timedjoin_np(set->thread, NULL, &until) != 0) {
            pthread_detach(set->thread);
            return; /* still inside libpq: what it uses stays */
        }
    }
    if (set->wake_fd >= 0) close(set->wake_fd);
    for (unsigned i = 1; i <= set->count; i++)
        pool_free(set->inst[i].pool);
    free(set->workers);
    pthread_mutex_destroy(&set->lock);
    free(set);
}

/* ---- reads -------------------------------------------------------------------------------- */

/* The instance for the next read of worker w: the next in turn that takes reads (the primary
 * only with DB_READ_PRIMARY=1), else the primary. */
static unsigned pick(replicas_t *set, worker_pools_t *w)
{
    unsigned n = set->count + 1;
    for (unsigned tries = 0; tries < n; tries++) {
        unsigned i = w->next++ % n;
        if (i == 0 ? set->read_primary
                   : atomic_load_explicit(&set->inst[i].usable, memory_order_relaxed))
            return i;
    }
    return 0;
}

/* A failure of a read on a replica that the primary may well not have. */
static int worth_retrying(int error, const PGresult *res)
{
    switch (error) {
    case POOL_ERR_TIMEOUT:
    case POOL_ERR_UNAVAILABLE:
    case POOL_ERR_CONNECTION:
    case POOL_ERR_NOT_SENT:
        return 1;
    case POOL_ERR_QUERY: {
        /* cancelled by a conflict with recovery (40001), or a deadlock with the startup
         * process (40P01) */
        const char *state = pool_result_sqlstate(res);
        return strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0;
    }
    default:
        return 0;
    }
}

static int submit_on(replicas_t *set, replicas_read_t *read, pool_query_t *q, unsigned i)
{
    worker_pools_t *w = &set->workers[read->worker];
    read->instance = i;
    w->submitted |= 1u << i;
    return pool_submit(w->pool_worker[i], q);
}

static void on_read(pool_query_t *q, PGresult *res, int error, const char *message)
{
    replicas_read_t *read = q->user;
    replicas_t *set = read->set;
    unsigned i = read->instance;
    if (error && i > 0 && !read->retried && worth_retrying(error, res)) {
        instance_t *in = &set->inst[i];
        if (error != POOL_ERR_TIMEOUT && error != POOL_ERR_QUERY && atomic_exchange(&in->usable, 0))
            log_warn("%s (%s): no reads until the monitor finds it up: %.*s", NAMES[i], in->address,
                     (int)strcspn(message, "\n"), message);
        read->retried = 1;
        int e = submit_on(set, read, q, 0);
        if (e == 0) return; /* answered from the primary */
        error = e;
        res = NULL;
        message = pool_strerror(e);
    }
    q->fn = read->fn;
    q->user = read->user;
    q->fn(q, res, error, message);
}

int replicas_submit_read(replicas_t *set, unsigned index, replicas_read_t *read, pool_query_t *q)
{
    if (set->count == 0) return pool_submit(set->workers[index].pool_worker[0], q);
    read->fn = q->fn;
    read->user = q->user;
    read->set = set;
    read->worker = index;
    read->retried = 0;
    q->fn = on_read;
    q->user = read;
    unsigned i = pick(set, &set->workers[index]);
    int e = submit_on(set, read, q, i);
    if (e && i > 0) { /* refused at once (backing off after a failed connect) */
        read->retried = 1;
        e = submit_on(set, read, q, 0);
    }
    if (e) {
        q->fn = read->fn;
        q->user = read->user;
    }
    return e;
}

int replicas_lag(replicas_t *set, unsigned i, int64_t *lag_ms, int64_t *lag_bytes)
{
    pthread_mutex_lock(&set->lock);
    *lag_ms = set->inst[i].lag_ms;
    *lag_bytes = set->inst[i].lag_bytes;
    pthread_mutex_unlock(&set->lock);
    return atomic_load(&set->inst[i].usable);
}

/* ---- /health ------------------------------------------------------------------------------ */

void replicas_write_health(replicas_t *set, buf_t *out)
{
    if (set->count == 0) return;
    buf_append_cstr(out, ",\"reads\":[");
    int first = 1;
    for (unsigned i = 0; i <= set->count; i++) {
        int reads = i == 0 ? set->read_primary : atomic_load(&set->inst[i].usable);
        if (!reads) continue;
        buf_append_cstr(out, first ? "\"" : ",\"");
        buf_append_cstr(out, NAMES[i]);
        buf_append_char(out, '"');
        first = 0;
    }
    if (first) buf_append_cstr(out, "\"primary\""); /* no replica can: the primary reads */
    buf_append_cstr(out, "],\"replicas\":[");
    pthread_mutex_lock(&set->lock);
    for (unsigned i = 1; i <= set->count; i++) {
        instance_t *in = &set->inst[i];
        buf_append_cstr(out, i > 1 ? ",{\"db\":\"" : "{\"db\":\"");
        buf_append_cstr(out, NAMES[i]);
        buf_append_cstr(out, "\",\"address\":");
        json_write_cstr(out, in->address);
        buf_append_cstr(out, ",\"state\":\"");
        buf_append_cstr(out, STATE_NAME[in->state]);
        buf_append_char(out, '"');
        if (in->lag_ms >= 0) buf_printf(out, ",\"lag_ms\":%lld", (long long)in->lag_ms);
        if (in->lag_bytes >= 0) buf_printf(out, ",\"lag_bytes\":%lld", (long long)in->lag_bytes);
        buf_append_char(out, '}');
    }
    pthread_mutex_unlock(&set->lock);
    buf_append_char(out, ']');
}
