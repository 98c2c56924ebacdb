/* pool_queue.c: the pool's FIFO of waiters, the workers' inboxes and the hand-off between
 * worker threads. */
#include "pool_queue.h"

#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* ---- workers ---------------------------------------------------------------------------- */

static void worker_on_event(loop_io_t *io, uint32_t events)
{
    uint64_t count;
    ssize_t n = read(io->fd, &count, sizeof count);
    (void)n; /* the inbox itself is drained by pool_worker_tick */
}

int pool_queue_worker_start(pool_worker_t *w)
{
    pool_t *p = w->pool;
    w->event_io.fd = -1;
    w->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->event_fd < 0 ||
        loop_io_start(w->loop, &w->event_io, w->event_fd, EPOLLIN, worker_on_event, w) < 0) {
        if (w->event_fd >= 0) close(w->event_fd);
        return -1;
    }
    pthread_mutex_lock(&p->lock);
    w->next_worker = p->workers;
    p->workers = w;
    pthread_mutex_unlock(&p->lock);
    return 0;
}

void pool_queue_worker_stop(pool_worker_t *w)
{
    pthread_mutex_lock(&w->pool->lock);
    for (pool_worker_t **pp = &w->pool->workers; *pp; pp = &(*pp)->next_worker)
        if (*pp == w) {
            *pp = w->next_worker;
            break;
        }
    pthread_mutex_unlock(&w->pool->lock);
    loop_io_stop(w->loop, &w->event_io);
    close(w->event_fd);
}

/* ---- the FIFO and hand-off ---------------------------------------------------------------- */

int pool_queue_is_alone(const pool_t *p, const pool_query_t *q)
{
    return p->config.statements[q->statement].sharing == POOL_ALONE;
}

/* Nothing may be queued behind q's statement. */
int pool_queue_is_last(const pool_t *p, const pool_query_t *q)
{
    return p->config.statements[q->statement].sharing != POOL_SHARED;
}

void pool_queue_record_wait_locked(pool_t *p, uint64_t wait_ms)
{
    for (int i = 0; i < POOL_WAIT_BUCKETS; i++)
        if ((double)wait_ms <= POOL_WAIT_BUCKETS_MS[i]) p->wait_bucket[i]++;
    p->wait_bucket[POOL_WAIT_BUCKETS]++;
    p->wait_count++;
    p->wait_sum_ms += (double)wait_ms;
}

void pool_queue_remove_locked(pool_t *p, pool_query_t *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        p->wait_head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        p->wait_tail = q->prev;
    q->prev = q->next = NULL;
    __atomic_store_n(&p->waiting, p->waiting - 1, __ATOMIC_RELAXED);
}

void pool_queue_local_remove(pool_worker_t *w, pool_query_t *q)
{
    if (q->local_prev)
        q->local_prev->local_next = q->local_next;
    else if (w->local_head == q)
        w->local_head = q->local_next;
    else
        return; /* not in the list */
    if (q->local_next)
        q->local_next->local_prev = q->local_prev;
    else
        w->local_tail = q->local_prev;
    q->local_prev = q->local_next = NULL;
}

void pool_queue_wake(pool_worker_t *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->event_fd, &one, sizeof one);
    (void)n; /* EAGAIN means the counter is already non-zero: the worker will wake anyway */
}

/* Puts q in its worker's inbox; the worker takes it in pool_worker_tick.  Only the first
 * query into an empty inbox needs to wake the worker (it drains the whole inbox at once):
 * returns the worker to wake, or NULL. */
static pool_worker_t *inbox_push_locked(pool_query_t *q, pool_worker_t *current)
{
    pool_worker_t *w = q->worker;
    int was_empty = w->inbox_head == NULL;
    q->inbox_next = NULL;
    if (w->inbox_tail)
        w->inbox_tail->inbox_next = q;
    else
        w->inbox_head = q;
    w->inbox_tail = q;
    __atomic_store_n(&w->inbox_pending, 1, __ATOMIC_RELEASE);
    return w != current && was_empty ? w : NULL;
}

/* The list of a worker's queries in flight on other workers' connections (links prev/next,
 * free once a query left the FIFO). */
void pool_queue_foreign_add_locked(pool_query_t *q)
{
    pool_worker_t *w = q->worker;
    q->prev = NULL;
    q->next = w->foreign_head;
    if (w->foreign_head) w->foreign_head->prev = q;
    w->foreign_head = q;
}

void pool_queue_foreign_remove_locked(pool_query_t *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        q->worker->foreign_head = q->next;
    if (q->next) q->next->prev = q->prev;
    q->prev = q->next = NULL;
}

/* Hands q over to its worker with a connection (conn), a reserved slot to connect with
 * (conn NULL, error 0), or an error.  The worker finishes the job in pool_worker_tick. */
void pool_queue_hand_locked(pool_t *p, pool_query_t *q, pool_conn_t *conn, int error,
                            pool_worker_t *current)
{
    if (q->state == POOL_QUERY_WAITING) {
        pool_queue_remove_locked(p, q);
        if (!error) {
            /* Loops refresh their clocks at different moments: never count a negative wait. */
            uint64_t now = current ? current->loop->now_ms : loop_clock_ms();
            pool_queue_record_wait_locked(p, pool_elapsed_ms(now, q->submit_ms));
        }
    }
    q->state = POOL_QUERY_HANDED;
    q->conn = conn;
    q->handed_error = error;
    q->handed_done = 0;
    q->handed_result = NULL;
    pool_worker_t *wake = inbox_push_locked(q, current);
    if (wake) pool_queue_wake(wake);
}

/* q ran on a connection another worker drives: its answer (res, owned by q from now on, or
 * NULL) goes to q's worker, which calls back.  q leaves the list of its foreign queries.
 * Returns the worker to wake (pool_queue_wake, best after unlocking), or NULL. */
pool_worker_t *pool_queue_hand_answer_locked(pool_query_t *q, PGresult *res, int error,
                                             pool_worker_t *current)
{
    pool_queue_foreign_remove_locked(q);
    q->entry = NULL;
    q->state = POOL_QUERY_HANDED;
    q->conn = NULL;
    q->handed_error = error;
    q->handed_result = res;
    q->handed_done = 1;
    return inbox_push_locked(q, current);
}

/* Gives connection c to the oldest waiter, with up to depth - 1 further cheap waiters of the
 * same worker when the oldest is cheap too (they could not use c before it drains anyway). */
unsigned pool_queue_hand_conn_locked(pool_t *p, pool_conn_t *c, pool_worker_t *current)
{
    pool_query_t *first = p->wait_head;
    pool_worker_t *to = first->worker;
    int cheap = p->config.pipeline_depth > 1 && !pool_queue_is_alone(p, first);
    unsigned handed = 1;
    pool_queue_hand_locked(p, first, c, 0, current);
    unsigned scanned = 0;
    for (pool_query_t *q = p->wait_head, *next;
         cheap && q && handed < p->config.pipeline_depth && scanned < 4 * p->config.pipeline_depth;
         q = next, scanned++) {
        next = q->next;
        if (q->worker == to && !pool_queue_is_alone(p, q)) {
            handed++;
            pool_queue_hand_locked(p, q, c, 0, current);
        }
    }
    return handed;
}

/* A connection slot came free (a connection closed): the oldest waiter may open a new one. */
void pool_queue_give_slot_locked(pool_t *p, pool_worker_t *current)
{
    if (p->wait_head && !p->shutting_down) {
        p->open++;
        pool_queue_hand_locked(p, p->wait_head, NULL, 0, current);
    }
}

void pool_queue_deliver(pool_query_t *q, PGresult *res, int error, const char *message)
{
    q->state = POOL_QUERY_DONE;
    q->conn = NULL;
    if (q->fn) q->fn(q, res, error, message);
}

/* Fails q later, from the worker's tick, so a submit never calls back synchronously. */
void pool_queue_defer_error(pool_worker_t *w, pool_query_t *q, int error)
{
    pthread_mutex_lock(&w->pool->lock);
    pool_queue_hand_locked(w->pool, q, NULL, error, w);
    pthread_mutex_unlock(&w->pool->lock);
}

void pool_queue_wait_unlock(pool_worker_t *w, pool_query_t *q, uint64_t now)
{
    pool_t *p = w->pool;
    q->state = POOL_QUERY_WAITING;
    q->prev = p->wait_tail;
    if (p->wait_tail)
        p->wait_tail->next = q;
    else
        p->wait_head = q;
    p->wait_tail = q;
    __atomic_store_n(&p->waiting, p->waiting + 1, __ATOMIC_RELAXED);
    /* The first cheap waiter: the other workers' connections may take it now rather than at
     * their next answer, which a worker that read answers within the last millisecond will
     * soon have (one wake per worker until it has looked). */
    pool_worker_t *wake[8];
    unsigned n_wake = 0;
    if (p->wait_head == q && p->config.pipeline_depth > 1 && !pool_queue_is_alone(p, q))
        for (pool_worker_t *o = p->workers; o; o = o->next_worker)
            if (o != w && !o->take_wanted &&
                pool_elapsed_ms(now, __atomic_load_n(&o->last_answer_ms, __ATOMIC_RELAXED)) >= 1) {
                o->take_wanted = 1;
                __atomic_store_n(&o->inbox_pending, 1, __ATOMIC_RELEASE);
                if (n_wake < sizeof wake / sizeof wake[0])
                    wake[n_wake++] = o;
                else
                    pool_queue_wake(o);
            }
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < n_wake; i++)
        pool_queue_wake(wake[i]); /* workers are freed only once all have stopped */
    q->local_prev = w->local_tail;
    if (w->local_tail)
        w->local_tail->local_next = q;
    else
        w->local_head = q;
    w->local_tail = q;
}

void pool_queue_expire(pool_worker_t *w, uint64_t now)
{
    pool_t *p = w->pool;
    /* Acquire timeouts: the local list is in submit order, so stop at the first young one. */
    while (w->local_head &&
           pool_elapsed_ms(now, w->local_head->submit_ms) >= p->config.acquire_timeout_ms) {
        pool_query_t *q = w->local_head;
        pthread_mutex_lock(&p->lock);
        int waiting = q->state == POOL_QUERY_WAITING;
        if (waiting) {
            pool_queue_remove_locked(p, q);
            p->acquire_timeouts++;
        }
        pthread_mutex_unlock(&p->lock);
        pool_queue_local_remove(w, q);
        if (waiting)
            pool_queue_deliver(q, NULL, POOL_ERR_TIMEOUT, "timed out waiting for a connection");
    }
}

pool_query_t *pool_queue_take_inbox(pool_worker_t *w, int *take_wanted)
{
    pool_t *p = w->pool;
    *take_wanted = 0;
    /* Set under the lock before the pusher's wake-up: nothing to do when clear (no lock). */
    if (!__atomic_load_n(&w->inbox_pending, __ATOMIC_ACQUIRE)) return NULL;
    pthread_mutex_lock(&p->lock);
    __atomic_store_n(&w->inbox_pending, 0, __ATOMIC_RELAXED);
    pool_query_t *q = w->inbox_head;
    w->inbox_head = w->inbox_tail = NULL;
    *take_wanted = w->take_wanted;
    w->take_wanted = 0;
    pthread_mutex_unlock(&p->lock);
    return q;
}

void pool_queue_inbox_remove_locked(pool_worker_t *w, pool_query_t *q)
{
    pool_query_t **pp = &w->inbox_head, *prev = NULL;
    while (*pp && *pp != q) {
        prev = *pp;
        pp = &(*pp)->inbox_next;
    }
    if (*pp) {
        *pp = q->inbox_next;
        if (w->inbox_tail == q) w->inbox_tail = prev;
    }
}
