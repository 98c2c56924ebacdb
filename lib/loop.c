/* loop.c: a thin epoll event loop and its deadline timers. */
#include "loop.h"

#include <errno.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#define LOOP_BATCH 256

uint64_t loop_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t loop_clock_ms(void)
{
    return loop_clock_ns() / 1000000u;
}

struct timespec loop_deadline_after(clockid_t clock, uint64_t ms)
{
    struct timespec until;
    clock_gettime(clock, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    return until;
}

int loop_init(loop_t *loop)
{
    loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    loop->now_ms = loop_clock_ms();
    loop->timer_lists = NULL;
    return loop->epoll_fd < 0 ? -errno : 0;
}

void loop_close(loop_t *loop)
{
    if (loop->epoll_fd >= 0) close(loop->epoll_fd);
    loop->epoll_fd = -1;
}

int loop_io_start(loop_t *loop, loop_io_t *io, int fd, uint32_t events, loop_io_fn fn, void *user)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    io->fn = fn;
    io->user = user;
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        io->fd = -1;
        return -errno;
    }
    io->fd = fd;
    io->events = events;
    return 0;
}

int loop_io_modify(loop_t *loop, loop_io_t *io, uint32_t events)
{
    if (io->fd < 0) return -EBADF;
    if (io->events == events) return 0;
    struct epoll_event ev = {.events = events, .data.ptr = io};
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_MOD, io->fd, &ev) < 0) return -errno;
    io->events = events;
    return 0;
}

void loop_io_stop(loop_t *loop, loop_io_t *io)
{
    if (io->fd < 0) return;
    /* EBADF/ENOENT are fine: a closed fd has already left the epoll set. */
    epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, io->fd, NULL);
    io->fd = -1;
    io->events = 0;
}

int loop_run_once(loop_t *loop, int timeout_ms)
{
    struct epoll_event events[LOOP_BATCH];
    int n = epoll_wait(loop->epoll_fd, events, LOOP_BATCH, timeout_ms);
    loop->now_ms = loop_clock_ms();
    if (n < 0) return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        loop_io_t *io = events[i].data.ptr;
        /* A callback earlier in this batch may have stopped this handle. */
        if (io->fd < 0) continue;
        io->fn(io, events[i].events);
    }
    return n;
}

/* ---- timers: one sorted list per period length ---------------------------------------------- */

void loop_timer_list_init(loop_t *loop, loop_timer_list_t *list)
{
    list->head = list->tail = NULL;
    list->next = NULL;
    loop_timer_list_t **last = &loop->timer_lists;
    while (*last)
        last = &(*last)->next;
    *last = list;
}

void loop_timer_init(loop_timer_t *timer, loop_timer_fn fn, void *user)
{
    timer->deadline_ms = 0;
    timer->fn = fn;
    timer->user = user;
    timer->list = NULL;
    timer->prev = timer->next = NULL;
}

void loop_timer_stop(loop_timer_t *timer)
{
    loop_timer_list_t *list = timer->list;
    if (!list) return;
    if (timer->prev)
        timer->prev->next = timer->next;
    else
        list->head = timer->next;
    if (timer->next)
        timer->next->prev = timer->prev;
    else
        list->tail = timer->prev;
    timer->prev = timer->next = NULL;
    timer->list = NULL;
}

/* Inserts from the tail: after the last timer whose deadline is not later (equal deadlines keep
 * the order they were armed in). */
void loop_timer_start(loop_timer_list_t *list, loop_timer_t *timer, uint64_t deadline_ms)
{
    loop_timer_stop(timer);
    timer->list = list;
    timer->deadline_ms = deadline_ms;
    loop_timer_t *after = list->tail;
    while (after && after->deadline_ms > deadline_ms)
        after = after->prev;
    timer->prev = after;
    timer->next = after ? after->next : list->head;
    if (timer->next)
        timer->next->prev = timer;
    else
        list->tail = timer;
    if (after)
        after->next = timer;
    else
        list->head = timer;
}

int loop_timers_due_ms(const loop_t *loop, int cap_ms)
{
    int due = cap_ms;
    for (const loop_timer_list_t *list = loop->timer_lists; list; list = list->next) {
        if (!list->head) continue;
        int64_t in = (int64_t)list->head->deadline_ms - (int64_t)loop->now_ms;
        if (in < 0) in = 0;
        if (due < 0 || in < due) due = in > INT_MAX ? INT_MAX : (int)in;
    }
    return due;
}

unsigned loop_timers_run(loop_t *loop)
{
    unsigned fired = 0;
    for (loop_timer_list_t *list = loop->timer_lists; list; list = list->next) {
        while (list->head && list->head->deadline_ms <= loop->now_ms) {
            loop_timer_t *timer = list->head;
            loop_timer_stop(timer);
            timer->fn(timer);
            fired++;
        }
    }
    return fired;
}
