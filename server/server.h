/* server.h: the catalog API server's shared types: configuration, workers, connections. */
#ifndef CATALOG_SERVER_H
#define CATALOG_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"
#include "http.h"
#include "loop.h"
#include "pool.h"
#include "replicas.h"

/* ---- configuration (server/config.c) ---------------------------------------------------- */

typedef struct server_config {
    char host[256];     /* listen address (HOST) */
    unsigned port;      /* PORT */
    char server_id[64]; /* SERVER_ID, shown in X-Server-Id and /health */
    const char *db_host, *db_port, *db_name, *db_user, *db_password;
    unsigned db_pool_max; /* DB_POOL_MAX: connections on each instance, all workers */
    unsigned db_pool_acquire_timeout_ms; /* DB_POOL_ACQUIRE_TIMEOUT_MS */
    unsigned db_pool_idle_timeout_ms;    /* DB_POOL_IDLE_TIMEOUT_MS */
    unsigned db_connect_timeout_ms;      /* DB_CONNECT_TIMEOUT_MS */
    unsigned db_statement_timeout_ms;    /* DB_STATEMENT_TIMEOUT_MS */
    unsigned db_pipeline;                /* DB_PIPELINE: statements in flight per connection */
    unsigned db_prepare;                 /* DB_PREPARE: 0 = unnamed statements only */
    const char *db_read_hosts;           /* DB_READ_HOSTS: replicas for reads ("" none) */
    int db_read_primary;                 /* DB_READ_PRIMARY: the primary takes reads too */
    unsigned db_read_max_lag_ms;         /* DB_READ_MAX_LAG_MS: a replica lagging more: no reads */
    unsigned workers;                    /* WORKERS: threads, each its own event loop */
    int report_rollup;                   /* REPORT_MODE=rollup */
    int access_log;                      /* ACCESS_LOG */
    unsigned keepalive_timeout_ms;       /* HTTP_KEEPALIVE_TIMEOUT_MS */
    unsigned header_timeout_ms;          /* HTTP_HEADER_TIMEOUT_MS: whole request must arrive */
    http_limits_t limits;                /* HTTP_MAX_* */
    unsigned max_connections;            /* MAX_CONNECTIONS: open client connections */
    unsigned output_budget_bytes;        /* OUTPUT_BUDGET_BYTES: all connections' output */
    unsigned send_timeout_ms;            /* HTTP_SEND_TIMEOUT_MS: a write without progress */
    unsigned shutdown_timeout_ms;        /* SHUTDOWN_TIMEOUT_MS */
} server_config_t;

/* Reads and validates the environment.  Returns 0, or -1 with a message naming the variable. */
int server_config_load(server_config_t *config, char *err, size_t err_len);
/* Prints --help text. */
void server_config_usage(FILE *out);
/* The CPU quota (Docker's `cpus:`, a Kubernetes limit, the lab's SERVER_CPUS) of the cgroup
 * that cgroup_file names (in the format of /proc/self/cgroup: inside a container, the root of
 * its own hierarchy), read under mount_root (/sys/fs/cgroup): cgroup v2's cpu.max, or v1's
 * cpu/cpu.cfs_quota_us and cpu.cfs_period_us when a v1 cpu controller is listed.  Rounded up to
 * whole CPUs; 0 when there is no quota or nothing can be read.  WORKERS defaults to it. */
unsigned server_cgroup_cpu_quota(const char *cgroup_file, const char *mount_root);

/* ---- routes and metrics labels ---------------------------------------------------------- */

/* The routes, written once.  ROUTE_MAP(X) calls X(NAME, path, param) for each route in the
 * order /metrics lists them.  A route without a param matches its path exactly; one with a
 * param (":id") matches path followed by one segment without '/'.  path param (the two strings
 * joined) is the route's label in /metrics.  routes_match tries the routes in this order. */
#define ROUTE_MAP(X)                                                                               \
    X(HEALTH, "/health", "")                                                                       \
    X(HEALTH_LIVE, "/health/live", "")                                                             \
    X(HEALTH_READY, "/health/ready", "")                                                           \
    X(PRODUCTS, "/products", "")                                                                   \
    X(PRODUCT, "/products/", ":id")                                                                \
    X(REPORT, "/report", "")                                                                       \
    X(ORDERS, "/orders", "")                                                                       \
    X(METRICS, "/metrics", "")

/* clang-format off */
typedef enum route {
#define ROUTE_ENUM(name, path, param) ROUTE_##name,
    ROUTE_MAP(ROUTE_ENUM)
#undef ROUTE_ENUM
    ROUTE_UNMATCHED, /* no route matched, or the request could not be parsed */
} route_t;
/* clang-format on */
#define ROUTE_COUNT (ROUTE_UNMATCHED + 1)

enum method_label { METHOD_GET, METHOD_HEAD, METHOD_POST, METHOD_OTHER, METHOD_COUNT };
#define STATUS_LABELS 17 /* the statuses server/stats.c names, and "other" */
#define DURATION_BUCKETS 8

/* Per-worker request counters: written only by the owning thread, read by /metrics. */
typedef struct request_stats {
    uint64_t requests[ROUTE_COUNT][METHOD_COUNT][STATUS_LABELS];
    uint64_t duration_bucket[ROUTE_COUNT][METHOD_COUNT][DURATION_BUCKETS]; /* not cumulative */
    uint64_t duration_count[ROUTE_COUNT][METHOD_COUNT];
    uint64_t duration_sum_us[ROUTE_COUNT][METHOD_COUNT];
    uint64_t connections_open;
} request_stats_t;

/* ---- server, workers and connections ---------------------------------------------------- */

typedef struct server server_t;
typedef struct worker worker_t;
typedef struct conn conn_t;

/* A connection's lifecycle (server/conn.c explains each state and its timer). */
enum conn_state {
    CONN_IDLE,
    CONN_READING_HEAD,
    CONN_READING_BODY,
    CONN_WAITING_DB,
    CONN_WRITING,
    CONN_DRAINING,
    CONN_CLOSED
};
/* The timer lists, one per timeout length (keep-alive, header, drain, send). */
enum timer_list {
    TIMER_NONE = -1,
    TIMER_KEEPALIVE = 0,
    TIMER_REQUEST = 1,
    TIMER_DRAIN = 2,
    TIMER_SEND = 3,
    TIMER_LISTS = 4
};

struct conn {
    loop_io_t io;     /* the client socket in the worker's loop */
    worker_t *worker; /* owner */
    buf_t in;         /* bytes read; in_start.. not yet handled */
    size_t in_start;  /* first byte of the next request in `in` */
    buf_t out;        /* response bytes; out_sent.. not yet written */
    size_t out_sent;
    size_t out_charged;           /* out.cap as counted in server.output_bytes (0 when small) */
    int out_paused;               /* over the output budget: no request read or started */
    int state;                    /* enum conn_state, set by conn_settle (and closing, draining) */
    int rearm;                    /* the state's period restarts: its timer is set again */
    int busy;                     /* a request is being answered asynchronously (WAITING_DB) */
    int close_after_write;        /* the answer being written is the last one */
    int linger;                   /* ... after an error: drain the input before the close */
    int read_closed;              /* the client sent EOF (or half-closed) */
    int reading_body;             /* the head of the request being read is complete */
    int continue_sent;            /* "100 Continue" already sent for the request being read */
    uint64_t request_deadline_ms; /* of the request being read (0: none started) */
    http_chunked_t chunked;       /* its chunked body, decoded in place as it arrives */
    uint64_t requests;            /* requests handled on this connection */
    size_t drained;               /* bytes discarded while DRAINING */
    /* the request being answered */
    route_t route;
    enum method_label method_label;
    int head_only;        /* HEAD: send the head of the GET response */
    int keep_alive;       /* keep the connection after this response */
    uint64_t start_ns;    /* when its head was complete */
    pool_query_t query;   /* its database query, if any */
    replicas_read_t read; /* where query runs when it is a read (replicas.h) */
    buf_t param;          /* decoded query parameter (category), or the Idempotency-Key */
    char param_id[16];    /* decimal text parameters */
    char param_quantity[16];
    char log_line[192]; /* "METHOD target" for the access log */
    char peer[48];      /* client address for the access log */
    /* timers */
    enum timer_list timer_list;
    uint64_t deadline_ms;
    conn_t *timer_prev, *timer_next;
    conn_t *free_next;             /* in the worker's list of closed connections */
    conn_t *open_prev, *open_next; /* in the worker's list of open connections */
};

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
    conn_t *timer_head[TIMER_LISTS], *timer_tail[TIMER_LISTS];
    conn_t *closed; /* freed at the end of each loop turn */
    conn_t *open;   /* every open connection (for a forced shutdown) */
    unsigned conn_count;
    buf_t access_log;  /* lines written with one write(2) per loop turn */
    char *read_buffer; /* scratch for recv(2); bytes are then kept per connection */
    buf_t spare_out;   /* a large output buffer parked between responses */
    int accept_paused; /* listener unwatched after EMFILE, until accept_resume_ms */
    uint64_t accept_resume_ms;
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

/* ---- server/conn.c ---------------------------------------------------------------------- */

/* Starts watching the listener.  Returns 0, or -errno. */
int conn_listen_start(worker_t *w);
/* Accepts waiting connections on the listener (called by the worker's listen handle). */
void conn_accept(worker_t *w);
/* Watches the listener again once a pause after EMFILE is over (called every loop turn). */
void conn_accept_resume(worker_t *w);
/* Starts a response of the current request: writes the head into c->out and returns the
 * buffer to append the body to.  Finish with conn_end. */
buf_t *conn_begin(conn_t *c, http_response_t *resp, int status, const char *extra_headers);
/* The same with another Content-Type than JSON (/metrics). */
buf_t *conn_begin_as(conn_t *c, http_response_t *resp, int status, const char *content_type,
                     const char *extra_headers);
/* Makes room for a large response before conn_begin, reusing the worker's parked buffer. */
void conn_reserve_output(conn_t *c, size_t bytes);
/* Finishes the response, counts it, and goes on with the connection's next request. */
void conn_end(conn_t *c, http_response_t *resp, int status);
/* A whole response with a {"error": message} body. */
void conn_respond_error(conn_t *c, int status, const char *message, const char *extra_headers);
/* Closes a connection (cancelling its query); freed at the end of the loop turn. */
void conn_close(conn_t *c);
/* Timer expiry and shutdown handling, called from the worker loop. */
void conn_expire_timers(worker_t *w);
void conn_close_idle(worker_t *w);
/* Closes every connection, answered or not (the shutdown deadline passed). */
void conn_close_all(worker_t *w);
void conn_free_closed(worker_t *w);
/* Hands freed output memory back to the system (malloc_trim) once the output held for slow
 * clients has fallen to a quarter of a peak of at least half OUTPUT_BUDGET_BYTES; at most once
 * a second for the whole process.  Called every loop turn; costs two relaxed loads otherwise. */
void conn_release_memory(worker_t *w);

/* ---- server/routes.c -------------------------------------------------------------------- */

/* The prepared statements for the configured report mode. */
const pool_statement_t *routes_statements(const server_config_t *config, unsigned *count);
/* The route of a request path (ROUTE_UNMATCHED when none); for ROUTE_PRODUCT, *id is set to
 * the segment after "/products/" (possibly empty), pointing into path. */
route_t routes_match(slice_t path, slice_t *id);
/* Answers one request: at once, or later from a database callback.  Sets c->route. */
void routes_dispatch(conn_t *c, const http_request_t *req, slice_t body);

/* ---- server/stats.c --------------------------------------------------------------------- */

void stats_record(worker_t *w, route_t route, enum method_label method, int status,
                  uint64_t duration_us);
/* Renders /metrics for the whole process into out. */
void stats_render(server_t *s, buf_t *out);

#endif
