/* pool_conn_pipeline.c: statements sent on a pool connection and their answers read, in
 * libpq's pipeline mode or one at a time. */
#include "pool_conn.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "pool_queue.h"

/* No statement joins a pipeline whose oldest statement has run longer than this (it may wait
 * on a lock, and whatever is queued behind it waits too). */
#define POOL_STALL_MS 50

pool_conn_entry_t *pool_conn_entry(pool_conn_t *c, unsigned i)
{
    return &c->slot[(c->head + i) % POOL_MAX_PIPELINE_DEPTH];
}

void pool_conn_in_flight_add(pool_t *p, int n)
{
    __atomic_add_fetch(&p->in_flight, (unsigned)n, __ATOMIC_RELAXED);
}

/* Takes c off its worker's list of connections to flush. */
void pool_conn_flush_unlink(pool_conn_t *c)
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

/* Pipeline mode: c has an open segment, statements queued since its last sync point.  Its
 * newest statement is still in flight then: nothing of a segment leaves libpq's buffer before
 * its sync point (a segment is far below libpq's 64 kB flush threshold), so nothing of it can
 * have been answered. */
int pool_conn_segment_open(const pool_t *p, pool_conn_t *c)
{
    return p->config.pipeline_depth > 0 && c->depth > 0 && !pool_conn_entry(c, c->depth - 1)->sync;
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
    pool_conn_entry(c, c->depth - 1)->sync = 1;
    return 0;
}

/* Queues q's statement on c (driven by w) behind whatever is in flight; pool_conn_flush writes
 * it out.  In pipeline mode a cheap statement (POOL_SHARED) joins the open segment, which the
 * worker ends with one sync point when it flushes (pool_conn_flush_worker); any other, and one sent
 * again (own_sync), has a segment of its own, so no statement that may wait on a lock or write
 * shares a transaction.  q may be another worker's: then the caller holds the pool lock, which
 * keeps q and its parameters alive (its worker cancels under the lock), and q's answer will go back
 * to that worker.  Returns 0, or the error for q (POOL_ERR_NOT_SENT: nothing of it left the
 * process; POOL_ERR_CONNECTION: it may have); on error c is marked broken.  Never calls
 * back. */
int pool_conn_queue(pool_worker_t *w, pool_conn_t *c, pool_query_t *q, int own_sync)
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
    pool_conn_entry_t *e = pool_conn_entry(c, c->depth);
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
    pool_conn_in_flight_add(p, 1);
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
 * (pool_conn_flush_worker), so the statements of every request that arrived in the same turn share
 * one segment, one sync point and one write; without, now. */
void pool_conn_flush(pool_worker_t *w, pool_conn_t *c)
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
void pool_conn_flush_worker(pool_worker_t *w)
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
int pool_conn_send(pool_worker_t *w, pool_conn_t *c, pool_query_t *q)
{
    int e = pool_conn_queue(w, c, q, 0);
    if (!e) pool_conn_flush(w, c);
    return e;
}

/* Can c take one more cheap statement now? */
int pool_conn_can_join(const pool_t *p, pool_conn_t *c, uint64_t now_ms)
{
    return p->config.pipeline_depth > 1 && c->state == POOL_CONN_BUSY && !c->exclusive &&
           !c->closed_tail && !c->broken && c->cancel.state == POOL_CANCEL_NONE && c->handed == 0 &&
           c->depth > 0 && c->depth < p->config.pipeline_depth &&
           pool_elapsed_ms(now_ms, pool_conn_entry(c, 0)->sent_ms) < POOL_STALL_MS;
}

/* Keeps the first error, or else the last result. */
static void keep_result(pool_conn_entry_t *e, PGresult *r)
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
    pool_conn_entry_t *head = pool_conn_entry(c, 0);
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
    pool_conn_in_flight_add(p, -1);
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
        /* With a cancel on its way, c is released once PostgreSQL took it (pool_conn_cancel_done);
         * a cancel for a backend that is gone is pointless: c is released (closed) now. */
        if (c->cancel.state != POOL_CANCEL_NONE && (c->broken || pool_conn_check_lost(c)))
            pool_conn_cancel_close(w, c);
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
void pool_conn_read(pool_worker_t *w, pool_conn_t *c)
{
    int pipeline = w->pool->config.pipeline_depth > 0;
    __atomic_store_n(&w->last_answer_ms, w->loop->now_ms, __ATOMIC_RELAXED);
    if (!PQconsumeInput(c->libpq)) {
        pool_conn_broken(w, c);
        return;
    }
    int nulls = 0;
    while (c->depth > 0 && !PQisBusy(c->libpq)) {
        pool_conn_entry_t *e = pool_conn_entry(c, 0);
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
