/* pool_conn.c: the pool's connections: opened without blocking, handed over, closed. */
#include "pool_conn.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "log.h"
#include "pool_queue.h"
#include "resolver.h"

/* Connections idle for longer than this are checked for a pending error or EOF before use. */
#define POOL_STALE_CHECK_MS 250

static void cancel_on_done(pool_cancel_req_t *req);

/* The worker's active list: every connection it uses, so deadlines can be checked and a
 * worker that stops can close what it still holds. */
static void active_add(pool_worker_t *w, pool_conn_t *c)
{
    if (c->listed_in == w) return;
    c->listed_in = w;
    c->active_prev = NULL;
    c->active_next = w->active;
    if (w->active) w->active->active_prev = c;
    w->active = c;
}

static void active_remove(pool_conn_t *c)
{
    pool_worker_t *w = c->listed_in;
    if (!w) return;
    if (c->active_prev)
        c->active_prev->active_next = c->active_next;
    else
        w->active = c->active_next;
    if (c->active_next) c->active_next->active_prev = c->active_prev;
    c->active_prev = c->active_next = NULL;
    c->listed_in = NULL;
}

void pool_conn_cancel_close(pool_worker_t *w, pool_conn_t *c)
{
    pool_cancel_req_close(&c->cancel, w ? w->loop : NULL);
}

/* libpq closes a connection's socket when it finds the connection lost, in any call that reads
 * (PQconsumeInput, and PQflush, PQpipelineSync or a PQsend* when a write fails or the socket is
 * full); the kernel then drops the socket from the epoll set by itself, and no event will ever
 * report it.  Forgets c's registration when its socket is no longer libpq's, without touching
 * epoll (the number may already belong to another descriptor of this loop).  Returns 1 when
 * libpq found the connection lost (CONNECTION_BAD): nothing more will arrive on it.  No system
 * call. */
int pool_conn_check_lost(pool_conn_t *c)
{
    if (c->io.fd >= 0 && (!c->libpq || PQsocket(c->libpq) != c->io.fd)) {
        c->io.fd = -1;
        c->io.events = 0;
    }
    return !c->libpq || PQstatus(c->libpq) == CONNECTION_BAD;
}

void pool_conn_destroy(pool_worker_t *w, pool_conn_t *c)
{
    pool_conn_flush_unlink(c);
    pool_conn_check_lost(c);
    if (w) loop_io_stop(w->loop, &c->io);
    active_remove(c);
    pool_conn_cancel_close(w, c);
    for (unsigned i = 0; i < c->depth; i++)
        if (pool_conn_entry(c, i)->result) PQclear(pool_conn_entry(c, i)->result);
    if (c->depth) pool_conn_in_flight_add(c->pool, -(int)c->depth);
    if (c->libpq) PQfinish(c->libpq);
    c->libpq = NULL;
    if (w) {
        c->next = w->dead;
        w->dead = c;
    } else {
        free(c);
    }
}

void pool_conn_free_dead(pool_worker_t *w)
{
    while (w->dead) {
        pool_conn_t *c = w->dead;
        w->dead = c->next;
        free(c);
    }
}

/* Closes c and gives its slot to the oldest waiter (who connects anew). */
static void pool_conn_close_slot(pool_worker_t *w, pool_conn_t *c)
{
    pool_t *p = w->pool;
    pool_conn_destroy(w, c);
    pthread_mutex_lock(&p->lock);
    p->open--;
    pool_queue_give_slot_locked(p, w);
    pthread_mutex_unlock(&p->lock);
}

/* The database cannot be reached: every waiter fails fast, and new queries fail fast until
 * the back-off passes. */
void pool_conn_connect_failed(pool_worker_t *w, pool_conn_t *c, const char *why)
{
    pool_t *p = w->pool;
    pool_query_t *q = c->connect_for;
    char message[256];
    const char *detail = c->libpq ? PQerrorMessage(c->libpq) : "";
    snprintf(message, sizeof message, "database unavailable: %s%s%.*s", why, *detail ? ": " : "",
             (int)strcspn(detail, "\n"), detail);
    log_warn("%s", message);
    /* The address may have changed (a failover, a container started again): look it up anew,
     * off the loops.  A lookup that has not finished is not asked twice. */
    if (p->resolver && c->libpq) resolver_refresh(p->resolver);
    pool_conn_destroy(w, c);
    pthread_mutex_lock(&p->lock);
    p->open--;
    p->connect_errors++;
    p->failing = 1;
    p->last_failure_ms = w->loop->now_ms;
    while (p->wait_head)
        pool_queue_hand_locked(p, p->wait_head, NULL, POOL_ERR_UNAVAILABLE, w);
    pthread_mutex_unlock(&p->lock);
    if (q) pool_queue_deliver(q, NULL, POOL_ERR_UNAVAILABLE, message);
}

/* Every statement of other workers in flight on c fails with error, answered in its own
 * worker's thread. */
void pool_conn_fail_foreign(pool_worker_t *w, pool_conn_t *c, int error)
{
    pthread_mutex_lock(&w->pool->lock);
    for (unsigned i = 0; i < c->depth; i++) {
        pool_conn_entry_t *e = pool_conn_entry(c, i);
        pool_query_t *q = e->foreign ? e->q : NULL;
        if (!q) continue;
        e->q = NULL;
        pool_worker_t *wake = pool_queue_hand_answer_locked(q, NULL, error, w);
        if (wake) pool_queue_wake(wake);
    }
    pthread_mutex_unlock(&w->pool->lock);
}

/* The connection broke with statements in flight: each fails with POOL_ERR_CONNECTION (it was
 * sent, so it may have run); the connection closes and its slot goes to the oldest waiter. */
void pool_conn_broken(pool_worker_t *w, pool_conn_t *c)
{
    char message[256];
    snprintf(message, sizeof message, "database connection lost: %.*s",
             (int)strcspn(PQerrorMessage(c->libpq), "\n"), PQerrorMessage(c->libpq));
    pool_query_t *lost[POOL_MAX_PIPELINE_DEPTH];
    unsigned n = 0;
    for (unsigned i = 0; i < c->depth; i++)
        if (!pool_conn_entry(c, i)->foreign && pool_conn_entry(c, i)->q)
            lost[n++] = pool_conn_entry(c, i)->q;
    pool_conn_fail_foreign(w, c, POOL_ERR_CONNECTION);
    pool_conn_close_slot(w, c);
    for (unsigned i = 0; i < n; i++)
        pool_queue_deliver(lost[i], NULL, POOL_ERR_CONNECTION, message);
}

/* Runs q on c, which this worker holds.  On failure q is answered later (not sent: on a fresh
 * connection when c carries nothing else).  Returns 1 when q runs on c (c still held). */
int pool_conn_run(pool_worker_t *w, pool_conn_t *c, pool_query_t *q)
{
    c->worker = w;
    c->state = POOL_CONN_BUSY;
    active_add(w, c);
    int e = pool_conn_send(w, c, q);
    if (!e) return 1;
    if (c->depth == 0 && c->handed == 0 && e == POOL_ERR_NOT_SENT) {
        /* Nothing reached the server: a fresh connection may run it.  Keep the slot. */
        pool_conn_destroy(w, c);
        pool_conn_start_connect(w, q);
        return 0;
    }
    pool_queue_defer_error(w, q, e);
    if (c->depth == 0 && c->handed == 0) pool_conn_release(w, c);
    return 0;
}

/* Sends on c, which w drives, the oldest waiters of the FIFO while they are cheap and c has
 * room, whichever worker submitted them (another worker's answer goes back to its thread), in
 * FIFO order.  Returns how many were sent. */
static unsigned pool_conn_take_waiters(pool_worker_t *w, pool_conn_t *c)
{
    pool_t *p = w->pool;
    pool_query_t *own[POOL_MAX_PIPELINE_DEPTH];
    unsigned n_own = 0, sent = 0;
    /* p->wait_head is read under the lock only: other workers change it (ThreadSanitizer). */
    pthread_mutex_lock(&p->lock);
    while (p->wait_head && !pool_queue_is_alone(p, p->wait_head) && !c->broken &&
           c->depth < p->config.pipeline_depth && !p->shutting_down) {
        pool_query_t *q = p->wait_head;
        pool_queue_remove_locked(p, q);
        pool_queue_record_wait_locked(p, pool_elapsed_ms(w->loop->now_ms, q->submit_ms));
        q->state = POOL_QUERY_HANDED;
        if (q->worker == w) own[n_own++] = q;
        int last = pool_queue_is_last(p, q);
        int e = pool_conn_queue(w, c, q, 0);
        if (e) {
            pool_queue_hand_locked(p, q, NULL, e, w); /* answered in its worker's next tick */
            break;
        }
        sent++;
        if (last) break;
    }
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < n_own; i++)
        pool_queue_local_remove(w, own[i]);
    if (sent) {
        c->worker = w;
        active_add(w, c);
        pool_conn_flush(w, c);
    }
    return sent;
}

/* Sends waiters on c behind the statements in flight, when c may take more. */
void pool_conn_top_up(pool_worker_t *w, pool_conn_t *c)
{
    /* The count is a hint read without the lock: a waiter it misses wakes this worker
     * (take_wanted) or is taken at the next answer. */
    if (__atomic_load_n(&w->pool->waiting, __ATOMIC_RELAXED) &&
        pool_conn_can_join(w->pool, c, w->loop->now_ms))
        pool_conn_take_waiters(w, c);
}

/* Returns a connection that carries nothing: it stays with w when the oldest waiter is cheap
 * (w sends it and the cheap ones behind it, whichever worker they came from: passing the
 * connection to another thread would leave it idle until that thread wakes), else it goes
 * to the oldest waiter, to the idle stack, or (broken) closed.  Returns 1 when w still drives
 * c. */
int pool_conn_release(pool_worker_t *w, pool_conn_t *c)
{
    pool_t *p = w->pool;
    c->exclusive = 0;
    c->closed_tail = 0;
    if (c->broken || PQstatus(c->libpq) != CONNECTION_OK ||
        PQtransactionStatus(c->libpq) != PQTRANS_IDLE) {
        pool_conn_close_slot(w, c);
        return 0;
    }
    if (p->config.pipeline_depth > 0 && c->cancel.state == POOL_CANCEL_NONE && c->handed == 0 &&
        __atomic_load_n(&p->waiting, __ATOMIC_RELAXED) && pool_conn_take_waiters(w, c))
        return 1;
    /* A statement with a sync point of its own went out at once (libpq 15's PQpipelineSync
     * flushes) and may be answered within the turn that queued it: c can still be on w's list
     * of connections to flush, which must not touch it once it belongs to the idle stack or
     * to another worker. */
    pool_conn_flush_unlink(c);
    loop_io_stop(w->loop, &c->io);
    active_remove(c);
    pthread_mutex_lock(&p->lock);
    if (p->wait_head && !p->shutting_down) {
        c->state = POOL_CONN_BUSY;
        c->handed = pool_queue_hand_conn_locked(p, c, w);
    } else {
        c->state = POOL_CONN_IDLE;
        c->worker = NULL;
        c->idle_since_ms = w->loop->now_ms;
        c->next = p->idle;
        p->idle = c;
        p->idle_count++;
    }
    pthread_mutex_unlock(&p->lock);
    return 0;
}

static void pool_conn_connected(pool_worker_t *w, pool_conn_t *c)
{
    pool_t *p = w->pool;
    PQsetnonblocking(c->libpq, 1);
    if (p->config.pipeline_depth > 0 && !PQenterPipelineMode(c->libpq)) {
        pool_conn_connect_failed(w, c, "cannot enter pipeline mode");
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->failing = 0;
    p->connections_opened++;
    pthread_mutex_unlock(&p->lock);
    pool_query_t *q = c->connect_for;
    c->connect_for = NULL;
    if (pool_conn_watch(w, c, EPOLLIN) < 0) {
        pool_conn_connect_failed(w, c, "cannot watch socket");
        return;
    }
    c->state = POOL_CONN_BUSY;
    if (q) {
        if (pool_conn_run(w, c, q)) pool_conn_top_up(w, c);
    } else {
        pool_conn_release(w, c); /* the query was cancelled while connecting */
    }
}

static void pool_conn_on_io(loop_io_t *io, uint32_t events)
{
    pool_conn_t *c = io->user;
    pool_worker_t *w = c->worker;
    if (c->state == POOL_CONN_CONNECTING) {
        PostgresPollingStatusType st = PQconnectPoll(c->libpq);
        if (st == PGRES_POLLING_FAILED) {
            pool_conn_connect_failed(w, c, "connect failed");
            return;
        }
        if (st == PGRES_POLLING_OK) {
            pool_conn_connected(w, c);
            return;
        }
        /* The socket may change between attempts (several addresses), so watch afresh. */
        loop_io_stop(w->loop, &c->io);
        if (pool_conn_watch(w, c, st == PGRES_POLLING_READING ? EPOLLIN : EPOLLOUT) < 0)
            pool_conn_connect_failed(w, c, "cannot watch socket");
        return;
    }
    if (events & EPOLLOUT) {
        int f = PQflush(c->libpq);
        if (f < 0) {
            pool_conn_read(w, c); /* reports the broken connection */
            return;
        }
        if (f == 0) loop_io_modify(w->loop, &c->io, EPOLLIN);
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) pool_conn_read(w, c);
}

int pool_conn_watch(pool_worker_t *w, pool_conn_t *c, uint32_t events)
{
    int fd = PQsocket(c->libpq);
    if (fd < 0) return -1;
    if (c->io.fd >= 0) return loop_io_modify(w->loop, &c->io, events);
    return loop_io_start(w->loop, &c->io, fd, events, pool_conn_on_io, c);
}

static pool_conn_t *pool_conn_new(pool_t *p)
{
    pool_conn_t *c = xcalloc(1, sizeof *c);
    c->pool = p;
    c->io.fd = -1;
    pool_cancel_req_init(&c->cancel, cancel_on_done, c);
    return c;
}

/* Opens a new connection for q in w; the slot (p->open) is already counted.  libpq gets the
 * addresses of DB_HOST the resolver found (as hostaddr, beside host), so it never looks a name
 * up on this thread; while the resolver has none, the attempt fails at once (the database is
 * unavailable, with the reason). */
void pool_conn_start_connect(pool_worker_t *w, pool_query_t *q)
{
    pool_t *p = w->pool;
    pool_conn_t *c = pool_conn_new(p);
    c->worker = w;
    c->state = POOL_CONN_CONNECTING;
    c->connect_for = q;
    c->deadline_ms = w->loop->now_ms + p->config.connect_timeout_ms;
    q->state = POOL_QUERY_CONNECTING;
    q->conn = c;
    const char *values[10];
    char host[RESOLVER_LIST_MAX], hostaddr[RESOLVER_LIST_MAX], why[256] = "connect failed";
    memcpy(values, p->values, sizeof values);
    int known = !p->resolver ||
                resolver_get(p->resolver, host, hostaddr, sizeof host, why, sizeof why) == 0;
    if (known && p->resolver) {
        values[p->host_at] = host;
        values[p->addr_at] = hostaddr;
    }
    c->libpq = known ? PQconnectStartParams(p->keywords, values, 0) : NULL;
    if (c->libpq) pool_log_notices(c->libpq);
    active_add(w, c);
    if (!c->libpq || PQstatus(c->libpq) == CONNECTION_BAD || pool_conn_watch(w, c, EPOLLOUT) < 0) {
        c->connect_for = NULL;
        pool_conn_connect_failed(w, c, why);
        q->state = POOL_QUERY_NEW;
        pool_queue_defer_error(w, q, POOL_ERR_UNAVAILABLE);
    }
}

/* A connection idle for a while may have been closed by the server (restart, idle kill). */
int pool_conn_is_stale(pool_conn_t *c, uint64_t now_ms)
{
    if (pool_elapsed_ms(now_ms, c->idle_since_ms) < POOL_STALE_CHECK_MS) return 0;
    if (!PQconsumeInput(c->libpq) || PQstatus(c->libpq) != CONNECTION_OK) return 1;
    /* A message on an idle connection is an error notice before a close. */
    char byte;
    ssize_t n = recv(PQsocket(c->libpq), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) || PQisBusy(c->libpq);
}

/* The cancel request is over: c is released once nothing else holds it. */
void pool_conn_cancel_done(pool_worker_t *w, pool_conn_t *c)
{
    pool_conn_cancel_close(w, c);
    if (c->state == POOL_CONN_BUSY && c->depth == 0 && c->handed == 0) pool_conn_release(w, c);
}

static void cancel_on_done(pool_cancel_req_t *req)
{
    pool_conn_t *c = req->user;
    pool_conn_cancel_done(c->worker, c);
}

/* Asks PostgreSQL to cancel what c's backend runs.  Returns 0 when the request is on its way. */
int pool_conn_cancel_start(pool_worker_t *w, pool_conn_t *c)
{
    if (pool_cancel_req_start(&c->cancel, w->loop, c->libpq, w->pool->config.connect_timeout_ms) <
        0)
        return -1;
    __atomic_add_fetch(&w->pool->cancels, 1, __ATOMIC_RELAXED);
    return 0;
}

/* ---- a worker's connections -------------------------------------------------------------- */

void pool_conn_close_all(pool_worker_t *w)
{
    /* Connections still in use (the shutdown deadline passed) are closed; what their backends
     * still run is cancelled first (blocking is fine on the way out). */
    while (w->active) {
        pool_conn_t *c = w->active;
        if (c->state == POOL_CONN_BUSY && c->depth > 0) {
            PGcancel *pc = PQgetCancel(c->libpq);
            char err[128];
            if (pc) PQcancel(pc, err, sizeof err);
            PQfreeCancel(pc);
        }
        pool_conn_fail_foreign(w, c, POOL_ERR_CONNECTION);
        pool_conn_destroy(w, c);
        pthread_mutex_lock(&w->pool->lock);
        w->pool->open--;
        pthread_mutex_unlock(&w->pool->lock);
    }
}

void pool_conn_check_worker(pool_worker_t *w, uint64_t now_ms)
{
    /* Connections lost where no event reports it (pool_conn_check_lost): reported here.  Each
     * report calls back, which may change the list: the scan starts again after one. */
    w->lost_pending = 0;
    for (pool_conn_t *c = w->active; c;) {
        if (c->state == POOL_CONN_BUSY && c->handed == 0 && (c->lost || pool_conn_check_lost(c))) {
            pool_conn_broken(w, c);
            c = w->active;
            continue;
        }
        c = c->active_next;
    }
    /* Connect and cancel deadlines. */
    for (pool_conn_t *c = w->active, *next; c; c = next) {
        next = c->active_next;
        if (c->state == POOL_CONN_CONNECTING && now_ms >= c->deadline_ms) {
            pool_conn_connect_failed(w, c, "connect timed out");
            continue;
        }
        if (c->cancel.state != POOL_CANCEL_NONE && now_ms >= c->cancel.deadline_ms)
            pool_conn_cancel_done(w, c);
    }
}

void pool_conn_fail_running(pool_worker_t *w)
{
    for (pool_conn_t *c = w->active; c; c = c->active_next) {
        pool_query_t *q = c->connect_for;
        c->connect_for = NULL;
        if (q) pool_queue_deliver(q, NULL, POOL_ERR_SHUTDOWN, pool_strerror(POOL_ERR_SHUTDOWN));
        pool_conn_fail_foreign(w, c, POOL_ERR_CONNECTION);
        for (unsigned i = 0; i < c->depth; i++) {
            if (pool_conn_entry(c, i)->foreign) continue;
            q = pool_conn_entry(c, i)->q;
            pool_conn_entry(c, i)->q = NULL;
            if (q)
                pool_queue_deliver(
                    q, NULL, POOL_ERR_CONNECTION,
                    "server shutting down with the statement in flight: outcome unknown");
        }
    }
}

void pool_conn_reap_idle(pool_worker_t *w, uint64_t now_ms)
{
    pool_t *p = w->pool;
    /* Idle connections past their time, checked about once a second.  The idle stack holds
     * connections returned by every worker, each stamped by its own loop's clock, so an age
     * is never computed as negative (that would wrap and close a fresh connection). */
    if (now_ms < w->next_reap_ms) return;
    w->next_reap_ms = now_ms + 1000;
    pool_conn_t *expired = NULL;
    pthread_mutex_lock(&p->lock);
    for (pool_conn_t **pp = &p->idle; *pp;) {
        pool_conn_t *c = *pp;
        if (pool_elapsed_ms(now_ms, c->idle_since_ms) >= p->config.idle_timeout_ms) {
            *pp = c->next;
            c->next = expired;
            expired = c;
            p->idle_count--;
            p->open--;
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&p->lock);
    while (expired) {
        pool_conn_t *c = expired;
        expired = c->next;
        pool_conn_destroy(NULL, c);
    }
}
