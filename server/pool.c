/* pool.c: the pool's public API (pool.h) and its policy: where a submitted query goes (a
 * pipeline segment open this turn, an idle connection, a new one, behind statements in flight,
 * or the FIFO), each worker's tick, cancelling, shutting down; the layers below are
 * pool_queue.h (waiters and hand-off between threads), pool_conn.h (one connection and its
 * pipeline) and pool_cancel.h (the cancel request). */
#include "pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "pgnotice.h"
#include "pool_conn.h"
#include "pool_queue.h"
#include "resolver.h"

const double POOL_WAIT_BUCKETS_MS[POOL_WAIT_BUCKETS] = {
    1, 5, 10, 25, 50, 100, 250, 500, 1000, 1500, 2000, 2500, 3000, 4000, 5000};

/* How long pool_new waits for the first lookup of DB_HOST before the server starts without it. */
#define POOL_FIRST_LOOKUP_WAIT_MS 1000

uint64_t pool_elapsed_ms(uint64_t now_ms, uint64_t then_ms)
{
    return now_ms > then_ms ? now_ms - then_ms : 0;
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

const char *pool_strerror(enum pool_error error)
{
    switch (error) {
    case POOL_OK:
        return "no error";
    case POOL_ERR_TIMEOUT:
        return "database busy: no connection free within the acquire timeout";
    case POOL_ERR_UNAVAILABLE:
        return "database unavailable";
    case POOL_ERR_QUERY:
        return "database query failed";
    case POOL_ERR_CONNECTION:
        return "database connection lost";
    case POOL_ERR_SHUTDOWN:
        return "server shutting down";
    case POOL_ERR_NOT_SENT:
        return "database connection lost before the statement was sent";
    }
    return "database unavailable";
}

/* ---- public API ----------------------------------------------------------------------- */

pool_t *pool_new(const pool_config_t *config, char *err, size_t err_len)
{
    if (config->max_connections < 1) {
        error_set(err, err_len, "pool max_connections must be at least 1");
        return NULL;
    }
    if (config->statement_count == 0 || config->statement_count > POOL_MAX_STATEMENTS) {
        error_set(err, err_len, "pool needs 1 to %d statements", POOL_MAX_STATEMENTS);
        return NULL;
    }
    if (config->pipeline_depth > POOL_MAX_PIPELINE_DEPTH) {
        error_set(err, err_len, "pipeline depth must be at most %d", POOL_MAX_PIPELINE_DEPTH);
        return NULL;
    }
    pool_t *p = xcalloc(1, sizeof *p);
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
            if (i == 0) p->host_at = k;
            p->keywords[k] = names[i];
            p->values[k++] = p->strings[i];
        }
    }
    /* A host name is looked up on the resolver's thread (resolver.h); its addresses go to
     * libpq as hostaddr, filled in at each connect. */
    p->resolver = resolver_new(config->host, config->port);
    if (p->resolver) {
        p->addr_at = k;
        p->keywords[k] = "hostaddr";
        p->values[k++] = "";
        if (!resolver_wait_first(p->resolver, POOL_FIRST_LOOKUP_WAIT_MS))
            log_warn("the lookup of DB_HOST '%s' has not finished after %d ms: requests that need "
                     "the database get 503 until it does",
                     config->host, POOL_FIRST_LOOKUP_WAIT_MS);
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
        pool_queue_hand_locked(p, p->wait_head, NULL, POOL_ERR_SHUTDOWN, NULL);
    pthread_mutex_unlock(&p->lock);
}

void pool_free(pool_t *p)
{
    if (!p) return;
    resolver_free(p->resolver);
    while (p->idle) {
        pool_conn_t *c = p->idle;
        p->idle = c->next;
        pool_conn_destroy(NULL, c);
    }
    for (int i = 0; i < 6; i++)
        free(p->strings[i]);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

pool_worker_t *pool_worker_new(pool_t *p, loop_t *loop)
{
    pool_worker_t *w = xcalloc(1, sizeof *w);
    w->pool = p;
    w->loop = loop;
    if (pool_queue_worker_start(w) < 0) {
        free(w);
        return NULL;
    }
    return w;
}

void pool_worker_free(pool_worker_t *w)
{
    if (!w) return;
    pool_conn_close_all(w);
    pool_conn_free_dead(w);
    pool_queue_worker_stop(w);
    free(w);
}

static void worker_drain_inbox(pool_worker_t *w)
{
    int take;
    pool_query_t *q = pool_queue_take_inbox(w, &take);
    /* Another worker queued a cheap query: the connections this worker drives may take it. */
    for (pool_conn_t *c = take ? w->active : NULL, *next; c; c = next) {
        next = c->active_next;
        if (c->state == POOL_CONN_BUSY) pool_conn_top_up(w, c);
    }
    while (q) {
        pool_query_t *next = q->inbox_next;
        q->inbox_next = NULL;
        pool_queue_local_remove(w, q);
        if (q->handed_done) {
            /* Answered on another worker's connection. */
            PGresult *res = q->handed_result;
            int e = q->handed_error;
            q->handed_result = NULL;
            q->handed_done = 0;
            q->handed_error = 0;
            pool_queue_deliver(q, res, e,
                               e == POOL_ERR_QUERY ? PQresultErrorMessage(res) : pool_strerror(e));
            if (res) PQclear(res);
        } else if (q->handed_error) {
            int e = q->handed_error;
            q->handed_error = 0;
            pool_queue_deliver(q, NULL, e, pool_strerror(e));
        } else if (q->conn) {
            pool_conn_t *c = q->conn;
            c->handed--;
            pool_conn_run(w, c, q);
        } else {
            pool_conn_start_connect(w, q);
        }
        q = next;
    }
}

/* After pool_shutdown: this worker's running queries are answered now.  A query still
 * connecting never ran (POOL_ERR_SHUTDOWN); a statement in flight was sent and may yet commit
 * before its cancel arrives, so it fails like a lost connection (POOL_ERR_CONNECTION: outcome
 * unknown), never with an error that invites a retry. */
static void worker_fail_running(pool_worker_t *w)
{
    /* Its statements on other workers' connections. */
    pthread_mutex_lock(&w->pool->lock);
    pool_query_t *foreign = w->foreign_head;
    for (pool_query_t *q = foreign; q; q = q->next) {
        ((pool_conn_entry_t *)q->entry)->q = NULL;
        q->entry = NULL;
        q->conn = NULL;
        q->state = POOL_QUERY_HANDED;
        q->handed_done = 1; /* answered below: a pool_cancel meanwhile has nothing to undo */
        q->handed_error = POOL_ERR_CONNECTION;
    }
    w->foreign_head = NULL;
    pthread_mutex_unlock(&w->pool->lock);
    for (pool_query_t *q = foreign, *next; q; q = next) {
        next = q->next;
        q->prev = q->next = NULL;
        q->handed_done = 0;
        q->handed_error = 0;
        pool_queue_local_remove(w, q);
        pool_queue_deliver(q, NULL, POOL_ERR_CONNECTION,
                           "server shutting down with the statement in flight: outcome unknown");
    }
    pool_conn_fail_running(w);
}

int pool_worker_busy(pool_worker_t *w)
{
    return w->active != NULL;
}

int pool_worker_tick(pool_worker_t *w)
{
    pool_t *p = w->pool;
    uint64_t now = w->loop->now_ms;
    pool_conn_free_dead(w);
    worker_drain_inbox(w);
    pool_queue_expire(w, now);
    pool_conn_check_worker(w, now);
    pthread_mutex_lock(&p->lock);
    int shutting_down = p->shutting_down;
    pthread_mutex_unlock(&p->lock);
    if (shutting_down) worker_fail_running(w);
    pool_conn_reap_idle(w, now);
    pool_conn_flush_worker(w); /* last: everything this turn queued goes out */
    int due = w->lost_pending ? 0 : 100;
    if (w->local_head && due) {
        uint64_t at = w->local_head->submit_ms + p->config.acquire_timeout_ms;
        due = at > now ? (int)(at - now < 100 ? at - now : 100) : 0;
    }
    return due;
}

/* The connection of w's that q can join in its pipeline, or NULL: one with a segment open
 * this turn (q shares its sync point), else the least loaded.  With open_only, only the
 * former. */
static pool_conn_t *worker_pick_pipeline(pool_worker_t *w, pool_query_t *q, int open_only)
{
    pool_t *p = w->pool;
    if (p->config.pipeline_depth < 2 || pool_queue_is_alone(p, q)) return NULL;
    int shares = !pool_queue_is_last(p, q); /* a write has a segment of its own */
    if (open_only && !shares) return NULL;
    pool_conn_t *best = NULL;
    for (pool_conn_t *c = w->active; c; c = c->active_next) {
        if (!pool_conn_can_join(p, c, w->loop->now_ms)) continue;
        if (shares && pool_conn_segment_open(p, c)) return c;
        if (!open_only && (!best || c->depth < best->depth)) best = c;
    }
    return best;
}

/* Runs q on c, a connection w drives that q joins without waiting; the caller holds the lock,
 * which this releases. */
static void run_joined_locked(pool_worker_t *w, pool_conn_t *c, pool_query_t *q)
{
    pool_queue_record_wait_locked(w->pool, 0);
    pthread_mutex_unlock(&w->pool->lock);
    pool_conn_run(w, c, q);
}

int pool_submit(pool_worker_t *w, pool_query_t *q)
{
    pool_t *p = w->pool;
    uint64_t now = w->loop->now_ms;
    q->worker = w;
    q->submit_ms = now;
    q->conn = NULL;
    q->state = POOL_QUERY_NEW;
    q->handed_error = 0;
    q->handed_done = 0;
    q->handed_result = NULL;
    q->entry = NULL;
    q->prev = q->next = q->local_prev = q->local_next = q->inbox_next = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->shutting_down) {
        pthread_mutex_unlock(&p->lock);
        return POOL_ERR_SHUTDOWN;
    }
    /* A segment already open this turn takes a cheap statement at no cost to PostgreSQL but
     * its execution: no extra transaction, sync point or write (unless others wait: they come
     * first). */
    pool_conn_t *joined = p->wait_head ? NULL : worker_pick_pipeline(w, q, 1);
    if (joined) {
        run_joined_locked(w, joined, q);
        return 0;
    }
    while (p->idle) {
        pool_conn_t *c = p->idle;
        p->idle = c->next;
        p->idle_count--;
        c->state = POOL_CONN_BUSY;
        pool_queue_record_wait_locked(p, 0);
        pthread_mutex_unlock(&p->lock);
        if (!pool_conn_is_stale(c, now)) {
            pool_conn_run(w, c, q);
            return 0;
        }
        pool_conn_destroy(NULL, c); /* the slot stays counted: reconnect with it */
        pool_conn_start_connect(w, q);
        return 0;
    }
    int may_open = p->open < p->config.max_connections;
    int backing_off = p->failing && now - p->last_failure_ms < p->config.retry_backoff_ms;
    if (may_open && !backing_off) {
        p->open++;
        pool_queue_record_wait_locked(p, 0);
        pthread_mutex_unlock(&p->lock);
        pool_conn_start_connect(w, q);
        return 0;
    }
    /* Behind the statements in flight on a connection this worker uses, unless others wait
     * already (they come first). */
    pool_conn_t *c = p->wait_head ? NULL : worker_pick_pipeline(w, q, 0);
    if (c) {
        run_joined_locked(w, c, q);
        return 0;
    }
    if (may_open) { /* backing off after a failed connect */
        pthread_mutex_unlock(&p->lock);
        return POOL_ERR_UNAVAILABLE;
    }
    pool_queue_wait_unlock(w, q, now);
    return 0;
}

void pool_cancel(pool_query_t *q)
{
    pool_worker_t *w = q->worker;
    if (!w) return;
    pool_t *p = w->pool;
    pool_conn_t *give_back = NULL;
    PGresult *answer = NULL;
    pthread_mutex_lock(&p->lock);
    int state = q->state;
    if (state == POOL_QUERY_WAITING) {
        pool_queue_remove_locked(p, q);
    } else if (state == POOL_QUERY_FOREIGN) {
        /* On another worker's connection, among others' statements: detached only. */
        ((pool_conn_entry_t *)q->entry)->q = NULL;
        q->entry = NULL;
        pool_queue_foreign_remove_locked(q);
    } else if (state == POOL_QUERY_HANDED) {
        /* Take it out of the inbox and give back what it was handed. */
        pool_queue_inbox_remove_locked(w, q);
        if (q->handed_done) {
            answer = q->handed_result;
            q->handed_result = NULL;
            q->handed_done = 0;
        } else if (!q->handed_error && !q->conn) {
            p->open--;
            pool_queue_give_slot_locked(p, w);
        } else if (!q->handed_error && q->conn && --q->conn->handed == 0 && q->conn->depth == 0) {
            give_back = q->conn;
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (answer) PQclear(answer);
    if (state == POOL_QUERY_WAITING || state == POOL_QUERY_HANDED || state == POOL_QUERY_FOREIGN)
        pool_queue_local_remove(w, q);
    if (give_back) {
        give_back->worker = w;
        pool_conn_release(w, give_back);
    }
    pool_conn_t *c = q->conn;
    if (state == POOL_QUERY_CONNECTING && c)
        c->connect_for = NULL; /* it goes to the pool once open */
    if (state == POOL_QUERY_RUNNING && c) {
        for (unsigned i = 0; i < c->depth; i++)
            if (!pool_conn_entry(c, i)->foreign && pool_conn_entry(c, i)->q == q)
                pool_conn_entry(c, i)->q = NULL;
        /* Alone on its connection, the statement is the backend's only work: cancel it there.
         * Behind or before others, a cancel could hit another request's statement. */
        if (c->depth == 1 && c->cancel.state == POOL_CANCEL_NONE && !c->broken &&
            PQstatus(c->libpq) == CONNECTION_OK && pool_conn_cancel_start(w, c) < 0)
            log_warn("cannot send a cancel request; the abandoned statement runs to its end");
    }
    q->state = POOL_QUERY_DONE;
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
    out->pipeline_depth = p->config.pipeline_depth;
    out->in_flight = __atomic_load_n(&p->in_flight, __ATOMIC_RELAXED);
    out->pipelined = __atomic_load_n(&p->pipelined, __ATOMIC_RELAXED);
    out->cancels = __atomic_load_n(&p->cancels, __ATOMIC_RELAXED);
    out->foreign = __atomic_load_n(&p->foreign, __ATOMIC_RELAXED);
    out->statements = __atomic_load_n(&p->statements, __ATOMIC_RELAXED);
    out->syncs = __atomic_load_n(&p->syncs, __ATOMIC_RELAXED);
    out->resent = __atomic_load_n(&p->resent, __ATOMIC_RELAXED);
}

static void notice_to_log(void *arg, const PGresult *res)
{
    (void)arg;
    char line[1024];
    log_write(pgnotice_level(res), "database %s", pgnotice_format(res, line, sizeof line));
}

void pool_log_notices(PGconn *conn)
{
    PQsetNoticeReceiver(conn, notice_to_log, NULL);
}

const char *pool_result_sqlstate(const PGresult *res)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}
