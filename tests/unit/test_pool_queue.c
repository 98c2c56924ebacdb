/* test_pool_queue.c: unit tests for the pool's scheduling layer (pool_queue.h) with workers that
 * are loops driven by hand and no PostgreSQL: waiters in one FIFO across workers, a connection
 * handed to the oldest waiter (with the cheap waiters of its worker behind it, up to the
 * pipeline depth), a free slot to the next waiter, each answer delivered in its own worker's
 * tick and never in another's, wakes through the eventfd, acquire timeouts, the back-off and
 * shutdown, and a worker thread woken by another thread's hand-off.  The connections handed
 * over are never driven here: a pool_conn_t is only carried by this layer. */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "pool.h"
#include "pool_queue.h"
#include "test.h"

static const pool_statement_t STATEMENTS[] = {
    {"cheap", "SELECT 1", POOL_SHARED},
    {"long", "SELECT pg_sleep(1)", POOL_ALONE},
};
enum { CHEAP = 0, LONG = 1 };

typedef struct answer {
    pool_query_t q;
    int calls, error, order;
    char message[96];
    pthread_t thread;
} answer_t;

static int answered;

/* What the layer hands over as a connection: never driven here, only carried. */
static max_align_t fake_conn;
#define FAKE_CONN ((pool_conn_t *)&fake_conn)

static void on_answer(pool_query_t *q, PGresult *res, int error, const char *message)
{
    answer_t *a = q->user;
    a->calls++;
    a->error = error;
    a->order = answered++;
    a->thread = pthread_self();
    snprintf(a->message, sizeof a->message, "%s", message);
}

/* A pool whose connections are all taken (as if busy on other queries), so every query waits. */
typedef struct fixture {
    pool_t *pool;
    loop_t loop[2];
    pool_worker_t *w[2];
} fixture_t;

static void setup(fixture_t *f, unsigned depth, unsigned acquire_timeout_ms)
{
    char err[128];
    pool_config_t config = {
        .dbname = "unused",
        .max_connections = 2,
        .acquire_timeout_ms = acquire_timeout_ms,
        .idle_timeout_ms = 60000,
        .connect_timeout_ms = 1000,
        .retry_backoff_ms = 1000,
        .pipeline_depth = depth,
        .statements = STATEMENTS,
        .statement_count = 2,
    };
    f->pool = pool_new(&config, err, sizeof err);
    CHECK(f->pool != NULL);
    for (int i = 0; i < 2; i++) {
        CHECK_INT(loop_init(&f->loop[i]), 0);
        f->loop[i].now_ms = 1000;
        f->w[i] = pool_worker_new(f->pool, &f->loop[i]);
        CHECK(f->w[i] != NULL);
    }
    pthread_mutex_lock(&f->pool->lock);
    f->pool->open = config.max_connections; /* every slot taken */
    pthread_mutex_unlock(&f->pool->lock);
}

static void teardown(fixture_t *f)
{
    for (int i = 0; i < 2; i++) {
        pool_worker_free(f->w[i]);
        loop_close(&f->loop[i]);
    }
    pool_free(f->pool);
}

static int submit(pool_worker_t *w, answer_t *a, unsigned statement)
{
    memset(a, 0, sizeof *a);
    a->q.statement = statement;
    a->q.fn = on_answer;
    a->q.user = a;
    return pool_submit(w, &a->q);
}

/* How many wakes are pending on w's eventfd (and clears them). */
static uint64_t wakes(pool_worker_t *w)
{
    uint64_t count = 0;
    if (read(w->event_fd, &count, sizeof count) != (ssize_t)sizeof count) return 0;
    return count;
}

static unsigned inbox_length(pool_query_t *q)
{
    unsigned n = 0;
    for (; q; q = q->inbox_next)
        n++;
    return n;
}

/* Waiters of both workers queue in one FIFO in submit order; a connection given back goes to
 * the oldest, a free slot to the next, and each lands in its own worker's inbox, waking it
 * once. */
static void test_fifo_and_inboxes(void)
{
    fixture_t f;
    setup(&f, 0, 5000);
    pool_t *p = f.pool;
    answer_t a1, b1, a2;
    CHECK_INT(submit(f.w[0], &a1, CHEAP), 0);
    CHECK_INT(submit(f.w[1], &b1, CHEAP), 0);
    CHECK_INT(submit(f.w[0], &a2, CHEAP), 0);
    pool_stats_t st;
    pool_get_stats(p, &st);
    CHECK_INT(st.waiting, 3);
    CHECK(p->wait_head == &a1.q && a1.q.next == &b1.q && b1.q.next == &a2.q);
    CHECK(p->wait_tail == &a2.q);
    CHECK(f.w[0]->local_head == &a1.q && f.w[0]->local_tail == &a2.q);
    CHECK(f.w[1]->local_head == &b1.q);
    wakes(f.w[0]);
    wakes(f.w[1]);

    /* A connection comes back (released by worker 1's thread, 30 ms after the submits). */
    pool_conn_t *conn = FAKE_CONN;
    f.loop[1].now_ms = 1030;
    pthread_mutex_lock(&p->lock);
    unsigned handed = pool_queue_hand_conn_locked(p, conn, f.w[1]);
    pool_queue_give_slot_locked(p, f.w[1]); /* and a slot came free */
    pthread_mutex_unlock(&p->lock);
    CHECK_INT(handed, 1); /* no pipeline: one query per connection */
    CHECK_INT(a1.q.state, POOL_QUERY_HANDED);
    CHECK(a1.q.conn == conn);
    CHECK_INT(b1.q.state, POOL_QUERY_HANDED); /* the next waiter gets the slot */
    CHECK(b1.q.conn == NULL && b1.q.handed_error == 0);
    CHECK_INT(p->open, 3);
    CHECK_INT(a2.q.state, POOL_QUERY_WAITING);
    CHECK(p->wait_head == &a2.q);
    pool_get_stats(p, &st);
    CHECK_INT(st.waiting, 1);
    /* Both waits (30 ms) counted: in the 50 ms bucket, not in the 25 ms one. */
    CHECK_INT(st.wait_count, 2);
    CHECK_INT(st.wait_bucket[3], 0);
    CHECK_INT(st.wait_bucket[4], 2);
    CHECK_INT(wakes(f.w[0]), 1); /* the other worker's inbox: woken */
    CHECK_INT(wakes(f.w[1]), 0); /* the releasing worker's own: it looks in its next tick */

    int take = -1;
    pool_query_t *in0 = pool_queue_take_inbox(f.w[0], &take);
    CHECK(in0 == &a1.q && inbox_length(in0) == 1);
    CHECK_INT(take, 0);
    pool_query_t *in1 = pool_queue_take_inbox(f.w[1], &take);
    CHECK(in1 == &b1.q && inbox_length(in1) == 1);
    CHECK(pool_queue_take_inbox(f.w[0], &take) == NULL); /* taken once */
    for (pool_query_t *q = in0; q; q = q->inbox_next)
        pool_queue_local_remove(f.w[0], q);
    pool_queue_local_remove(f.w[1], &b1.q);
    CHECK(f.w[0]->local_head == &a2.q && f.w[1]->local_head == NULL);
    CHECK_INT(a1.calls + b1.calls + a2.calls, 0); /* nothing answered by the layer itself */

    pool_cancel(&a2.q);
    pool_get_stats(p, &st);
    CHECK_INT(st.waiting, 0);
    CHECK(p->wait_head == NULL && p->wait_tail == NULL && f.w[0]->local_head == NULL);
    pool_shutdown(p);
    pool_worker_tick(f.w[0]);
    CHECK_INT(a2.calls, 0); /* cancelled: never called back */
    teardown(&f);
}

/* In pipeline mode a connection goes to the oldest waiter with up to depth - 1 further cheap
 * waiters of the same worker: never another worker's, never a POOL_ALONE one. */
static void test_hand_conn_pipeline(void)
{
    fixture_t f;
    setup(&f, 4, 5000);
    pool_t *p = f.pool;
    answer_t a[7];
    CHECK_INT(submit(f.w[0], &a[0], CHEAP), 0);
    CHECK_INT(submit(f.w[1], &a[1], CHEAP), 0); /* the other worker's */
    CHECK_INT(submit(f.w[0], &a[2], LONG), 0);  /* runs alone */
    for (int i = 3; i < 7; i++)
        CHECK_INT(submit(f.w[0], &a[i], CHEAP), 0);
    pool_conn_t *conn = FAKE_CONN;
    pthread_mutex_lock(&p->lock);
    unsigned handed = pool_queue_hand_conn_locked(p, conn, NULL);
    pthread_mutex_unlock(&p->lock);
    CHECK_INT(handed, 4);
    int want[7] = {1, 0, 0, 1, 1, 1, 0};
    for (int i = 0; i < 7; i++) {
        CHECK_INT(a[i].q.state == POOL_QUERY_HANDED, want[i]);
        CHECK_INT(a[i].q.conn == conn, want[i]);
    }
    CHECK(p->wait_head == &a[1].q && a[1].q.next == &a[2].q && a[2].q.next == &a[6].q);
    int take;
    pool_query_t *in = pool_queue_take_inbox(f.w[0], &take);
    CHECK(in == &a[0].q && inbox_length(in) == 4);
    CHECK(in && in->inbox_next == &a[3].q); /* in FIFO order */
    for (pool_query_t *q = in; q; q = q->inbox_next)
        pool_queue_local_remove(f.w[0], q);
    CHECK(f.w[0]->local_head == &a[2].q && a[2].q.local_next == &a[6].q);

    /* A POOL_ALONE waiter at the head takes the connection alone. */
    pthread_mutex_lock(&p->lock);
    pool_queue_remove_locked(p, &a[1].q);
    handed = pool_queue_hand_conn_locked(p, conn, NULL);
    pthread_mutex_unlock(&p->lock);
    pool_queue_local_remove(f.w[1], &a[1].q);
    CHECK_INT(handed, 1);
    CHECK_INT(a[2].q.state, POOL_QUERY_HANDED);
    CHECK_INT(a[6].q.state, POOL_QUERY_WAITING);
    in = pool_queue_take_inbox(f.w[0], &take);
    CHECK(in == &a[2].q && inbox_length(in) == 1);
    pool_queue_local_remove(f.w[0], &a[2].q);
    pool_cancel(&a[6].q);
    CHECK(f.w[0]->local_head == NULL && f.w[1]->local_head == NULL && p->wait_head == NULL);
    teardown(&f);
}

/* The first cheap waiter asks every other worker to look for a connection of its own that can
 * take it (one wake each); further waiters, and a POOL_ALONE one, ask nobody. */
static void test_take_wanted(void)
{
    fixture_t f;
    setup(&f, 4, 5000);
    answer_t a[3];
    wakes(f.w[0]);
    wakes(f.w[1]);
    CHECK_INT(submit(f.w[0], &a[0], CHEAP), 0);
    CHECK_INT(submit(f.w[0], &a[1], CHEAP), 0);
    CHECK_INT(wakes(f.w[1]), 1);
    CHECK_INT(wakes(f.w[0]), 0); /* not the submitter */
    int take = 0;
    CHECK(pool_queue_take_inbox(f.w[1], &take) == NULL);
    CHECK_INT(take, 1);
    CHECK(pool_queue_take_inbox(f.w[1], &take) == NULL);
    CHECK_INT(take, 0); /* asked once */
    pool_cancel(&a[0].q);
    pool_cancel(&a[1].q);
    CHECK_INT(submit(f.w[0], &a[2], LONG), 0);
    CHECK_INT(wakes(f.w[1]), 0);
    pool_cancel(&a[2].q);
    teardown(&f);
}

/* A waiter past the acquire timeout gets POOL_ERR_TIMEOUT in its worker's tick, a younger one
 * keeps waiting, and the tick comes back when the next one is due. */
static void test_acquire_timeout(void)
{
    fixture_t f;
    setup(&f, 0, 100);
    answer_t a1, a2;
    CHECK_INT(submit(f.w[0], &a1, CHEAP), 0);
    f.loop[0].now_ms = 1050;
    CHECK_INT(submit(f.w[0], &a2, CHEAP), 0);
    f.loop[0].now_ms = 1099;
    CHECK_INT(pool_worker_tick(f.w[0]), 1);
    CHECK_INT(a1.calls, 0);
    f.loop[0].now_ms = 1100;
    CHECK_INT(pool_worker_tick(f.w[0]), 50); /* a2 is due at 1150 */
    CHECK_INT(a1.calls, 1);
    CHECK_INT(a1.error, POOL_ERR_TIMEOUT);
    CHECK_INT(a2.calls, 0);
    pool_stats_t st;
    pool_get_stats(f.pool, &st);
    CHECK_INT(st.acquire_timeouts, 1);
    CHECK_INT(st.waiting, 1);
    CHECK_INT(st.wait_count, 0); /* a timeout is no wait that ended with a connection */
    f.loop[0].now_ms = 1150;
    pool_worker_tick(f.w[0]);
    CHECK_INT(a2.error, POOL_ERR_TIMEOUT);
    pool_get_stats(f.pool, &st);
    CHECK_INT(st.acquire_timeouts, 2);
    CHECK_INT(st.waiting, 0);
    teardown(&f);
}

/* Shutdown answers every waiter in its own worker's tick (FIFO order within a worker) and
 * never in another's; answers of statements that ran on another worker's connection come
 * back the same way, and so do deferred errors. */
static void test_answers_in_own_worker(void)
{
    fixture_t f;
    setup(&f, 0, 5000);
    pool_t *p = f.pool;
    answer_t a1, b1, a2, b2, c, d;
    CHECK_INT(submit(f.w[0], &a1, CHEAP), 0);
    CHECK_INT(submit(f.w[1], &b1, CHEAP), 0);
    CHECK_INT(submit(f.w[0], &a2, CHEAP), 0);
    /* b2 ran on a connection worker 0 drives and broke there (a foreign statement). */
    memset(&b2, 0, sizeof b2);
    b2.q.fn = on_answer;
    b2.q.user = &b2;
    b2.q.worker = f.w[1];
    b2.q.state = POOL_QUERY_FOREIGN;
    pthread_mutex_lock(&p->lock);
    pool_queue_foreign_add_locked(&b2.q);
    CHECK(f.w[1]->foreign_head == &b2.q);
    pool_worker_t *wake = pool_queue_hand_answer_locked(&b2.q, NULL, POOL_ERR_CONNECTION, f.w[0]);
    CHECK(f.w[1]->foreign_head == NULL);
    pthread_mutex_unlock(&p->lock);
    CHECK(wake == f.w[1]);
    /* A submit's immediate error is delivered from the tick, never from the submit. */
    memset(&c, 0, sizeof c);
    c.q.fn = on_answer;
    c.q.user = &c;
    c.q.worker = f.w[0];
    pool_queue_defer_error(f.w[0], &c.q, POOL_ERR_UNAVAILABLE);
    CHECK_INT(c.calls, 0);
    pool_shutdown(p);
    CHECK_INT(submit(f.w[0], &d, CHEAP), POOL_ERR_SHUTDOWN);
    pool_stats_t st;
    pool_get_stats(p, &st);
    CHECK_INT(st.waiting, 0);

    answered = 0;
    pool_worker_tick(f.w[0]);
    CHECK_INT(a1.calls + a2.calls + c.calls, 3);
    CHECK_INT(b1.calls + b2.calls, 0); /* worker 1's: not in worker 0's tick */
    CHECK_INT(a1.error, POOL_ERR_SHUTDOWN);
    CHECK_INT(a2.error, POOL_ERR_SHUTDOWN);
    CHECK(a1.order < a2.order);
    CHECK_INT(c.error, POOL_ERR_UNAVAILABLE);
    CHECK_STR(c.message, "database unavailable");
    pool_worker_tick(f.w[1]);
    CHECK_INT(b1.calls, 1);
    CHECK_INT(b1.error, POOL_ERR_SHUTDOWN);
    CHECK_STR(b1.message, "server shutting down");
    CHECK_INT(b2.calls, 1);
    CHECK_INT(b2.error, POOL_ERR_CONNECTION);
    CHECK_STR(b2.message, "database connection lost");
    CHECK_INT(d.calls, 0);
    pool_worker_tick(f.w[0]);
    pool_worker_tick(f.w[1]);
    CHECK_INT(a1.calls + a2.calls + b1.calls + b2.calls + c.calls, 5); /* each once */
    teardown(&f);
}

/* While the database refuses connections (the back-off after a failed connect) a query that
 * could open a connection fails at once; one that would wait anyway waits. */
static void test_backoff(void)
{
    fixture_t f;
    setup(&f, 0, 5000);
    pool_t *p = f.pool;
    pthread_mutex_lock(&p->lock);
    p->open = 1; /* one slot free */
    p->failing = 1;
    p->last_failure_ms = 1000;
    pthread_mutex_unlock(&p->lock);
    answer_t a, b;
    CHECK_INT(submit(f.w[0], &a, CHEAP), POOL_ERR_UNAVAILABLE);
    pool_stats_t st;
    pool_get_stats(p, &st);
    CHECK_INT(st.waiting, 0);
    CHECK_INT(p->open, 1); /* no slot taken */
    pthread_mutex_lock(&p->lock);
    p->open = 2;
    pthread_mutex_unlock(&p->lock);
    CHECK_INT(submit(f.w[0], &b, CHEAP), 0);
    pool_get_stats(p, &st);
    CHECK_INT(st.waiting, 1);
    pool_worker_tick(f.w[0]);
    CHECK_INT(a.calls + b.calls, 0);
    pool_cancel(&b.q);
    teardown(&f);
}

/* A query handed a slot and cancelled before its worker took it passes the slot on to the next
 * waiter; one handed an error is simply dropped from the inbox. */
static void test_cancel_handed(void)
{
    fixture_t f;
    setup(&f, 0, 5000);
    pool_t *p = f.pool;
    answer_t a1, b1;
    CHECK_INT(submit(f.w[0], &a1, CHEAP), 0);
    CHECK_INT(submit(f.w[1], &b1, CHEAP), 0);
    pthread_mutex_lock(&p->lock);
    pool_queue_give_slot_locked(p, NULL);
    pthread_mutex_unlock(&p->lock);
    CHECK_INT(p->open, 3);
    CHECK_INT(a1.q.state, POOL_QUERY_HANDED);
    pool_cancel(&a1.q);
    CHECK_INT(p->open, 3); /* the slot went on */
    CHECK_INT(b1.q.state, POOL_QUERY_HANDED);
    CHECK(b1.q.conn == NULL);
    int take;
    CHECK(pool_queue_take_inbox(f.w[0], &take) == NULL); /* a1 left worker 0's inbox */
    pool_queue_defer_error(f.w[0], &a1.q, POOL_ERR_NOT_SENT);
    pool_cancel(&a1.q);
    CHECK(f.w[0]->inbox_head == NULL && f.w[0]->inbox_tail == NULL);
    pool_cancel(&b1.q);
    CHECK_INT(p->open, 2); /* no waiter left: the slot is given back */
    pool_worker_tick(f.w[0]);
    pool_worker_tick(f.w[1]);
    CHECK_INT(a1.calls + b1.calls, 0);
    teardown(&f);
}

/* A worker thread asleep in its loop is woken by another thread's hand-off and answers the
 * query in its own thread. */
typedef struct sleeper {
    pool_worker_t *w;
    loop_t *loop;
    int dispatched;
} sleeper_t;

static void *sleeper_run(void *arg)
{
    sleeper_t *s = arg;
    s->dispatched = loop_run_once(s->loop, 10000);
    pool_worker_tick(s->w);
    return NULL;
}

static void test_wake_across_threads(void)
{
    fixture_t f;
    setup(&f, 0, 60000);
    answer_t b1;
    CHECK_INT(submit(f.w[1], &b1, CHEAP), 0);
    wakes(f.w[1]);
    sleeper_t s = {.w = f.w[1], .loop = &f.loop[1]};
    pthread_t thread;
    CHECK_INT(pthread_create(&thread, NULL, sleeper_run, &s), 0);
    pool_shutdown(f.pool); /* from this thread: b1 goes to worker 1's inbox */
    pthread_join(thread, NULL);
    CHECK_INT(s.dispatched, 1); /* woken by the eventfd, not by the 10 s timeout */
    CHECK_INT(b1.calls, 1);
    CHECK_INT(b1.error, POOL_ERR_SHUTDOWN);
    CHECK(pthread_equal(b1.thread, thread));
    teardown(&f);
}

int main(void)
{
    test_fifo_and_inboxes();
    test_hand_conn_pipeline();
    test_take_wanted();
    test_acquire_timeout();
    test_answers_in_own_worker();
    test_backoff();
    test_cancel_handed();
    test_wake_across_threads();
    return test_report("test_pool_queue");
}
