/* pool.c: a PostgreSQL connection pool on libpq's asynchronous API, shared by worker threads. */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "pgnotice.h"
#include "pool_cancel.h"
#include "pool_queue.h"
#include "resolver.h"

const double POOL_WAIT_BUCKETS_MS[POOL_WAIT_BUCKETS] = {
    1, 5, 10, 25, 50, 100, 250, 500, 1000, 1500, 2000, 2500, 3000, 4000, 5000};

enum pool_conn_state { POOL_CONN_CONNECTING, POOL_CONN_IDLE, POOL_CONN_BUSY };

/* Connections idle for longer than this are checked for a pending error or EOF before use. */
#define POOL_STALE_CHECK_MS 250
/* No statement joins a pipeline whose oldest statement has run longer than this (it may wait
 * on a lock, and whatever is queued behind it waits too). */
#define POOL_STALL_MS 50
/* How long pool_new waits for the first lookup of DB_HOST before the server starts without it. */
#define POOL_FIRST_LOOKUP_WAIT_MS 1000

/* A statement sent on a connection, in the order the answers will come. */
typedef struct entry {
    pool_query_t *q; /* NULL once the caller cancelled it; under the pool lock when foreign */
    int foreign;     /* q is another worker's: its answer goes to that worker's inbox */
    unsigned statement;
    int prepare;        /* its Prepare went out with it (first use on this connection) */
    int prepare_failed; /* that Prepare failed: prepare again next time */
    int commands_done;  /* pipeline mode: command ends seen (the Prepare's, the statement's) */
    int sync;           /* pipeline mode: a sync point follows it (it ends its segment) */
    int step;           /* without pipeline mode: 0 the Prepare runs, 1 the statement */
    uint64_t sent_ms;
    PGresult *result; /* the first error, or else the statement's result */
} entry_t;

struct pool_conn {
    pool_t *pool;
    PGconn *libpq;
    loop_io_t io;          /* registered in the using worker's loop while connecting or busy */
    pool_worker_t *worker; /* the worker using it (while connecting or busy) */
    enum pool_conn_state state;
    entry_t slot[POOL_MAX_PIPELINE_DEPTH]; /* ring of statements in flight */
    unsigned head, depth;
    unsigned handed;           /* queries handed over with it and not yet sent */
    uint64_t prepared;         /* bit per statement whose Prepare was sent on this connection */
    int exclusive;             /* a POOL_ALONE statement runs: nothing joins it */
    int closed_tail;           /* the newest statement is POOL_LAST: nothing joins behind it */
    int broken;                /* a send failed: it takes nothing more and closes when drained */
    int lost;                  /* broken, and no event will report it: the worker's tick does */
    pool_conn_t *flush_next;   /* in its worker's list of connections to flush */
    pool_worker_t *flush_in;   /* that worker, or NULL when not listed */
    pool_query_t *connect_for; /* the query it is being opened for; NULL once cancelled */
    uint64_t deadline_ms;      /* connect deadline */
    uint64_t idle_since_ms;    /* when it became idle (the releasing worker's clock) */
    pool_conn_t *next;         /* idle stack link */
    pool_worker_t *listed_in;  /* the worker whose active list holds it, or NULL */
    pool_conn_t *active_prev, *active_next; /* that list: connecting or busy */
    pool_cancel_req_t cancel;               /* for a statement whose client left */
};

static void pool_conn_start_connect(pool_worker_t *w, pool_query_t *q);
static int pool_conn_run(pool_worker_t *w, pool_conn_t *c, pool_query_t *q);
static int pool_conn_release(pool_worker_t *w, pool_conn_t *c);
static int pool_conn_watch(pool_worker_t *w, pool_conn_t *c, uint32_t events);
static void cancel_on_done(pool_cancel_req_t *req);

/* ---- small helpers -------------------------------------------------------------------- */

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

static entry_t *entry_at(pool_conn_t *c, unsigned i)
{
    return &c->slot[(c->head + i) % POOL_MAX_PIPELINE_DEPTH];
}

static void in_flight_add(pool_t *p, int n)
{
    __atomic_add_fetch(&p->in_flight, (unsigned)n, __ATOMIC_RELAXED);
}

/* ---- connections ---------------------------------------------------------------------- */

/* The worker's active list: every connection it uses, so deadlines can be checked and a
 * worker that stops can close what it still holds. */
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

static void cancel_close(pool_worker_t *w, pool_conn_t *c)
{
    pool_cancel_req_close(&c->cancel, w ? w->loop : NULL);
}

/* Takes c off its worker's list of connections to flush. */
static void flush_unlink(pool_conn_t *c)
{
    if (!c->flush_in) return;
    for (pool_conn_t **pp = &c->flush_in->flush_head; *pp; pp = &(*pp)->flush_next)
        if (*pp == c) {
            *pp = c->flush_next;
            break;
        }
    c->flush_next = NULL;
    c->flush_in = NULL;
}

/* libpq closes a connection's socket when it finds the connection lost, in any call that reads
 * (PQconsumeInput, and PQflush, PQpipelineSync or a PQsend* when a write fails or the socket is
 * full); the kernel then drops the socket from the epoll set by itself, and no event will ever
 * report it.  Forgets c's registration when its socket is no longer libpq's, without touching
 * epoll (the number may already belong to another descriptor of this loop).  Returns 1 when
 * libpq found the connection lost (CONNECTION_BAD): nothing more will arrive on it.  No system
 * call. */
static int pool_conn_check_lost(pool_conn_t *c)
{
    if (c->io.fd >= 0 && (!c->libpq || PQsocket(c->libpq) != c->io.fd)) {
        c->io.fd = -1;
        c->io.events = 0;
    }
    return !c->libpq || PQstatus(c->libpq) == CONNECTION_BAD;
}

static void pool_conn_destroy(pool_worker_t *w, pool_conn_t *c)
{
    flush_unlink(c);
    pool_conn_check_lost(c);
    if (w) loop_io_stop(w->loop, &c->io);
    active_remove(c);
    cancel_close(w, c);
    for (unsigned i = 0; i < c->depth; i++)
        if (entry_at(c, i)->result) PQclear(entry_at(c, i)->result);
    if (c->depth) in_flight_add(c->pool, -(int)c->depth);
    if (c->libpq) PQfinish(c->libpq);
    c->libpq = NULL;
    if (w) {
        c->next = w->dead;
        w->dead = c;
    } else {
        free(c);
    }
}

static void worker_free_dead(pool_worker_t *w)
{
    while (w->dead) {
        pool_conn_t *c = w->dead;
        w->dead = c->next;
        free(c);
    }
}

/* Closes c and gives its slot to the oldest waiter (who connects anew). */
static void pool_conn_close_slot(pool_worker_t *w, pool_conn_t *c)
{
    pool_t *p = w->pool;
    pool_conn_destroy(w, c);
    pthread_mutex_lock(&p->lock);
    p->open--;
    pool_queue_give_slot_locked(p, w);
    pthread_mutex_unlock(&p->lock);
}

/* The database cannot be reached: every waiter fails fast, and new queries fail fast until
 * the back-off passes. */
static void pool_conn_connect_failed(pool_worker_t *w, pool_conn_t *c, const char *why)
{
    pool_t *p = w->pool;
    pool_query_t *q = c->connect_for;
    char message[256];
    const char *detail = c->libpq ? PQerrorMessage(c->libpq) : "";
    snprintf(message, sizeof message, "database unavailable: %s%s%.*s", why, *detail ? ": " : "",
             (int)strcspn(detail, "\n"), detail);
    log_warn("%s", message);
    /* The address may have changed (a failover, a container started again): look it up anew,
     * off the loops.  A lookup that has not finished is not asked twice. */
    if (p->resolver && c->libpq) resolver_refresh(p->resolver);
    pool_conn_destroy(w, c);
    pthread_mutex_lock(&p->lock);
    p->open--;
    p->connect_errors++;
    p->failing = 1;
    p->last_failure_ms = w->loop->now_ms;
    while (p->wait_head)
        pool_queue_hand_locked(p, p->wait_head, NULL, POOL_ERR_UNAVAILABLE, w);
    pthread_mutex_unlock(&p->lock);
    if (q) pool_queue_deliver(q, NULL, POOL_ERR_UNAVAILABLE, message);
}

/* Every statement of other workers in flight on c fails with error, answered in its own
 * worker's thread. */
static void pool_conn_fail_foreign(pool_worker_t *w, pool_conn_t *c, int error)
{
    pthread_mutex_lock(&w->pool->lock);
    for (unsigned i = 0; i < c->depth; i++) {
        entry_t *e = entry_at(c, i);
        pool_query_t *q = e->foreign ? e->q : NULL;
        if (!q) continue;
        e->q = NULL;
        pool_worker_t *wake = pool_queue_hand_answer_locked(q, NULL, error, w);
        if (wake) pool_queue_wake(wake);
    }
    pthread_mutex_unlock(&w->pool->lock);
}

/* The connection broke with statements in flight: each fails with POOL_ERR_CONNECTION (it was
 * sent, so it may have run); the connection closes and its slot goes to the oldest waiter. */
static void pool_conn_broken(pool_worker_t *w, pool_conn_t *c)
{
    char message[256];
    snprintf(message, sizeof message, "database connection lost: %.*s",
             (int)strcspn(PQerrorMessage(c->libpq), "\n"), PQerrorMessage(c->libpq));
    pool_query_t *lost[POOL_MAX_PIPELINE_DEPTH];
    unsigned n = 0;
    for (unsigned i = 0; i < c->depth; i++)
        if (!entry_at(c, i)->foreign && entry_at(c, i)->q) lost[n++] = entry_at(c, i)->q;
    pool_conn_fail_foreign(w, c, POOL_ERR_CONNECTION);
    pool_conn_close_slot(w, c);
    for (unsigned i = 0; i < n; i++)
        pool_queue_deliver(lost[i], NULL, POOL_ERR_CONNECTION, message);
}

/* Pipeline mode: c has an open segment, statements queued since its last sync point.  Its
 * newest statement is still in flight then: nothing of a segment leaves libpq's buffer before
 * its sync point (a segment is far below libpq's 64 kB flush threshold), so nothing of it can
 * have been answered. */
static int pool_conn_segment_open(const pool_t *p, pool_conn_t *c)
{
    return p->config.pipeline_depth > 0 && c->depth > 0 && !entry_at(c, c->depth - 1)->sync;
}

/* Sends a sync point (libpq 15 writes out what is buffered here: its PQpipelineSync flushes).
 * Returns 0, or -1 with c marked broken. */
static int pool_conn_put_sync(pool_t *p, pool_conn_t *c)
{
    if (!PQpipelineSync(c->libpq)) {
        c->broken = 1;
        return -1;
    }
    __atomic_add_fetch(&p->syncs, 1, __ATOMIC_RELAXED);
    return 0;
}

/* Ends c's open segment with a sync point: the statements queued since the last one run in one
 * implicit transaction and are answered in one write.  Returns 0, or -1 with c marked broken
 * (the read path reports it to the statements in flight). */
static int pool_conn_sync(pool_t *p, pool_conn_t *c)
{
    if (!pool_conn_segment_open(p, c)) return 0;
    if (pool_conn_put_sync(p, c) < 0) return -1;
    entry_at(c, c->depth - 1)->sync = 1;
    return 0;
}

/* Queues q's statement on c (driven by w) behind whatever is in flight; pool_conn_flush writes
 * it out.  In pipeline mode a cheap statement (POOL_SHARED) joins the open segment, which the
 * worker ends with one sync point when it flushes (worker_flush); any other, and one sent again
 * (own_sync), has a segment of its own, so no statement that may wait on a lock or write shares
 * a transaction.  q may be another worker's: then the caller holds the pool lock, which keeps q
 * and its parameters alive (its worker cancels under the lock), and q's answer will go back to
 * that worker.  Returns 0, or the error for q (POOL_ERR_NOT_SENT: nothing of it left the
 * process; POOL_ERR_CONNECTION: it may have); on error c is marked broken.  Never calls
 * back. */
static int pool_conn_queue(pool_worker_t *w, pool_conn_t *c, pool_query_t *q, int own_sync)
{
    pool_t *p = w->pool;
    const pool_statement_t *st = &p->config.statements[q->statement];
    uint64_t bit = (uint64_t)1 << q->statement;
    int prepare = !p->config.unnamed && !(c->prepared & bit);
    int pipeline = p->config.pipeline_depth > 0;
    int alone = pipeline && (own_sync || st->sharing != POOL_SHARED);
    if (c->broken || PQstatus(c->libpq) != CONNECTION_OK) {
        c->broken = 1;
        return POOL_ERR_NOT_SENT;
    }
    if (alone && pool_conn_sync(p, c) < 0) return POOL_ERR_NOT_SENT;
    if (p->config.unnamed) {
        /* Parse, Bind, Execute of the unnamed statement: nothing outlives the transaction. */
        if (!PQsendQueryParams(c->libpq, st->sql, q->param_count, NULL, q->params, NULL, NULL,
                               q->binary_results ? 1 : 0))
            goto not_sent;
    } else {
        /* Protocol-level prepares: they also work behind PgBouncer 1.21+ in transaction
         * pooling (max_prepared_statements), where SQL PREPARE would not. */
        if (prepare && !PQsendPrepare(c->libpq, st->name, st->sql, 0, NULL)) goto not_sent;
        if ((pipeline || !prepare) &&
            !PQsendQueryPrepared(c->libpq, st->name, q->param_count, q->params, NULL, NULL,
                                 q->binary_results ? 1 : 0))
            goto not_sent;
    }
    if (alone && pool_conn_put_sync(p, c) < 0) return POOL_ERR_CONNECTION;
    if (prepare) c->prepared |= bit;
    entry_t *e = entry_at(c, c->depth);
    memset(e, 0, sizeof *e);
    e->sync = alone; /* else the segment stays open until the worker flushes */
    __atomic_add_fetch(&p->statements, 1, __ATOMIC_RELAXED);
    e->q = q;
    e->statement = q->statement;
    e->prepare = prepare;
    e->step = prepare ? 0 : 1;
    e->sent_ms = w->loop->now_ms;
    e->foreign = q->worker != w;
    if (c->depth++) __atomic_add_fetch(&p->pipelined, 1, __ATOMIC_RELAXED);
    in_flight_add(p, 1);
    if (st->sharing == POOL_ALONE) c->exclusive = 1;
    c->closed_tail = st->sharing != POOL_SHARED;
    q->conn = c;
    if (e->foreign) {
        q->state = POOL_QUERY_FOREIGN;
        q->entry = e;
        pool_queue_foreign_add_locked(q);
        __atomic_add_fetch(&p->foreign, 1, __ATOMIC_RELAXED);
    } else {
        q->state = POOL_QUERY_RUNNING;
    }
    return 0;
not_sent:
    /* Queued messages of a half-sent statement would go out with the next one. */
    c->broken = 1;
    return POOL_ERR_NOT_SENT;
}

/* A write to c failed: c takes nothing more.  The read path, woken by the error, reports it to
 * the statements in flight; when no event can wake it (libpq closed the socket, or it cannot be
 * watched), c is lost and the worker's next tick reports it (pool_worker_tick). */
static void pool_conn_write_failed(pool_worker_t *w, pool_conn_t *c)
{
    c->broken = 1;
    if (!pool_conn_check_lost(c)) {
        if (c->io.fd >= 0 && loop_io_modify(w->loop, &c->io, EPOLLIN | EPOLLOUT) == 0) return;
        log_warn("pool: cannot watch a database socket");
    }
    c->lost = 1;
    w->lost_pending = 1;
}

/* Writes out what is queued on c and watches it for the answers (and for writing, when the
 * socket is full).  On failure: pool_conn_write_failed. */
static void pool_conn_write(pool_worker_t *w, pool_conn_t *c)
{
    int f = PQflush(c->libpq);
    if (f < 0 || pool_conn_watch(w, c, EPOLLIN | (f ? EPOLLOUT : 0)) < 0)
        pool_conn_write_failed(w, c);
}

/* What is queued on c goes out: in pipeline mode at the end of the worker's loop turn
 * (worker_flush), so the statements of every request that arrived in the same turn share one
 * segment, one sync point and one write; without, now. */
static void pool_conn_flush(pool_worker_t *w, pool_conn_t *c)
{
    if (w->pool->config.pipeline_depth == 0) {
        pool_conn_write(w, c);
        return;
    }
    if (c->flush_in) return;
    c->flush_in = w;
    c->flush_next = w->flush_head;
    w->flush_head = c;
}

/* Ends the open segment of every connection w queued statements on this turn and writes them
 * out. */
static void worker_flush(pool_worker_t *w)
{
    while (w->flush_head) {
        pool_conn_t *c = w->flush_head;
        w->flush_head = c->flush_next;
        c->flush_next = NULL;
        c->flush_in = NULL;
        if (pool_conn_sync(w->pool, c) < 0) {
            pool_conn_write_failed(w, c);
            continue;
        }
        pool_conn_write(w, c);
    }
}

/* Sends q (this worker's) on c, behind whatever is in flight: pool_conn_queue, then
 * pool_conn_flush. */
static int pool_conn_send(pool_worker_t *w, pool_conn_t *c, pool_query_t *q)
{
    int e = pool_conn_queue(w, c, q, 0);
    if (!e) pool_conn_flush(w, c);
    return e;
}

/* Can c take one more cheap statement now? */
static int pool_conn_can_join(const pool_t *p, pool_conn_t *c, uint64_t now_ms)
{
    return p->config.pipeline_depth > 1 && c->state == POOL_CONN_BUSY && !c->exclusive &&
           !c->closed_tail && !c->broken && c->cancel.state == POOL_CANCEL_NONE && c->handed == 0 &&
           c->depth > 0 && c->depth < p->config.pipeline_depth &&
           pool_elapsed_ms(now_ms, entry_at(c, 0)->sent_ms) < POOL_STALL_MS;
}

/* Runs q on c, which this worker holds.  On failure q is answered later (not sent: on a fresh
 * connection when c carries nothing else).  Returns 1 when q runs on c (c still held). */
static int pool_conn_run(pool_worker_t *w, pool_conn_t *c, pool_query_t *q)
{
    c->worker = w;
    c->state = POOL_CONN_BUSY;
    active_add(w, c);
    int e = pool_conn_send(w, c, q);
    if (!e) return 1;
    if (c->depth == 0 && c->handed == 0 && e == POOL_ERR_NOT_SENT) {
        /* Nothing reached the server: a fresh connection may run it.  Keep the slot. */
        pool_conn_destroy(w, c);
        pool_conn_start_connect(w, q);
        return 0;
    }
    pool_queue_defer_error(w, q, e);
    if (c->depth == 0 && c->handed == 0) pool_conn_release(w, c);
    return 0;
}

/* Sends on c, which w drives, the oldest waiters of the FIFO while they are cheap and c has
 * room, whichever worker submitted them (another worker's answer goes back to its thread), in
 * FIFO order.  Returns how many were sent. */
static unsigned pool_conn_take_waiters(pool_worker_t *w, pool_conn_t *c)
{
    pool_t *p = w->pool;
    pool_query_t *own[POOL_MAX_PIPELINE_DEPTH];
    unsigned n_own = 0, sent = 0;
    /* p->wait_head is read under the lock only: other workers change it (ThreadSanitizer). */
    pthread_mutex_lock(&p->lock);
    while (p->wait_head && !pool_queue_is_alone(p, p->wait_head) && !c->broken &&
           c->depth < p->config.pipeline_depth && !p->shutting_down) {
        pool_query_t *q = p->wait_head;
        pool_queue_remove_locked(p, q);
        pool_queue_record_wait_locked(p, pool_elapsed_ms(w->loop->now_ms, q->submit_ms));
        q->state = POOL_QUERY_HANDED;
        if (q->worker == w) own[n_own++] = q;
        int last = pool_queue_is_last(p, q);
        int e = pool_conn_queue(w, c, q, 0);
        if (e) {
            pool_queue_hand_locked(p, q, NULL, e, w); /* answered in its worker's next tick */
            break;
        }
        sent++;
        if (last) break;
    }
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < n_own; i++)
        pool_queue_local_remove(w, own[i]);
    if (sent) {
        c->worker = w;
        active_add(w, c);
        pool_conn_flush(w, c);
    }
    return sent;
}

/* Sends waiters on c behind the statements in flight, when c may take more. */
static void pool_conn_top_up(pool_worker_t *w, pool_conn_t *c)
{
    /* The count is a hint read without the lock: a waiter it misses wakes this worker
     * (take_wanted) or is taken at the next answer. */
    if (__atomic_load_n(&w->pool->waiting, __ATOMIC_RELAXED) &&
        pool_conn_can_join(w->pool, c, w->loop->now_ms))
        pool_conn_take_waiters(w, c);
}

/* Returns a connection that carries nothing: it stays with w when the oldest waiter is cheap
 * (w sends it and the cheap ones behind it, whichever worker they came from: passing the
 * connection to another thread would leave it idle until that thread wakes), else it goes
 * to the oldest waiter, to the idle stack, or (broken) closed.  Returns 1 when w still drives
 * c. */
static int pool_conn_release(pool_worker_t *w, pool_conn_t *c)
{
    pool_t *p = w->pool;
    c->exclusive = 0;
    c->closed_tail = 0;
    if (c->broken || PQstatus(c->libpq) != CONNECTION_OK ||
        PQtransactionStatus(c->libpq) != PQTRANS_IDLE) {
        pool_conn_close_slot(w, c);
        return 0;
    }
    if (p->config.pipeline_depth > 0 && c->cancel.state == POOL_CANCEL_NONE && c->handed == 0 &&
        __atomic_load_n(&p->waiting, __ATOMIC_RELAXED) && pool_conn_take_waiters(w, c))
        return 1;
    /* A statement with a sync point of its own went out at once (libpq 15's PQpipelineSync
     * flushes) and may be answered within the turn that queued it: c can still be on w's list
     * of connections to flush, which must not touch it once it belongs to the idle stack or
     * to another worker. */
    flush_unlink(c);
    loop_io_stop(w->loop, &c->io);
    active_remove(c);
    pthread_mutex_lock(&p->lock);
    if (p->wait_head && !p->shutting_down) {
        c->state = POOL_CONN_BUSY;
        c->handed = pool_queue_hand_conn_locked(p, c, w);
    } else {
        c->state = POOL_CONN_IDLE;
        c->worker = NULL;
        c->idle_since_ms = w->loop->now_ms;
        c->next = p->idle;
        p->idle = c;
        p->idle_count++;
    }
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/* Keeps the first error, or else the last result. */
static void keep_result(entry_t *e, PGresult *r)
{
    if (e->result) {
        ExecStatusType s = PQresultStatus(e->result);
        if (s == PGRES_FATAL_ERROR || s == PGRES_BAD_RESPONSE) {
            PQclear(r);
            return;
        }
        PQclear(e->result);
    }
    e->result = r;
}

/* The error in res (a failed statement on c) ends the session rather than the statement: the
 * backend was terminated or shut down (57P01 administrator, 57P02 crash, 57P03 cannot connect
 * now, 57P04 database dropped, 57P05 idle session timeout), any other FATAL or PANIC, a
 * connection exception (class 08), or an error of libpq's own (no SQLSTATE) on a connection it
 * found broken.  57014 (statement timeout, cancel) is an ERROR: the session goes on. */
static int pool_conn_error_ends_session(const pool_conn_t *c, const PGresult *res)
{
    const char *state = pool_result_sqlstate(res);
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (severity && (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0)) return 1;
    if (strncmp(state, "08", 2) == 0) return 1;
    if (strncmp(state, "57P0", 4) == 0 && state[4] >= '1' && state[4] <= '5') return 1;
    return *state == '\0' && PQstatus(c->libpq) == CONNECTION_BAD;
}

/* The oldest statement on c was answered: take it off, decide c's fate, then call back (the
 * callback may submit again, possibly onto c).  A statement that an earlier one's error in its
 * segment aborted never ran: it is sent again, in a segment of its own, and answered then.
 * An error that ends the session (pool_conn_error_ends_session) is a lost connection: the
 * statement fails with POOL_ERR_CONNECTION, and c takes nothing more (nothing is resent onto
 * it: the statements aborted behind it fail with POOL_ERR_NOT_SENT).  Returns 0 while c stays
 * with this worker. */
static int pool_conn_finish_head(pool_worker_t *w, pool_conn_t *c)
{
    pool_t *p = w->pool;
    entry_t *head = entry_at(c, 0);
    PGresult *result = head->result;
    head->result = NULL;
    ExecStatusType s = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
    int ok = s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK;
    int error = ok ? POOL_OK : result ? POOL_ERR_QUERY : POOL_ERR_CONNECTION;
    char lost[256];
    lost[0] = '\0';
    if (error == POOL_ERR_QUERY && s != PGRES_PIPELINE_ABORTED &&
        pool_conn_error_ends_session(c, result)) {
        const char *why = PQresultErrorMessage(result);
        snprintf(lost, sizeof lost, "%s: %.*s", pool_strerror(POOL_ERR_CONNECTION),
                 (int)strcspn(why, "\n"), why);
        c->broken = 1;
        error = POOL_ERR_CONNECTION;
        PQclear(result);
        result = NULL;
    }
    if (head->prepare && (head->prepare_failed || !result))
        c->prepared &= ~((uint64_t)1 << head->statement);
    int foreign = head->foreign;
    /* Another worker's query is read (and detached) under the lock: its worker cancels under
     * it. */
    if (foreign) pthread_mutex_lock(&p->lock);
    pool_query_t *q = head->q;
    head->q = NULL;
    c->head = (c->head + 1) % POOL_MAX_PIPELINE_DEPTH;
    c->depth--;
    in_flight_add(p, -1);
    if (q && s == PGRES_PIPELINE_ABORTED) {
        if (foreign) pool_queue_foreign_remove_locked(q); /* pool_conn_queue lists it again */
        int e = pool_conn_queue(w, c, q, 1);
        if (!e) {
            __atomic_add_fetch(&p->resent, 1, __ATOMIC_RELAXED);
            pool_conn_flush(w, c);
            q = NULL; /* answered once it has run */
        } else {
            if (foreign) pool_queue_foreign_add_locked(q);
            error = e;
            PQclear(result);
            result = NULL;
        }
    }
    if (foreign) {
        /* Its answer goes to its worker's thread. */
        pool_worker_t *wake = NULL;
        if (q) {
            wake = pool_queue_hand_answer_locked(q, result, error, w);
            result = NULL;
            q = NULL;
        }
        pthread_mutex_unlock(&p->lock);
        if (wake) pool_queue_wake(wake); /* no system call under the lock */
    }
    int gone = 0;
    if (c->depth == 0) {
        c->exclusive = 0;
        c->closed_tail = 0;
        /* With a cancel on its way, c is released once PostgreSQL took it (cancel_done); a
         * cancel for a backend that is gone is pointless: c is released (closed) now. */
        if (c->cancel.state != POOL_CANCEL_NONE && (c->broken || pool_conn_check_lost(c)))
            cancel_close(w, c);
        gone = c->cancel.state == POOL_CANCEL_NONE && !pool_conn_release(w, c);
    }
    /* Room freed behind statements still in flight is filled once the read is done
     * (pool_conn_read), so the waiters go out in one write. */
    if (q) {
        const char *msg = ok       ? ""
                          : result ? PQresultErrorMessage(result)
                          : *lost  ? lost
                                   : pool_strerror(error);
        pool_queue_deliver(q, result, error, msg);
    }
    if (result) PQclear(result);
    return gone;
}

/* Reads what arrived and answers every statement whose results are complete. */
static void pool_conn_read(pool_worker_t *w, pool_conn_t *c)
{
    int pipeline = w->pool->config.pipeline_depth > 0;
    __atomic_store_n(&w->last_answer_ms, w->loop->now_ms, __ATOMIC_RELAXED);
    if (!PQconsumeInput(c->libpq)) {
        pool_conn_broken(w, c);
        return;
    }
    int nulls = 0;
    while (c->depth > 0 && !PQisBusy(c->libpq)) {
        entry_t *e = entry_at(c, 0);
        PGresult *r = PQgetResult(c->libpq);
        if (!pipeline) {
            if (r) {
                keep_result(e, r);
                continue;
            }
            if (e->step == 0) {
                /* The Prepare is answered: run the statement unless it failed or nobody
                 * waits for it any more. */
                ExecStatusType s = e->result ? PQresultStatus(e->result) : PGRES_FATAL_ERROR;
                if (s == PGRES_COMMAND_OK && e->q) {
                    PQclear(e->result);
                    e->result = NULL;
                    e->step = 1;
                    const pool_statement_t *st = &w->pool->config.statements[e->statement];
                    if (!PQsendQueryPrepared(c->libpq, st->name, e->q->param_count, e->q->params,
                                             NULL, NULL, e->q->binary_results ? 1 : 0)) {
                        /* Not sent: the connection closes (it was the only statement). */
                        pool_query_t *q = e->q;
                        e->q = NULL;
                        e->prepare = 0;
                        c->broken = 1;
                        pool_conn_finish_head(w, c);
                        pool_queue_deliver(q, NULL, POOL_ERR_NOT_SENT,
                                           pool_strerror(POOL_ERR_NOT_SENT));
                        return;
                    }
                    int f = PQflush(c->libpq);
                    if (f < 0 || pool_conn_watch(w, c, EPOLLIN | (f ? EPOLLOUT : 0)) < 0) {
                        pool_conn_broken(w, c);
                        return;
                    }
                    continue;
                }
                if (s != PGRES_COMMAND_OK) e->prepare_failed = 1;
                if (s == PGRES_COMMAND_OK) {
                    PQclear(e->result); /* cancelled: the Prepare alone is no answer */
                    e->result = NULL;
                    e->prepare_failed = 0;
                    e->prepare = 0;
                }
            }
            if (pool_conn_finish_head(w, c)) return;
            continue;
        }
        if (!r) {
            /* A statement inside a segment is complete at its last command's end; the one
             * that ends it, at the sync point. */
            if (++e->commands_done >= (e->prepare ? 2 : 1) && !e->sync) {
                nulls = 0;
                if (pool_conn_finish_head(w, c)) return;
                continue;
            }
            if (++nulls > 2) break; /* defensive: libpq said not busy but has nothing */
            continue;
        }
        nulls = 0;
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            if (pool_conn_finish_head(w, c)) return;
            continue;
        }
        if (e->prepare && e->commands_done == 0) {
            /* The Prepare's own result. */
            if (s != PGRES_COMMAND_OK) {
                e->prepare_failed = 1;
                keep_result(e, r);
            } else {
                PQclear(r);
            }
            continue;
        }
        keep_result(e, r);
    }
    if (pool_conn_check_lost(c)) {
        /* Nothing more will come: the statements in flight fail, a pending cancel is dropped,
         * the slot is freed.  (A connection handed over with queries belongs to their worker,
         * which finds it broken and replaces it.) */
        if (c->depth || c->handed == 0)
            pool_conn_broken(w, c);
        else
            c->broken = 1;
        return;
    }
    if (c->depth > 0) pool_conn_top_up(w, c); /* the room the answers freed, in one write */
}

static void pool_conn_connected(pool_worker_t *w, pool_conn_t *c)
{
    pool_t *p = w->pool;
    PQsetnonblocking(c->libpq, 1);
    if (p->config.pipeline_depth > 0 && !PQenterPipelineMode(c->libpq)) {
        pool_conn_connect_failed(w, c, "cannot enter pipeline mode");
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->failing = 0;
    p->connections_opened++;
    pthread_mutex_unlock(&p->lock);
    pool_query_t *q = c->connect_for;
    c->connect_for = NULL;
    if (pool_conn_watch(w, c, EPOLLIN) < 0) {
        pool_conn_connect_failed(w, c, "cannot watch socket");
        return;
    }
    c->state = POOL_CONN_BUSY;
    if (q) {
        if (pool_conn_run(w, c, q)) pool_conn_top_up(w, c);
    } else {
        pool_conn_release(w, c); /* the query was cancelled while connecting */
    }
}

static void pool_conn_on_io(loop_io_t *io, uint32_t events)
{
    pool_conn_t *c = io->user;
    pool_worker_t *w = c->worker;
    if (c->state == POOL_CONN_CONNECTING) {
        PostgresPollingStatusType st = PQconnectPoll(c->libpq);
        if (st == PGRES_POLLING_FAILED) {
            pool_conn_connect_failed(w, c, "connect failed");
            return;
        }
        if (st == PGRES_POLLING_OK) {
            pool_conn_connected(w, c);
            return;
        }
        /* The socket may change between attempts (several addresses), so watch afresh. */
        loop_io_stop(w->loop, &c->io);
        if (pool_conn_watch(w, c, st == PGRES_POLLING_READING ? EPOLLIN : EPOLLOUT) < 0)
            pool_conn_connect_failed(w, c, "cannot watch socket");
        return;
    }
    if (events & EPOLLOUT) {
        int f = PQflush(c->libpq);
        if (f < 0) {
            pool_conn_read(w, c); /* reports the broken connection */
            return;
        }
        if (f == 0) loop_io_modify(w->loop, &c->io, EPOLLIN);
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) pool_conn_read(w, c);
}

static int pool_conn_watch(pool_worker_t *w, pool_conn_t *c, uint32_t events)
{
    int fd = PQsocket(c->libpq);
    if (fd < 0) return -1;
    if (c->io.fd >= 0) return loop_io_modify(w->loop, &c->io, events);
    return loop_io_start(w->loop, &c->io, fd, events, pool_conn_on_io, c);
}

static pool_conn_t *pool_conn_new(pool_t *p)
{
    pool_conn_t *c = xcalloc(1, sizeof *c);
    c->pool = p;
    c->io.fd = -1;
    pool_cancel_req_init(&c->cancel, cancel_on_done, c);
    return c;
}

/* Opens a new connection for q in w; the slot (p->open) is already counted.  libpq gets the
 * addresses of DB_HOST the resolver found (as hostaddr, beside host), so it never looks a name
 * up on this thread; while the resolver has none, the attempt fails at once (the database is
 * unavailable, with the reason). */
static void pool_conn_start_connect(pool_worker_t *w, pool_query_t *q)
{
    pool_t *p = w->pool;
    pool_conn_t *c = pool_conn_new(p);
    c->worker = w;
    c->state = POOL_CONN_CONNECTING;
    c->connect_for = q;
    c->deadline_ms = w->loop->now_ms + p->config.connect_timeout_ms;
    q->state = POOL_QUERY_CONNECTING;
    q->conn = c;
    const char *values[10];
    char host[RESOLVER_LIST_MAX], hostaddr[RESOLVER_LIST_MAX], why[256] = "connect failed";
    memcpy(values, p->values, sizeof values);
    int known = !p->resolver ||
                resolver_get(p->resolver, host, hostaddr, sizeof host, why, sizeof why) == 0;
    if (known && p->resolver) {
        values[p->host_at] = host;
        values[p->addr_at] = hostaddr;
    }
    c->libpq = known ? PQconnectStartParams(p->keywords, values, 0) : NULL;
    if (c->libpq) pool_log_notices(c->libpq);
    active_add(w, c);
    if (!c->libpq || PQstatus(c->libpq) == CONNECTION_BAD || pool_conn_watch(w, c, EPOLLOUT) < 0) {
        c->connect_for = NULL;
        pool_conn_connect_failed(w, c, why);
        q->state = POOL_QUERY_NEW;
        pool_queue_defer_error(w, q, POOL_ERR_UNAVAILABLE);
    }
}

/* A connection idle for a while may have been closed by the server (restart, idle kill). */
static int pool_conn_is_stale(pool_conn_t *c, uint64_t now_ms)
{
    if (pool_elapsed_ms(now_ms, c->idle_since_ms) < POOL_STALE_CHECK_MS) return 0;
    if (!PQconsumeInput(c->libpq) || PQstatus(c->libpq) != CONNECTION_OK) return 1;
    /* A message on an idle connection is an error notice before a close. */
    char byte;
    ssize_t n = recv(PQsocket(c->libpq), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) || PQisBusy(c->libpq);
}

/* ---- cancel requests -------------------------------------------------------------------- */

/* The cancel request is over: c is released once nothing else holds it. */
static void cancel_done(pool_worker_t *w, pool_conn_t *c)
{
    cancel_close(w, c);
    if (c->state == POOL_CONN_BUSY && c->depth == 0 && c->handed == 0) pool_conn_release(w, c);
}

static void cancel_on_done(pool_cancel_req_t *req)
{
    pool_conn_t *c = req->user;
    cancel_done(c->worker, c);
}

/* Asks PostgreSQL to cancel what c's backend runs.  Returns 0 when the request is on its way. */
static int cancel_start(pool_worker_t *w, pool_conn_t *c)
{
    if (pool_cancel_req_start(&c->cancel, w->loop, c->libpq, w->pool->config.connect_timeout_ms) <
        0)
        return -1;
    __atomic_add_fetch(&w->pool->cancels, 1, __ATOMIC_RELAXED);
    return 0;
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
    /* Connections still in use (the shutdown deadline passed) are closed; what their backends
     * still run is cancelled first (blocking is fine on the way out). */
    while (w->active) {
        pool_conn_t *c = w->active;
        if (c->state == POOL_CONN_BUSY && c->depth > 0) {
            PGcancel *pc = PQgetCancel(c->libpq);
            char err[128];
            if (pc) PQcancel(pc, err, sizeof err);
            PQfreeCancel(pc);
        }
        pool_conn_fail_foreign(w, c, POOL_ERR_CONNECTION);
        pool_conn_destroy(w, c);
        pthread_mutex_lock(&w->pool->lock);
        w->pool->open--;
        pthread_mutex_unlock(&w->pool->lock);
    }
    worker_free_dead(w);
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
        ((entry_t *)q->entry)->q = NULL;
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
    for (pool_conn_t *c = w->active; c; c = c->active_next) {
        pool_query_t *q = c->connect_for;
        c->connect_for = NULL;
        if (q) pool_queue_deliver(q, NULL, POOL_ERR_SHUTDOWN, pool_strerror(POOL_ERR_SHUTDOWN));
        pool_conn_fail_foreign(w, c, POOL_ERR_CONNECTION);
        for (unsigned i = 0; i < c->depth; i++) {
            if (entry_at(c, i)->foreign) continue;
            q = entry_at(c, i)->q;
            entry_at(c, i)->q = NULL;
            if (q)
                pool_queue_deliver(
                    q, NULL, POOL_ERR_CONNECTION,
                    "server shutting down with the statement in flight: outcome unknown");
        }
    }
}

int pool_worker_busy(pool_worker_t *w)
{
    return w->active != NULL;
}

int pool_worker_tick(pool_worker_t *w)
{
    pool_t *p = w->pool;
    uint64_t now = w->loop->now_ms;
    worker_free_dead(w);
    worker_drain_inbox(w);
    pool_queue_expire(w, now);
    /* Connections lost where no event reports it (pool_conn_check_lost): reported here.  Each
     * report calls back, which may change the list: the scan starts again after one. */
    w->lost_pending = 0;
    for (pool_conn_t *c = w->active; c;) {
        if (c->state == POOL_CONN_BUSY && c->handed == 0 && (c->lost || pool_conn_check_lost(c))) {
            pool_conn_broken(w, c);
            c = w->active;
            continue;
        }
        c = c->active_next;
    }
    /* Connect and cancel deadlines. */
    for (pool_conn_t *c = w->active, *next; c; c = next) {
        next = c->active_next;
        if (c->state == POOL_CONN_CONNECTING && now >= c->deadline_ms) {
            pool_conn_connect_failed(w, c, "connect timed out");
            continue;
        }
        if (c->cancel.state != POOL_CANCEL_NONE && now >= c->cancel.deadline_ms) cancel_done(w, c);
    }
    pthread_mutex_lock(&p->lock);
    int shutting_down = p->shutting_down;
    pthread_mutex_unlock(&p->lock);
    if (shutting_down) worker_fail_running(w);
    /* Idle connections past their time, checked about once a second.  The idle stack holds
     * connections returned by every worker, each stamped by its own loop's clock, so an age
     * is never computed as negative (that would wrap and close a fresh connection). */
    if (now >= w->next_reap_ms) {
        w->next_reap_ms = now + 1000;
        pool_conn_t *expired = NULL;
        pthread_mutex_lock(&p->lock);
        for (pool_conn_t **pp = &p->idle; *pp;) {
            pool_conn_t *c = *pp;
            if (pool_elapsed_ms(now, c->idle_since_ms) >= p->config.idle_timeout_ms) {
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
            pool_conn_destroy(NULL, c);
        }
    }
    worker_flush(w); /* last: everything this turn queued goes out */
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
        ((entry_t *)q->entry)->q = NULL;
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
            if (!entry_at(c, i)->foreign && entry_at(c, i)->q == q) entry_at(c, i)->q = NULL;
        /* Alone on its connection, the statement is the backend's only work: cancel it there.
         * Behind or before others, a cancel could hit another request's statement. */
        if (c->depth == 1 && c->cancel.state == POOL_CANCEL_NONE && !c->broken &&
            PQstatus(c->libpq) == CONNECTION_OK && cancel_start(w, c) < 0)
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
