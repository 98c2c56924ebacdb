/* loadtest_result.h: a load-test run's figures: verdict, summary text, JSON file, comparison. */
#ifndef CATALOG_LOADTEST_RESULT_H
#define CATALOG_LOADTEST_RESULT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "histogram.h"

/* The reference's verdict thresholds (docs/api.md, Load test). */
#define LOADTEST_RED_P99_MS 2000.0   /* red above this p99 */
#define LOADTEST_RED_FAILURES 10     /* red above this many failures */
#define LOADTEST_YELLOW_P99_MS 500.0 /* yellow above this p99 */

/* Latency figures in milliseconds. */
typedef struct loadtest_latency {
    double avg_ms, p50_ms, p90_ms, p99_ms, p999_ms, max_ms;
} loadtest_latency_t;

/* Fills out from a histogram of nanoseconds (all zero when it is empty).  Can't fail. */
void loadtest_latency_from_histogram(loadtest_latency_t *out, const histogram_t *histogram_ns);

/* Counts for one route (method and path) or one server (X-Server-Id value). */
typedef struct loadtest_tally {
    char name[256];             /* "GET /report", or the server id ("(none)" without the header) */
    uint64_t requests;          /* responses received, any status */
    uint64_t errors;            /* connection and protocol errors while on this route */
    uint64_t timeouts;          /* requests abandoned after the timeout */
    uint64_t non2xx;            /* responses with a status outside 200..299 */
    uint64_t status_5xx;        /* responses with a status 500..599 (also in non2xx) */
    uint64_t unfinished;        /* requests unanswered when the run ended (routes only) */
    loadtest_latency_t latency; /* answers, and unfinished requests at their elapsed time */
} loadtest_tally_t;

/* Everything a run measured.  Zero-initialise; loadtest_result_free releases the arrays. */
typedef struct loadtest_result {
    char label[128];           /* a name for comparisons (--label, default the target) */
    char target[512];          /* base URL */
    unsigned connections;      /* concurrent connections */
    unsigned threads;          /* worker threads */
    double duration_s;         /* measured run time, start to the last connection closed */
    double rate_rps;           /* -R target rate; 0 when running flat out */
    int keep_alive;            /* connections reused between requests */
    uint64_t requests;         /* responses received, any status */
    double rps;                /* requests / duration_s */
    uint64_t errors;           /* connect + read + write + protocol errors */
    uint64_t connect_errors;   /* connections refused, unreachable, timed out connecting */
    uint64_t read_errors;      /* connection reset or closed while waiting for a response */
    uint64_t write_errors;     /* connection failed while sending a request */
    uint64_t protocol_errors;  /* malformed responses */
    uint64_t timeouts;         /* requests without a response within the timeout */
    uint64_t non2xx;           /* responses outside 200..299 */
    uint64_t status_5xx;       /* responses 500..599 */
    uint64_t unfinished;       /* requests still unanswered when the run ended: failures */
    double unfinished_max_ms;  /* how long the oldest of them had been outstanding */
    uint64_t sends;            /* requests sent */
    uint64_t late_sends;       /* -R: sent over 10 ms after their intended time (busy connection) */
    uint64_t missed_sends;     /* -R: fell due over 10 ms before the end, never sent */
    uint64_t window_responses; /* responses complete within the duration (not the drain) */
    double window_s;           /* the duration asked for (-d or a ceiling stage), seconds */
    loadtest_latency_t latency;      /* from send (or intended send with -R), unfinished included */
    loadtest_latency_t sent_latency; /* answers only, from the actual send */
    loadtest_tally_t *routes;        /* route_count entries, in --path order (owned) */
    size_t route_count;
    loadtest_tally_t *servers; /* server_count entries, most requests first (owned) */
    size_t server_count;
    /* route_count * server_count cells, [route][server] in the order of routes and servers:
     * each route's answers by server, named by server (owned; NULL without servers). */
    loadtest_tally_t *route_servers;
    /* Thresholds given with --slo-p99 / --slo-failures (loadtest_slo_check). */
    int slo_p99_set, slo_failures_set;
    double slo_p99_ms;
    uint64_t slo_failures;
    char first_error[256]; /* the first error seen, for a person ("" when none) */
} loadtest_result_t;

/* Frees the route and server arrays and leaves r zeroed; accepts NULL. */
void loadtest_result_free(loadtest_result_t *r);

/* Requests that failed for the verdict and the thresholds: errors + timeouts + 5xx answers +
 * unfinished requests. */
uint64_t loadtest_failures(const loadtest_result_t *r);

typedef enum loadtest_level { LOADTEST_GREEN, LOADTEST_YELLOW, LOADTEST_RED } loadtest_level_t;

typedef struct loadtest_verdict {
    loadtest_level_t level;
    const char *name;     /* "green", "yellow", "red" */
    const char *headline; /* the reference's sentence */
    char reason[256];     /* the figures that decided it */
} loadtest_verdict_t;

/* Red when p99 > 2000 ms, more than 10 failures (5xx answers and unfinished requests
 * included), or no response at all; yellow when p99 > 500 ms or a request was still
 * unanswered after more than 500 ms when the run ended; green otherwise.  The verdict speaks
 * of these thresholds only (the load generator sees no CPU).  Can't fail. */
loadtest_verdict_t loadtest_verdict_of(const loadtest_result_t *r);

/* The --slo-p99 / --slo-failures thresholds of r: returns 1 when every one given held (also
 * when none was given), 0 when one broke; *p99_held and *failures_held (either may be NULL)
 * say which, 1 for a threshold not given.  Can't fail. */
int loadtest_slo_check(const loadtest_result_t *r, int *p99_held, int *failures_held);

/* Appends the human summary (counts, latency, per-route and per-server tables, verdict);
 * with color nonzero the verdict is colored with ANSI escapes.  Can't fail. */
void loadtest_summary_write(buf_t *out, const loadtest_result_t *r, int color);

/* Appends r as one JSON object with a trailing newline (fields: see docs/loadtest.md).
 * Can't fail. */
void loadtest_result_write_json(buf_t *out, const loadtest_result_t *r);

/* Reads a file written by loadtest_result_write_json into *out (zero it first).  Returns 0, or
 * -1 with a sentence in err (file unreadable, not JSON, a required field missing), or
 * LOADTEST_OTHER_KIND with a sentence in err when the file is another kind of result (a
 * "ceiling").  On 0 the caller frees with loadtest_result_free; otherwise nothing is left to
 * free. */
#define LOADTEST_OTHER_KIND (-2)
int loadtest_result_read_json(const char *path, loadtest_result_t *out, char *err, size_t err_len);

/* Appends runs[0..count) side by side, one column each, then for every run after the first
 * its ratio to the first ("2 servers / 1 server").  Can't fail. */
void loadtest_compare_write(buf_t *out, const loadtest_result_t *runs, size_t count);

#endif
