/* main.c: catalog-server start-up, worker threads, and graceful shutdown. */
#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "conn.h"
#include "error.h"
#include "log.h"
#include "output_budget.h"
#include "schema.h"
#include "server.h"
#include "statements.h"

/* Log lines waiting for stderr (twice: one buffer filling, one being written); beyond, lines are
 * dropped and counted (log_lines_dropped_total). */
#define LOG_BUFFER_BYTES (1u << 20)

/* How long the shutdown waits for the schema check's thread (only a name lookup of DB_HOST that
 * does not answer keeps it longer: then the process leaves without it). */
#define SCHEMA_STOP_WAIT_MS 1000

/* ---- worker threads ------------------------------------------------------------------------ */

static atomic_uint listeners_released;
static atomic_uint workers_exited;

static void worker_on_wake(loop_io_t *io, uint32_t events)
{
    worker_t *w = io->user;
    uint64_t n;
    ssize_t r = read(w->wake_fd, &n, sizeof n);
    (void)r;
    if (atomic_load(&w->server->stopping) && !w->stopping) {
        w->stopping = 1;
        w->stop_deadline_ms = w->loop.now_ms + w->server->config.shutdown_timeout_ms;
        loop_io_stop(&w->loop, &w->listen_io);
        atomic_fetch_add(&listeners_released, 1);
        conn_close_idle(w);
    }
}

static int worker_next_timeout(worker_t *w, int pool_due_ms)
{
    return loop_timers_due_ms(&w->loop, pool_due_ms < 1000 ? pool_due_ms : 1000);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    int pool_due = 100;
    for (;;) {
        loop_run_once(&w->loop, worker_next_timeout(w, pool_due));
        pool_due = replicas_tick(w->server->replicas, w->index); /* every pool, the primary's too */
        loop_timers_run(&w->loop); /* connections' timeouts, then the listener's pause */
        if (w->access_log.len) {
            log_write_lines(w->access_log.data, w->access_log.len); /* never blocks */
            buf_reset(&w->access_log);
        }
        conn_free_closed(w);
        output_budget_trim(w->server, w->loop.now_ms);
        if (w->stopping) {
            /* A connection it drives may carry other workers' statements: answer them first. */
            if (w->conn_count == 0 && !replicas_busy(w->server->replicas, w->index)) break;
            if (w->loop.now_ms >= w->stop_deadline_ms) {
                log_warn("worker %u: %u connections still open after SHUTDOWN_TIMEOUT_MS; closing",
                         w->index, w->conn_count);
                /* Queries still waiting or running are answered before the close (503; an
                 * order whose INSERT was sent: 500 outcome unknown). */
                pool_shutdown(w->server->pool);
                replicas_shutdown(w->server->replicas);
                replicas_tick(w->server->replicas, w->index);
                conn_close_all(w);
                replicas_tick(w->server->replicas, w->index); /* nothing more: all cancelled */
                conn_free_closed(w);
                break;
            }
        }
    }
    atomic_fetch_add(&workers_exited, 1);
    return NULL;
}

static int worker_init(server_t *s, worker_t *w, unsigned index)
{
    memset(w, 0, sizeof *w);
    w->server = s;
    w->index = index;
    w->listen_io.fd = w->wake_io.fd = -1;
    if (loop_init(&w->loop) < 0) return -1;
    conn_timers_init(w);
    w->read_buffer = xmalloc(65536);
    w->pool_worker = pool_worker_new(s->pool, &w->loop);
    if (!w->pool_worker) return -1;
    if (replicas_worker_attach(s->replicas, index, &w->loop, w->pool_worker) < 0) return -1;
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0) return -1;
    if (loop_io_start(&w->loop, &w->wake_io, w->wake_fd, EPOLLIN, worker_on_wake, w) < 0) return -1;
    if (conn_listen_start(w) < 0) return -1;
    return 0;
}

/* ---- start-up ------------------------------------------------------------------------------ */

static int listen_on(const char *host, unsigned port, char *err, size_t err_len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *list = NULL;
    char port_text[8];
    snprintf(port_text, sizeof port_text, "%u", port);
    int rc = getaddrinfo(host, port_text, &hints, &list);
    if (rc != 0) {
        return error_set(err, err_len, "HOST '%s': %s", host, gai_strerror(rc));
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *a = list; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 4096) == 0) break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(list);
    if (fd < 0)
        return error_set(err, err_len, "cannot listen on %s:%u: %s%s", host, port, strerror(saved),
                         saved == EADDRINUSE ? " (is another server on this port? set PORT)" : "");
    return fd;
}

/* Descriptors the server needs besides its client connections: stdio, the listener, each
 * worker's epoll and eventfd (one more per replica pool), the pools' connections (and a cancel
 * request for each), the replicas' monitor's. */
static rlim_t reserved_descriptors(const server_config_t *config)
{
    char hosts[REPLICAS_MAX][256], ports[REPLICAS_MAX][8];
    unsigned replicas = 0;
    replicas_parse_hosts(config->db_read_hosts, config->db_port, hosts, ports, &replicas, NULL, 0);
    rlim_t instances = 1 + (rlim_t)replicas;
    return 16 + (2 + instances) * (rlim_t)config->workers +
           instances * (2 * (rlim_t)config->db_pool_max + 1);
}

/* Raises the soft open-files limit to the hard one, then lowers MAX_CONNECTIONS to what that
 * leaves (with a message saying so), so accepting stops at MAX_CONNECTIONS before it runs out of
 * descriptors.  Returns 0, or -1 with a message when no connection would fit at all. */
static int fit_fd_limit(server_config_t *config, char *err, size_t err_len)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t wanted = rl.rlim_max;
        rl.rlim_cur = wanted;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur == RLIM_INFINITY) return 0;
    rlim_t reserved = reserved_descriptors(config);
    if (rl.rlim_cur <= reserved) {
        return error_set(err, err_len,
                         "the open-files limit (%llu) leaves no descriptor for client connections: "
                         "%llu are needed for WORKERS=%u and DB_POOL_MAX=%u; raise it (ulimit -n)",
                         (unsigned long long)rl.rlim_cur, (unsigned long long)reserved,
                         config->workers, config->db_pool_max);
    }
    if ((rlim_t)config->max_connections > rl.rlim_cur - reserved) {
        unsigned fit = (unsigned)(rl.rlim_cur - reserved);
        log_warn("MAX_CONNECTIONS=%u does not fit the open-files limit of %llu (the hard limit): "
                 "serving at most %u client connections; raise the hard limit (ulimit -Hn, "
                 "systemd LimitNOFILE=) to at least %llu or lower MAX_CONNECTIONS",
                 config->max_connections, (unsigned long long)rl.rlim_cur, fit,
                 (unsigned long long)(config->max_connections + reserved));
        config->max_connections = fit;
    }
    return 0;
}

/* ---- signals ------------------------------------------------------------------------------- */

/* The signals the main thread takes with sigwait: SIGTERM and SIGINT start the drain, SIGQUIT
 * ends the process at once.  Every thread blocks them (they are blocked before the first thread,
 * the log writer, starts, and threads inherit the mask), so none is ever delivered to a thread
 * whose default action would end the process in the middle of the drain. */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGQUIT);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

static const char *signal_name(int sig)
{
    return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "SIGQUIT";
}

/* SIGQUIT: the requests in flight are not answered; what is logged gets its second to reach
 * stderr.  _exit, not exit: the libraries' exit handlers (OpenSSL's, under libpq) would free
 * what the worker threads, still running, may be using. */
static void quit_now(void)
{
    log_warn("SIGQUIT: exiting at once; requests in flight are not answered");
    schema_check_stop(0); /* joined if it has ended (no wait): no thread is left unjoined */
    log_finish();
    _exit(128 + SIGQUIT);
}

/* Waits until *count reaches want, taking the signals of `set` meanwhile (polled every poll_ms):
 * a further SIGTERM or SIGINT is logged and changes nothing (the drain is already bounded by
 * SHUTDOWN_TIMEOUT_MS); SIGQUIT exits at once. */
static void drain_wait(const sigset_t *set, atomic_uint *count, unsigned want, long poll_ms,
                       unsigned shutdown_timeout_ms)
{
    const struct timespec poll = {.tv_sec = poll_ms / 1000, .tv_nsec = (poll_ms % 1000) * 1000000};
    while (atomic_load(count) < want) {
        int sig = sigtimedwait(set, NULL, &poll);
        if (sig == SIGQUIT) quit_now();
        if (sig > 0)
            log_warn("%s while stopping: ignored; requests in flight are still being answered "
                     "(at most SHUTDOWN_TIMEOUT_MS=%u ms); SIGQUIT exits at once",
                     signal_name(sig), shutdown_timeout_ms);
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            server_config_usage(stdout);
            return 0;
        }
        fprintf(stderr,
                "catalog-server: unknown argument '%s' (settings come from the "
                "environment; see --help)\n",
                argv[i]);
        return 2;
    }
    static server_t server;
    server_t *s = &server;
    char err[512];
    if (server_config_load(&s->config, err, sizeof err) < 0) {
        fprintf(stderr, "catalog-server: configuration error: %s\n", err);
        return 2;
    }
    char name[128];
    snprintf(name, sizeof name, "catalog-server[%s]", s->config.server_id);
    log_set_name(name);
    /* Before any thread starts, so that every thread inherits the mask. */
    sigset_t stop_signals;
    block_signals(&stop_signals);
    signal(SIGPIPE, SIG_IGN);
    /* A slow or stuck reader of stderr must never stall an event loop. */
    if (log_start_async(LOG_BUFFER_BYTES) < 0)
        log_warn("logging synchronously: %s", strerror(errno));
    if (fit_fd_limit(&s->config, err, sizeof err) < 0) {
        log_error("%s", err);
        return 2;
    }
    /* A listing's PGresult (~300 KB in 2 KB blocks) is freed at the top of a worker's heap on
     * every request; glibc would hand those pages back (madvise) and fault them in again, zeroed,
     * on the next one: 2 syscalls and ~13 page faults per listing.  Keep up to 16 MiB free at the
     * top of each heap, and serve blocks below 4 MiB from the heaps rather than from mmap. */
    mallopt(M_TRIM_THRESHOLD, 16 << 20);
    mallopt(M_MMAP_THRESHOLD, 4 << 20);

    s->listen_fd = listen_on(s->config.host, s->config.port, err, sizeof err);
    if (s->listen_fd < 0) {
        log_error("%s", err);
        return 1;
    }
    unsigned statement_count;
    const pool_statement_t *statements =
        statements_load(s->config.report_rollup, &statement_count, err, sizeof err);
    if (!statements) {
        log_error("%s", err);
        return 1;
    }
    char application_name[96];
    snprintf(application_name, sizeof application_name, "catalog-server-%s", s->config.server_id);
    pool_config_t pc = {
        .host = s->config.db_host,
        .port = s->config.db_port,
        .dbname = s->config.db_name,
        .user = s->config.db_user,
        .password = s->config.db_password,
        .application_name = application_name,
        .max_connections = s->config.db_pool_max,
        .acquire_timeout_ms = s->config.db_pool_acquire_timeout_ms,
        .idle_timeout_ms = s->config.db_pool_idle_timeout_ms,
        .connect_timeout_ms = s->config.db_connect_timeout_ms,
        .retry_backoff_ms = 1000,
        .statement_timeout_ms = s->config.db_statement_timeout_ms,
        .pipeline_depth = s->config.db_pipeline,
        .unnamed = !s->config.db_prepare,
        .statements = statements,
        .statement_count = statement_count,
    };
    s->pool = pool_new(&pc, err, sizeof err);
    if (!s->pool) {
        log_error("%s", err);
        return 1;
    }
    char monitor_name[96];
    snprintf(monitor_name, sizeof monitor_name, "catalog-server-%s-replicas", s->config.server_id);
    s->replicas = replicas_new(s->config.db_read_hosts, s->config.db_read_primary,
                               s->config.db_read_max_lag_ms, s->pool, &pc, monitor_name,
                               s->config.workers, err, sizeof err);
    if (!s->replicas) {
        log_error("%s", err);
        return 1;
    }
    /* One line at start-up if the database lacks what `catalog-db migrate` adds. */
    if (schema_check_start(&s->config) < 0)
        log_warn("cannot start the schema check: %s", strerror(errno));
    s->worker_count = s->config.workers;
    s->workers = xcalloc(s->worker_count, sizeof *s->workers);
    for (unsigned i = 0; i < s->worker_count; i++) {
        if (worker_init(s, &s->workers[i], i) < 0) {
            log_error("cannot start worker %u: %s", i, strerror(errno));
            schema_check_stop(SCHEMA_STOP_WAIT_MS);
            replicas_free(s->replicas, SCHEMA_STOP_WAIT_MS);
            return 1;
        }
    }
    for (unsigned i = 0; i < s->worker_count; i++) {
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
            log_error("cannot start worker thread %u", i);
            schema_check_stop(SCHEMA_STOP_WAIT_MS);
            replicas_free(s->replicas, SCHEMA_STOP_WAIT_MS);
            return 1;
        }
    }
    log_info("listening on %s:%u, %u worker%s, pool of %u connections to %s:%s/%s, report mode %s",
             s->config.host, s->config.port, s->worker_count, s->worker_count == 1 ? "" : "s",
             s->config.db_pool_max, s->config.db_host, s->config.db_port, s->config.db_name,
             s->config.report_rollup ? "rollup" : "live");
    if (replicas_count(s->replicas))
        log_info("reads spread over %u replica%s (DB_READ_HOSTS=%s)%s, %u connections at most on "
                 "each, none while down or lagging more than DB_READ_MAX_LAG_MS=%u",
                 replicas_count(s->replicas), replicas_count(s->replicas) == 1 ? "" : "s",
                 s->config.db_read_hosts, s->config.db_read_primary ? " and the primary" : "",
                 s->config.db_pool_max, s->config.db_read_max_lag_ms);

    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (sig == SIGQUIT) quit_now();
    log_info("%s: stopping: no new connections, finishing requests in flight", signal_name(sig));
    atomic_store(&s->stopping, 1);
    for (unsigned i = 0; i < s->worker_count; i++) {
        uint64_t one = 1;
        ssize_t r = write(s->workers[i].wake_fd, &one, sizeof one);
        (void)r;
    }
    /* Close the listener once no worker watches it, so new connections are refused at once. */
    drain_wait(&stop_signals, &listeners_released, s->worker_count, 1,
               s->config.shutdown_timeout_ms);
    close(s->listen_fd);
    drain_wait(&stop_signals, &workers_exited, s->worker_count, 50, s->config.shutdown_timeout_ms);
    for (unsigned i = 0; i < s->worker_count; i++)
        pthread_join(s->workers[i].thread, NULL);
    for (unsigned i = 0; i < s->worker_count; i++) {
        worker_t *w = &s->workers[i];
        replicas_worker_free(s->replicas, i);
        pool_worker_free(w->pool_worker);
        loop_io_stop(&w->loop, &w->wake_io);
        close(w->wake_fd);
        loop_close(&w->loop);
        buf_free(&w->access_log);
        free(w->read_buffer);
        buf_free(&w->spare_out);
    }
    replicas_free(s->replicas, SCHEMA_STOP_WAIT_MS); /* its monitor thread too */
    pool_free(s->pool);
    free(s->workers);
    /* The exit handlers below main (OpenSSL's, under libpq) must not run under the schema
     * check's thread while it is inside libpq. */
    schema_check_stop(SCHEMA_STOP_WAIT_MS);
    log_info("stopped");
    return 0;
}
