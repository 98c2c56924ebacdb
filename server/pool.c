/* pool.c: a PostgreSQL connection pool on libpq's asynchronous API, shared by worker threads. */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

const double POOL_WAIT_BUCKETS_MS[POOL_WAIT_BUCKETS] = {1, 5, 10, 50, 100, 500, 1000, 5000};

/* Where a query is.  Only the owning worker reads q->state without the lock, and only in the
 * states that other threads never change (CONNECTING, RUNNING, DONE). */
enum query_state { Q_NEW, Q_WAITING, Q_HANDED, Q_CONNECTING, Q_RUNNING, Q_DONE };
enum conn_state { C_CONNECTING, C_PREPARING, C_IDLE, C_BUSY };

/* Connections idle for longer than this are checked for a pending error or EOF before use. */
#define POOL_STALE_CHECK_MS 250

struct pool_conn {
    pool_t *pool;
    PGconn *pg;
    loop_io_t io;             /* registered in the using worker's loop while connecting or busy */
    pool_worker_t *worker;    /* the worker using it (while connecting or busy) */
    int state;                /* enum conn_state */
    pool_query_t *query;      /* the query it runs for; NULL once cancelled */
    PGresult *result;         /* the result being collected */
    int sent;                 /* the statement left libpq (so a retry could run it twice) */
    unsigned prepared;        /* statements prepared so far on this connection */
    uint64_t deadline_ms;     /* connect deadline */
    uint64_t idle_since_ms;   /* when it became idle */
    pool_conn_t *next;        /* idle stack link */
    pool_worker_t *listed_in; /* the worker whose active list holds it, or NULL */
    pool_conn_t *active_prev, *active_next; /* that list: connecting, preparing or busy */
};

struct pool {
    pthread_mutex_t lock;
    pool_config_t config; /* numbers; strings below are owned copies */
    char *strings[6];     /* host, port, dbname, user, password, application_name */
    const char *keywords[9];
    const char *values[9];
    char options[128]; /* libpq "options": session settings every connection starts with */
    /* below: under lock */
    pool_conn_t *idle; /* stack of idle connections, most recently used on top */
    unsigned idle_count;
    unsigned open;                       /* connections open or being opened */
    pool_query_t *wait_head, *wait_tail; /* FIFO of queries waiting for a connection */
    unsigned waiting;
    int failing;              /* the last connect attempt failed */
    uint64_t last_failure_ms; /* when */
    int shutting_down;
    uint64_t acquire_timeouts, connect_errors, connections_opened;
    uint64_t wait_bucket[POOL_WAIT_BUCKETS + 1];
    uint64_t wait_count;
    double wait_sum_ms;
};

struct pool_worker {
    pool_t *pool;
    loop_t *loop;
    int event_fd; /* other threads wake this worker through it */
    loop_io_t event_io;
    pool_query_t *inbox_head, *inbox_tail; /* handed-over queries; under pool->lock */
    pool_query_t *local_head, *local_tail; /* this worker's waiting queries, oldest first */
    pool_conn_t *active; /* connections this worker is using (any state but idle) */
    uint64_t next_reap_ms;
};

static void conn_start_connect(pool_worker_t *w, pool_query_t *q);
static void conn_start_query(pool_worker_t *w, pool_conn_t *c, pool_query_t *q);

/* ---- small helpers -------------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void record_wait_locked(pool_t *p, uint64_t wait_ms)
{
    for (int i = 0; i < POOL_WAIT_BUCKETS; i++)
        if ((double)wait_ms <= POOL_WAIT_BUCKETS_MS[i]) p->wait_bucket[i]++;
    p->wait_bucket[POOL_WAIT_BUCKETS]++;
    p->wait_count++;
    p->wait_sum_ms += (double)wait_ms;
}

static void fifo_remove_locked(pool_t *p, pool_query_t *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        p->wait_head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        p->wait_tail = q->prev;
    q->prev = q->next = NULL;
    p->waiting--;
}

static void local_remove(pool_worker_t *w, pool_query_t *q)
{
    if (q->local_prev)
        q->local_prev->local_next = q->local_next;
    else if (w->local_head == q)
        w->local_head = q->local_next;
    else
        return; /* not in the list */
    if (q->local_next)
        q->local_next->local_prev = q->local_prev;
    else
        w->local_tail = q->local_prev;
    q->local_prev = q->local_next = NULL;
}

static void wake_worker(pool_worker_t *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->event_fd, &one, sizeof one);
    (void)n; /* EAGAIN means the counter is already non-zero: the worker will wake anyway */
}

/* Hands q over to its worker with a connection (conn), a reserved slot to connect with
 * (conn NULL, error 0), or an error.  The worker finishes the job in pool_worker_tick. */
static void handoff_locked(pool_t *p, pool_query_t *q, pool_conn_t *conn, int error,
                           pool_worker_t *current)
{
    if (q->state == Q_WAITING) {
        fifo_remove_locked(p, q);
        if (!error) {
            /* Loops refresh their clocks at different moments: never count a negative wait. */
            uint64_t now = current ? current->loop->now_ms : loop_clock_ms();
            record_wait_locked(p, now > q->submit_ms ? now - q->submit_ms : 0);
        }
    }
    q->state = Q_HANDED;
    q->conn = conn;
    q->handed_error = error;
    q->inbox_next = NULL;
    pool_worker_t *w = q->worker;
    if (w->inbox_tail)
        w->inbox_tail->inbox_next = q;
    else
        w->inbox_head = q;
    w->inbox_tail = q;
    if (w != current) wake_worker(w);
}

/* A connection slot came free (a connection closed): the oldest waiter may open a new one. */
static void give_slot_locked(pool_t *p, pool_worker_t *current)
{
    if (p->wait_head && !p->shutting_down) {
        p->open++;
        handoff_locked(p, p->wait_head, NULL, 0, current);
    }
}

static void deliver(pool_query_t *q, PGresult *res, int error, const char *message)
{
    q->state = Q_DONE;
    q->conn = NULL;
    if (q->fn) q->fn(q, res, error, message);
}

/* Fails q later, from the worker's tick, so a submit never calls back synchronously. */
static void defer_error(pool_worker_t *w, pool_query_t *q, int error)
{
    pthread_mutex_lock(&w->pool->lock);
    handoff_locked(w->pool, q, NULL, error, w);
    pthread_mutex_unlock(&w->pool->lock);
}

/* ---- connections ---------------------------------------------------------------------- */

/* The worker's active list: every connection it uses, so connect deadlines can be checked and
 * a worker that stops can close what it still holds. */
static void active_add(pool_worker_t *w, pool_conn_t *c)
{
    if (c->listed_in == w) return;
    c->listed_in = w;
    c->active_prev = NULL;
    c->active_next = w->active;
    if (w->active) w->active->active_prev = c;
    w->active = c;
}

static void active_remove(pool_conn_t *c)
{
    pool_worker_t *w = c->listed_in;
    if (!w) return;
    if (c->active_prev)
        c->active_prev->active_next = c->active_next;
    else
        w->active = c->active_next;
    if (c->active_next) c->active_next->active_prev = c->active_prev;
    c->active_prev = c->active_next = NULL;
    c->listed_in = NULL;
}

static void conn_destroy(pool_conn_t *c)
{
    active_remove(c);
    if (c->result) PQclear(c->result);
    if (c->pg) PQfinish(c->pg);
    free(c);
}

/* The connection could not be opened (or prepared): every waiter fails fast, and new queries
 * fail fast until the back-off passes. */
static void conn_connect_failed(pool_worker_t *w, pool_conn_t *c, const char *why)
{
    pool_t *p = w->pool;
    pool_query_t *q = c->query;
    char message[256];
    const char *detail = c->pg ? PQerrorMessage(c->pg) : "";
    snprintf(message, sizeof message, "database unavailable: %s%s%.*s", why, *detail ? ": " : "",
             (int)strcspn(detail, "\n"), detail);
    log_warn("%s", message);
    loop_io_stop(w->loop, &c->io);
    conn_destroy(c);
    pthread_mutex_lock(&p->lock);
    p->open--;
    p->connect_errors++;
    p->failing = 1;
    p->last_failure_ms = w->loop->now_ms;
    while (p->wait_head)
        handoff_locked(p, p->wait_head, NULL, POOL_ERR_UNAVAILABLE, w);
    pthread_mutex_unlock(&p->lock);
    if (q) deliver(q, NULL, POOL_ERR_UNAVAILABLE, message);
}

/* Returns a connection after use: to the oldest waiter, to the idle stack, or (broken) closed. */
static void conn_release(pool_worker_t *w, pool_conn_t *c, int broken)
{
    pool_t *p = w->pool;
    loop_io_stop(w->loop, &c->io);
    active_remove(c);
    c->query = NULL;
    c->sent = 0;
    if (broken || PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        conn_destroy(c);
        pthread_mutex_lock(&p->lock);
        p->open--;
        give_slot_locked(p, w);
        pthread_mutex_unlock(&p->lock);
        return;
    }
    pthread_mutex_lock(&p->lock);
    if (p->wait_head && !p->shutting_down) {
        c->state = C_BUSY;
        handoff_locked(p, p->wait_head, c, 0, w);
    } else {
        c->state = C_IDLE;
        c->worker = NULL;
        c->idle_since_ms = w->loop->now_ms;
        c->next = p->idle;
        p->idle = c;
        p->idle_count++;
    }
    pthread_mutex_unlock(&p->lock);
}

/* Watches the connection's socket in w's loop for the given events. */
static int conn_watch(pool_worker_t *w, pool_conn_t *c, uint32_t events);

/* Sends the next statement to prepare on a new connection.  Returns 0 when libpq refuses. */
static int conn_send_prepare(pool_t *p, pool_conn_t *c)
{
    const pool_statement_t *st = &p->config.statements[c->prepared];
    return PQsendPrepare(c->pg, st->name, st->sql, 0, NULL);
}

/* Reads what arrived; collects results; finishes the prepare step or the query. */
static void conn_read(pool_worker_t *w, pool_conn_t *c)
{
    if (!PQconsumeInput(c->pg)) goto broken;
    while (!PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (!r) break;
        if (c->result) {
            /* Keep the first error, or else the last result. */
            ExecStatusType s = PQresultStatus(c->result);
            if (s == PGRES_FATAL_ERROR || s == PGRES_BAD_RESPONSE) {
                PQclear(r);
                continue;
            }
            PQclear(c->result);
        }
        c->result = r;
    }
    if (PQisBusy(c->pg)) {
        if (PQstatus(c->pg) == CONNECTION_BAD) goto broken;
        return; /* more to come */
    }
    /* All results are in. */
    PGresult *res = c->result;
    c->result = NULL;
    ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int ok = status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK;
    if (c->state == C_PREPARING) {
        if (!ok) {
            char why[200];
            snprintf(why, sizeof why, "preparing statements failed: %.*s",
                     res ? (int)strcspn(PQresultErrorMessage(res), "\n") : 0,
                     res ? PQresultErrorMessage(res) : "");
            if (res) PQclear(res);
            conn_connect_failed(w, c, why);
            return;
        }
        PQclear(res);
        if (++c->prepared < w->pool->config.statement_count) {
            /* Protocol-level prepares, one at a time: they also work behind PgBouncer's
             * transaction pooling, where SQL PREPARE would not. */
            int f = conn_send_prepare(w->pool, c) ? PQflush(c->pg) : -1;
            if (f < 0 || conn_watch(w, c, EPOLLIN | (f ? EPOLLOUT : 0)) < 0)
                conn_connect_failed(w, c, "cannot send statements");
            return;
        }
        pthread_mutex_lock(&w->pool->lock);
        w->pool->failing = 0;
        w->pool->connections_opened++;
        pthread_mutex_unlock(&w->pool->lock);
        pool_query_t *q = c->query;
        if (q) {
            conn_start_query(w, c, q);
        } else {
            conn_release(w, c, 0); /* the query was cancelled while connecting */
        }
        return;
    }
    pool_query_t *q = c->query;
    int bad = PQstatus(c->pg) != CONNECTION_OK;
    conn_release(w, c, bad);
    if (q) {
        int error = ok ? POOL_OK : bad ? POOL_ERR_CONNECTION : POOL_ERR_QUERY;
        const char *msg = ok ? "" : res ? PQresultErrorMessage(res) : "connection lost";
        deliver(q, res, error, msg);
    }
    if (res) PQclear(res);
    return;

broken:;
    char message[256];
    snprintf(message, sizeof message, "database connection lost: %.*s",
             (int)strcspn(PQerrorMessage(c->pg), "\n"), PQerrorMessage(c->pg));
    if (c->state == C_PREPARING) {
        conn_connect_failed(w, c, "connection lost while preparing statements");
        return;
    }
    q = c->query;
    conn_release(w, c, 1);
    if (q) deliver(q, NULL, POOL_ERR_CONNECTION, message);
}

static void conn_on_io(loop_io_t *io, uint32_t events)
{
    pool_conn_t *c = io->user;
    pool_worker_t *w = c->worker;
    if (c->state == C_CONNECTING) {
        PostgresPollingStatusType st = PQconnectPoll(c->pg);
        if (st == PGRES_POLLING_FAILED) {
            conn_connect_failed(w, c, "connect failed");
            return;
        }
        if (st == PGRES_POLLING_OK) {
            PQsetnonblocking(c->pg, 1);
            c->prepared = 0;
            if (!conn_send_prepare(w->pool, c)) {
                conn_connect_failed(w, c, "cannot send statements");
                return;
            }
            c->state = C_PREPARING;
            int f = PQflush(c->pg);
            if (f < 0 || conn_watch(w, c, EPOLLIN | (f ? EPOLLOUT : 0)) < 0)
                conn_connect_failed(w, c, "cannot send statements");
            return;
        }
        /* The socket may change between attempts (several addresses), so watch afresh. */
        loop_io_stop(w->loop, &c->io);
        if (conn_watch(w, c, st == PGRES_POLLING_READING ? EPOLLIN : EPOLLOUT) < 0)
            conn_connect_failed(w, c, "cannot watch socket");
        return;
    }
    if (events & EPOLLOUT) {
        int f = PQflush(c->pg);
        if (f < 0) {
            conn_read(w, c); /* reports the broken connection */
            return;
        }
        if (f == 0) loop_io_modify(w->loop, &c->io, EPOLLIN);
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) conn_read(w, c);
}

static int conn_watch(pool_worker_t *w, pool_conn_t *c, uint32_t events)
{
    int fd = PQsocket(c->pg);
    if (fd < 0) return -1;
    if (c->io.fd >= 0) return loop_io_modify(w->loop, &c->io, events);
    return loop_io_start(w->loop, &c->io, fd, events, conn_on_io, c);
}

/* Opens a new connection for q in w; the slot (p->open) is already counted. */
static void conn_start_connect(pool_worker_t *w, pool_query_t *q)
{
    pool_t *p = w->pool;
    pool_conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        pthread_mutex_lock(&p->lock);
        p->open--;
        pthread_mutex_unlock(&p->lock);
        defer_error(w, q, POOL_ERR_UNAVAILABLE);
        return;
    }
    c->pool = p;
    c->io.fd = -1;
    c->worker = w;
    c->state = C_CONNECTING;
    c->query = q;
    c->deadline_ms = w->loop->now_ms + p->config.connect_timeout_ms;
    q->state = Q_CONNECTING;
    q->conn = c;
    c->pg = PQconnectStartParams(p->keywords, p->values, 0);
    active_add(w, c);
    if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD || conn_watch(w, c, EPOLLOUT) < 0) {
        c->query = NULL;
        conn_connect_failed(w, c, "connect failed");
        q->state = Q_NEW;
        defer_error(w, q, POOL_ERR_UNAVAILABLE);
    }
}

/* Sends q's statement on c (taken for q).  Never calls back synchronously. */
static void conn_start_query(pool_worker_t *w, pool_conn_t *c, pool_query_t *q)
{
    pool_t *p = w->pool;
    c->worker = w;
    c->state = C_BUSY;
    c->query = q;
    c->sent = 0;
    active_add(w, c);
    q->conn = c;
    q->state = Q_RUNNING;
    const pool_statement_t *st = &p->config.statements[q->statement];
    if (!PQsendQueryPrepared(c->pg, st->name, q->param_count, q->params, NULL, NULL,
                             q->binary_results ? 1 : 0))
        goto stale;
    c->sent = 1;
    int f = PQflush(c->pg);
    if (f < 0 || conn_watch(w, c, EPOLLIN | (f ? EPOLLOUT : 0)) < 0) goto stale;
    return;
stale:
    /* Nothing reached the server, or it cannot have been executed: a fresh connection
     * may run it.  Keep the slot and reconnect. */
    loop_io_stop(w->loop, &c->io);
    conn_destroy(c);
    conn_start_connect(w, q);
}

/* A connection idle for a while may have been closed by the server (restart, idle kill). */
static int conn_is_stale(pool_conn_t *c, uint64_t now_ms)
{
    if (now_ms - c->idle_since_ms < POOL_STALE_CHECK_MS) return 0;
    if (!PQconsumeInput(c->pg) || PQstatus(c->pg) != CONNECTION_OK) return 1;
    /* A message on an idle connection is an error notice before a close. */
    char byte;
    ssize_t n = recv(PQsocket(c->pg), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) || PQisBusy(c->pg);
}

/* ---- public API ----------------------------------------------------------------------- */

pool_t *pool_new(const pool_config_t *config, char *err, size_t err_len)
{
    if (config->max_connections < 1) {
        snprintf(err, err_len, "pool max_connections must be at least 1");
        return NULL;
    }
    if (config->statement_count == 0) {
        snprintf(err, err_len, "pool needs at least one statement");
        return NULL;
    }
    pool_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    p->config = *config;
    const char *src[6] = {config->host, config->port,     config->dbname,
                          config->user, config->password, config->application_name};
    static const char *names[6] = {"host", "port",     "dbname",
                                   "user", "password", "application_name"};
    int k = 0;
    for (int i = 0; i < 6; i++) {
        p->strings[i] = dup_or_null(src[i]);
        if (p->strings[i]) {
            p->keywords[k] = names[i];
            p->values[k++] = p->strings[i];
        }
    }
    p->keywords[k] = "options";
    snprintf(p->options, sizeof p->options, CONFIG_DB_SESSION_OPTIONS " -c statement_timeout=%u",
             config->statement_timeout_ms);
    p->values[k++] = p->options;
    p->keywords[k] = NULL;
    p->values[k] = NULL;
    return p;
}

void pool_shutdown(pool_t *p)
{
    pthread_mutex_lock(&p->lock);
    p->shutting_down = 1;
    while (p->wait_head)
        handoff_locked(p, p->wait_head, NULL, POOL_ERR_SHUTDOWN, NULL);
    pthread_mutex_unlock(&p->lock);
}

void pool_free(pool_t *p)
{
    if (!p) return;
    while (p->idle) {
        pool_conn_t *c = p->idle;
        p->idle = c->next;
        conn_destroy(c);
    }
    for (int i = 0; i < 6; i++)
        free(p->strings[i]);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static void worker_on_event(loop_io_t *io, uint32_t events)
{
    uint64_t count;
    ssize_t n = read(io->fd, &count, sizeof count);
    (void)n; /* the inbox itself is drained by pool_worker_tick */
}

pool_worker_t *pool_worker_new(pool_t *p, loop_t *loop)
{
    pool_worker_t *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->pool = p;
    w->loop = loop;
    w->event_io.fd = -1;
    w->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->event_fd < 0 ||
        loop_io_start(loop, &w->event_io, w->event_fd, EPOLLIN, worker_on_event, w) < 0) {
        if (w->event_fd >= 0) close(w->event_fd);
        free(w);
        return NULL;
    }
    return w;
}

void pool_worker_free(pool_worker_t *w)
{
    if (!w) return;
    /* Connections still in use (the shutdown deadline passed) are closed. */
    while (w->active) {
        pool_conn_t *c = w->active;
        loop_io_stop(w->loop, &c->io);
        conn_destroy(c);
        pthread_mutex_lock(&w->pool->lock);
        w->pool->open--;
        pthread_mutex_unlock(&w->pool->lock);
    }
    loop_io_stop(w->loop, &w->event_io);
    close(w->event_fd);
    free(w);
}

static void worker_drain_inbox(pool_worker_t *w)
{
    pool_t *p = w->pool;
    pthread_mutex_lock(&p->lock);
    pool_query_t *q = w->inbox_head;
    w->inbox_head = w->inbox_tail = NULL;
    pthread_mutex_unlock(&p->lock);
    while (q) {
        pool_query_t *next = q->inbox_next;
        q->inbox_next = NULL;
        local_remove(w, q);
        if (q->handed_error) {
            int e = q->handed_error;
            q->handed_error = 0;
            deliver(q, NULL, e,
                    e == POOL_ERR_SHUTDOWN ? "server shutting down" : "database unavailable");
        } else if (q->conn) {
            conn_start_query(w, q->conn, q);
        } else {
            conn_start_connect(w, q);
        }
        q = next;
    }
}

int pool_worker_tick(pool_worker_t *w)
{
    pool_t *p = w->pool;
    uint64_t now = w->loop->now_ms;
    worker_drain_inbox(w);
    /* Acquire timeouts: the local list is in submit order, so stop at the first young one. */
    while (w->local_head && now - w->local_head->submit_ms >= p->config.acquire_timeout_ms) {
        pool_query_t *q = w->local_head;
        pthread_mutex_lock(&p->lock);
        int waiting = q->state == Q_WAITING;
        if (waiting) {
            fifo_remove_locked(p, q);
            p->acquire_timeouts++;
        }
        pthread_mutex_unlock(&p->lock);
        local_remove(w, q);
        if (waiting) deliver(q, NULL, POOL_ERR_TIMEOUT, "timed out waiting for a connection");
    }
    /* Connect deadlines. */
    for (pool_conn_t *c = w->active, *next; c; c = next) {
        next = c->active_next;
        if ((c->state == C_CONNECTING || c->state == C_PREPARING) && now >= c->deadline_ms)
            conn_connect_failed(w, c, "connect timed out");
    }
    /* Idle connections past their time, checked about once a second. */
    if (now >= w->next_reap_ms) {
        w->next_reap_ms = now + 1000;
        pool_conn_t *expired = NULL;
        pthread_mutex_lock(&p->lock);
        for (pool_conn_t **pp = &p->idle; *pp;) {
            pool_conn_t *c = *pp;
            if (now - c->idle_since_ms >= p->config.idle_timeout_ms) {
                *pp = c->next;
                c->next = expired;
                expired = c;
                p->idle_count--;
                p->open--;
            } else {
                pp = &c->next;
            }
        }
        pthread_mutex_unlock(&p->lock);
        while (expired) {
            pool_conn_t *c = expired;
            expired = c->next;
            conn_destroy(c);
        }
    }
    int due = 100;
    if (w->local_head) {
        uint64_t at = w->local_head->submit_ms + p->config.acquire_timeout_ms;
        due = at > now ? (int)(at - now < 100 ? at - now : 100) : 0;
    }
    return due;
}

int pool_submit(pool_worker_t *w, pool_query_t *q)
{
    pool_t *p = w->pool;
    uint64_t now = w->loop->now_ms;
    q->worker = w;
    q->submit_ms = now;
    q->retried = 0;
    q->conn = NULL;
    q->handed_error = 0;
    q->prev = q->next = q->local_prev = q->local_next = q->inbox_next = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->shutting_down) {
        pthread_mutex_unlock(&p->lock);
        return POOL_ERR_SHUTDOWN;
    }
    while (p->idle) {
        pool_conn_t *c = p->idle;
        p->idle = c->next;
        p->idle_count--;
        c->state = C_BUSY;
        record_wait_locked(p, 0);
        pthread_mutex_unlock(&p->lock);
        if (!conn_is_stale(c, now)) {
            conn_start_query(w, c, q);
            return 0;
        }
        conn_destroy(c); /* the slot stays counted: reconnect with it */
        conn_start_connect(w, q);
        return 0;
    }
    if (p->open < p->config.max_connections) {
        if (p->failing && now - p->last_failure_ms < p->config.retry_backoff_ms) {
            pthread_mutex_unlock(&p->lock);
            return POOL_ERR_UNAVAILABLE;
        }
        p->open++;
        record_wait_locked(p, 0);
        pthread_mutex_unlock(&p->lock);
        conn_start_connect(w, q);
        return 0;
    }
    q->state = Q_WAITING;
    q->prev = p->wait_tail;
    if (p->wait_tail)
        p->wait_tail->next = q;
    else
        p->wait_head = q;
    p->wait_tail = q;
    p->waiting++;
    pthread_mutex_unlock(&p->lock);
    q->local_prev = w->local_tail;
    if (w->local_tail)
        w->local_tail->local_next = q;
    else
        w->local_head = q;
    w->local_tail = q;
    return 0;
}

void pool_cancel(pool_query_t *q)
{
    pool_worker_t *w = q->worker;
    if (!w) return;
    pool_t *p = w->pool;
    switch (q->state) {
    case Q_WAITING:
    case Q_HANDED: {
        pthread_mutex_lock(&p->lock);
        if (q->state == Q_WAITING) {
            fifo_remove_locked(p, q);
        } else {
            /* Take it out of the inbox and give back what it was handed. */
            pool_query_t **pp = &w->inbox_head, *prev = NULL;
            while (*pp && *pp != q) {
                prev = *pp;
                pp = &(*pp)->inbox_next;
            }
            if (*pp) {
                *pp = q->inbox_next;
                if (w->inbox_tail == q) w->inbox_tail = prev;
            }
            if (!q->handed_error && !q->conn) {
                p->open--;
                give_slot_locked(p, w);
            }
        }
        pool_conn_t *c = q->state == Q_HANDED && !q->handed_error ? q->conn : NULL;
        pthread_mutex_unlock(&p->lock);
        local_remove(w, q);
        if (c) conn_release(w, c, 0);
        break;
    }
    case Q_CONNECTING:
    case Q_RUNNING:
        if (q->conn) q->conn->query = NULL; /* it finishes and returns itself to the pool */
        break;
    default:
        break;
    }
    q->state = Q_DONE;
    q->conn = NULL;
    q->fn = NULL;
}

void pool_get_stats(pool_t *p, pool_stats_t *out)
{
    pthread_mutex_lock(&p->lock);
    out->max_connections = p->config.max_connections;
    out->open = p->open;
    out->idle = p->idle_count;
    out->busy = p->open - p->idle_count;
    out->waiting = p->waiting;
    out->acquire_timeouts = p->acquire_timeouts;
    out->connect_errors = p->connect_errors;
    out->connections_opened = p->connections_opened;
    memcpy(out->wait_bucket, p->wait_bucket, sizeof out->wait_bucket);
    out->wait_count = p->wait_count;
    out->wait_sum_ms = p->wait_sum_ms;
    pthread_mutex_unlock(&p->lock);
}

const char *pool_result_sqlstate(const PGresult *res)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}
