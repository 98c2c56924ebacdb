/* engine.h: the load generator: threads with their own epoll loops, connections and counters. */
#ifndef CATALOG_LOADTEST_ENGINE_H
#define CATALOG_LOADTEST_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loadtest_request.h"
#include "loadtest_result.h"

typedef struct engine_config {
    struct sockaddr_storage address; /* where to connect */
    socklen_t address_len;
    char address_text[300];             /* "127.0.0.1:3000", for error messages */
    unsigned connections;               /* concurrent connections, >= 1 */
    unsigned threads;                   /* worker threads, 1..connections */
    uint64_t duration_ns;               /* how long to send requests */
    uint64_t timeout_ns;                /* per request (and per connect) */
    uint64_t drain_ns;                  /* after duration, how long in-flight requests may finish */
    double rate_rps;                    /* total requests/s, 0 = as fast as responses come */
    int keep_alive;                     /* reuse connections (else one request per connection) */
    const loadtest_request_t *requests; /* request_count routes, bytes already built */
    size_t request_count;
} engine_config_t;

typedef struct engine engine_t;

/* Creates the workers (not started).  The config and its requests must outlive the engine.
 * Aborts on out of memory. */
engine_t *engine_new(const engine_config_t *config);

/* Starts the worker threads; the run ends by itself after duration_ns (plus the drain).
 * Returns 0, or -1 with a sentence in err (threads or epoll could not be created); on -1 no
 * thread is running and the caller calls engine_free. */
int engine_start(engine_t *e, char *err, size_t err_len);

/* Asks the workers to stop sending now (Ctrl-C); in-flight requests still drain.  Safe from
 * any thread, not from a signal handler. */
void engine_stop(engine_t *e);

/* Nonzero once every worker has finished. */
int engine_finished(const engine_t *e);

/* Live totals for the progress line, read without locks (may lag by a request). */
void engine_progress(const engine_t *e, uint64_t *responses, uint64_t *failures);

/* Waits for the workers and fills *out (zero it first) with the merged counts, per-route and
 * per-server tallies and latencies.  The caller owns out's arrays (loadtest_result_free). */
void engine_join(engine_t *e, loadtest_result_t *out);

/* Frees the engine (after engine_join, or after engine_start failed); accepts NULL. */
void engine_free(engine_t *e);

#endif
