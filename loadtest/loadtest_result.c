/* loadtest_result.c: a load-test run's figures: verdict, summary text, JSON file, comparison. */
#include "loadtest_result.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "json.h"

void loadtest_latency_from_histogram(loadtest_latency_t *out, const histogram_t *histogram_ns)
{
    const double ns_per_ms = 1e6;
    out->avg_ms = histogram_mean(histogram_ns) / ns_per_ms;
    out->p50_ms = (double)histogram_percentile(histogram_ns, 50) / ns_per_ms;
    out->p90_ms = (double)histogram_percentile(histogram_ns, 90) / ns_per_ms;
    out->p99_ms = (double)histogram_percentile(histogram_ns, 99) / ns_per_ms;
    out->p999_ms = (double)histogram_percentile(histogram_ns, 99.9) / ns_per_ms;
    out->max_ms = (double)histogram_ns->max_value / ns_per_ms;
}

void loadtest_result_free(loadtest_result_t *r)
{
    if (!r) return;
    free(r->routes);
    free(r->servers);
    free(r->route_servers);
    memset(r, 0, sizeof(*r));
}

uint64_t loadtest_failures(const loadtest_result_t *r)
{
    return r->errors + r->timeouts + r->status_5xx + r->unfinished;
}

int loadtest_slo_check(const loadtest_result_t *r, int *p99_held, int *failures_held)
{
    int p99_ok =
        !r->slo_p99_set || (r->requests + r->unfinished > 0 && r->latency.p99_ms <= r->slo_p99_ms);
    int failures_ok = !r->slo_failures_set || loadtest_failures(r) <= r->slo_failures;
    if (p99_held) *p99_held = p99_ok;
    if (failures_held) *failures_held = failures_ok;
    return p99_ok && failures_ok;
}

loadtest_verdict_t loadtest_verdict_of(const loadtest_result_t *r)
{
    loadtest_verdict_t v = {0};
    uint64_t failures = loadtest_failures(r);
    double p99 = r->latency.p99_ms;
    if (r->requests == 0) {
        v.level = LOADTEST_RED;
        snprintf(v.reason, sizeof(v.reason), "no response at all, %" PRIu64 " failures", failures);
    } else if (p99 > LOADTEST_RED_P99_MS || failures > LOADTEST_RED_FAILURES) {
        v.level = LOADTEST_RED;
        int n = 0;
        if (p99 > LOADTEST_RED_P99_MS)
            n = snprintf(v.reason, sizeof(v.reason), "p99 %.1f ms > %.0f ms", p99,
                         LOADTEST_RED_P99_MS);
        if (failures > LOADTEST_RED_FAILURES && n >= 0 && (size_t)n < sizeof(v.reason))
            snprintf(v.reason + n, sizeof(v.reason) - (size_t)n,
                     "%s%" PRIu64 " failures > %d (errors %" PRIu64 ", timeouts %" PRIu64
                     ", 5xx %" PRIu64 ", unfinished %" PRIu64 ")",
                     n ? "; " : "", failures, LOADTEST_RED_FAILURES, r->errors, r->timeouts,
                     r->status_5xx, r->unfinished);
    } else if (p99 > LOADTEST_YELLOW_P99_MS) {
        v.level = LOADTEST_YELLOW;
        snprintf(v.reason, sizeof(v.reason), "p99 %.1f ms > %.0f ms", p99, LOADTEST_YELLOW_P99_MS);
    } else if (r->unfinished && r->unfinished_max_ms > LOADTEST_YELLOW_P99_MS) {
        /* A hung request is no green light, however few they are. */
        v.level = LOADTEST_YELLOW;
        snprintf(v.reason, sizeof(v.reason),
                 "%" PRIu64 " unfinished, one outstanding for %.1f ms > %.0f ms", r->unfinished,
                 r->unfinished_max_ms, LOADTEST_YELLOW_P99_MS);
    } else {
        v.level = LOADTEST_GREEN;
        snprintf(v.reason, sizeof(v.reason), "p99 %.1f ms <= %.0f ms, %" PRIu64 " failures <= %d",
                 p99, LOADTEST_YELLOW_P99_MS, failures, LOADTEST_RED_FAILURES);
    }
    static const char *const names[] = {"green", "yellow", "red"};
    /* The thresholds only: the load generator sees no CPU, so it cannot say which side ran
     * out or how much room is left (the lab's CPU line after each run does). */
    static const char *const headlines[] = {"p99 and failures within the thresholds",
                                            "past the yellow threshold", "past the red threshold"};
    v.name = names[v.level];
    v.headline = r->requests ? headlines[v.level] : "no answer: the target is down or unreachable";
    return v;
}

/* ---- Summary text ---------------------------------------------------------------------- */

static void write_tally_table(buf_t *out, const char *title, const loadtest_tally_t *tallies,
                              size_t count, uint64_t total_requests, int with_share)
{
    size_t width = strlen(title);
    for (size_t i = 0; i < count; i++) {
        size_t len = strlen(tallies[i].name);
        if (len > width) width = len;
    }
    if (width > 60) width = 60;
    buf_printf(out, "\n%-*s %10s %s %9s %9s %8s %8s %8s%s\n", (int)width + 2, title, "requests",
               with_share ? "  share" : "", "p50 ms", "p99 ms", "errors", "timeouts", "5xx",
               with_share ? "" : " unfinished");
    for (size_t i = 0; i < count; i++) {
        const loadtest_tally_t *t = &tallies[i];
        char share[16] = "", unfinished[24] = "";
        if (with_share)
            snprintf(share, sizeof(share), "%6.1f%%",
                     total_requests ? 100.0 * (double)t->requests / (double)total_requests : 0.0);
        else
            snprintf(unfinished, sizeof(unfinished), " %10" PRIu64, t->unfinished);
        buf_printf(
            out, "  %-*.*s %10" PRIu64 " %s %9.2f %9.2f %8" PRIu64 " %8" PRIu64 " %8" PRIu64 "%s\n",
            (int)width, (int)width, t->name, t->requests, share, t->latency.p50_ms,
            t->latency.p99_ms, t->errors, t->timeouts, t->status_5xx, unfinished);
    }
}

/* Each route's answers by server: where a route's latency comes from behind a balancer. */
static void write_route_server_table(buf_t *out, const loadtest_result_t *r)
{
    size_t route_width = strlen("By route and server"), server_width = strlen("server");
    for (size_t i = 0; i < r->route_count; i++)
        if (strlen(r->routes[i].name) > route_width) route_width = strlen(r->routes[i].name);
    for (size_t j = 0; j < r->server_count; j++)
        if (strlen(r->servers[j].name) > server_width) server_width = strlen(r->servers[j].name);
    if (route_width > 50) route_width = 50;
    if (server_width > 24) server_width = 24;
    buf_printf(out, "\n%-*s %-*s %10s %7s %9s %9s %8s\n", (int)route_width + 2,
               "By route and server", (int)server_width, "server", "requests", "share", "p50 ms",
               "p99 ms", "5xx");
    for (size_t i = 0; i < r->route_count; i++) {
        for (size_t j = 0; j < r->server_count; j++) {
            const loadtest_tally_t *t = &r->route_servers[i * r->server_count + j];
            uint64_t answered = r->routes[i].requests;
            buf_printf(out, "  %-*.*s %-*.*s %10" PRIu64 " %6.1f%% %9.2f %9.2f %8" PRIu64 "\n",
                       (int)route_width, (int)route_width, j ? "" : r->routes[i].name,
                       (int)server_width, (int)server_width, t->name, t->requests,
                       answered ? 100.0 * (double)t->requests / (double)answered : 0.0,
                       t->latency.p50_ms, t->latency.p99_ms, t->status_5xx);
        }
    }
}

void loadtest_summary_write(buf_t *out, const loadtest_result_t *r, int color)
{
    buf_printf(out, "Requests    %" PRIu64 " in %.2f s, %.1f requests/s\n", r->requests,
               r->duration_s, r->rps);
    buf_printf(out,
               "Errors      %" PRIu64 " (connect %" PRIu64 ", read %" PRIu64 ", write %" PRIu64
               ", protocol %" PRIu64 ")\n",
               r->errors, r->connect_errors, r->read_errors, r->write_errors, r->protocol_errors);
    buf_printf(out, "Timeouts    %" PRIu64 "\n", r->timeouts);
    buf_printf(out, "Non-2xx     %" PRIu64 "\n", r->non2xx);
    buf_printf(out, "5xx         %" PRIu64 "%s\n", r->status_5xx,
               r->status_5xx ? " (server errors: counted as failures in the verdict)" : "");
    if (r->unfinished)
        buf_printf(out,
                   "Unfinished  %" PRIu64 " (unanswered when the run ended, the oldest after "
                   "%.1f ms: failures, and in the latency at their elapsed time)\n",
                   r->unfinished, r->unfinished_max_ms);
    if (r->rate_rps > 0)
        buf_printf(out,
                   "Sends       %" PRIu64 " of %.0f due, %" PRIu64 " late (over 10 ms), %" PRIu64
                   " missed (due, never sent)%s\n",
                   r->sends, r->rate_rps * r->window_s, r->late_sends, r->missed_sends,
                   r->missed_sends ? ": the connections could not keep the rate" : "");
    const loadtest_latency_t *l = &r->latency;
    buf_printf(out,
               "Latency     avg %.2f ms, p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, "
               "max %.2f ms%s\n",
               l->avg_ms, l->p50_ms, l->p90_ms, l->p99_ms, l->p999_ms, l->max_ms,
               r->rate_rps > 0 ? " (from intended send times)" : "");
    if (r->route_count > 1 || (r->route_count == 1 && r->requests == 0))
        write_tally_table(out, "By route", r->routes, r->route_count, r->requests, 0);
    int has_server_ids = 0;
    for (size_t i = 0; i < r->server_count; i++)
        if (strcmp(r->servers[i].name, "(none)") != 0) has_server_ids = 1;
    if (has_server_ids) {
        write_tally_table(out, "By server (X-Server-Id)", r->servers, r->server_count, r->requests,
                          1);
        if (r->route_servers) write_route_server_table(out, r);
    }
    loadtest_verdict_t v = loadtest_verdict_of(r);
    static const char *const colors[] = {"\033[32m", "\033[33m", "\033[31m"};
    buf_printf(out, "\nVerdict: %s%s%s: %s (%s)\n", color ? colors[v.level] : "",
               v.level == LOADTEST_GREEN    ? "GREEN"
               : v.level == LOADTEST_YELLOW ? "YELLOW"
                                            : "RED",
               color ? "\033[0m" : "", v.headline, v.reason);
    buf_printf(out,
               "         thresholds: red when p99 > %.0f ms or more than %d failures "
               "(errors + timeouts + 5xx + unfinished); yellow when p99 > %.0f ms\n",
               LOADTEST_RED_P99_MS, LOADTEST_RED_FAILURES, LOADTEST_YELLOW_P99_MS);
    if (r->slo_p99_set || r->slo_failures_set) {
        int p99_held, failures_held;
        loadtest_slo_check(r, &p99_held, &failures_held);
        buf_append_cstr(out, "SLO:    ");
        if (r->slo_p99_set)
            buf_printf(out, " p99 %.1f ms <= %.1f ms: %s%s", r->latency.p99_ms, r->slo_p99_ms,
                       p99_held ? "held" : "BROKEN", r->slo_failures_set ? ";" : "");
        if (r->slo_failures_set)
            buf_printf(out, " failures %" PRIu64 " <= %" PRIu64 ": %s", loadtest_failures(r),
                       r->slo_failures, failures_held ? "held" : "BROKEN");
        buf_append_char(out, '\n');
    }
}

/* ---- JSON ------------------------------------------------------------------------------ */

static void write_latency_json(buf_t *out, const loadtest_latency_t *l)
{
    buf_printf(out,
               "{\"avg\": %.3f, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"p999\": %.3f, "
               "\"max\": %.3f}",
               l->avg_ms, l->p50_ms, l->p90_ms, l->p99_ms, l->p999_ms, l->max_ms);
}

static void write_tallies_json(buf_t *out, const loadtest_tally_t *tallies, size_t count)
{
    buf_append_char(out, '{');
    for (size_t i = 0; i < count; i++) {
        const loadtest_tally_t *t = &tallies[i];
        buf_append_cstr(out, i ? ",\n    " : "\n    ");
        json_write_cstr(out, t->name);
        buf_printf(out,
                   ": {\"requests\": %" PRIu64 ", \"errors\": %" PRIu64 ", \"timeouts\": %" PRIu64
                   ", \"non2xx\": %" PRIu64 ", \"status_5xx\": %" PRIu64
                   ", \"unfinished\": %" PRIu64 ", \"latency_ms\": ",
                   t->requests, t->errors, t->timeouts, t->non2xx, t->status_5xx, t->unfinished);
        write_latency_json(out, &t->latency);
        buf_append_char(out, '}');
    }
    buf_append_cstr(out, count ? "\n  }" : "}");
}

/* {"route": {"server": {tally}, ...}, ...}: each route's answers by server. */
static void write_route_servers_json(buf_t *out, const loadtest_result_t *r)
{
    buf_append_char(out, '{');
    for (size_t i = 0; r->route_servers && i < r->route_count; i++) {
        buf_append_cstr(out, i ? ",\n    " : "\n    ");
        json_write_cstr(out, r->routes[i].name);
        buf_append_cstr(out, ": {");
        for (size_t j = 0; j < r->server_count; j++) {
            const loadtest_tally_t *t = &r->route_servers[i * r->server_count + j];
            buf_append_cstr(out, j ? ",\n      " : "\n      ");
            json_write_cstr(out, t->name);
            buf_printf(out,
                       ": {\"requests\": %" PRIu64 ", \"non2xx\": %" PRIu64
                       ", \"status_5xx\": %" PRIu64 ", \"latency_ms\": ",
                       t->requests, t->non2xx, t->status_5xx);
            write_latency_json(out, &t->latency);
            buf_append_char(out, '}');
        }
        buf_append_cstr(out, "}");
    }
    buf_append_cstr(out, r->route_servers && r->route_count ? "\n  }" : "}");
}

void loadtest_result_write_json(buf_t *out, const loadtest_result_t *r)
{
    loadtest_verdict_t v = loadtest_verdict_of(r);
    buf_append_cstr(out, "{\n  \"kind\": \"run\",\n  \"label\": ");
    json_write_cstr(out, r->label);
    buf_append_cstr(out, ",\n  \"target\": ");
    json_write_cstr(out, r->target);
    buf_printf(out,
               ",\n  \"connections\": %u,\n  \"threads\": %u,\n  \"duration_s\": %.3f,\n"
               "  \"rate_rps\": %.3f,\n  \"keep_alive\": %s,\n",
               r->connections, r->threads, r->duration_s, r->rate_rps,
               r->keep_alive ? "true" : "false");
    buf_printf(out,
               "  \"requests\": %" PRIu64 ",\n  \"rps\": %.3f,\n  \"errors\": %" PRIu64 ",\n"
               "  \"errors_by_kind\": {\"connect\": %" PRIu64 ", \"read\": %" PRIu64
               ", \"write\": %" PRIu64 ", \"protocol\": %" PRIu64 "},\n"
               "  \"timeouts\": %" PRIu64 ",\n  \"non2xx\": %" PRIu64
               ",\n  \"status_5xx\": %" PRIu64 ",\n  \"failures\": %" PRIu64
               ",\n  \"unfinished\": %" PRIu64 ",\n  \"latency_ms\": ",
               r->requests, r->rps, r->errors, r->connect_errors, r->read_errors, r->write_errors,
               r->protocol_errors, r->timeouts, r->non2xx, r->status_5xx, loadtest_failures(r),
               r->unfinished);
    write_latency_json(out, &r->latency);
    buf_printf(out,
               ",\n  \"unfinished_max_ms\": %.3f,\n  \"sends\": %" PRIu64
               ",\n  \"late_sends\": %" PRIu64 ",\n  \"missed_sends\": %" PRIu64
               ",\n  \"latency_from_send_ms\": ",
               r->unfinished_max_ms, r->sends, r->late_sends, r->missed_sends);
    write_latency_json(out, &r->sent_latency);
    buf_append_cstr(out, ",\n  \"by_route\": ");
    write_tallies_json(out, r->routes, r->route_count);
    buf_append_cstr(out, ",\n  \"by_server\": ");
    write_tallies_json(out, r->servers, r->server_count);
    buf_append_cstr(out, ",\n  \"by_route_server\": ");
    write_route_servers_json(out, r);
    if (r->slo_p99_set || r->slo_failures_set) {
        int p99_held, failures_held;
        int held = loadtest_slo_check(r, &p99_held, &failures_held);
        buf_append_cstr(out, ",\n  \"slo\": {");
        if (r->slo_p99_set)
            buf_printf(out, "\"p99_ms\": %.3f, \"p99_held\": %s, ", r->slo_p99_ms,
                       p99_held ? "true" : "false");
        if (r->slo_failures_set)
            buf_printf(out, "\"failures\": %" PRIu64 ", \"failures_held\": %s, ", r->slo_failures,
                       failures_held ? "true" : "false");
        buf_printf(out, "\"held\": %s}", held ? "true" : "false");
    }
    buf_printf(out, ",\n  \"verdict\": {\"level\": \"%s\", \"message\": ", v.name);
    json_write_cstr(out, v.headline);
    buf_append_cstr(out, ", \"reason\": ");
    json_write_cstr(out, v.reason);
    buf_append_cstr(out, "},\n  \"first_error\": ");
    json_write_cstr(out, r->first_error);
    buf_append_cstr(out, "\n}\n");
}

static uint64_t get_u64(json_t *object, const char *key)
{
    json_t *value = json_object_get(object, key);
    if (json_is_integer(value) && json_integer_value(value) >= 0)
        return (uint64_t)json_integer_value(value);
    return json_is_real(value) && json_real_value(value) >= 0 ? (uint64_t)json_real_value(value)
                                                              : 0;
}

static double get_double(json_t *object, const char *key)
{
    json_t *value = json_object_get(object, key);
    return json_is_number(value) ? json_number_value(value) : 0;
}

static void get_string(json_t *object, const char *key, char *out, size_t out_len)
{
    const char *s = json_string_value(json_object_get(object, key));
    snprintf(out, out_len, "%s", s ? s : "");
}

static void read_latency(json_t *object, loadtest_latency_t *l)
{
    l->avg_ms = get_double(object, "avg");
    l->p50_ms = get_double(object, "p50");
    l->p90_ms = get_double(object, "p90");
    l->p99_ms = get_double(object, "p99");
    l->p999_ms = get_double(object, "p999");
    l->max_ms = get_double(object, "max");
}

static loadtest_tally_t *read_tallies(json_t *object, size_t *count)
{
    *count = json_is_object(object) ? json_object_size(object) : 0;
    if (*count == 0) return NULL;
    loadtest_tally_t *tallies = xcalloc(*count, sizeof(*tallies));
    size_t i = 0;
    const char *key;
    json_t *value;
    json_object_foreach(object, key, value)
    {
        loadtest_tally_t *t = &tallies[i++];
        snprintf(t->name, sizeof(t->name), "%s", key);
        t->requests = get_u64(value, "requests");
        t->errors = get_u64(value, "errors");
        t->timeouts = get_u64(value, "timeouts");
        t->non2xx = get_u64(value, "non2xx");
        t->status_5xx = get_u64(value, "status_5xx");
        t->unfinished = get_u64(value, "unfinished");
        read_latency(json_object_get(value, "latency_ms"), &t->latency);
    }
    return tallies;
}

int loadtest_result_read_json(const char *path, loadtest_result_t *out, char *err, size_t err_len)
{
    json_error_t error;
    json_t *root = json_load_file(path, 0, &error);
    if (!root) {
        return error_set(err, err_len, "%s: %s (line %d)", path, error.text, error.line);
    }
    const char *kind = json_string_value(json_object_get(root, "kind"));
    if (kind && strcmp(kind, "run") != 0) {
        error_set(err, err_len, "%s: a \"%s\" result, not a run", path, kind);
        json_decref(root);
        return LOADTEST_OTHER_KIND;
    }
    if (!json_is_object(root) || !json_is_integer(json_object_get(root, "requests")) ||
        !json_is_number(json_object_get(root, "rps")) ||
        !json_is_object(json_object_get(root, "latency_ms"))) {
        json_decref(root);
        return error_set(err, err_len,
                         "%s: not a catalog-loadtest result (needs requests, rps and latency_ms; "
                         "write one with --json FILE)",
                         path);
    }
    get_string(root, "label", out->label, sizeof(out->label));
    get_string(root, "target", out->target, sizeof(out->target));
    get_string(root, "first_error", out->first_error, sizeof(out->first_error));
    out->connections = (unsigned)get_u64(root, "connections");
    out->threads = (unsigned)get_u64(root, "threads");
    out->duration_s = get_double(root, "duration_s");
    out->rate_rps = get_double(root, "rate_rps");
    out->keep_alive = json_is_true(json_object_get(root, "keep_alive"));
    out->requests = get_u64(root, "requests");
    out->rps = get_double(root, "rps");
    out->errors = get_u64(root, "errors");
    json_t *kinds = json_object_get(root, "errors_by_kind");
    out->connect_errors = get_u64(kinds, "connect");
    out->read_errors = get_u64(kinds, "read");
    out->write_errors = get_u64(kinds, "write");
    out->protocol_errors = get_u64(kinds, "protocol");
    out->timeouts = get_u64(root, "timeouts");
    out->non2xx = get_u64(root, "non2xx");
    out->status_5xx = get_u64(root, "status_5xx");
    out->unfinished = get_u64(root, "unfinished");
    out->unfinished_max_ms = get_double(root, "unfinished_max_ms");
    out->missed_sends = get_u64(root, "missed_sends");
    read_latency(json_object_get(root, "latency_ms"), &out->latency);
    out->routes = read_tallies(json_object_get(root, "by_route"), &out->route_count);
    out->servers = read_tallies(json_object_get(root, "by_server"), &out->server_count);
    json_decref(root);
    return 0;
}

/* ---- Comparison ------------------------------------------------------------------------ */

#define COMPARE_NAME_WIDTH 16
#define COMPARE_COLUMN_WIDTH 14

/* One row: a figure of every run, then the ratio of each later run to the first. */
static void compare_row(buf_t *out, const char *name, const double *values, size_t count,
                        int decimals)
{
    buf_printf(out, "%-*s", COMPARE_NAME_WIDTH, name);
    for (size_t i = 0; i < count; i++) {
        char cell[64];
        snprintf(cell, sizeof(cell), "%.*f", decimals, values[i]);
        buf_printf(out, " %*s", COMPARE_COLUMN_WIDTH, cell);
    }
    for (size_t i = 1; i < count; i++) {
        char cell[32];
        if (values[0] > 0)
            snprintf(cell, sizeof(cell), "%.2fx", values[i] / values[0]);
        else
            snprintf(cell, sizeof(cell), "%s", values[i] > 0 ? "new" : "-");
        buf_printf(out, " %*s", 9, cell);
    }
    buf_append_char(out, '\n');
}

void loadtest_compare_write(buf_t *out, const loadtest_result_t *runs, size_t count)
{
    if (count == 0) return;
    double *values = xcalloc(count, sizeof(*values));
    /* Columns by number: a label cut to a column's width made two runs look alike
     * ("0.25cpu-browse"); the caller names each run in full first (catalog-loadtest compare). */
    buf_printf(out, "%-*s", COMPARE_NAME_WIDTH, "");
    for (size_t i = 0; i < count; i++) {
        char head[32];
        snprintf(head, sizeof(head), "#%zu", i + 1);
        buf_printf(out, " %*s", COMPARE_COLUMN_WIDTH, head);
    }
    for (size_t i = 1; i < count; i++) {
        char head[32];
        snprintf(head, sizeof(head), "#%zu/#1", i + 1);
        buf_printf(out, " %9s", head);
    }
    buf_append_char(out, '\n');
#define ROW(title, expression, decimals)                                                           \
    do {                                                                                           \
        for (size_t i = 0; i < count; i++) {                                                       \
            const loadtest_result_t *run = &runs[i];                                               \
            values[i] = (double)(expression);                                                      \
        }                                                                                          \
        compare_row(out, title, values, count, decimals);                                          \
    } while (0)
    ROW("requests/s", run->rps, 1);
    ROW("requests", run->requests, 0);
    ROW("connections", run->connections, 0);
    ROW("errors", run->errors, 0);
    ROW("timeouts", run->timeouts, 0);
    ROW("non-2xx", run->non2xx, 0);
    ROW("5xx", run->status_5xx, 0);
    ROW("latency avg ms", run->latency.avg_ms, 2);
    ROW("p50 ms", run->latency.p50_ms, 2);
    ROW("p90 ms", run->latency.p90_ms, 2);
    ROW("p99 ms", run->latency.p99_ms, 2);
    ROW("p99.9 ms", run->latency.p999_ms, 2);
    ROW("max ms", run->latency.max_ms, 2);
    ROW("servers seen", run->server_count, 0);
#undef ROW
    buf_printf(out, "%-*s", COMPARE_NAME_WIDTH, "verdict");
    for (size_t i = 0; i < count; i++)
        buf_printf(out, " %*s", COMPARE_COLUMN_WIDTH, loadtest_verdict_of(&runs[i]).name);
    buf_append_char(out, '\n');
    free(values);
}
