/* loop.c: a thin epoll event loop. */
#include "loop.h"

#include <errno.h>
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
