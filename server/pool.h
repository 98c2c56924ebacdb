/* pool.h: a PostgreSQL connection pool on libpq's asynchronous API, shared by every worker
 * thread of a process, with at most `max_connections` connections in total.
 *
 * Each worker thread owns a loop and a pool_worker.  A query submitted in a worker runs on that
 * worker's loop: a free connection is taken (or a new one connected, without blocking), the
 * prepared statement is sent, and the callback runs in the same thread with the result.
 *
 * Statements are prepared lazily: the first time a connection runs a statement, its Prepare
 * goes out with it.  Opening a connection only connects, so a lock on one table delays the
 * statements that read it, never the pool ("database unavailable" means the database cannot
 * be reached or refuses the connection).
 *
 * With pipelining on (pipeline_depth >= 1), connections run in libpq's pipeline mode: a cheap
 * statement may be sent behind others already in flight on a connection, each with its own
 * sync point, so a failing statement fails only its own query.  A connection is driven by one
 * worker at a time (its socket is in that worker's loop), but carries cheap statements of
 * every worker: the driver sends the oldest cheap waiters of the FIFO, whichever worker
 * submitted them, and hands each result to its submitter's thread (through that worker's
 * inbox), where the callback runs.  A POOL_ALONE statement (a long one) only ever runs alone
 * on its connection, and no statement joins a connection whose oldest statement has been
 * running for a while, nor one whose newest statement is POOL_LAST (a write, which may wait on
 * a lock).
 *
 * When no connection can take a query, queries wait in one FIFO across all workers; a
 * connection that drains keeps its driver while the oldest waiter is cheap (the driver sends
 * it and the cheap waiters behind it), and otherwise goes to the oldest waiter, whichever
 * thread it belongs to (with up to pipeline_depth - 1 further cheap waiters of that thread).
 * A waiter that waits longer
 * than the acquire timeout gets POOL_ERR_TIMEOUT.  Broken connections are dropped and replaced;
 * while the database refuses connections, queries fail fast (POOL_ERR_UNAVAILABLE) and the pool
 * tries again after a short back-off, so it recovers by itself.
 *
 * A statement that has been sent is never sent again: when its connection breaks, the query
 * fails with POOL_ERR_CONNECTION (it may have run: for a write, the outcome is unknown).  An
 * error that ends the session is a broken connection too, not a failed statement: a backend
 * terminated or shut down (SQLSTATE 57P01-57P05), any FATAL or PANIC, a connection exception
 * (class 08), libpq's own error on a connection it found lost; 57014 (statement timeout,
 * cancel) stays POOL_ERR_QUERY.  A query whose statement had not left the process when the
 * connection was found broken (or that an earlier statement's error aborted in the pipeline,
 * on a connection that is going away) is sent on a fresh connection, or fails with
 * POOL_ERR_NOT_SENT (it did not run); nothing is sent onto a connection that is going away. */
#ifndef CATALOG_POOL_H
#define CATALOG_POOL_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

typedef struct pool pool_t;
typedef struct pool_worker pool_worker_t;
typedef struct pool_query pool_query_t;
typedef struct pool_conn pool_conn_t;

enum pool_error {
    POOL_OK = 0,
    POOL_ERR_TIMEOUT = 1,     /* no connection came free within the acquire timeout */
    POOL_ERR_UNAVAILABLE = 2, /* the database cannot be reached (or the back-off is on) */
    POOL_ERR_QUERY = 3,       /* the statement failed; the PGresult carries the error */
    POOL_ERR_CONNECTION = 4,  /* the connection broke after the statement was sent: it may
                               * have run (outcome unknown) */
    POOL_ERR_SHUTDOWN = 5,    /* the pool is closing */
    POOL_ERR_NOT_SENT = 6,    /* the connection broke before the statement was sent: it did
                               * not run; trying again is safe */
};

/* How a statement shares a connection in pipeline mode. */
enum pool_sharing {
    POOL_SHARED = 0, /* cheap: runs before and behind others */
    POOL_LAST = 1,   /* cheap but may wait on a lock (a write): may join behind others, nothing
                      * is queued behind it */
    POOL_ALONE = 2,  /* long-running: never shares its connection */
};

/* A statement, prepared on a connection the first time that connection runs it. */
typedef struct pool_statement {
    const char *name; /* prepared statement name */
    const char *sql;  /* the SQL, with $1.. parameters */
    enum pool_sharing sharing;
} pool_statement_t;

#define POOL_MAX_STATEMENTS 64
#define POOL_MAX_PIPELINE_DEPTH 64

typedef struct pool_config {
    const char *host, *port, *dbname, *user, *password; /* libpq connection keywords */
    const char *application_name;
    unsigned max_connections;      /* total across all workers, >= 1 */
    unsigned acquire_timeout_ms;   /* how long a query may wait for a connection */
    unsigned idle_timeout_ms;      /* idle connections older than this are closed */
    unsigned connect_timeout_ms;   /* a connection attempt that takes longer fails */
    unsigned retry_backoff_ms;     /* after a failed connect, fail fast for this long */
    unsigned statement_timeout_ms; /* PostgreSQL cancels a statement running longer (0: never) */
    unsigned pipeline_depth;       /* 0: no pipeline mode; N: at most N statements in flight on one
                                    * connection (<= POOL_MAX_PIPELINE_DEPTH) */
    int unnamed; /* 1: no prepared statements: each statement is parsed anew as the unnamed
                  * statement (for poolers that cannot keep prepared statements, such as
                  * PgBouncer before 1.21 in transaction mode) */
    const pool_statement_t *statements; /* <= POOL_MAX_STATEMENTS */
    unsigned statement_count;
} pool_config_t;

/* Called once per submitted query, in the submitting worker's thread, unless the query was
 * cancelled.  res is valid only during the call (the pool clears it afterwards); it is NULL
 * for every error but POOL_ERR_QUERY.  message is a short reason for the log. */
typedef void (*pool_result_fn)(pool_query_t *query, PGresult *res, int error, const char *message);

/* A query.  The caller allocates it (usually inside its request), fills the public fields, and
 * keeps it and the parameter strings alive until the callback runs or pool_cancel returns. */
struct pool_query {
    /* public */
    unsigned statement;    /* index into pool_config.statements */
    int param_count;       /* <= 4 */
    const char *params[4]; /* text parameters, NUL-terminated */
    int binary_results;    /* 1: every result column in binary format, 0: text */
    pool_result_fn fn;     /* result callback */
    void *user;            /* the caller's pointer */
    /* private to the pool */
    pool_worker_t *worker;     /* the submitting worker */
    pool_conn_t *conn;         /* the connection handed over, connecting or running it */
    int state;                 /* where the query is: enum pool_query_state (pool_queue.h) */
    int handed_error;          /* error handed over with the query from another thread */
    uint64_t submit_ms;        /* when it was submitted (monotonic) */
    pool_query_t *prev, *next; /* in the pool's FIFO of waiters, or in the submitting worker's
                                * list of its statements on other workers' connections */
    pool_query_t *local_prev, *local_next; /* in the worker's list of its own waiters */
    pool_query_t *inbox_next;              /* in the worker's inbox */
    void *entry;             /* its place on another worker's connection (under the lock) */
    PGresult *handed_result; /* the result handed over with it from another worker's thread */
    int handed_done;         /* the query was answered on another thread: deliver it */
};

/* Upper bounds of the acquire-wait histogram (db_pool_acquire_wait_seconds), in ms.  Between
 * 1 s and the default acquire timeout (5 s) no bucket is wider than 0.5 s (1 s above 3 s), so a
 * p99 read from it with histogram_quantile lands within half a second of the waits it came from
 * instead of anywhere between 1 and 5 s. */
#define POOL_WAIT_BUCKETS 15
extern const double POOL_WAIT_BUCKETS_MS[POOL_WAIT_BUCKETS];

/* A snapshot of the pool for metrics. */
typedef struct pool_stats {
    unsigned max_connections, open, idle, busy, waiting;
    unsigned pipeline_depth; /* the configured most statements in flight per connection */
    unsigned in_flight;      /* statements sent and not yet answered, all connections */
    uint64_t pipelined;      /* statements sent behind another on the same connection */
    uint64_t foreign;        /* statements sent on a connection another worker drives */
    uint64_t cancels;        /* cancel requests sent for queries whose client left */
    uint64_t statements;     /* statements sent, every one counted (resent ones again) */
    uint64_t syncs;          /* sync points sent in pipeline mode: statements / syncs is how
                              * many shared each implicit transaction */
    uint64_t resent;         /* statements sent again: an earlier error in their segment had
                              * aborted them before they ran */
    uint64_t acquire_timeouts, connect_errors, connections_opened;
    uint64_t wait_bucket[POOL_WAIT_BUCKETS + 1]; /* cumulative counts for POOL_WAIT_BUCKETS_MS,
                                                  * then +Inf */
    uint64_t wait_count;
    double wait_sum_ms;
} pool_stats_t;

/* Creates a pool; no connection is opened until the first query.  Returns NULL with a
 * message in err on bad configuration.  The strings in config are copied; the statements
 * array must outlive the pool. */
pool_t *pool_new(const pool_config_t *config, char *err, size_t err_len);
/* Closes every connection and frees the pool.  Workers must be freed first.  Accepts NULL. */
void pool_free(pool_t *pool);
/* Refuses new queries from now on (POOL_ERR_SHUTDOWN) and fails the waiting ones; each
 * worker's next pool_worker_tick fails its running queries too: POOL_ERR_SHUTDOWN for one
 * still connecting, POOL_ERR_CONNECTION for a statement already sent (it may yet run: outcome
 * unknown).  Their statements are cancelled when the worker is freed.  Callable from any
 * thread, repeatedly. */
void pool_shutdown(pool_t *pool);

/* Attaches a worker running on loop (used only from that loop's thread).  Returns NULL on
 * failure (out of descriptors).  Free it with pool_worker_free after its queries finished. */
pool_worker_t *pool_worker_new(pool_t *pool, loop_t *loop);
/* Closes the connections the worker still uses, cancelling their statements on the server
 * (this may block for up to the connect timeout per statement: call it on the way out). */
void pool_worker_free(pool_worker_t *worker);
/* Returns 1 while the worker drives a database connection (which may carry other workers'
 * statements): a worker that stops keeps running its loop until this is 0. */
int pool_worker_busy(pool_worker_t *worker);
/* Runs timers: acquire timeouts, connect and cancel deadlines, closing idle connections.  Call
 * at least every 100 ms from the worker's loop; returns ms until the next call is due. */
int pool_worker_tick(pool_worker_t *worker);

/* Submits a query.  Returns 0 when the callback will be called later, or POOL_ERR_UNAVAILABLE
 * or POOL_ERR_SHUTDOWN when it fails at once (then the callback is never called). */
int pool_submit(pool_worker_t *worker, pool_query_t *query);
/* The caller no longer wants the result: the callback will not be called and the query memory
 * may be freed on return.  A statement running alone on a connection this worker drives is
 * cancelled on the server (a cancel request written without blocking); the connection returns
 * to the pool once PostgreSQL has answered.  One sharing its connection with others' (in the
 * pipeline, or on a connection another worker drives) is only detached: a cancel could hit a
 * neighbour.  Accepts a query that already completed. */
void pool_cancel(pool_query_t *query);

void pool_get_stats(pool_t *pool, pool_stats_t *out);
/* From now on conn's notices, and the errors PostgreSQL sends outside a query (a FATAL before
 * a close), go to the server's log, one line each ("database WARNING 57P02: ..."), never
 * blocking (log.h), instead of libpq's default: raw lines written to stderr, blocking on a
 * slow reader.  The pool does it for each of its connections. */
void pool_log_notices(PGconn *conn);
/* The SQLSTATE of a failed result ("22003"...), or "" when none. */
const char *pool_result_sqlstate(const PGresult *res);
/* The text of a pool error for a person, the one place it is written: "database busy: no
 * connection free within the acquire timeout", "database unavailable", "database connection
 * lost", ...  Never NULL. */
const char *pool_strerror(enum pool_error error);

/* ---- pieces exposed for the unit tests -------------------------------------------------- */

/* Milliseconds from then to now on clocks read by different threads: 0 when then is later. */
uint64_t pool_elapsed_ms(uint64_t now_ms, uint64_t then_ms);
/* Writes PostgreSQL's 16-byte CancelRequest message for a backend into out. */
void pool_cancel_packet(unsigned char out[16], uint32_t backend_pid, uint32_t cancel_key);

#endif
