/* engine.c: the load generator: threads with their own epoll loops, connections and counters.
 *
 * Like wrk: each worker thread owns an epoll loop, its share of the connections, its counters
 * and its histograms; nothing is locked on the hot path and the totals are merged after the
 * threads join.  Unlike wrk, a connection writes its next request as soon as the previous
 * response is parsed (one write, no epoll_ctl per request), and a request that outlives the
 * timeout closes its connection, which reconnects. */
#include "engine.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "counter.h"
#include "error.h"
#include "histogram.h"
#include "http_client.h"
#include "loop.h"

#define READ_BUFFER_BYTES 65536
/* Distinct X-Server-Id values tallied per worker; the rest go under "(other)". */
#define SERVERS_MAX 64
/* A refused or failed connect waits this long before the connection tries again, so a dead
 * target costs a few thousand attempts per second, not a spinning CPU. */
#define CONNECT_RETRY_NS (50 * 1000000ull)
/* How often timeouts and the stop flag are checked (rate mode also wakes for each send). */
#define HOUSEKEEPING_NS (10 * 1000000ull)
/* -R: a send made this much after its intended time waited for a busy connection ("late"), and
 * one due this much before the end but never made is "missed" (the timer's own granularity,
 * about 1 ms, is not lateness). */
#define LATE_SLACK_NS HOUSEKEEPING_NS

typedef struct engine_worker engine_worker_t;

/* Where a connection is in its cycle. */
enum connection_state {
    CONNECTION_CLOSED,     /* no socket; reconnects at reconnect_at_ns (0 = not at all) */
    CONNECTION_CONNECTING, /* non-blocking connect in progress */
    CONNECTION_WAITING,    /* connected, idle until next_send_ns (-R) */
    CONNECTION_WRITING,    /* request partly written */
    CONNECTION_READING,    /* request written, response being parsed */
};

typedef struct connection {
    loop_io_t io;            /* the socket in the worker's loop (io.fd -1 when closed) */
    engine_worker_t *worker; /* owner */
    enum connection_state state;
    unsigned route;           /* index of the request in flight, or of the next one */
    size_t written;           /* bytes of the request written so far */
    uint64_t start_ns;        /* latency origin: send time, or the intended send time with -R */
    uint64_t sent_ns;         /* when the request actually went out */
    uint64_t deadline_ns;     /* connect or request timeout; 0 when nothing is pending */
    uint64_t next_send_ns;    /* -R: when the next request is due */
    uint64_t reconnect_at_ns; /* CLOSED: when to connect again */
    http_client_response_t response; /* parser for the response in flight */
} connection_t;

/* Counts for one route or one server within a worker. */
typedef struct tally {
    uint64_t requests, errors, timeouts, non2xx, status_5xx, unfinished;
    histogram_t *latency_ns; /* allocated on first use */
} tally_t;

typedef struct server_tally {
    char id[HTTP_CLIENT_SERVER_ID_MAX + 1]; /* NUL-terminated X-Server-Id, "(none)" */
    size_t id_len;
    tally_t tally;
    tally_t *routes; /* this server's answers by route: request_count entries */
} server_tally_t;

struct engine_worker {
    engine_t *engine;
    pthread_t thread;
    int thread_started;
    loop_t loop;
    connection_t *connections;
    unsigned connection_count;
    unsigned first_global_index; /* this worker's first connection among all of them */
    connection_t **pending;      /* connections to reconnect after the current event batch */
    unsigned pending_count;
    int draining; /* stop seen: no new requests, in-flight ones may finish */
    uint64_t drain_deadline_ns;
    uint64_t next_housekeeping_ns;
    uint64_t send_interval_ns; /* -R: per-connection gap between requests */

    /* Counters owned by this thread.  responses and failures are also read by the main
     * thread for the progress line, so they are written with relaxed atomic stores. */
    uint64_t responses, failures;
    uint64_t connect_errors, read_errors, write_errors, protocol_errors, timeouts, unfinished;
    uint64_t unfinished_max_ns;               /* the longest-outstanding unfinished request */
    uint64_t sends, late_sends, missed_sends; /* -R: see LATE_SLACK_NS */
    uint64_t window_responses;                /* responses complete before the duration ended */
    histogram_t *sent_latency_ns;             /* every response, from its actual send */
    tally_t *routes;                          /* one per request */
    server_tally_t servers[SERVERS_MAX];
    unsigned server_count;
    unsigned last_server; /* cache: responses tend to come from the same server */
    char first_error[256];
    uint64_t first_error_ns;
    int finished;         /* set (atomically) when the thread is done */
    uint64_t finished_ns; /* when it was done: the run's end is the last worker's */
    char read_buffer[READ_BUFFER_BYTES];
};

struct engine {
    const engine_config_t *config;
    engine_worker_t *workers;
    unsigned worker_count;
    uint64_t start_ns, end_ns;
    int stop; /* set (atomically) to end the run early */
};

static void connection_close(connection_t *c, int reconnect_soon);
static void connection_start(connection_t *c);
static void connection_ready(connection_t *c);
static void on_io(loop_io_t *io, uint32_t events);

static void tally_record(tally_t *t, uint64_t latency_ns, int status)
{
    t->requests++;
    if (status < 200 || status > 299) {
        t->non2xx++;
        if (status >= 500 && status <= 599) t->status_5xx++;
    }
    if (!t->latency_ns) t->latency_ns = histogram_new();
    histogram_record(t->latency_ns, latency_ns);
}

static void note_error(engine_worker_t *w, uint64_t now_ns, const char *kind, const char *detail)
{
    if (w->first_error[0]) return;
    snprintf(w->first_error, sizeof(w->first_error), "%s %.120s: %.100s", kind,
             w->engine->config->address_text, detail);
    w->first_error_ns = now_ns;
}

/* After any outcome (answer, error, timeout) a connection moves on to the next route, so a
 * failing route cannot take over a connection's share of the mix. */
static void connection_next_route(connection_t *c)
{
    c->route = (c->route + 1) % (unsigned)c->worker->engine->config->request_count;
}

/* An error on c's current route: counted once, by kind, then the connection is closed and
 * moves on to the next route. */
static void connection_fail(connection_t *c, uint64_t *kind_counter, const char *kind,
                            const char *detail, uint64_t retry_after_ns)
{
    engine_worker_t *w = c->worker;
    uint64_t now_ns = loop_clock_ns();
    (*kind_counter)++;
    w->routes[c->route].errors++;
    connection_next_route(c);
    counter_add(&w->failures, 1);
    note_error(w, now_ns, kind, detail);
    connection_close(c, retry_after_ns == 0);
    if (retry_after_ns) c->reconnect_at_ns = now_ns + retry_after_ns;
}

static server_tally_t *server_for(engine_worker_t *w, slice_t id)
{
    if (id.len == 0) id = SLICE_LIT("(none)");
    server_tally_t *s = &w->servers[w->last_server];
    if (w->server_count && slice_eq(slice_make(s->id, s->id_len), id)) return s;
    for (unsigned i = 0; i < w->server_count; i++) {
        s = &w->servers[i];
        if (slice_eq(slice_make(s->id, s->id_len), id)) {
            w->last_server = i;
            return s;
        }
    }
    /* The last slot is kept for "(other)": all ids beyond the first SERVERS_MAX - 1. */
    if (w->server_count == SERVERS_MAX) return &w->servers[SERVERS_MAX - 1];
    if (w->server_count == SERVERS_MAX - 1) id = SLICE_LIT("(other)");
    s = &w->servers[w->server_count];
    memset(s, 0, sizeof(*s));
    s->routes = xcalloc(w->engine->config->request_count, sizeof(*s->routes));
    memcpy(s->id, id.base, id.len);
    s->id[id.len] = 0;
    s->id_len = id.len;
    w->last_server = w->server_count++;
    return s;
}

/* A whole response arrived: count it, then reuse or replace the connection. */
static void response_complete(connection_t *c, uint64_t now_ns)
{
    engine_worker_t *w = c->worker;
    uint64_t latency_ns = now_ns > c->start_ns ? now_ns - c->start_ns : 0;
    int status = c->response.status;
    const engine_t *e = w->engine;
    tally_record(&w->routes[c->route], latency_ns, status);
    server_tally_t *server = server_for(w, http_client_server_id(&c->response));
    tally_record(&server->tally, latency_ns, status);
    tally_record(&server->routes[c->route], latency_ns, status);
    histogram_record(w->sent_latency_ns, now_ns > c->sent_ns ? now_ns - c->sent_ns : 0);
    if (now_ns - e->start_ns < e->config->duration_ns) w->window_responses++;
    counter_add(&w->responses, 1);
    if (status >= 500 && status <= 599) counter_add(&w->failures, 1);
    c->deadline_ns = 0;
    connection_next_route(c);
    if (!c->response.keep_alive || !w->engine->config->keep_alive) {
        connection_close(c, 1);
        return;
    }
    c->state = CONNECTION_WAITING;
    connection_ready(c);
}

static void connection_close(connection_t *c, int reconnect_soon)
{
    engine_worker_t *w = c->worker;
    if (c->io.fd >= 0) {
        int fd = c->io.fd;
        loop_io_stop(&w->loop, &c->io);
        close(fd);
    }
    c->state = CONNECTION_CLOSED;
    c->deadline_ns = 0;
    c->reconnect_at_ns = 0;
    /* Reconnect after the current batch of events: a new socket may reuse the fd number,
     * and events still queued for the old one must not reach it. */
    if (reconnect_soon && !w->draining) w->pending[w->pending_count++] = c;
}

/* Connected and idle: send now, or wait for the schedule (-R), or close when draining. */
static void connection_ready(connection_t *c)
{
    engine_worker_t *w = c->worker;
    if (w->draining) {
        connection_close(c, 0);
        return;
    }
    uint64_t now_ns = loop_clock_ns();
    uint64_t origin_ns = now_ns;
    if (w->send_interval_ns) {
        if (now_ns < c->next_send_ns) {
            c->state = CONNECTION_WAITING;
            if (c->next_send_ns < w->next_housekeeping_ns)
                w->next_housekeeping_ns = c->next_send_ns;
            return;
        }
        /* Late (the server was slow): latency counts from when it should have gone out. */
        origin_ns = c->next_send_ns;
        c->next_send_ns += w->send_interval_ns;
    }
    const loadtest_request_t *request = &w->engine->config->requests[c->route];
    http_client_init(&c->response, request->is_head);
    w->sends++;
    if (origin_ns + LATE_SLACK_NS < now_ns) w->late_sends++;
    c->start_ns = origin_ns;
    c->sent_ns = now_ns;
    c->deadline_ns = now_ns + w->engine->config->timeout_ns;
    c->written = 0;
    c->state = CONNECTION_WRITING;
    const buf_t *bytes = &request->bytes;
    ssize_t n = send(c->io.fd, bytes->data, bytes->len, MSG_NOSIGNAL);
    if (n == (ssize_t)bytes->len) {
        c->state = CONNECTION_READING;
        return;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        connection_fail(c, &w->write_errors, "write to", strerror(errno), 0);
        return;
    }
    c->written = n > 0 ? (size_t)n : 0;
    loop_io_modify(&w->loop, &c->io, EPOLLIN | EPOLLOUT);
}

static void connection_write_more(connection_t *c)
{
    engine_worker_t *w = c->worker;
    const buf_t *bytes = &w->engine->config->requests[c->route].bytes;
    ssize_t n = send(c->io.fd, bytes->data + c->written, bytes->len - c->written, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        connection_fail(c, &w->write_errors, "write to", strerror(errno), 0);
        return;
    }
    c->written += (size_t)n;
    if (c->written == bytes->len) {
        c->state = CONNECTION_READING;
        loop_io_modify(&w->loop, &c->io, EPOLLIN);
    }
}

static void connection_read(connection_t *c)
{
    engine_worker_t *w = c->worker;
    for (;;) {
        ssize_t n = recv(c->io.fd, w->read_buffer, sizeof(w->read_buffer), 0);
        if (n > 0) {
            if (c->state != CONNECTION_READING && c->state != CONNECTION_WRITING) {
                connection_fail(c, &w->protocol_errors, "response from",
                                "bytes arrived while no request was in flight", 0);
                return;
            }
            size_t consumed = 0;
            int result = http_client_feed(&c->response, w->read_buffer, (size_t)n, &consumed);
            if (result == HTTP_CLIENT_ERROR) {
                connection_fail(c, &w->protocol_errors, "response from", c->response.error, 0);
                return;
            }
            if (result == HTTP_CLIENT_COMPLETE) {
                if (consumed != (size_t)n) {
                    connection_fail(c, &w->protocol_errors, "response from",
                                    "more bytes than the response declared", 0);
                    return;
                }
                if (c->state == CONNECTION_WRITING) {
                    /* Answered before the request was fully sent: the rest would be junk. */
                    c->response.keep_alive = 0;
                }
                response_complete(c, loop_clock_ns());
                return;
            }
            if ((size_t)n < sizeof(w->read_buffer)) return;
            continue;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EINTR) continue;
            connection_fail(c, &w->read_errors, "read from", strerror(errno), 0);
            return;
        }
        /* The peer closed. */
        if (c->state == CONNECTION_WAITING) {
            connection_close(c, 1); /* an idle keep-alive connection timed out: not an error */
            return;
        }
        if (http_client_finish(&c->response) == HTTP_CLIENT_COMPLETE) {
            response_complete(c, loop_clock_ns());
            return;
        }
        connection_fail(c, &w->read_errors, "read from", c->response.error, 0);
        return;
    }
}

static void connection_connected(connection_t *c)
{
    engine_worker_t *w = c->worker;
    int error = 0;
    socklen_t len = sizeof(error);
    if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0) error = errno;
    if (error) {
        connection_fail(c, &w->connect_errors, "connect to", strerror(error), CONNECT_RETRY_NS);
        return;
    }
    loop_io_modify(&w->loop, &c->io, EPOLLIN);
    c->deadline_ns = 0;
    c->state = CONNECTION_WAITING;
    connection_ready(c);
}

static void on_io(loop_io_t *io, uint32_t events)
{
    connection_t *c = io->user;
    switch (c->state) {
    case CONNECTION_CONNECTING:
        connection_connected(c);
        return;
    case CONNECTION_WRITING:
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
            connection_read(c);
            if (c->state != CONNECTION_WRITING) return;
        }
        if (events & EPOLLOUT) connection_write_more(c);
        return;
    default:
        connection_read(c);
        return;
    }
}

static void connection_start(connection_t *c)
{
    engine_worker_t *w = c->worker;
    const engine_config_t *config = w->engine->config;
    int fd = socket(config->address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        connection_fail(c, &w->connect_errors, "socket for", strerror(errno), CONNECT_RETRY_NS);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = loop_io_start(&w->loop, &c->io, fd, EPOLLOUT, on_io, c);
    if (rc < 0) {
        close(fd);
        connection_fail(c, &w->connect_errors, "epoll for", strerror(-rc), CONNECT_RETRY_NS);
        return;
    }
    c->state = CONNECTION_CONNECTING;
    c->deadline_ns = loop_clock_ns() + config->timeout_ns;
    if (connect(fd, (const struct sockaddr *)&config->address, config->address_len) < 0 &&
        errno != EINPROGRESS) {
        connection_fail(c, &w->connect_errors, "connect to", strerror(errno), CONNECT_RETRY_NS);
    }
}

/* Timeouts, reconnect backoffs, the -R schedule and the stop flag; returns the time of the
 * next thing due. */
static uint64_t housekeeping(engine_worker_t *w, uint64_t now_ns)
{
    engine_t *e = w->engine;
    if (!w->draining && (__atomic_load_n(&e->stop, __ATOMIC_RELAXED) ||
                         now_ns - e->start_ns >= e->config->duration_ns)) {
        w->draining = 1;
        w->drain_deadline_ns = now_ns + e->config->drain_ns;
        w->pending_count = 0;
        /* -R: sends that fell due before the end but were never made (their connection was
         * still busy, or reconnecting). */
        uint64_t end_ns = e->start_ns + e->config->duration_ns;
        if (now_ns < end_ns) end_ns = now_ns; /* stopped early */
        for (unsigned i = 0; i < w->connection_count; i++) {
            connection_t *c = &w->connections[i];
            if (w->send_interval_ns && c->next_send_ns + LATE_SLACK_NS <= end_ns)
                w->missed_sends += (end_ns - c->next_send_ns) / w->send_interval_ns + 1;
            if (c->state != CONNECTION_WRITING && c->state != CONNECTION_READING)
                connection_close(c, 0);
        }
    }
    uint64_t next_ns = now_ns + HOUSEKEEPING_NS;
    for (unsigned i = 0; i < w->connection_count; i++) {
        connection_t *c = &w->connections[i];
        if (c->deadline_ns && now_ns >= c->deadline_ns) {
            if (c->state == CONNECTION_CONNECTING) {
                connection_fail(c, &w->connect_errors, "connect to", "no answer within the timeout",
                                CONNECT_RETRY_NS);
            } else {
                w->timeouts++;
                w->routes[c->route].timeouts++;
                connection_next_route(c);
                counter_add(&w->failures, 1);
                connection_close(c, 1);
            }
        }
        if (w->draining) continue;
        if (c->state == CONNECTION_CLOSED && c->reconnect_at_ns) {
            if (now_ns >= c->reconnect_at_ns) {
                c->reconnect_at_ns = 0;
                connection_start(c);
            } else if (c->reconnect_at_ns < next_ns) {
                next_ns = c->reconnect_at_ns;
            }
        }
        if (c->state == CONNECTION_WAITING && w->send_interval_ns) {
            if (now_ns >= c->next_send_ns)
                connection_ready(c);
            else if (c->next_send_ns < next_ns)
                next_ns = c->next_send_ns;
        }
    }
    return next_ns;
}

static int worker_busy(const engine_worker_t *w)
{
    for (unsigned i = 0; i < w->connection_count; i++)
        if (w->connections[i].state != CONNECTION_CLOSED) return 1;
    return 0;
}

static void *worker_main(void *arg)
{
    engine_worker_t *w = arg;
    engine_t *e = w->engine;
    const engine_config_t *config = e->config;
    /* main bounds the rate and the connections, so the interval fits in a uint64_t. */
    double per_connection_rate = config->rate_rps / config->connections;
    w->send_interval_ns = config->rate_rps > 0 ? (uint64_t)(1e9 / per_connection_rate) : 0;
    if (config->rate_rps > 0 && w->send_interval_ns == 0) w->send_interval_ns = 1;
    for (unsigned i = 0; i < w->connection_count; i++) {
        connection_t *c = &w->connections[i];
        unsigned global = w->first_global_index + i;
        c->worker = w;
        c->io.fd = -1;
        c->route = global % (unsigned)config->request_count;
        /* -R: spread the first sends over one interval so the rate is smooth from the start. */
        c->next_send_ns = e->start_ns + (w->send_interval_ns / config->connections) * global;
        connection_start(c);
    }
    w->next_housekeeping_ns = loop_clock_ns();
    for (;;) {
        while (w->pending_count) {
            connection_t *c = w->pending[--w->pending_count];
            if (c->state == CONNECTION_CLOSED) connection_start(c);
        }
        uint64_t now_ns = loop_clock_ns();
        if (now_ns >= w->next_housekeeping_ns) {
            w->next_housekeeping_ns = housekeeping(w, now_ns);
            if (w->draining) {
                if (!worker_busy(w) || now_ns >= w->drain_deadline_ns) break;
                /* Notice the last in-flight response soon: the run's end is measured. */
                if (w->next_housekeeping_ns > now_ns + 1000000)
                    w->next_housekeeping_ns = now_ns + 1000000;
            }
            if (w->pending_count) continue;
        }
        uint64_t wait_ns = w->next_housekeeping_ns - now_ns;
        if (w->next_housekeeping_ns <= now_ns) wait_ns = 0;
        int wait_ms = (int)((wait_ns + 999999) / 1000000);
        int rc = loop_run_once(&w->loop, wait_ms);
        if (rc < 0) {
            note_error(w, loop_clock_ns(), "epoll_wait for", strerror(-rc));
            break;
        }
    }
    /* Requests still unanswered count as unfinished, in their route's latency with the time
     * they have been outstanding (a hung server must not look fast), not in any server's. */
    uint64_t end_ns = loop_clock_ns();
    for (unsigned i = 0; i < w->connection_count; i++) {
        connection_t *c = &w->connections[i];
        if (c->state == CONNECTION_WRITING || c->state == CONNECTION_READING) {
            uint64_t elapsed_ns = end_ns > c->start_ns ? end_ns - c->start_ns : 0;
            tally_t *t = &w->routes[c->route];
            w->unfinished++;
            t->unfinished++;
            if (!t->latency_ns) t->latency_ns = histogram_new();
            histogram_record(t->latency_ns, elapsed_ns);
            if (elapsed_ns > w->unfinished_max_ns) w->unfinished_max_ns = elapsed_ns;
        }
        connection_close(c, 0);
    }
    w->finished_ns = loop_clock_ns();
    __atomic_store_n(&w->finished, 1, __ATOMIC_RELEASE);
    return NULL;
}

engine_t *engine_new(const engine_config_t *config)
{
    engine_t *e = xcalloc(1, sizeof(*e));
    e->config = config;
    e->worker_count = config->threads;
    e->workers = xcalloc(e->worker_count, sizeof(*e->workers));
    unsigned next_global = 0;
    for (unsigned i = 0; i < e->worker_count; i++) {
        engine_worker_t *w = &e->workers[i];
        w->engine = e;
        w->loop.epoll_fd = -1;
        w->connection_count =
            config->connections / e->worker_count + (i < config->connections % e->worker_count);
        w->first_global_index = next_global;
        next_global += w->connection_count;
        w->connections = xcalloc(w->connection_count, sizeof(*w->connections));
        w->pending = xcalloc(w->connection_count, sizeof(*w->pending));
        w->routes = xcalloc(config->request_count, sizeof(*w->routes));
        w->sent_latency_ns = histogram_new();
    }
    return e;
}

int engine_start(engine_t *e, char *err, size_t err_len)
{
    for (unsigned i = 0; i < e->worker_count; i++) {
        int rc = loop_init(&e->workers[i].loop);
        if (rc < 0) {
            return error_set(err, err_len, "cannot create an epoll instance: %s", strerror(-rc));
        }
    }
    e->start_ns = loop_clock_ns();
    for (unsigned i = 0; i < e->worker_count; i++) {
        engine_worker_t *w = &e->workers[i];
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            /* The threads already running use the engine: stop and join them before the
             * caller may free it. */
            engine_stop(e);
            for (unsigned j = 0; j < i; j++) {
                pthread_join(e->workers[j].thread, NULL);
                e->workers[j].thread_started = 0;
            }
            return error_set(err, err_len, "cannot start worker thread %u of %u: %s", i + 1,
                             e->worker_count, strerror(rc));
        }
        w->thread_started = 1;
    }
    return 0;
}

void engine_stop(engine_t *e)
{
    __atomic_store_n(&e->stop, 1, __ATOMIC_RELAXED);
}

int engine_finished(const engine_t *e)
{
    for (unsigned i = 0; i < e->worker_count; i++)
        if (!__atomic_load_n(&e->workers[i].finished, __ATOMIC_ACQUIRE)) return 0;
    return 1;
}

void engine_progress(const engine_t *e, uint64_t *responses, uint64_t *failures)
{
    *responses = *failures = 0;
    for (unsigned i = 0; i < e->worker_count; i++) {
        *responses += counter_get(&e->workers[i].responses);
        *failures += counter_get(&e->workers[i].failures);
    }
}

static void tally_merge(loadtest_tally_t *into, histogram_t *into_latency, const tally_t *from)
{
    into->requests += from->requests;
    into->errors += from->errors;
    into->timeouts += from->timeouts;
    into->non2xx += from->non2xx;
    into->status_5xx += from->status_5xx;
    into->unfinished += from->unfinished;
    if (from->latency_ns) histogram_merge(into_latency, from->latency_ns);
}

/* Nonzero when server x is listed before y: most requests first, then by name. */
static int server_before(const loadtest_tally_t *x, const loadtest_tally_t *y)
{
    if (x->requests != y->requests) return x->requests > y->requests;
    return strcmp(x->name, y->name) < 0;
}

void engine_join(engine_t *e, loadtest_result_t *out)
{
    const engine_config_t *config = e->config;
    e->end_ns = e->start_ns;
    for (unsigned i = 0; i < e->worker_count; i++) {
        engine_worker_t *w = &e->workers[i];
        if (w->thread_started) pthread_join(w->thread, NULL);
        if (w->finished_ns > e->end_ns) e->end_ns = w->finished_ns;
    }

    out->connections = config->connections;
    out->threads = config->threads;
    out->duration_s = (double)(e->end_ns - e->start_ns) / 1e9;
    out->rate_rps = config->rate_rps;
    out->keep_alive = config->keep_alive;
    out->route_count = config->request_count;
    out->routes = xcalloc(out->route_count, sizeof(*out->routes));

    histogram_t *total = histogram_new(), *scratch = histogram_new();
    uint64_t first_error_ns = UINT64_MAX;
    for (size_t r = 0; r < config->request_count; r++) {
        loadtest_tally_t *t = &out->routes[r];
        snprintf(t->name, sizeof(t->name), "%s", config->requests[r].name);
        histogram_reset(scratch);
        for (unsigned i = 0; i < e->worker_count; i++)
            tally_merge(t, scratch, &e->workers[i].routes[r]);
        loadtest_latency_from_histogram(&t->latency, scratch);
        histogram_merge(total, scratch);
    }
    loadtest_latency_from_histogram(&out->latency, total);

    /* Servers: merge the per-worker tables by id (server_index maps each worker's slot to
     * its row), then sort the rows, most requests first. */
    size_t server_cap = 0;
    for (unsigned i = 0; i < e->worker_count; i++)
        server_cap += e->workers[i].server_count;
    loadtest_tally_t *servers = server_cap ? xcalloc(server_cap, sizeof(*servers)) : NULL;
    size_t *server_index = xcalloc(server_cap + 1, sizeof(*server_index));
    size_t server_count = 0, slot = 0;
    histogram_t *sent = histogram_new();
    for (unsigned i = 0; i < e->worker_count; i++) {
        engine_worker_t *w = &e->workers[i];
        out->connect_errors += w->connect_errors;
        out->read_errors += w->read_errors;
        out->write_errors += w->write_errors;
        out->protocol_errors += w->protocol_errors;
        out->timeouts += w->timeouts;
        out->unfinished += w->unfinished;
        if (w->unfinished_max_ns / 1e6 > out->unfinished_max_ms)
            out->unfinished_max_ms = (double)w->unfinished_max_ns / 1e6;
        out->sends += w->sends;
        out->late_sends += w->late_sends;
        out->missed_sends += w->missed_sends;
        out->window_responses += w->window_responses;
        histogram_merge(sent, w->sent_latency_ns);
        if (w->first_error[0] && w->first_error_ns < first_error_ns) {
            first_error_ns = w->first_error_ns;
            snprintf(out->first_error, sizeof(out->first_error), "%s", w->first_error);
        }
        for (unsigned s = 0; s < w->server_count; s++, slot++) {
            size_t j = 0;
            while (j < server_count && strcmp(servers[j].name, w->servers[s].id) != 0)
                j++;
            if (j == server_count) {
                snprintf(servers[j].name, sizeof(servers[j].name), "%s", w->servers[s].id);
                server_count++;
            }
            server_index[slot] = j;
        }
    }
    loadtest_latency_from_histogram(&out->sent_latency, sent);
    histogram_free(sent);
    out->window_s = (double)config->duration_ns / 1e9;
    size_t *order = xcalloc(server_count + 1, sizeof(*order));
    for (size_t j = 0; j < server_count; j++)
        order[j] = j;
    /* Each row and each (route, row) cell: merge the slots mapped to it. */
    size_t routes = config->request_count;
    out->servers = server_count ? xcalloc(server_count, sizeof(*out->servers)) : NULL;
    out->route_servers =
        server_count ? xcalloc(server_count * routes, sizeof(*out->route_servers)) : NULL;
    for (size_t j = 0; j < server_count; j++) {
        for (size_t r = 0; r <= routes; r++) { /* r == routes: the server's total */
            loadtest_tally_t *into =
                r == routes ? &servers[j] : &out->route_servers[j * routes + r];
            histogram_reset(scratch);
            slot = 0;
            for (unsigned i = 0; i < e->worker_count; i++) {
                engine_worker_t *w = &e->workers[i];
                for (unsigned s = 0; s < w->server_count; s++, slot++) {
                    if (server_index[slot] != j) continue;
                    tally_merge(into, scratch,
                                r == routes ? &w->servers[s].tally : &w->servers[s].routes[r]);
                }
            }
            loadtest_latency_from_histogram(&into->latency, scratch);
            if (r < routes) snprintf(into->name, sizeof(into->name), "%s", servers[j].name);
        }
    }
    /* Sort the rows' order (at most a few hundred: insertion sort). */
    for (size_t k = 1; k < server_count; k++) {
        size_t moving = order[k], at = k;
        for (; at > 0 && server_before(&servers[moving], &servers[order[at - 1]]); at--)
            order[at] = order[at - 1];
        order[at] = moving;
    }
    /* out->route_servers is [row][route] in merge order; lay it out as [route][sorted row]. */
    loadtest_tally_t *cells = server_count ? xcalloc(server_count * routes, sizeof(*cells)) : NULL;
    for (size_t k = 0; k < server_count; k++) {
        out->servers[k] = servers[order[k]];
        for (size_t r = 0; r < routes; r++)
            cells[r * server_count + k] = out->route_servers[order[k] * routes + r];
    }
    free(out->route_servers);
    out->route_servers = cells;
    out->server_count = server_count;
    free(servers);
    free(server_index);
    free(order);

    for (size_t r = 0; r < out->route_count; r++) {
        out->requests += out->routes[r].requests;
        out->non2xx += out->routes[r].non2xx;
        out->status_5xx += out->routes[r].status_5xx;
    }
    out->errors = out->connect_errors + out->read_errors + out->write_errors + out->protocol_errors;
    out->rps = out->duration_s > 0 ? (double)out->requests / out->duration_s : 0;
    histogram_free(total);
    histogram_free(scratch);
}

void engine_free(engine_t *e)
{
    if (!e) return;
    for (unsigned i = 0; i < e->worker_count; i++) {
        engine_worker_t *w = &e->workers[i];
        if (w->loop.epoll_fd >= 0) loop_close(&w->loop);
        for (size_t r = 0; w->routes && r < e->config->request_count; r++)
            histogram_free(w->routes[r].latency_ns);
        for (unsigned s = 0; s < w->server_count; s++) {
            histogram_free(w->servers[s].tally.latency_ns);
            for (size_t r = 0; r < e->config->request_count; r++)
                histogram_free(w->servers[s].routes[r].latency_ns);
            free(w->servers[s].routes);
        }
        histogram_free(w->sent_latency_ns);
        free(w->routes);
        free(w->connections);
        free(w->pending);
    }
    free(e->workers);
    free(e);
}
