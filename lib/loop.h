/* loop.h: a thin epoll event loop with deadline timers, one per thread; the caller owns every
 * handle. */
#ifndef CATALOG_LOOP_H
#define CATALOG_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>
#include <time.h>

typedef struct loop loop_t;
typedef struct loop_io loop_io_t;
typedef struct loop_timer loop_timer_t;
typedef struct loop_timer_list loop_timer_list_t;

/* Called with the epoll events (EPOLLIN, EPOLLOUT, EPOLLHUP, EPOLLERR...) that fired. */
typedef void (*loop_io_fn)(loop_io_t *io, uint32_t events);

/* A watched file descriptor.  Embedded in its owner (a connection, a pool connection...);
 * the owner finds itself from `user` or by container arithmetic. */
struct loop_io {
    int fd;          /* watched descriptor, -1 when not started */
    uint32_t events; /* the mask currently registered */
    loop_io_fn fn;   /* callback */
    void *user;      /* the owner's pointer */
};

/* Called by loop_timers_run when the timer's deadline has passed; the timer is already
 * stopped, so the callback may start it again (or any other timer). */
typedef void (*loop_timer_fn)(loop_timer_t *timer);

/* A deadline.  Embedded in its owner, like loop_io_t; armed in at most one list at a time. */
struct loop_timer {
    uint64_t deadline_ms;      /* on the loop's clock (now_ms), while armed */
    loop_timer_fn fn;          /* callback */
    void *user;                /* the owner's pointer */
    loop_timer_list_t *list;   /* the list it is armed in; NULL when stopped */
    loop_timer_t *prev, *next; /* neighbours in that list */
};

/* Timers kept sorted by deadline.  Give each period length a list of its own (keep-alive,
 * send, ...): a new deadline is then almost always the latest of its list, and arming a timer,
 * which inserts from the tail, is O(1).  Embedded in its owner, registered in one loop. */
struct loop_timer_list {
    loop_timer_t *head, *tail; /* earliest and latest deadline */
    loop_timer_list_t *next;   /* the loop's next list, in the order they were added */
};

struct loop {
    int epoll_fd;                   /* the epoll instance */
    uint64_t now_ms;                /* CLOCK_MONOTONIC in ms, refreshed after every wait */
    loop_timer_list_t *timer_lists; /* the first list added (loop_timer_list_init) */
};

/* Creates the epoll instance.  Returns 0, or -errno. */
int loop_init(loop_t *loop);
/* Closes the epoll instance.  Handles must already be stopped or their fds closed. */
void loop_close(loop_t *loop);

/* Starts watching fd for events (level-triggered).  Returns 0, or -errno (io stays stopped). */
int loop_io_start(loop_t *loop, loop_io_t *io, int fd, uint32_t events, loop_io_fn fn, void *user);
/* Changes the mask; a no-op when it is already registered.  Returns 0, or -errno. */
int loop_io_modify(loop_t *loop, loop_io_t *io, uint32_t events);
/* Stops watching (before the fd is closed, or to hand the fd to another loop).  Accepts a
 * stopped handle. */
void loop_io_stop(loop_t *loop, loop_io_t *io);

/* Waits up to timeout_ms (-1 forever) and dispatches the ready handles.  Returns the number
 * dispatched, 0 on timeout or EINTR, or -errno on failure. */
int loop_run_once(loop_t *loop, int timeout_ms);

/* Makes list empty and adds it to loop's lists, after those added before (loop_init empties
 * them).  Cannot fail. */
void loop_timer_list_init(loop_t *loop, loop_timer_list_t *list);
/* Prepares a stopped timer that will call fn.  Cannot fail. */
void loop_timer_init(loop_timer_t *timer, loop_timer_fn fn, void *user);
/* Arms timer in list for deadline_ms (absolute, on loop->now_ms's clock), stopping it first
 * wherever it was armed.  No allocation; O(1) when deadline_ms is the latest of the list.
 * Cannot fail. */
void loop_timer_start(loop_timer_list_t *list, loop_timer_t *timer, uint64_t deadline_ms);
/* Disarms timer.  Accepts a stopped timer. */
void loop_timer_stop(loop_timer_t *timer);
/* The milliseconds from loop->now_ms until the earliest deadline of any list (0 when one has
 * passed), at most cap_ms (-1: no cap, and -1 when no timer is armed): the timeout for
 * loop_run_once. */
int loop_timers_due_ms(const loop_t *loop, int cap_ms);
/* Stops and calls, list by list in the order the lists were added and each list in deadline
 * order, every timer whose deadline is at or before loop->now_ms, including those that its
 * callbacks arm with such a deadline in the list being run or a later one (an earlier list waits
 * for the next call).  Returns the number of callbacks made. */
unsigned loop_timers_run(loop_t *loop);

/* CLOCK_MONOTONIC now, in milliseconds and in nanoseconds. */
uint64_t loop_clock_ms(void);
uint64_t loop_clock_ns(void);

/* The time ms milliseconds from now on clock, as the absolute deadline that
 * pthread_cond_timedwait and pthread_timedjoin_np take.  Cannot fail. */
struct timespec loop_deadline_after(clockid_t clock, uint64_t ms);

#endif
