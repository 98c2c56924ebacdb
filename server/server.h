/* server.h: the server and its worker threads (server/main.c starts and stops them). */
#ifndef CATALOG_SERVER_H
#define CATALOG_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"
#include "conn.h"
#include "loop.h"
#include "pool.h"
#include "replicas.h"
#include "server_config.h"
#include "stats.h"

typedef struct server server_t;
typedef struct worker worker_t;

struct worker {
    server_t *server;
    unsigned index;
    pthread_t thread;
    loop_t loop;
    pool_worker_t *pool_worker;
    loop_io_t listen_io;
    int wake_fd; /* eventfd: the main thread asks the worker to stop */
    loop_io_t wake_io;
    request_stats_t stats;
    /* the timer lists, added to the loop in the order of enum timer_list */
    loop_timer_list_t timers[TIMER_LISTS];
    conn_t *closed; /* freed at the end of each loop turn */
    conn_t *open;   /* every open connection (for a forced shutdown) */
    unsigned conn_count;
    buf_t access_log;  /* lines written with one write(2) per loop turn */
    char *read_buffer; /* scratch for recv(2); bytes are then kept per connection */
    buf_t spare_out;   /* a large output buffer parked between responses */
    int accept_paused; /* listener unwatched after EMFILE, until accept_timer fires */
    loop_timer_t accept_timer;
    int stopping;
    uint64_t stop_deadline_ms;
};

struct server {
    server_config_t config;
    pool_t *pool;         /* the primary's */
    replicas_t *replicas; /* the read replicas' pools (DB_READ_HOSTS), and the primary's */
    int listen_fd;
    worker_t *workers;
    unsigned worker_count;
    atomic_uint connections;       /* open client connections, all workers */
    atomic_ulong accept_pauses;    /* accept failed for want of descriptors (or memory) */
    atomic_ulong accept_logged_ms; /* when the last accept failure was logged */
    /* The output budget (OUTPUT_BUDGET_BYTES, server/conn.c): updated only when a connection's
     * output buffer grows past or falls back under IDLE_BUFFER_KEEP_BYTES, never per request. */
    atomic_size_t output_bytes;      /* capacity of the large output buffers, all connections */
    atomic_size_t output_peak;       /* highest output_bytes since memory was last trimmed */
    atomic_ulong output_budget_hits; /* times output_bytes went over the budget */
    atomic_ulong output_logged_ms;   /* when the budget was last logged */
    atomic_ulong output_trimmed_ms;  /* when freed memory was last handed back (malloc_trim) */
    atomic_ulong send_timeouts;      /* connections closed after HTTP_SEND_TIMEOUT_MS */
    atomic_int stopping;
};

#endif
