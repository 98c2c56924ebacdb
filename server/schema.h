/* schema.h: the start-up check that the database has the schema this server needs (what
 * `catalog-db migrate` adds), read by /health/ready and POST /orders. */
#ifndef CATALOG_SCHEMA_H
#define CATALOG_SCHEMA_H

#include <stddef.h>

#include "server_config.h"

/* Starts a thread that connects to the database (one connection of its own, outside the pool,
 * application_name catalog-server-SERVER_ID-schema) and looks for every object the server
 * reads that `catalog-db migrate` creates.  When some are missing it logs one line naming them
 * and saying to run `catalog-db migrate`, then looks again every few seconds until they are
 * all there (and says so); then the thread ends.  While the database cannot be reached it
 * tries again, quietly (the pool reports the outage).  The thread inherits the caller's signal
 * mask.  Returns 0, or -1 when no thread can be started (then nothing is checked). */
int schema_check_start(const server_config_t *config);

/* Asks the check's thread to end and waits up to wait_ms until it has (it leaves any wait on
 * the database at once; a name lookup inside libpq is not interrupted).  Called before the
 * process exits: the exit handlers (OpenSSL's, under libpq) must not run while the thread is
 * inside libpq.  wait_ms 0: joined only when it has already ended.  Does nothing when no thread
 * was started, or the second time.  Main thread only. */
void schema_check_stop(unsigned wait_ms);

/* Writes what the last check found missing ("the database schema is older than this server:
 * missing ...; run catalog-db migrate") into out and returns 1; returns 0 (out untouched) when
 * nothing is missing or no check has finished yet.  Any thread. */
int schema_missing(char *out, size_t out_len);

/* 1 when the last check found what POST /orders with an Idempotency-Key needs missing (the
 * function place_order_with_key or its table): such orders are answered 503.  Any thread; one
 * relaxed atomic load. */
int schema_keyed_orders_missing(void);

#endif
