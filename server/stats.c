/* stats.c: request counters per worker, and the /metrics page for the whole process. */
#include "stats.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "counter.h"
#include "log.h"
#include "metrics.h"
#include "server.h"

/* clang-format off */
static const char *const ROUTE_LABEL[ROUTE_COUNT] = {
#define ROUTE_LABEL_ENTRY(name, path, param) path param,
    ROUTE_MAP(ROUTE_LABEL_ENTRY)
#undef ROUTE_LABEL_ENTRY
    "unmatched",
};
/* clang-format on */
static const char *const METHOD_LABEL[METHOD_COUNT] = {"GET", "HEAD", "POST", "OTHER"};
/* Every status the server answers with (docs/api.md, HTTP API); the last slot, 0, counts
 * anything else as "other". */
static const int STATUS_LABEL[STATUS_LABELS] = {200, 201, 400, 404, 405, 408, 409, 413, 414,
                                                415, 422, 431, 500, 501, 503, 505, 0};
static const double DURATION_BOUNDS_MS[DURATION_BUCKETS] = {10,  50,   100,  200,
                                                            500, 1000, 2000, 5000};

static int status_index(int status)
{
    for (int i = 0; i < STATUS_LABELS - 1; i++)
        if (STATUS_LABEL[i] == status) return i;
    return STATUS_LABELS - 1;
}

void stats_record(worker_t *w, route_t route, enum method_label method, int status,
                  uint64_t duration_us)
{
    request_stats_t *st = &w->stats;
    counter_add(&st->requests[route][method][status_index(status)], 1);
    int b = 0;
    while (b < DURATION_BUCKETS && (double)duration_us > DURATION_BOUNDS_MS[b] * 1000.0)
        b++;
    if (b < DURATION_BUCKETS) counter_add(&st->duration_bucket[route][method][b], 1);
    counter_add(&st->duration_count[route][method], 1);
    counter_add(&st->duration_sum_us[route][method], duration_us);
}

/* The pool metrics (db_pool_*): one series per database instance, labelled db="primary",
 * db="replica1"... when the server has read replicas (DB_READ_HOSTS); without, one series with
 * no label, as before there were replicas. */
static const struct pool_counter {
    const char *name, *type, *help;
    size_t offset;   /* of the field in pool_stats_t */
    int is_unsigned; /* an unsigned field, else uint64_t */
} POOL_METRICS[] = {
#define PS(f) offsetof(pool_stats_t, f)
    {"db_pool_max_connections", "gauge",
     "Most database connections this process may open on the instance (DB_POOL_MAX).",
     PS(max_connections), 1},
    {"db_pool_waiting_requests", "gauge", "Requests waiting for a free database connection.",
     PS(waiting), 1},
    {"db_pool_acquire_timeouts_total", "counter",
     "Queries that waited longer than the acquire timeout (answered 503, or a read sent again on "
     "the primary).",
     PS(acquire_timeouts), 0},
    {"db_pool_connect_errors_total", "counter", "Failed attempts to open a database connection.",
     PS(connect_errors), 0},
    {"db_pool_connections_opened_total", "counter", "Database connections opened.",
     PS(connections_opened), 0},
    {"db_pool_pipeline_depth_max", "gauge",
     "Most statements in flight on one connection (DB_PIPELINE).", PS(pipeline_depth), 1},
    {"db_pool_statements_in_flight", "gauge",
     "Statements sent and not yet answered, all connections.", PS(in_flight), 1},
    {"db_pool_pipelined_statements_total", "counter",
     "Statements sent behind another on the same connection.", PS(pipelined), 0},
    {"db_pool_foreign_statements_total", "counter",
     "Statements sent on a connection another worker thread drives (the answer handed back to "
     "the submitting thread).",
     PS(foreign), 0},
    {"db_pool_statements_total", "counter",
     "Statements sent to the database (a resent one counts again).", PS(statements), 0},
    {"db_pool_sync_points_total", "counter",
     "Sync points sent in pipeline mode: the statements between two share one implicit "
     "transaction and one write.",
     PS(syncs), 0},
    {"db_pool_resent_statements_total", "counter",
     "Statements sent again because an earlier statement's error in their segment aborted them "
     "before they ran.",
     PS(resent), 0},
    {"db_pool_cancel_requests_total", "counter",
     "Cancel requests sent for statements whose client left.", PS(cancels), 0},
#undef PS
};

static void render_pools(server_t *s, buf_t *out)
{
    unsigned n = 1 + replicas_count(s->replicas);
    pool_stats_t ps[REPLICAS_MAX + 1];
    char db[REPLICAS_MAX + 1][32], labels[96];
    for (unsigned i = 0; i < n; i++) {
        pool_get_stats(replicas_pool(s->replicas, i), &ps[i]);
        if (n == 1)
            db[i][0] = 0;
        else
            snprintf(db[i], sizeof db[i], "db=\"%s\"", replicas_name(i));
    }
    for (size_t m = 0; m < sizeof POOL_METRICS / sizeof POOL_METRICS[0]; m++) {
        const struct pool_counter *pc = &POOL_METRICS[m];
        metrics_write_header(out, pc->name, pc->type, pc->help);
        for (unsigned i = 0; i < n; i++) {
            const char *field = (const char *)&ps[i] + pc->offset;
            uint64_t v;
            if (pc->is_unsigned) {
                unsigned u;
                memcpy(&u, field, sizeof u);
                v = u;
            } else {
                memcpy(&v, field, sizeof v);
            }
            metrics_write_u64(out, pc->name, db[i], v);
        }
        if (m == 0) { /* after the pool's size, its connections by state */
            metrics_write_header(out, "db_pool_connections", "gauge",
                                 "Database connections by state (busy includes connecting).");
            for (unsigned i = 0; i < n; i++) {
                snprintf(labels, sizeof labels, "%s%sstate=\"busy\"", db[i], n > 1 ? "," : "");
                metrics_write_u64(out, "db_pool_connections", labels, ps[i].busy);
                snprintf(labels, sizeof labels, "%s%sstate=\"idle\"", db[i], n > 1 ? "," : "");
                metrics_write_u64(out, "db_pool_connections", labels, ps[i].idle);
            }
        }
        if (m == 1) { /* after the waiters, how long they waited (in seconds, promtool's unit) */
            double bounds_seconds[POOL_WAIT_BUCKETS];
            for (int b = 0; b < POOL_WAIT_BUCKETS; b++)
                bounds_seconds[b] = POOL_WAIT_BUCKETS_MS[b] / 1000.0;
            metrics_write_header(out, "db_pool_acquire_wait_seconds", "histogram",
                                 "Time a query waited for a database connection, in seconds.");
            for (unsigned i = 0; i < n; i++)
                metrics_write_histogram(out, "db_pool_acquire_wait_seconds", db[i], bounds_seconds,
                                        ps[i].wait_bucket, POOL_WAIT_BUCKETS, ps[i].wait_count,
                                        ps[i].wait_sum_ms / 1000.0);
        }
    }
}

/* Each read replica's lag and whether it takes reads (DB_READ_HOSTS only). */
static void render_replicas(server_t *s, buf_t *out)
{
    unsigned n = replicas_count(s->replicas);
    if (!n) return;
    int64_t lag_ms[REPLICAS_MAX + 1], lag_bytes[REPLICAS_MAX + 1];
    int reads[REPLICAS_MAX + 1];
    char labels[32];
    for (unsigned i = 1; i <= n; i++)
        reads[i] = replicas_lag(s->replicas, i, &lag_ms[i], &lag_bytes[i]);
    metrics_write_header(out, "db_replica_reads", "gauge",
                         "1 while the read replica takes reads (up, lag within "
                         "DB_READ_MAX_LAG_MS), else 0.");
    for (unsigned i = 1; i <= n; i++) {
        snprintf(labels, sizeof labels, "db=\"%s\"", replicas_name(i));
        metrics_write_u64(out, "db_replica_reads", labels, (uint64_t)reads[i]);
    }
    metrics_write_header(out, "db_replica_lag_seconds", "gauge",
                         "The read replica's replay lag behind the primary, by WAL position, as "
                         "last measured (absent while unknown).");
    for (unsigned i = 1; i <= n; i++) {
        snprintf(labels, sizeof labels, "db=\"%s\"", replicas_name(i));
        if (lag_ms[i] >= 0)
            metrics_write_double(out, "db_replica_lag_seconds", labels, (double)lag_ms[i] / 1000.0);
    }
    metrics_write_header(out, "db_replica_lag_bytes", "gauge",
                         "WAL bytes the primary wrote that the read replica has not replayed, as "
                         "last measured (absent while unknown).");
    for (unsigned i = 1; i <= n; i++) {
        snprintf(labels, sizeof labels, "db=\"%s\"", replicas_name(i));
        if (lag_bytes[i] >= 0)
            metrics_write_u64(out, "db_replica_lag_bytes", labels, (uint64_t)lag_bytes[i]);
    }
}

void stats_render(server_t *s, buf_t *out)
{
    /* Sum the workers' counters. */
    static __thread request_stats_t total;
    memset(&total, 0, sizeof total);
    for (unsigned wi = 0; wi < s->worker_count; wi++) {
        request_stats_t *st = &s->workers[wi].stats;
        for (int r = 0; r < ROUTE_COUNT; r++)
            for (int m = 0; m < METHOD_COUNT; m++) {
                for (int k = 0; k < STATUS_LABELS; k++)
                    total.requests[r][m][k] += counter_get(&st->requests[r][m][k]);
                for (int b = 0; b < DURATION_BUCKETS; b++)
                    total.duration_bucket[r][m][b] += counter_get(&st->duration_bucket[r][m][b]);
                total.duration_count[r][m] += counter_get(&st->duration_count[r][m]);
                total.duration_sum_us[r][m] += counter_get(&st->duration_sum_us[r][m]);
            }
    }
    char labels[160];
    metrics_write_header(out, "http_requests_total", "counter", "HTTP requests answered.");
    for (int r = 0; r < ROUTE_COUNT; r++)
        for (int m = 0; m < METHOD_COUNT; m++)
            for (int k = 0; k < STATUS_LABELS; k++) {
                uint64_t n = total.requests[r][m][k];
                if (!n) continue;
                if (STATUS_LABEL[k])
                    snprintf(labels, sizeof labels, "method=\"%s\",route=\"%s\",status_code=\"%d\"",
                             METHOD_LABEL[m], ROUTE_LABEL[r], STATUS_LABEL[k]);
                else
                    snprintf(labels, sizeof labels,
                             "method=\"%s\",route=\"%s\",status_code=\"other\"", METHOD_LABEL[m],
                             ROUTE_LABEL[r]);
                metrics_write_u64(out, "http_requests_total", labels, n);
            }
    metrics_write_header(out, "http_request_duration_ms", "histogram",
                         "HTTP request duration in milliseconds, from a complete request head "
                         "to the response queued for writing.");
    for (int r = 0; r < ROUTE_COUNT; r++)
        for (int m = 0; m < METHOD_COUNT; m++) {
            if (!total.duration_count[r][m]) continue;
            uint64_t cumulative[DURATION_BUCKETS], running = 0;
            for (int b = 0; b < DURATION_BUCKETS; b++) {
                running += total.duration_bucket[r][m][b];
                cumulative[b] = running;
            }
            snprintf(labels, sizeof labels, "method=\"%s\",route=\"%s\"", METHOD_LABEL[m],
                     ROUTE_LABEL[r]);
            metrics_write_histogram(out, "http_request_duration_ms", labels, DURATION_BOUNDS_MS,
                                    cumulative, DURATION_BUCKETS, total.duration_count[r][m],
                                    (double)total.duration_sum_us[r][m] / 1000.0);
        }

    render_pools(s, out);
    render_replicas(s, out);

    metrics_write_single_u64(out, "http_connections_open", "gauge", "Open client connections.",
                             atomic_load(&s->connections));
    metrics_write_single_u64(out, "http_output_buffered_bytes", "gauge",
                             "Bytes of response buffers held for clients, all connections "
                             "(buffers over 4 KiB; OUTPUT_BUDGET_BYTES bounds it).",
                             atomic_load(&s->output_bytes));
    metrics_write_single_u64(out, "http_output_budget_bytes", "gauge",
                             "OUTPUT_BUDGET_BYTES: past it, connections with unsent output start "
                             "no new request.",
                             s->config.output_budget_bytes);
    metrics_write_single_u64(out, "http_output_budget_exceeded_total", "counter",
                             "Times the response bytes held for clients went over "
                             "OUTPUT_BUDGET_BYTES.",
                             atomic_load(&s->output_budget_hits));
    metrics_write_single_u64(out, "http_send_timeouts_total", "counter",
                             "Connections closed because their client took no bytes of a response "
                             "for HTTP_SEND_TIMEOUT_MS.",
                             atomic_load(&s->send_timeouts));
    metrics_write_single_u64(out, "log_lines_dropped_total", "counter",
                             "Log lines dropped because stderr was not read fast enough.",
                             log_lines_dropped());
    metrics_write_single_u64(out, "http_accept_paused_total", "counter",
                             "Times accepting paused because the process was out of file "
                             "descriptors (EMFILE, ENFILE) or kernel memory.",
                             atomic_load(&s->accept_pauses));
    metrics_write_header(out, "catalog_server_info", "gauge",
                         "Constant 1, labelled with this server's identity.");
    buf_t info = {0};
    buf_append_cstr(&info, "server_id=\"");
    metrics_escape_label(&info, s->config.server_id);
    buf_printf(&info, "\",workers=\"%u\",report_mode=\"%s\"", s->worker_count,
               s->config.report_rollup ? "rollup" : "live");
    buf_append_char(&info, 0);
    metrics_write_u64(out, "catalog_server_info", info.data, 1);
    buf_free(&info);

    metrics_process_t proc;
    metrics_read_process(&proc);
    metrics_write_process(out, &proc);
}
