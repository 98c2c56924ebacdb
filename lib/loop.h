/* loop.h: a thin epoll event loop, one per thread; the caller owns every handle. */
#ifndef CATALOG_LOOP_H
#define CATALOG_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>
#include <time.h>

typedef struct loop loop_t;
typedef struct loop_io loop_io_t;

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

struct loop {
    int epoll_fd;    /* the epoll instance */
    uint64_t now_ms; /* CLOCK_MONOTONIC in ms, refreshed after every wait */
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

/* CLOCK_MONOTONIC now, in milliseconds and in nanoseconds. */
uint64_t loop_clock_ms(void);
uint64_t loop_clock_ns(void);

/* The time ms milliseconds from now on clock, as the absolute deadline that
 * pthread_cond_timedwait and pthread_timedjoin_np take.  Cannot fail. */
struct timespec loop_deadline_after(clockid_t clock, uint64_t ms);

#endif
