/* stats.h: per-worker request counters (route, method, status, duration) and the /metrics page
 * they are rendered into with the rest of the process's metrics. */
#ifndef CATALOG_STATS_H
#define CATALOG_STATS_H

#include <stdint.h>

#include "buf.h"
#include "route_table.h"

typedef struct server server_t;
typedef struct worker worker_t;

#define STATUS_LABELS 17 /* the statuses server/stats.c names, and "other" */
#define DURATION_BUCKETS 8

/* Per-worker request counters: written only by the owning thread, read by /metrics. */
typedef struct request_stats {
    uint64_t requests[ROUTE_COUNT][METHOD_COUNT][STATUS_LABELS];
    uint64_t duration_bucket[ROUTE_COUNT][METHOD_COUNT][DURATION_BUCKETS]; /* not cumulative */
    uint64_t duration_count[ROUTE_COUNT][METHOD_COUNT];
    uint64_t duration_sum_us[ROUTE_COUNT][METHOD_COUNT];
    uint64_t connections_open;
} request_stats_t;

/* Counts one answered request in w's counters (w's own thread only). */
void stats_record(worker_t *w, route_t route, enum method_label method, int status,
                  uint64_t duration_us);
/* Renders /metrics for the whole process into out. */
void stats_render(server_t *s, buf_t *out);

#endif
