/* conn.h: a client connection: accept, read, parse, hand the request to the handlers, write,
 * timers, close (server/conn.c explains each phase and its timer). */
#ifndef CATALOG_CONN_H
#define CATALOG_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http_parse.h"
#include "http_write.h"
#include "loop.h"
#include "request.h"

typedef struct worker worker_t;
typedef struct conn conn_t;

/* A connection's phase in its lifecycle (server/conn.c explains each and its timer). */
enum conn_phase {
    CONN_IDLE,
    CONN_READING_HEAD,
    CONN_READING_BODY,
    CONN_WAITING_DB,
    CONN_WRITING,
    CONN_DRAINING,
    CONN_CLOSED
};
/* A worker's timer lists (lib/loop.h), one per timeout length: keep-alive, header
 * (HTTP_HEADER_TIMEOUT_MS), drain, send, and the listener's pause after EMFILE. */
enum timer_list {
    TIMER_KEEPALIVE,
    TIMER_HEADER,
    TIMER_DRAIN,
    TIMER_SEND,
    TIMER_ACCEPT,
    TIMER_LISTS
};

struct conn {
    loop_io_t io;     /* the client socket in the worker's loop */
    worker_t *worker; /* owner */
    buf_t in;         /* bytes read; in_start.. not yet handled */
    size_t in_start;  /* first byte of the next request in `in` */
    buf_t out;        /* response bytes; out_sent.. not yet written */
    size_t out_sent;
    size_t out_charged;          /* out.cap as counted in server.output_bytes (0 when small) */
    int out_paused;              /* over the output budget: no request read or started */
    int state;                   /* enum conn_phase, set by conn_settle (and closing, draining) */
    int rearm;                   /* the state's period restarts: its timer is set again */
    int busy;                    /* a request is being answered asynchronously (WAITING_DB) */
    int close_after_write;       /* the answer being written is the last one */
    int linger;                  /* ... after an error: drain the input before the close */
    int read_closed;             /* the client sent EOF (or half-closed) */
    int reading_body;            /* the head of the request being read is complete */
    int continue_sent;           /* "100 Continue" already sent for the request being read */
    uint64_t header_deadline_ms; /* for head and body: HTTP_HEADER_TIMEOUT_MS (0: none) */
    http_chunked_t chunked;      /* its chunked body, decoded in place as it arrives */
    uint64_t requests;           /* requests handled on this connection */
    size_t drained;              /* bytes discarded while DRAINING */
    req_t req;                   /* the request being answered */
    char peer[48];               /* client address for the access log */
    /* timers */
    loop_timer_t timer;            /* the state's one timer, in one of the worker's lists */
    conn_t *free_next;             /* in the worker's list of closed connections */
    conn_t *open_prev, *open_next; /* in the worker's list of open connections */
};

/* Adds the worker's timer lists to its loop (loop_timers_run fires them); once, before
 * conn_listen_start.  Cannot fail. */
void conn_timers_init(worker_t *w);
/* Starts watching the listener.  Returns 0, or -errno. */
int conn_listen_start(worker_t *w);
/* Accepts waiting connections on the listener (called by the worker's listen handle). */
void conn_accept(worker_t *w);
/* Closes a connection (cancelling its query); freed at the end of the loop turn. */
void conn_close(conn_t *c);
/* Shutdown handling, called from the worker loop. */
void conn_close_idle(worker_t *w);
/* Closes every connection, answered or not (the shutdown deadline passed). */
void conn_close_all(worker_t *w);
void conn_free_closed(worker_t *w);

#endif
