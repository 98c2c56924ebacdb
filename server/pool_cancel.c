/* pool_cancel.c: the pool's cancel request, written on a non-blocking socket. */
#include "pool_cancel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pool.h"

/* The start of libpq's PGcancel (struct pg_cancel in libpq-int.h, the same from PostgreSQL 12
 * to 17): the server address and the backend's key.  libpq 15 offers only PQcancel, which
 * blocks, so the request is written here on a non-blocking socket; the layout is trusted only
 * when the pid in it is the connection's own. */
struct libpq_cancel_head {
    struct {
        struct sockaddr_storage addr;
        socklen_t addr_len;
    } raddr; /* libpq's SockAddr, padded as a struct of its own */
    int be_pid;
    int be_key;
};

void pool_cancel_packet(unsigned char out[16], uint32_t backend_pid, uint32_t cancel_key)
{
    uint32_t words[4] = {htonl(16), htonl(80877102), htonl(backend_pid), htonl(cancel_key)};
    memcpy(out, words, sizeof words);
}

void pool_cancel_req_init(pool_cancel_req_t *req, pool_cancel_done_fn done, void *user)
{
    memset(req, 0, sizeof *req);
    req->state = POOL_CANCEL_NONE;
    req->io.fd = -1;
    req->done = done;
    req->user = user;
}

void pool_cancel_req_close(pool_cancel_req_t *req, loop_t *loop)
{
    if (req->io.fd >= 0) {
        int fd = req->io.fd;
        if (loop) loop_io_stop(loop, &req->io);
        close(fd);
        req->io.fd = -1;
    }
    req->state = POOL_CANCEL_NONE;
}

static void cancel_on_io(loop_io_t *io, uint32_t events)
{
    pool_cancel_req_t *req = io->user;
    if (req->state == POOL_CANCEL_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
            req->done(req);
            return;
        }
        PGcancel *pc = PQgetCancel(req->libpq);
        struct libpq_cancel_head h;
        if (!pc) {
            req->done(req);
            return;
        }
        memcpy(&h, pc, sizeof h);
        PQfreeCancel(pc);
        unsigned char packet[16];
        pool_cancel_packet(packet, (uint32_t)h.be_pid, (uint32_t)h.be_key);
        if (send(io->fd, packet, sizeof packet, MSG_NOSIGNAL) != (ssize_t)sizeof packet) {
            req->done(req);
            return;
        }
        req->state = POOL_CANCEL_SENT;
        loop_io_modify(req->loop, io, EPOLLIN);
        return;
    }
    /* PostgreSQL closes the request's connection once the backend has been signalled. */
    char byte[64];
    ssize_t n = recv(io->fd, byte, sizeof byte, 0);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) return;
    req->done(req);
}

int pool_cancel_req_start(pool_cancel_req_t *req, loop_t *loop, PGconn *libpq, unsigned timeout_ms)
{
    int version = PQlibVersion();
    if (version < 120000 || version >= 180000) return -1;
    PGcancel *pc = PQgetCancel(libpq);
    if (!pc) return -1;
    struct libpq_cancel_head h;
    memcpy(&h, pc, sizeof h);
    PQfreeCancel(pc);
    if (h.be_pid == 0 || h.be_pid != PQbackendPID(libpq) || h.raddr.addr_len == 0 ||
        h.raddr.addr_len > sizeof h.raddr.addr)
        return -1;
    int fd = socket(h.raddr.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (const struct sockaddr *)&h.raddr.addr, h.raddr.addr_len) < 0 &&
        errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    if (loop_io_start(loop, &req->io, fd, EPOLLOUT, cancel_on_io, req) < 0) {
        close(fd);
        return -1;
    }
    req->libpq = libpq;
    req->loop = loop;
    req->state = POOL_CANCEL_CONNECTING;
    req->deadline_ms = loop->now_ms + timeout_ms;
    return 0;
}
