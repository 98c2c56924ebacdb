/* pool_queue.h: the pool's shared state and the hand-off between its worker threads: the one
 * FIFO of queries waiting for a connection, each worker's list of its own waiters, its inbox
 * (queries handed over to it by other threads, with a connection, a slot to connect with, an
 * error or an answer) and its list of statements in flight on other workers' connections.
 *
 * Everything here runs under the pool lock where a name ends in _locked, and nothing here
 * touches a database connection: a pool_conn_t is only carried (pool_conn.h drives it).  A
 * query is answered (pool_queue_deliver) only in its submitting worker's thread; another thread
 * hands it over through the worker's inbox and wakes the worker through its eventfd, and the
 * worker takes the inbox in its tick (pool_queue_take_inbox). */
#ifndef CATALOG_POOL_QUEUE_H
#define CATALOG_POOL_QUEUE_H

#include <pthread.h>
#include <stdint.h>

#include "loop.h"
#include "pool.h"
#include "resolver.h"

/* Where a query is (pool_query.state).  Other threads change q->state only under the pool lock
 * and only while the query is in the FIFO (WAITING -> HANDED, or WAITING -> FOREIGN when
 * another worker sends it on a connection it drives) or on another worker's connection
 * (FOREIGN -> HANDED with its answer); every read of a state another thread may change takes
 * the lock too. */
enum pool_query_state {
    POOL_QUERY_NEW,        /* submitted, not yet placed */
    POOL_QUERY_WAITING,    /* in the FIFO */
    POOL_QUERY_HANDED,     /* in its worker's inbox */
    POOL_QUERY_CONNECTING, /* a connection is being opened for it */
    POOL_QUERY_RUNNING,    /* sent on a connection its own worker drives */
    POOL_QUERY_FOREIGN,    /* sent on a connection another worker drives */
    POOL_QUERY_DONE,       /* answered or cancelled */
};

struct pool {
    pthread_mutex_t lock;
    pool_config_t config; /* numbers; strings below are owned copies */
    char *strings[6];     /* host, port, dbname, user, password, application_name */
    const char *keywords[10];
    const char *values[10];
    resolver_t *resolver; /* DB_HOST's addresses, or NULL when libpq needs no lookup */
    int host_at, addr_at; /* where the host and hostaddr values go in values */
    char options[128];    /* libpq "options": session settings every connection starts with */
    /* below: under lock */
    pool_conn_t *idle; /* stack of idle connections, most recently used on top */
    unsigned idle_count;
    unsigned open;                       /* connections open or being opened */
    pool_query_t *wait_head, *wait_tail; /* FIFO of queries waiting for a connection */
    unsigned waiting;         /* written under the lock, also read without it (atomic) as a hint */
    int failing;              /* the last connect attempt failed */
    uint64_t last_failure_ms; /* when */
    int shutting_down;
    pool_worker_t *workers; /* every worker, to ask the others to take a new waiter */
    uint64_t acquire_timeouts, connect_errors, connections_opened;
    uint64_t wait_bucket[POOL_WAIT_BUCKETS + 1];
    uint64_t wait_count;
    double wait_sum_ms;
    /* atomics (relaxed), written by the workers without the lock */
    unsigned in_flight;
    uint64_t pipelined, cancels, foreign, statements, syncs, resent;
};

struct pool_worker {
    pool_t *pool;
    loop_t *loop;
    int event_fd; /* other threads wake this worker through it */
    loop_io_t event_io;
    pool_query_t *inbox_head, *inbox_tail; /* handed-over queries; under pool->lock */
    pool_query_t *local_head, *local_tail; /* this worker's waiting queries, oldest first */
    pool_query_t *foreign_head; /* its queries in flight on other workers' connections; under
                                 * pool->lock */
    int take_wanted;            /* a cheap query waits: send it on a connection this worker
                                 * drives, if one can take it; under pool->lock */
    pool_worker_t *next_worker; /* in pool->workers; under pool->lock */
    uint64_t last_answer_ms;    /* when it last read answers (atomic: others read it) */
    int inbox_pending;   /* the inbox or take_wanted may hold work (atomic; set under the lock) */
    pool_conn_t *active; /* connections this worker is using (connecting or busy) */
    pool_conn_t *dead;   /* closed during this loop turn; freed by the next tick (an event for
                          * them may still be in the loop's batch) */
    pool_conn_t *flush_head; /* connections with statements queued this loop turn */
    int lost_pending;        /* a connection was found lost: the next tick comes at once */
    uint64_t next_reap_ms;
};

/* ---- workers ---------------------------------------------------------------------------- */

/* Opens w's eventfd in w->loop (w->pool and w->loop set) and lists w among the pool's workers.
 * Returns 0, or -1 (out of descriptors) with nothing left open. */
int pool_queue_worker_start(pool_worker_t *w);
/* Takes w off the pool's workers and closes its eventfd. */
void pool_queue_worker_stop(pool_worker_t *w);
/* Wakes w's loop (its eventfd); callable from any thread, best without the lock. */
void pool_queue_wake(pool_worker_t *w);

/* ---- statements ------------------------------------------------------------------------- */

/* q's statement runs alone on its connection (POOL_ALONE). */
int pool_queue_is_alone(const pool_t *p, const pool_query_t *q);
/* Nothing may be queued behind q's statement (POOL_LAST or POOL_ALONE). */
int pool_queue_is_last(const pool_t *p, const pool_query_t *q);

/* ---- the FIFO and the worker's own waiters ----------------------------------------------- */

/* Counts a wait of wait_ms in the acquire-wait histogram. */
void pool_queue_record_wait_locked(pool_t *p, uint64_t wait_ms);
/* Puts q (submitted by w at now_ms, the lock held) at the end of the FIFO, unlocks, and lists q
 * among w's own waiters.  The first cheap waiter (pipeline depth > 1) also asks every other
 * worker that has not read answers in the last millisecond to look for a connection of its
 * own that can take it (take_wanted, and a wake), once per worker until it has looked. */
void pool_queue_wait_unlock(pool_worker_t *w, pool_query_t *q, uint64_t now_ms);
/* Takes q out of the FIFO. */
void pool_queue_remove_locked(pool_t *p, pool_query_t *q);
/* Takes q out of its worker's list of waiters, if it is there (w's thread only). */
void pool_queue_local_remove(pool_worker_t *w, pool_query_t *q);
/* Acquire timeouts: every waiter of w that has waited acquire_timeout_ms by now_ms leaves the
 * FIFO and is answered POOL_ERR_TIMEOUT (counted in acquire_timeouts); w's thread only. */
void pool_queue_expire(pool_worker_t *w, uint64_t now_ms);

/* ---- hand-off between threads ------------------------------------------------------------ */

/* Hands q over to its worker (through its inbox, waking it) with a connection (conn), a slot
 * to connect with (conn NULL, error 0), or an error.  A q still in the FIFO leaves it (its
 * wait is counted unless error).  current is the calling worker, or NULL off the workers. */
void pool_queue_hand_locked(pool_t *p, pool_query_t *q, pool_conn_t *conn, int error,
                            pool_worker_t *current);
/* q ran on a connection another worker drives: its answer (res, owned by q from now on, or
 * NULL) goes to q's worker, which calls back.  q leaves the list of its foreign queries.
 * Returns the worker to wake (pool_queue_wake, best after unlocking), or NULL. */
pool_worker_t *pool_queue_hand_answer_locked(pool_query_t *q, PGresult *res, int error,
                                             pool_worker_t *current);
/* Hands connection c over to the oldest waiter, with up to depth - 1 further cheap waiters of
 * the same worker when the oldest is cheap too (they could not use c before it drains anyway).
 * The FIFO must not be empty.  Returns how many queries c was handed with. */
unsigned pool_queue_hand_conn_locked(pool_t *p, pool_conn_t *c, pool_worker_t *current);
/* A connection slot came free (a connection closed): the oldest waiter may open a new one
 * (counted in p->open).  Nothing happens when none waits or the pool shuts down. */
void pool_queue_give_slot_locked(pool_t *p, pool_worker_t *current);
/* Fails q later, from its worker's tick, so a submit never calls back synchronously. */
void pool_queue_defer_error(pool_worker_t *w, pool_query_t *q, int error);
/* Takes w's inbox: returns the handed-over queries in the order they came (linked by
 * inbox_next), and sets *take_wanted when another worker asked w to look for a connection for a
 * cheap waiter.  Returns NULL at once, without the lock, when nothing was pushed. */
pool_query_t *pool_queue_take_inbox(pool_worker_t *w, int *take_wanted);
/* Takes q out of its worker's inbox, if it is there. */
void pool_queue_inbox_remove_locked(pool_worker_t *w, pool_query_t *q);

/* ---- statements on other workers' connections -------------------------------------------- */

/* Lists q among its worker's queries in flight on other workers' connections. */
void pool_queue_foreign_add_locked(pool_query_t *q);
void pool_queue_foreign_remove_locked(pool_query_t *q);

/* Answers q in its worker's thread: marks it done and calls its callback. */
void pool_queue_deliver(pool_query_t *q, PGresult *res, int error, const char *message);

#endif
