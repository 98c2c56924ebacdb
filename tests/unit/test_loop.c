/* test_loop.c: unit tests for lib/loop's timers: lists kept in deadline order, stop and restart
 * anywhere in a list, the next timeout, and which callbacks loop_timers_run makes, in what order.
 * No descriptor is watched: the timers need only the loop's clock, set by hand here. */
#include "loop.h"
#include "test.h"

/* A timer of the tests: its name, and where its callback records firings. */
typedef struct named_timer {
    loop_timer_t timer;
    char name;
} named_timer_t;

static char fired[64]; /* the names of the timers fired, in order */
static size_t fired_count;
static loop_timer_list_t *rearm_list; /* on_fire_rearm arms its timer again here ... */
static uint64_t rearm_deadline_ms;    /* ... for this deadline */
static loop_timer_t *stop_other;      /* on_fire_stop stops this timer */

static void on_fire(loop_timer_t *timer)
{
    named_timer_t *t = timer->user;
    if (fired_count < sizeof fired - 1) fired[fired_count++] = t->name;
    fired[fired_count] = 0;
}

static void on_fire_rearm(loop_timer_t *timer)
{
    on_fire(timer);
    CHECK(timer->list == NULL); /* stopped before its callback */
    loop_timer_start(rearm_list, timer, rearm_deadline_ms);
    rearm_list = NULL; /* once */
    timer->fn = on_fire;
}

static void on_fire_stop(loop_timer_t *timer)
{
    on_fire(timer);
    loop_timer_stop(stop_other);
}

static void reset_fired(void)
{
    fired[0] = 0;
    fired_count = 0;
}

static void name_timer(named_timer_t *t, char name)
{
    loop_timer_init(&t->timer, on_fire, t);
    t->name = name;
}

/* The names of list's timers from head to tail, checked against the links both ways. */
static const char *order_of(const loop_timer_list_t *list)
{
    static char names[64];
    size_t n = 0;
    const loop_timer_t *prev = NULL;
    for (const loop_timer_t *t = list->head; t && n < sizeof names - 1; prev = t, t = t->next) {
        CHECK(t->prev == prev);
        CHECK(t->list == list);
        if (prev) CHECK(prev->deadline_ms <= t->deadline_ms);
        names[n++] = ((const named_timer_t *)t->user)->name;
    }
    CHECK(list->tail == prev);
    names[n] = 0;
    return names;
}

/* A loop without an epoll instance: the timers never touch it. */
static loop_t timer_loop(uint64_t now_ms)
{
    return (loop_t){.epoll_fd = -1, .now_ms = now_ms, .timer_lists = NULL};
}

static void test_empty(void)
{
    loop_t loop = timer_loop(1000);
    CHECK_INT(loop_timers_due_ms(&loop, 1000), 1000);
    CHECK_INT(loop_timers_due_ms(&loop, -1), -1);
    CHECK_INT(loop_timers_run(&loop), 0);
    loop_timer_list_t list;
    loop_timer_list_init(&loop, &list);
    CHECK_INT(loop_timers_due_ms(&loop, 250), 250);
    CHECK_INT(loop_timers_run(&loop), 0);
    named_timer_t a;
    name_timer(&a, 'a');
    loop_timer_stop(&a.timer); /* a stopped timer: nothing happens */
    CHECK(a.timer.list == NULL);
    CHECK_STR(order_of(&list), "");
}

static void test_sorted_insert(void)
{
    loop_t loop = timer_loop(0);
    loop_timer_list_t list;
    loop_timer_list_init(&loop, &list);
    named_timer_t t[6];
    for (int i = 0; i < 6; i++)
        name_timer(&t[i], (char)('a' + i));
    loop_timer_start(&list, &t[0].timer, 100); /* in order: appended */
    loop_timer_start(&list, &t[1].timer, 200);
    loop_timer_start(&list, &t[2].timer, 300);
    CHECK_STR(order_of(&list), "abc");
    loop_timer_start(&list, &t[3].timer, 50); /* earlier than all: the new head */
    CHECK_STR(order_of(&list), "dabc");
    loop_timer_start(&list, &t[4].timer, 250); /* in the middle */
    CHECK_STR(order_of(&list), "dabec");
    loop_timer_start(&list, &t[5].timer, 200); /* equal deadlines keep the order armed */
    CHECK_STR(order_of(&list), "dabfec");
}

static void test_stop_and_restart(void)
{
    loop_t loop = timer_loop(0);
    loop_timer_list_t one, two;
    loop_timer_list_init(&loop, &one);
    loop_timer_list_init(&loop, &two);
    named_timer_t t[4];
    for (int i = 0; i < 4; i++) {
        name_timer(&t[i], (char)('a' + i));
        loop_timer_start(&one, &t[i].timer, 100 * (uint64_t)(i + 1));
    }
    CHECK_STR(order_of(&one), "abcd");
    loop_timer_stop(&t[1].timer); /* the middle */
    CHECK_STR(order_of(&one), "acd");
    loop_timer_stop(&t[0].timer); /* the head */
    CHECK_STR(order_of(&one), "cd");
    loop_timer_stop(&t[3].timer); /* the tail */
    CHECK_STR(order_of(&one), "c");
    CHECK(t[3].timer.list == NULL && t[3].timer.prev == NULL && t[3].timer.next == NULL);
    loop_timer_start(&one, &t[0].timer, 500);
    loop_timer_start(&one, &t[0].timer, 50); /* restarted: moved, not armed twice */
    CHECK_STR(order_of(&one), "ac");
    loop_timer_start(&two, &t[0].timer, 700); /* into another list: leaves the first */
    CHECK_STR(order_of(&one), "c");
    CHECK_STR(order_of(&two), "a");
    loop_timer_stop(&t[2].timer); /* the last of a list */
    CHECK(one.head == NULL && one.tail == NULL);
}

static void test_due_ms(void)
{
    loop_t loop = timer_loop(10000);
    loop_timer_list_t one, two;
    loop_timer_list_init(&loop, &one);
    loop_timer_list_init(&loop, &two);
    named_timer_t a, b;
    name_timer(&a, 'a');
    name_timer(&b, 'b');
    loop_timer_start(&one, &a.timer, 10700);
    loop_timer_start(&two, &b.timer, 10300);
    CHECK_INT(loop_timers_due_ms(&loop, 1000), 300); /* the earliest of every list */
    CHECK_INT(loop_timers_due_ms(&loop, 100), 100);  /* the cap */
    CHECK_INT(loop_timers_due_ms(&loop, -1), 300);   /* no cap */
    loop.now_ms = 10500;                             /* b is overdue */
    CHECK_INT(loop_timers_due_ms(&loop, 1000), 0);
    loop_timer_stop(&b.timer);
    CHECK_INT(loop_timers_due_ms(&loop, 1000), 200);
    loop_timer_start(&one, &a.timer, 10500 + 5000000000ull); /* beyond an int of ms */
    CHECK_INT(loop_timers_due_ms(&loop, -1), 2147483647);
}

static void test_run(void)
{
    loop_t loop = timer_loop(1000);
    loop_timer_list_t one, two;
    loop_timer_list_init(&loop, &one);
    loop_timer_list_init(&loop, &two);
    named_timer_t t[5];
    for (int i = 0; i < 5; i++)
        name_timer(&t[i], (char)('a' + i));
    loop_timer_start(&two, &t[0].timer, 900);  /* due, in the second list */
    loop_timer_start(&one, &t[1].timer, 1000); /* due exactly now */
    loop_timer_start(&one, &t[2].timer, 800);  /* due, earlier */
    loop_timer_start(&one, &t[3].timer, 1001); /* not yet */
    loop_timer_start(&two, &t[4].timer, 5000); /* not yet */
    reset_fired();
    /* the lists in the order they were added, each in deadline order */
    CHECK_INT(loop_timers_run(&loop), 3);
    CHECK_STR(fired, "cba");
    CHECK(t[0].timer.list == NULL && t[1].timer.list == NULL && t[2].timer.list == NULL);
    CHECK_STR(order_of(&one), "d");
    CHECK_STR(order_of(&two), "e");
    reset_fired();
    CHECK_INT(loop_timers_run(&loop), 0); /* nothing more is due */
    loop.now_ms = 1001;
    CHECK_INT(loop_timers_run(&loop), 1);
    CHECK_STR(fired, "d");
    CHECK_INT(loop_timers_due_ms(&loop, -1), 3999);
}

static void test_run_callbacks_arm_and_stop(void)
{
    loop_t loop = timer_loop(1000);
    loop_timer_list_t one, two;
    loop_timer_list_init(&loop, &one);
    loop_timer_list_init(&loop, &two);
    named_timer_t a, b, c;
    name_timer(&a, 'a');
    name_timer(&b, 'b');
    name_timer(&c, 'c');

    /* A callback that arms its timer again, due, in a later list: it fires again this run. */
    a.timer.fn = on_fire_rearm;
    rearm_list = &two;
    rearm_deadline_ms = 1000;
    loop_timer_start(&one, &a.timer, 1000);
    reset_fired();
    CHECK_INT(loop_timers_run(&loop), 2);
    CHECK_STR(fired, "aa");
    CHECK(a.timer.list == NULL);

    /* ... in the same list, due: the same. */
    a.timer.fn = on_fire_rearm;
    rearm_list = &one;
    rearm_deadline_ms = 990;
    loop_timer_start(&one, &a.timer, 999);
    reset_fired();
    CHECK_INT(loop_timers_run(&loop), 2);
    CHECK_STR(fired, "aa");

    /* ... in an earlier list: it waits for the next run. */
    a.timer.fn = on_fire_rearm;
    rearm_list = &one;
    rearm_deadline_ms = 1000;
    loop_timer_start(&two, &a.timer, 1000);
    reset_fired();
    CHECK_INT(loop_timers_run(&loop), 1);
    CHECK_STR(fired, "a");
    CHECK(a.timer.list == &one);
    reset_fired();
    CHECK_INT(loop_timers_run(&loop), 1);
    CHECK_STR(fired, "a");

    /* ... later than now: armed, not fired. */
    a.timer.fn = on_fire_rearm;
    rearm_list = &one;
    rearm_deadline_ms = 3000;
    loop_timer_start(&one, &a.timer, 1000);
    reset_fired();
    CHECK_INT(loop_timers_run(&loop), 1);
    CHECK(a.timer.list == &one && a.timer.deadline_ms == 3000);
    loop_timer_stop(&a.timer);

    /* A callback that stops another due timer: that one is not called. */
    b.timer.fn = on_fire_stop;
    stop_other = &c.timer;
    loop_timer_start(&one, &b.timer, 900);
    loop_timer_start(&one, &c.timer, 950);
    reset_fired();
    CHECK_INT(loop_timers_run(&loop), 1);
    CHECK_STR(fired, "b");
    CHECK(one.head == NULL && two.head == NULL);
}

int main(void)
{
    test_empty();
    test_sorted_insert();
    test_stop_and_restart();
    test_due_ms();
    test_run();
    test_run_callbacks_arm_and_stop();
    return test_report("test_loop");
}
