/* ceiling.h: `catalog-loadtest ceiling`: the highest arrival rate a target sustains within an
 * SLO, found by an open-model search (stages at fixed rates, doubling, then bisection). */
#ifndef CATALOG_LOADTEST_CEILING_H
#define CATALOG_LOADTEST_CEILING_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"
#include "engine.h"

/* The search's defaults (docs/loadtest.md, Ceiling). */
#define CEILING_DEFAULT_START_RPS 10.0
#define CEILING_DEFAULT_STAGE_NS (5 * 1000000000ull)
#define CEILING_DEFAULT_MAX_DURATION_NS (120 * 1000000000ull)
#define CEILING_DEFAULT_SLO_P99_MS 500.0
/* A stage passes only when it achieved this share of its target rate. */
#define CEILING_ACHIEVED_SHARE 0.98
/* Bisection stops when the first bad rate is within this fraction of the last good one. */
#define CEILING_PRECISION 0.03

typedef struct ceiling_options {
    double start_rps;         /* the first stage's rate */
    uint64_t stage_ns;        /* each stage's sending time */
    uint64_t max_duration_ns; /* no stage starts that would end after this */
    double slo_p99_ms;        /* p99 from intended send times must be <= this */
    uint64_t slo_failures;    /* failures (errors, timeouts, 5xx, unfinished) allowed */
    unsigned cpus;            /* cores the generator can use: min(threads, online CPUs) */
} ceiling_options_t;

/* One stage: a fixed rate for stage_ns, measured. */
typedef struct ceiling_stage {
    double rate_rps;       /* target */
    double achieved_rps;   /* responses complete within the stage / its duration */
    double p99_ms;         /* from each request's intended send time, unfinished included */
    double sent_avg_ms;    /* answers only, from the actual send: the target's own time */
    double sent_p50_ms;    /* same, p50 */
    double sent_p99_ms;    /* same, p99 */
    uint64_t responses;    /* all responses, the drain included */
    uint64_t ok_responses; /* 2xx responses */
    uint64_t failures;     /* errors + timeouts + 5xx + unfinished */
    uint64_t sends;        /* requests sent */
    uint64_t late_sends;   /* sent over 10 ms late: their connection was busy */
    uint64_t missed_sends; /* due before the end, never sent: the backlog */
    double seconds;        /* wall time, drain included */
    double cpu_s;          /* the generator's user + system CPU during the stage */
    double cpu_cores;      /* cpu_s / seconds */
    int passed;            /* see ceiling_stage_judge */
    char why[192];         /* what broke it ("" when it passed) */
} ceiling_stage_t;

/* What the search found.  Zero-initialise; ceiling_result_free releases the stages. */
typedef struct ceiling_result {
    ceiling_stage_t *stages; /* in the order they ran */
    size_t stage_count;
    double ceiling_rps;     /* highest passing rate; 0 when none passed */
    int best;               /* index of that stage, -1 when none */
    int first_bad;          /* index of the lowest failing rate, -1 when none failed */
    const char *limited_by; /* "target", "generator_cpu", "generator_connections",
                               "max_duration" (nothing failed in time), "interrupted" */
    double duration_s;      /* the whole search */
} ceiling_result_t;

/* Decides s->passed and s->why from its figures: it passes when it achieved at least 98% of
 * its target (give or take one request), left no backlog of due sends, and kept p99 and
 * failures within o's SLO.  Can't fail. */
void ceiling_stage_judge(ceiling_stage_t *s, double stage_s, const ceiling_options_t *o);

/* The next stage's rate after one at last_rps: double while nothing failed (bad_rps 0), then
 * the middle of [good_rps, bad_rps]; 0 when the two are within CEILING_PRECISION (or 1
 * request/s) of each other, or when nothing passed yet (good_rps 0 and bad_rps set).  Can't
 * fail. */
double ceiling_next_rate(double good_rps, double bad_rps, double last_rps);

/* Runs the search against base (its rate and duration are set per stage), printing a line per
 * stage to out as it ends.  Stops when the search narrowed, when the next stage would pass
 * max_duration_ns, or when *interrupted becomes nonzero (Ctrl-C).  Fills *result.  Returns 0,
 * or -1 with a sentence in err (the engine could not start). */
int ceiling_run(const engine_config_t *base, const ceiling_options_t *o, ceiling_result_t *result,
                volatile sig_atomic_t *interrupted, FILE *out, char *err, size_t err_len);

/* Appends the closing lines: which side was the limit, and the last line
 * "Ceiling: N requests/s (p99 X ms, F failures)".  Can't fail. */
void ceiling_summary_write(buf_t *out, const ceiling_result_t *r, const ceiling_options_t *o,
                           unsigned connections);

/* Appends r as one JSON object: {"kind": "ceiling", "ceiling_rps", "slo", "stages", ...}
 * (docs/loadtest.md).  label and target as in a run's JSON.  Can't fail. */
void ceiling_write_json(buf_t *out, const ceiling_result_t *r, const ceiling_options_t *o,
                        const engine_config_t *base, const char *label, const char *target);

/* Frees the stages; accepts NULL. */
void ceiling_result_free(ceiling_result_t *r);

#endif
