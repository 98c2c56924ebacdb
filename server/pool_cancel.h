/* pool_cancel.h: the pool's cancel request: asks PostgreSQL to cancel what one backend runs,
 * written on a non-blocking socket in a worker's loop (libpq 15 offers only PQcancel, which
 * blocks).  The pool sends one for a statement running alone whose client left (pool.h,
 * pool_cancel); its connection is released once PostgreSQL has taken the request. */
#ifndef CATALOG_POOL_CANCEL_H
#define CATALOG_POOL_CANCEL_H

#include <libpq-fe.h>
#include <stdint.h>

#include "loop.h"

enum pool_cancel_state {
    POOL_CANCEL_NONE = 0,   /* no request on its way */
    POOL_CANCEL_CONNECTING, /* connecting to the server */
    POOL_CANCEL_SENT,       /* written: waiting for the server to close the socket */
};

typedef struct pool_cancel_req pool_cancel_req_t;
/* Called once the request is over (taken by the server, or failed): the socket is still open;
 * the callee closes it with pool_cancel_req_close. */
typedef void (*pool_cancel_done_fn)(pool_cancel_req_t *req);

/* One cancel request, embedded in the connection whose backend it cancels. */
struct pool_cancel_req {
    enum pool_cancel_state state;
    loop_io_t io;         /* the request's socket (fd -1 when none) */
    loop_t *loop;         /* the loop it is watched in */
    uint64_t deadline_ms; /* a request not over by then is dropped (the caller checks) */
    PGconn *libpq;        /* the connection whose backend it cancels (its key is read again
                           * once connected) */
    pool_cancel_done_fn done;
    void *user; /* the caller's pointer */
};

/* Prepares req (no request on its way); done is called when a started request is over. */
void pool_cancel_req_init(pool_cancel_req_t *req, pool_cancel_done_fn done, void *user);
/* Starts a cancel request for what libpq's backend runs: connects without blocking to the
 * server libpq is connected to (libpq must outlive the request), in loop; the deadline is
 * timeout_ms from the loop's clock. Returns 0 when the request is on its way, -1 when it cannot be
 * sent (a libpq whose cancel layout is not known, no socket, connect refused at once): then nothing
 * is left open. */
int pool_cancel_req_start(pool_cancel_req_t *req, loop_t *loop, PGconn *libpq, unsigned timeout_ms);
/* Closes the request's socket, if any (stopping its watch when loop is not NULL); req is back
 * to POOL_CANCEL_NONE.  Safe to call repeatedly. */
void pool_cancel_req_close(pool_cancel_req_t *req, loop_t *loop);

#endif
