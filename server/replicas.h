/* replicas.h: reads spread over PostgreSQL hot standbys (DB_READ_HOSTS) and the primary: one
 * pool per instance, the choice of an instance for each read, the retry on the primary of a read
 * a replica could not run, and the monitor thread that keeps each replica's replay lag.
 *
 * Instance 0 is the primary: its pool is the server's own (writes, and everything that must see
 * its own write, go there directly with pool_submit).  Instances 1..n are the replicas, named
 * replica1, replica2... in the order of DB_READ_HOSTS; each has a pool of its own of the same
 * size (DB_POOL_MAX is what one server may hold on each instance).
 *
 * A replica takes reads while the monitor finds it up and its lag at most DB_READ_MAX_LAG_MS.
 * Lag is measured by WAL position: the monitor samples the primary's pg_current_wal_lsn() every
 * REPLICAS_CHECK_MS and keeps the samples; a replica whose pg_last_wal_replay_lsn() is R lags by
 * the time since the newest sample at or below R (0 when R has reached the primary's latest
 * sample), an upper bound of how long ago the primary wrote what the replica has not replayed.
 * (pg_last_xact_replay_timestamp() is not used: it keeps growing while the primary is idle.) */
#ifndef CATALOG_REPLICAS_H
#define CATALOG_REPLICAS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "loop.h"
#include "pool.h"

#define REPLICAS_MAX 8
/* How often the monitor samples the primary's WAL position and each replica's replay. */
#define REPLICAS_CHECK_MS 100

typedef struct replicas replicas_t;

/* A read in flight: where it runs, and the route's own callback and pointer, which the query
 * gets back before that callback runs.  The caller embeds it beside its pool_query_t and keeps
 * both alive together. */
typedef struct replicas_read {
    pool_result_fn fn;
    void *user;
    replicas_t *set;
    unsigned worker;   /* the submitting worker's index */
    unsigned instance; /* 0: the primary, 1..: a replica */
    int retried;       /* already sent again on the primary */
} replicas_read_t;

/* The replica addresses of a DB_READ_HOSTS value: "host:port,host:port" (a host alone takes
 * default_port; empty items are refused).  Writes up to REPLICAS_MAX into hosts/ports (each
 * string at most 255 bytes) and sets *count.  Returns 0, or -1 with a message naming
 * DB_READ_HOSTS in err. */
int replicas_parse_hosts(const char *list, const char *default_port, char hosts[][256],
                         char ports[][8], unsigned *count, char *err, size_t err_len);

/* The set for a server whose primary pool is primary (made from primary_config): one pool per
 * replica of read_hosts (copies of primary_config with the replica's host and port), for
 * worker_count workers.  With read_hosts empty there is no replica: every read goes to the
 * primary and nothing else runs.  Otherwise the monitor thread starts (application_name
 * monitor_name, its own connection to each instance, outside the pools).  read_primary 0: the
 * primary takes reads only when no replica can.  Returns NULL with a message in err. */
replicas_t *replicas_new(const char *read_hosts, int read_primary, unsigned max_lag_ms,
                         pool_t *primary, const pool_config_t *primary_config,
                         const char *monitor_name, unsigned worker_count, char *err,
                         size_t err_len);
/* Attaches worker index (running on loop, whose primary pool worker is primary_worker) to
 * every replica's pool.  Returns 0, or -1 (errno set) when a pool worker cannot be made. */
int replicas_worker_attach(replicas_t *set, unsigned index, loop_t *loop,
                           pool_worker_t *primary_worker);
/* pool_worker_tick of every pool of worker index, the primary's included, in an order that
 * sends this turn whatever one pool's callbacks submitted to another.  Returns ms until the next
 * call is due.  Worker thread only. */
int replicas_tick(replicas_t *set, unsigned index);
/* 1 while any of worker index's pool workers is busy (pool_worker_busy). */
int replicas_busy(replicas_t *set, unsigned index);
/* pool_shutdown of every replica pool (the primary's is the caller's). */
void replicas_shutdown(replicas_t *set);
/* Frees worker index's replica pool workers (not the primary's). */
void replicas_worker_free(replicas_t *set, unsigned index);
/* Stops the monitor thread (waiting up to wait_ms: it must not be inside libpq when the process
 * exits), frees the replica pools and the set.  Workers must be freed first.  Accepts NULL. */
void replicas_free(replicas_t *set, unsigned wait_ms);

/* Submits query q, a read, from worker index on the instance chosen for it: the next one in turn
 * of those that take reads now.  When a replica cannot run it (unreachable, its connection lost,
 * no connection within the acquire timeout, or cancelled by a conflict with recovery) before
 * anything was answered, it is sent once more on the primary.  Fills read, which must live as
 * long as q; q->fn and q->user are the route's and are theirs again when q->fn runs.  Returns
 * as pool_submit does (0, or an error: then q->fn is never called). */
int replicas_submit_read(replicas_t *set, unsigned index, replicas_read_t *read, pool_query_t *q);

/* Replicas configured (0 without DB_READ_HOSTS). */
unsigned replicas_count(const replicas_t *set);
/* Instance i's pool (0: the primary) and its name: "primary", "replica1"... */
pool_t *replicas_pool(const replicas_t *set, unsigned i);
const char *replicas_name(unsigned i);
/* Replica i's (1..count) lag as the monitor last measured it: *lag_ms and *lag_bytes, -1 when
 * unknown (down, not checked yet, or the primary could not be sampled).  Returns 1 when it takes
 * reads now, else 0.  Any thread. */
int replicas_lag(replicas_t *set, unsigned i, int64_t *lag_ms, int64_t *lag_bytes);
/* Appends /health's fields about the instances, after a comma: "reads" (the instances taking
 * reads now) and "replicas" (each one's address, state, and lag when known). */
void replicas_write_health(replicas_t *set, buf_t *out);

/* ---- pieces exposed for the unit tests -------------------------------------------------- */

/* The lag of a replay position: samples are the primary's (time in ms, WAL position), oldest
 * first, n of them; now_ms is the time of the replay reading.  0 when replay has reached the
 * newest sample; otherwise now_ms minus the time of the newest sample at or below replay, or
 * minus the oldest sample's time when every sample is above it.  -1 with no sample. */
int64_t replicas_lag_ms(const uint64_t *times_ms, const uint64_t *lsns, unsigned n,
                        uint64_t replay_lsn, uint64_t now_ms);

#endif
