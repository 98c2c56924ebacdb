/* conn.c: client connections: accept, read, parse, dispatch, write, timers, close.
 *
 * Each connection is in one phase (enum conn_phase), decided in one place, conn_settle, after
 * every event; the state alone picks the connection's one timer:
 *   IDLE          between requests: HTTP_KEEPALIVE_TIMEOUT_MS (before the first request:
 *                 HTTP_HEADER_TIMEOUT_MS), then closed
 *   READING_HEAD  part of a request has arrived: HTTP_HEADER_TIMEOUT_MS from its first byte
 *   READING_BODY  for head and body together, then 408
 *   WAITING_DB    a request waits on the database: no timer (the pool's acquire and statement
 *                 timeouts bound it), so nothing closes a connection mid-query
 *   WRITING       the client is slow to take a response: HTTP_SEND_TIMEOUT_MS without
 *                 progress, then closed
 *   DRAINING      an error was answered with Connection: close while input may be unread: the
 *                 write side is shut (the client reads the answer) and what arrives is discarded,
 *                 for DRAIN_MS or DRAIN_MAX_BYTES, then closed (a close with unread input would
 *                 be a reset that can destroy the answer in flight)
 *   CLOSED        waiting to be freed at the end of the loop turn.
 *
 * Output memory has two bounds.  Per connection, no new request is started while
 * OUT_BACKPRESSURE_BYTES wait for the client.  For the process, OUTPUT_BUDGET_BYTES bounds the
 * output buffers of all connections together: past it, a connection whose client has not taken
 * everything it was sent starts no new request and is not read (its requests wait in the
 * kernel) until it has; a client that reads its answers is still served.  The count
 * (server.output_bytes) is the capacity of the output buffers larger than
 * IDLE_BUFFER_KEEP_BYTES, updated with one atomic add when a buffer grows past that or is
 * released, so small responses never touch it.  The budget can be passed by at most the
 * responses being answered when it was reached (one per connection). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "conn.h"
#include "format.h"
#include "handlers.h"
#include "log.h"
#include "output_budget.h"
#include "server.h"
#include "stats.h"

#define READ_CHUNK 65536
/* Stop parsing pipelined requests while this much output waits for the client. */
#define OUT_BACKPRESSURE_BYTES (1u << 20)
/* DRAINING: how long, and how many bytes, before the close. */
#define DRAIN_MS 2000
#define DRAIN_MAX_BYTES (1u << 20)

static void conn_drive(conn_t *c);
static void conn_settle(conn_t *c);

/* ---- timers: the worker's lists in its loop (lib/loop.h), one per kind -------------------- */

static void conn_on_timer(loop_timer_t *timer);
static void accept_on_timer(loop_timer_t *timer);

void conn_timers_init(worker_t *w)
{
    for (int l = 0; l < TIMER_LISTS; l++)
        loop_timer_list_init(&w->loop, &w->timers[l]);
    loop_timer_init(&w->accept_timer, accept_on_timer, w);
}

static void timer_clear(conn_t *c)
{
    loop_timer_stop(&c->timer);
}

static void timer_set(conn_t *c, enum timer_list list, uint64_t deadline_ms)
{
    loop_timer_start(&c->worker->timers[list], &c->timer, deadline_ms);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

void conn_close(conn_t *c)
{
    if (c->state == CONN_CLOSED) return;
    worker_t *w = c->worker;
    c->state = CONN_CLOSED;
    if (c->busy) pool_cancel(&c->req.query);
    timer_clear(c);
    int fd = c->io.fd;
    loop_io_stop(&w->loop, &c->io);
    if (fd >= 0) close(fd);
    if (c->open_prev)
        c->open_prev->open_next = c->open_next;
    else
        w->open = c->open_next;
    if (c->open_next) c->open_next->open_prev = c->open_prev;
    c->free_next = w->closed;
    w->closed = c;
    w->conn_count--;
    atomic_fetch_sub(&w->server->connections, 1);
    if (w->accept_paused) /* a descriptor is free */
        loop_timer_start(&w->timers[TIMER_ACCEPT], &w->accept_timer, w->loop.now_ms);
}

void conn_free_closed(worker_t *w)
{
    while (w->closed) {
        conn_t *c = w->closed;
        w->closed = c->free_next;
        buf_free(&c->in);
        buf_free(&c->out);
        output_budget_account(c->worker->server, &c->out_charged, c->out.cap,
                              c->worker->loop.now_ms);
        req_free(&c->req);
        free(c);
    }
}

static void conn_on_io(loop_io_t *io, uint32_t events);
static const req_host_t conn_req_host;

/* Opens the connection of fd, whose place under MAX_CONNECTIONS conn_accept has taken. */
static void conn_open(worker_t *w, int fd, const struct sockaddr_storage *addr)
{
    server_t *s = w->server;
    conn_t *c = xcalloc(1, sizeof *c);
    c->worker = w;
    c->state = CONN_IDLE;
    loop_timer_init(&c->timer, conn_on_timer, c);
    c->io.fd = -1;
    c->req.host = &conn_req_host;
    c->req.server_id = s->config.server_id;
    c->req.route = ROUTE_UNMATCHED;
    if (s->config.access_log) {
        if (addr->ss_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, c->peer,
                      sizeof c->peer);
        else if (addr->ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, c->peer,
                      sizeof c->peer);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (loop_io_start(&w->loop, &c->io, fd, EPOLLIN, conn_on_io, c) < 0) {
        atomic_fetch_sub(&s->connections, 1);
        close(fd);
        free(c);
        return;
    }
    w->conn_count++;
    c->open_next = w->open;
    if (w->open) w->open->open_prev = c;
    w->open = c;
    c->rearm = 1;
    conn_settle(c); /* the first request must arrive within the header timeout */
}

/* Out of descriptors (EMFILE, ENFILE) or kernel memory: the listener stays readable, so watching
 * it would spin.  The worker stops watching it for ACCEPT_PAUSE_MS, or until one of its own
 * connections closes; waiting clients stay in the kernel's backlog meanwhile.  One log line per
 * ACCEPT_LOG_INTERVAL_MS for the whole process; accept_pauses counts every pause (/metrics). */
#define ACCEPT_PAUSE_MS 250
#define ACCEPT_LOG_INTERVAL_MS 60000

static void conn_on_listen(loop_io_t *io, uint32_t events)
{
    conn_accept(io->user);
}

int conn_listen_start(worker_t *w)
{
    w->accept_paused = 0;
    /* EPOLLEXCLUSIVE: one worker wakes per new connection, not all of them. */
    return loop_io_start(&w->loop, &w->listen_io, w->server->listen_fd, EPOLLIN | EPOLLEXCLUSIVE,
                         conn_on_listen, w);
}

static void accept_pause(worker_t *w, int error)
{
    server_t *s = w->server;
    loop_io_stop(&w->loop, &w->listen_io);
    w->accept_paused = 1;
    loop_timer_start(&w->timers[TIMER_ACCEPT], &w->accept_timer, w->loop.now_ms + ACCEPT_PAUSE_MS);
    uint64_t pauses = atomic_fetch_add(&s->accept_pauses, 1) + 1;
    uint64_t last = atomic_load(&s->accept_logged_ms);
    if ((last == 0 || w->loop.now_ms - last >= ACCEPT_LOG_INTERVAL_MS) &&
        atomic_compare_exchange_strong(&s->accept_logged_ms, &last, w->loop.now_ms))
        log_error("accept: %s: new connections wait in the backlog, retried every %d ms (%llu "
                  "pauses so far, at most one line a minute; raise the open-files limit or lower "
                  "MAX_CONNECTIONS)",
                  strerror(error), ACCEPT_PAUSE_MS, (unsigned long long)pauses);
}

/* The pause is over (or one of the worker's connections closed): watch the listener again. */
static void accept_on_timer(loop_timer_t *timer)
{
    worker_t *w = timer->user;
    if (w->accept_paused && !w->stopping) conn_listen_start(w);
}

void conn_accept(worker_t *w)
{
    server_t *s = w->server;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int fd =
            accept4(s->listen_fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                accept_pause(w, errno);
            return; /* EAGAIN: another worker took it, or none left; ECONNABORTED: gone */
        }
        /* The place is taken before the count is compared: workers accepting at once cannot
         * pass MAX_CONNECTIONS together (a load, then an add, let each of two take the last). */
        if (w->stopping) {
            close(fd);
            continue;
        }
        if (atomic_fetch_add(&s->connections, 1) >= s->config.max_connections) {
            atomic_fetch_sub(&s->connections, 1);
            close(fd);
            continue;
        }
        conn_open(w, fd, &addr);
    }
}

/* ---- responses: the connection's side of a request (req_host_t) ---------------------------- */

/* The connection that carries req. */
static conn_t *conn_of(req_t *req)
{
    return (conn_t *)((char *)req - offsetof(conn_t, req));
}

static buf_t *conn_begin(req_t *req, http_response_t *resp, int status, const char *content_type,
                         const char *extra_headers)
{
    conn_t *c = conn_of(req);
    server_t *s = c->worker->server;

    if (c->worker->stopping) req->keep_alive = 0;
    http_response_begin(&c->out, resp, status, content_type,
                        slice_make(s->config.server_id, strlen(s->config.server_id)),
                        req->keep_alive, extra_headers);
    return &c->out;
}

static void access_log_line(conn_t *c, int status, size_t bytes, uint64_t duration_us)
{
    buf_t *log = &c->worker->access_log;
    char when[FORMAT_ISO8601_MAX];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    size_t n = format_iso8601_text(when, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    buf_printf(log, "%.*s %s access %s \"%s\" %d %zu %.3fms\n", (int)n, when,
               c->worker->server->config.server_id, c->peer[0] ? c->peer : "-", c->req.log_line,
               status, bytes, (double)duration_us / 1000.0);
}

static void conn_reserve_output(req_t *req, size_t bytes)
{
    conn_t *c = conn_of(req);
    buf_t *spare = &c->worker->spare_out;
    if (c->out.len == 0 && c->out.cap < bytes && spare->cap >= bytes) {
        buf_free(&c->out);
        c->out = *spare;
        *spare = (buf_t){0};
    }
    buf_reserve(&c->out, bytes);
}

static void conn_end(req_t *req, http_response_t *resp, int status)
{
    conn_t *c = conn_of(req);
    http_response_end(&c->out, resp, req->head_only);
    output_budget_account(c->worker->server, &c->out_charged, c->out.cap, c->worker->loop.now_ms);
    uint64_t duration_us = (loop_clock_ns() - req->start_ns) / 1000;
    stats_record(c->worker, req->route, req->method_label, status, duration_us);
    if (c->worker->server->config.access_log)
        access_log_line(c, status, c->out.len - resp->body_start, duration_us);
    if (!req->keep_alive) c->close_after_write = 1;
    if (c->busy) {
        /* Answered from a database callback: go on with the connection. */
        c->busy = 0;
        conn_drive(c);
    }
}

static int conn_submit(req_t *req)
{
    conn_t *c = conn_of(req);
    c->busy = 1;
    worker_t *w = c->worker;
    int e = req->read
                ? replicas_submit_read(w->server->replicas, w->index, &req->replica, &req->query)
                : pool_submit(w->pool_worker, &req->query);
    if (e) c->busy = 0;
    return e;
}

static void conn_write_instances(req_t *req, buf_t *out)
{
    replicas_write_health(conn_of(req)->worker->server->replicas, out);
}

static int conn_stopping(req_t *req)
{
    return conn_of(req)->worker->stopping;
}

static void conn_render_metrics(req_t *req, buf_t *out)
{
    stats_render(conn_of(req)->worker->server, out);
}

static const req_host_t conn_req_host = {
    .begin = conn_begin,
    .reserve = conn_reserve_output,
    .end = conn_end,
    .write_instances = conn_write_instances,
    .submit = conn_submit,
    .stopping = conn_stopping,
    .render_metrics = conn_render_metrics,
};

/* A request that cannot be parsed: answer and close (the stream can no longer be trusted). */
static void conn_reject(conn_t *c, int status)
{
    const char *message = status == 414   ? "request line too long"
                          : status == 431 ? "request headers too large"
                          : status == 413 ? "request body too large"
                          : status == 501 ? "only the chunked transfer coding is supported"
                          : status == 505 ? "HTTP version not supported"
                          : status == 408 ? "request timed out"
                                          : "malformed request";
    req_start_rejected(&c->req);
    req_error(&c->req, status, message, NULL);
    c->close_after_write = 1;
    c->linger = 1;           /* the client may still be sending: drain before the close */
    c->in_start = c->in.len; /* ignore the rest */
    c->header_deadline_ms = 0;
    c->reading_body = 0;
}

/* ---- reading and parsing ------------------------------------------------------------------ */

/* Handles every complete request in the input buffer, in order, until one goes asynchronous.
 * Returns 1 when it stopped only because too much output is waiting (go on once it is sent). */
static int conn_process(conn_t *c)
{
    const server_config_t *cfg = &c->worker->server->config;
    int backpressure = 0;
    c->out_paused = 0;
    while (!c->busy && c->state != CONN_CLOSED && !c->close_after_write) {
        if (c->out.len - c->out_sent >= OUT_BACKPRESSURE_BYTES) {
            backpressure = 1;
            break;
        }
        if (c->out_sent < c->out.len && output_budget_over(c->worker->server)) {
            backpressure = c->out_paused = 1;
            break;
        }
        /* A client that keeps reading while it pipelines never empties the buffer: drop what
         * it has taken once that is at least what is left (each byte moved at most once). */
        if (c->out_sent && c->out_sent >= c->out.len - c->out_sent) {
            buf_consume(&c->out, c->out_sent);
            c->out_sent = 0;
        }
        /* Empty lines between requests (a CRLF some clients send after a body) are dropped
         * here, so a connection that holds only those stays idle, on its keep-alive timer (not
         * restarted by them), instead of reading a head that never comes (RFC 9112 2.2). */
        if (!c->reading_body)
            c->in_start += http_empty_lines(c->in.data + c->in_start, c->in.len - c->in_start);
        char *start = c->in.data + c->in_start;
        size_t avail = c->in.len - c->in_start;
        if (avail == 0) {
            /* Nothing of a request is here (a lone CR, then its LF, is an empty line): a head
             * that starts later gets a deadline of its own, not the one set at that CR. */
            c->header_deadline_ms = 0;
            break;
        }
        /* the whole request must arrive before the deadline set at its first byte */
        if (!c->header_deadline_ms)
            c->header_deadline_ms = c->worker->loop.now_ms + cfg->header_timeout_ms;
        http_request_t req;
        int r = http_parse_request(start, avail, &cfg->limits, &req);
        if (r == 0) break;
        if (r < 0) {
            conn_reject(c, -r);
            break;
        }
        size_t body_len = req.content_length > 0 ? (size_t)req.content_length : 0;
        size_t framed_len = body_len; /* the body's bytes on the wire */
        int body_complete = avail >= (size_t)r + body_len;
        if (req.chunked) {
            if (!c->reading_body) http_chunked_init(&c->chunked);
            int cr = http_chunked_decode(&c->chunked, start + r, avail - (size_t)r, &cfg->limits);
            if (cr < 0) {
                conn_reject(c, -cr);
                break;
            }
            body_complete = cr;
            body_len = c->chunked.body_len;
            framed_len = c->chunked.consumed;
        }
        if (!body_complete) {
            c->reading_body = 1;
            if (req.expect_continue && !c->continue_sent) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                buf_append(&c->out, cont, sizeof cont - 1);
                c->continue_sent = 1;
            }
            break; /* the body is still coming */
        }
        c->in_start += (size_t)r + framed_len;
        c->header_deadline_ms = 0;
        c->reading_body = 0;
        c->continue_sent = 0;
        c->requests++;
        c->rearm = 1; /* a new IDLE (or other) period starts after this request */
        req_start(&c->req, &req);
        handlers_dispatch(&c->req, &req, slice_make(start + r, body_len));
    }
    /* Compact: drop handled bytes once nothing points into them. */
    if (!c->busy && c->in_start > 0) {
        buf_consume(&c->in, c->in_start);
        c->in_start = 0;
        if (c->in.len == 0 && c->in.cap > IDLE_BUFFER_KEEP_BYTES) buf_free(&c->in);
    }
    return backpressure;
}

/* The one place that decides the state, arms its timer and sets the epoll interest. */
static void conn_settle(conn_t *c)
{
    if (c->state == CONN_CLOSED) return;
    worker_t *w = c->worker;
    const server_config_t *cfg = &w->server->config;
    uint64_t now = w->loop.now_ms;
    int state;
    if (c->state == CONN_DRAINING)
        state = CONN_DRAINING;
    else if (c->busy)
        state = CONN_WAITING_DB;
    else if (c->out_sent < c->out.len)
        state = CONN_WRITING;
    else if (c->read_closed) {
        /* EOF and every complete request answered: a partial one can never complete */
        conn_close(c);
        return;
    } else if (c->in.len > c->in_start)
        state = c->reading_body ? CONN_READING_BODY : CONN_READING_HEAD;
    else
        state = CONN_IDLE;

    if (state != c->state || c->rearm) {
        c->state = state;
        c->rearm = 0;
        switch (state) {
        case CONN_IDLE:
            if (c->requests)
                timer_set(c, TIMER_KEEPALIVE, now + cfg->keepalive_timeout_ms);
            else
                timer_set(c, TIMER_HEADER, now + cfg->header_timeout_ms);
            break;
        case CONN_READING_HEAD:
        case CONN_READING_BODY:
            timer_set(c, TIMER_HEADER, c->header_deadline_ms);
            break;
        case CONN_WAITING_DB:
            timer_clear(c);
            break;
        case CONN_WRITING:
            timer_set(c, TIMER_SEND, now + cfg->send_timeout_ms);
            break;
        case CONN_DRAINING:
            timer_set(c, TIMER_DRAIN, now + DRAIN_MS);
            break;
        }
    }

    uint32_t events = 0;
    /* a head, a body, its chunk framing (at most max_header_bytes), and one read */
    size_t in_cap = 2 * cfg->limits.max_header_bytes + cfg->limits.max_body + READ_CHUNK;
    if (state == CONN_DRAINING)
        events = EPOLLIN;
    else {
        if (!c->read_closed && !c->close_after_write && !c->out_paused && c->in.len < in_cap)
            events |= EPOLLIN;
        if (c->out_sent < c->out.len) events |= EPOLLOUT;
    }
    loop_io_modify(&w->loop, &c->io, events);
}

/* Writes what is pending until done or the socket is full.  Returns 0, or -1 when it closed the
 * connection (the client is gone). */
static int conn_write(conn_t *c)
{
    while (c->out_sent < c->out.len) {
        ssize_t n =
            send(c->io.fd, c->out.data + c->out_sent, c->out.len - c->out_sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_sent += (size_t)n;
            if (c->state == CONN_WRITING) c->rearm = 1; /* progress: the send timeout restarts */
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        conn_close(c);
        return -1;
    }
    c->out.len = c->out_sent = 0;
    if (c->out.cap > IDLE_BUFFER_KEEP_BYTES) {
        /* A listing's 300 KB buffer: parked for the worker's next large response (no page
         * faults and no trimming churn), or released when one is already parked. */
        buf_t *spare = &c->worker->spare_out;
        if (!spare->data) {
            *spare = c->out;
            c->out = (buf_t){0};
        } else {
            buf_free(&c->out);
        }
        output_budget_account(c->worker->server, &c->out_charged, c->out.cap,
                              c->worker->loop.now_ms);
    }
    return 0;
}

/* The answer with Connection: close is written: close, or first let the client read it. */
static void conn_finish(conn_t *c)
{
    if (c->read_closed || (!c->linger && c->in.len == c->in_start)) {
        conn_close(c);
        return;
    }
    shutdown(c->io.fd, SHUT_WR);
    c->state = CONN_DRAINING;
    c->rearm = 1;
    buf_free(&c->in);
    c->in_start = 0;
}

/* Answers what can be answered and writes it; then settles the state. */
static void conn_drive(conn_t *c)
{
    for (;;) {
        if (c->state == CONN_CLOSED || c->state == CONN_DRAINING) break;
        int backpressure = conn_process(c);
        if (c->state == CONN_CLOSED) return;
        if (conn_write(c) < 0) return;
        if (c->out_sent < c->out.len) break; /* the socket is full: wait for EPOLLOUT */
        if (c->busy) break;
        if (c->close_after_write) {
            conn_finish(c);
            break;
        }
        if (c->worker->stopping && c->in.len == c->in_start) {
            conn_close(c);
            return;
        }
        if (!backpressure) break;
    }
    conn_settle(c);
}

/* DRAINING: reads and discards until EOF, DRAIN_MAX_BYTES or the timer. */
static void conn_drain(conn_t *c)
{
    char *scratch = c->worker->read_buffer;
    for (;;) {
        ssize_t n = recv(c->io.fd, scratch, READ_CHUNK, 0);
        if (n > 0) {
            c->drained += (size_t)n;
            if (c->drained > DRAIN_MAX_BYTES) break;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        break; /* EOF or an error */
    }
    conn_close(c);
}

static void conn_read(conn_t *c)
{
    if (c->state == CONN_DRAINING) {
        conn_drain(c);
        return;
    }
    /* Read into the worker's scratch buffer and keep only what arrived: an idle connection's
     * input buffer is the size of its requests, not of a read. */
    char *scratch = c->worker->read_buffer;
    for (;;) {
        ssize_t n = recv(c->io.fd, scratch, READ_CHUNK, 0);
        if (n > 0) {
            buf_append(&c->in, scratch, (size_t)n);
            if ((size_t)n < READ_CHUNK) break;
            continue;
        }
        if (n == 0) {
            /* The client is gone or half-closed: answer every complete request, then close. */
            c->read_closed = 1;
            break;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        conn_close(c);
        return;
    }
    conn_drive(c);
}

static void conn_on_io(loop_io_t *io, uint32_t events)
{
    conn_t *c = io->user;
    if (events & EPOLLERR) {
        conn_close(c);
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP)) {
        conn_read(c);
        if (c->state == CONN_CLOSED) return;
    }
    if (events & EPOLLOUT) conn_drive(c);
}

/* ---- timers and shutdown -------------------------------------------------------------------- */

/* The state's timer ran out (loop_timers_run, from the worker loop). */
static void conn_on_timer(loop_timer_t *timer)
{
    conn_t *c = timer->user;
    if (c->state == CONN_READING_HEAD || c->state == CONN_READING_BODY) {
        conn_reject(c, 408); /* then written, drained and closed */
        c->rearm = 1;
        conn_drive(c);
    } else {
        /* idle, a client that does not read, or the drain is over */
        if (c->state == CONN_WRITING)
            atomic_fetch_add_explicit(&c->worker->server->send_timeouts, 1, memory_order_relaxed);
        conn_close(c);
    }
}

void conn_close_idle(worker_t *w)
{
    /* Idle connections (nothing read, nothing to write) close now; the others close after their
     * current response (conn_begin turns keep-alive off while stopping). */
    for (conn_t *c = w->open, *next; c; c = next) {
        next = c->open_next;
        if (c->state == CONN_IDLE) conn_close(c);
    }
}

void conn_close_all(worker_t *w)
{
    while (w->open)
        conn_close(w->open);
}
