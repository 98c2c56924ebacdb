/* output_budget.h: OUTPUT_BUDGET_BYTES, the bound on the output buffers of all the process's
 * connections together, counted in server_t (server.output_bytes: the capacity of the output
 * buffers larger than IDLE_BUFFER_KEEP_BYTES, one atomic add when a buffer grows past that or
 * is released, so small responses never touch it); and freed output memory handed back. */
#ifndef CATALOG_OUTPUT_BUDGET_H
#define CATALOG_OUTPUT_BUDGET_H

#include <stddef.h>
#include <stdint.h>

typedef struct server server_t;

/* Buffers larger than this are released once empty, so idle connections stay small; only
 * those count against the budget. */
#define IDLE_BUFFER_KEEP_BYTES 4096

/* Brings s's count up to date with one connection's output buffer of capacity cap, *charged
 * being what it counts for that buffer now (0 at first): cap when larger than
 * IDLE_BUFFER_KEEP_BYTES, else 0.  No atomic operation unless that changes.  Passing the
 * budget logs once a minute at most (now_ms: the caller's loop clock). */
void output_budget_account(server_t *s, size_t *charged, size_t cap, uint64_t now_ms);
/* 1 while the buffers together are over OUTPUT_BUDGET_BYTES. */
int output_budget_over(const server_t *s);
/* Hands freed output memory back to the system (malloc_trim) once the output held for slow
 * clients has fallen to a quarter of a peak of at least half OUTPUT_BUDGET_BYTES; at most once
 * a second for the whole process.  Called every loop turn; costs two relaxed loads otherwise. */
void output_budget_trim(server_t *s, uint64_t now_ms);

#endif
