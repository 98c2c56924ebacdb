/* stats.c: request counters per worker, and the /metrics page for the whole process. */
#include "stats.h"

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

    pool_stats_t ps;
    pool_get_stats(s->pool, &ps);
    metrics_write_single_u64(out, "db_pool_max_connections", "gauge",
                             "Most database connections this process may open (DB_POOL_MAX).",
                             ps.max_connections);
    metrics_write_header(out, "db_pool_connections", "gauge",
                         "Database connections by state (busy includes connecting).");
    metrics_write_u64(out, "db_pool_connections", "state=\"busy\"", ps.busy);
    metrics_write_u64(out, "db_pool_connections", "state=\"idle\"", ps.idle);
    metrics_write_single_u64(out, "db_pool_waiting_requests", "gauge",
                             "Requests waiting for a free database connection.", ps.waiting);
    /* Exported in seconds, the base unit promtool expects of a new metric. */
    double bounds_seconds[POOL_WAIT_BUCKETS];
    for (int i = 0; i < POOL_WAIT_BUCKETS; i++)
        bounds_seconds[i] = POOL_WAIT_BUCKETS_MS[i] / 1000.0;
    metrics_write_header(out, "db_pool_acquire_wait_seconds", "histogram",
                         "Time a query waited for a database connection, in seconds.");
    metrics_write_histogram(out, "db_pool_acquire_wait_seconds", "", bounds_seconds, ps.wait_bucket,
                            POOL_WAIT_BUCKETS, ps.wait_count, ps.wait_sum_ms / 1000.0);
    metrics_write_single_u64(out, "db_pool_acquire_timeouts_total", "counter",
                             "Queries that waited longer than the acquire timeout (answered 503).",
                             ps.acquire_timeouts);
    metrics_write_single_u64(out, "db_pool_connect_errors_total", "counter",
                             "Failed attempts to open a database connection.", ps.connect_errors);
    metrics_write_single_u64(out, "db_pool_connections_opened_total", "counter",
                             "Database connections opened.", ps.connections_opened);
    metrics_write_single_u64(out, "db_pool_pipeline_depth_max", "gauge",
                             "Most statements in flight on one connection (DB_PIPELINE).",
                             ps.pipeline_depth);
    metrics_write_single_u64(out, "db_pool_statements_in_flight", "gauge",
                             "Statements sent and not yet answered, all connections.",
                             ps.in_flight);
    metrics_write_single_u64(out, "db_pool_pipelined_statements_total", "counter",
                             "Statements sent behind another on the same connection.",
                             ps.pipelined);
    metrics_write_single_u64(out, "db_pool_foreign_statements_total", "counter",
                             "Statements sent on a connection another worker thread drives (the "
                             "answer handed back to the submitting thread).",
                             ps.foreign);
    metrics_write_single_u64(out, "db_pool_statements_total", "counter",
                             "Statements sent to the database (a resent one counts again).",
                             ps.statements);
    metrics_write_single_u64(out, "db_pool_sync_points_total", "counter",
                             "Sync points sent in pipeline mode: the statements between two share "
                             "one implicit transaction and one write.",
                             ps.syncs);
    metrics_write_single_u64(out, "db_pool_resent_statements_total", "counter",
                             "Statements sent again because an earlier statement's error in their "
                             "segment aborted them before they ran.",
                             ps.resent);
    metrics_write_single_u64(out, "db_pool_cancel_requests_total", "counter",
                             "Cancel requests sent for statements whose client left.", ps.cancels);

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
