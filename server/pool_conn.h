/* pool_conn.h: one connection of the pool and its libpq pipeline: opening it without blocking,
 * sending statements on it (in pipeline mode, several behind one another, each segment ended by
 * a sync point), reading their answers in order, and deciding where it goes when it drains (to
 * the oldest waiter, the idle stack, or closed).  A connection is driven by one worker at a time
 * (its socket is in that worker's loop); the statements it carries may be other workers'
 * (foreign), whose answers go back through pool_queue.h.
 *
 * pool_conn.c opens, hands over and closes connections; pool_conn_pipeline.c sends statements
 * and reads their answers.  Every function runs in the thread of the worker w it is given. */
#ifndef CATALOG_POOL_CONN_H
#define CATALOG_POOL_CONN_H

#include <libpq-fe.h>
#include <stdint.h>

#include "loop.h"
#include "pool.h"
#include "pool_cancel.h"

enum pool_conn_state {
    POOL_CONN_CONNECTING, /* being opened by its worker */
    POOL_CONN_IDLE,       /* on the pool's idle stack */
    POOL_CONN_BUSY,       /* driven by a worker (or handed over to one with queries) */
};

/* A statement sent on a connection, in the order the answers will come. */
typedef struct pool_conn_entry {
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
} pool_conn_entry_t;

/* One connection of the pool. */
struct pool_conn {
    pool_t *pool;
    PGconn *libpq;         /* libpq's handle; NULL when the connect could not start */
    loop_io_t io;          /* registered in the using worker's loop while connecting or busy */
    pool_worker_t *worker; /* the worker using it (while connecting or busy) */
    enum pool_conn_state state;
    pool_conn_entry_t slot[POOL_MAX_PIPELINE_DEPTH]; /* ring of statements in flight */
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

/* ---- opening, handing over, closing (pool_conn.c) ----------------------------------------- */

/* Drops c's cancel request, if any (w NULL: c is in no loop). */
void pool_conn_cancel_close(pool_worker_t *w, pool_conn_t *c);

/* libpq closes a connection's socket when it finds the connection lost, in any call that reads
 * (PQconsumeInput, and PQflush, PQpipelineSync or a PQsend* when a write fails or the socket is
 * full); the kernel then drops the socket from the epoll set by itself, and no event will ever
 * report it.  Forgets c's registration when its socket is no longer libpq's, without touching
 * epoll (the number may already belong to another descriptor of this loop).  Returns 1 when
 * libpq found the connection lost (CONNECTION_BAD): nothing more will arrive on it.  No system
 * call. */
int pool_conn_check_lost(pool_conn_t *c);

/* Closes c: its statements' results are cleared, its socket leaves w's loop; c itself is freed
 * by w's next tick (pool_conn_free_dead), or at once when w is NULL (c in no loop).  Its slot
 * stays counted in p->open: the caller gives it back or reuses it. */
void pool_conn_destroy(pool_worker_t *w, pool_conn_t *c);

/* Frees the connections w closed during the last loop turn. */
void pool_conn_free_dead(pool_worker_t *w);

/* The database cannot be reached: every waiter fails fast, and new queries fail fast until
 * the back-off passes. */
void pool_conn_connect_failed(pool_worker_t *w, pool_conn_t *c, const char *why);

/* Every statement of other workers in flight on c fails with error, answered in its own
 * worker's thread. */
void pool_conn_fail_foreign(pool_worker_t *w, pool_conn_t *c, int error);

/* The connection broke with statements in flight: each fails with POOL_ERR_CONNECTION (it was
 * sent, so it may have run); the connection closes and its slot goes to the oldest waiter. */
void pool_conn_broken(pool_worker_t *w, pool_conn_t *c);

/* Runs q on c, which this worker holds.  On failure q is answered later (not sent: on a fresh
 * connection when c carries nothing else).  Returns 1 when q runs on c (c still held). */
int pool_conn_run(pool_worker_t *w, pool_conn_t *c, pool_query_t *q);

/* Sends waiters on c behind the statements in flight, when c may take more. */
void pool_conn_top_up(pool_worker_t *w, pool_conn_t *c);

/* Returns a connection that carries nothing: it stays with w when the oldest waiter is cheap
 * (w sends it and the cheap ones behind it, whichever worker they came from: passing the
 * connection to another thread would leave it idle until that thread wakes), else it goes
 * to the oldest waiter, to the idle stack, or (broken) closed.  Returns 1 when w still drives
 * c. */
int pool_conn_release(pool_worker_t *w, pool_conn_t *c);

/* Watches c's socket in w's loop for events.  Returns 0, or -1 (no socket, or epoll failed). */
int pool_conn_watch(pool_worker_t *w, pool_conn_t *c, uint32_t events);

/* Opens a new connection for q in w; the slot (p->open) is already counted.  libpq gets the
 * addresses of DB_HOST the resolver found (as hostaddr, beside host), so it never looks a name
 * up on this thread; while the resolver has none, the attempt fails at once (the database is
 * unavailable, with the reason). */
void pool_conn_start_connect(pool_worker_t *w, pool_query_t *q);

/* A connection idle for a while may have been closed by the server (restart, idle kill). */
int pool_conn_is_stale(pool_conn_t *c, uint64_t now_ms);

/* The cancel request is over: c is released once nothing else holds it. */
void pool_conn_cancel_done(pool_worker_t *w, pool_conn_t *c);

/* Asks PostgreSQL to cancel what c's backend runs.  Returns 0 when the request is on its way. */
int pool_conn_cancel_start(pool_worker_t *w, pool_conn_t *c);

/* Closes every connection w still uses (a worker on its way out, its shutdown deadline
 * passed): what their backends still run is cancelled first, with libpq's blocking PQcancel;
 * other workers' statements on them fail with POOL_ERR_CONNECTION; their slots are given
 * back. */
void pool_conn_close_all(pool_worker_t *w);

/* The tick's checks of w's connections at now_ms: those libpq found lost where no event reports
 * it (pool_conn_check_lost) fail their statements; a connect past its deadline fails
 * (pool_conn_connect_failed), a cancel request past its deadline is dropped. */
void pool_conn_check_worker(pool_worker_t *w, uint64_t now_ms);

/* After pool_shutdown: the queries running on w's connections are answered now: one still
 * connecting with POOL_ERR_SHUTDOWN, a statement in flight with POOL_ERR_CONNECTION (outcome
 * unknown), other workers' through their inboxes. */
void pool_conn_fail_running(pool_worker_t *w);

/* Closes the idle connections (any worker's) idle for idle_timeout_ms at now_ms; at most about
 * once a second per worker. */
void pool_conn_reap_idle(pool_worker_t *w, uint64_t now_ms);

/* ---- the pipeline: sending and reading (pool_conn_pipeline.c) ----------------------------- */

/* The i-th statement in flight on c, oldest first. */
pool_conn_entry_t *pool_conn_entry(pool_conn_t *c, unsigned i);

/* Adds n (may be negative) to the count of statements in flight (pool_stats.in_flight). */
void pool_conn_in_flight_add(pool_t *p, int n);

/* Takes c off its worker's list of connections to flush. */
void pool_conn_flush_unlink(pool_conn_t *c);

/* Pipeline mode: c has an open segment, statements queued since its last sync point.  Its
 * newest statement is still in flight then: nothing of a segment leaves libpq's buffer before
 * its sync point (a segment is far below libpq's 64 kB flush threshold), so nothing of it can
 * have been answered. */
int pool_conn_segment_open(const pool_t *p, pool_conn_t *c);

/* Queues q's statement on c (driven by w) behind whatever is in flight; pool_conn_flush writes
 * it out.  In pipeline mode a cheap statement (POOL_SHARED) joins the open segment, which the
 * worker ends with one sync point when it flushes (pool_conn_flush_worker); any other, and one sent
 * again (own_sync), has a segment of its own, so no statement that may wait on a lock or write
 * shares a transaction.  q may be another worker's: then the caller holds the pool lock, which
 * keeps q and its parameters alive (its worker cancels under the lock), and q's answer will go back
 * to that worker.  Returns 0, or the error for q (POOL_ERR_NOT_SENT: nothing of it left the
 * process; POOL_ERR_CONNECTION: it may have); on error c is marked broken.  Never calls
 * back. */
int pool_conn_queue(pool_worker_t *w, pool_conn_t *c, pool_query_t *q, int own_sync);

/* What is queued on c goes out: in pipeline mode at the end of the worker's loop turn
 * (pool_conn_flush_worker), so the statements of every request that arrived in the same turn share
 * one segment, one sync point and one write; without, now. */
void pool_conn_flush(pool_worker_t *w, pool_conn_t *c);

/* Ends the open segment of every connection w queued statements on this turn and writes them
 * out. */
void pool_conn_flush_worker(pool_worker_t *w);

/* Sends q (this worker's) on c, behind whatever is in flight: pool_conn_queue, then
 * pool_conn_flush. */
int pool_conn_send(pool_worker_t *w, pool_conn_t *c, pool_query_t *q);

/* Can c take one more cheap statement now? */
int pool_conn_can_join(const pool_t *p, pool_conn_t *c, uint64_t now_ms);

/* Reads what arrived and answers every statement whose results are complete. */
void pool_conn_read(pool_worker_t *w, pool_conn_t *c);

#endif
