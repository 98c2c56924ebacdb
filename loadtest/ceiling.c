/* ceiling.c: `catalog-loadtest ceiling`: the highest arrival rate a target sustains within an
 * SLO, found by an open-model search (stages at fixed rates, doubling, then bisection).
 *
 * Each stage is a fresh engine run at a fixed rate (-R's schedule, like wrk2's: every request
 * has an intended send time and its latency counts from there, so a target that falls behind
 * shows in p99 instead of quietly lowering the offered load).  A rate just above capacity
 * fails on the achieved rate or on the backlog of due sends before its queue is long enough to
 * move p99, so the search does not overshoot by the queue it can build in one stage. */
#include "ceiling.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "alloc.h"
#include "json.h"
#include "loadtest_result.h"
#include "loop.h"

/* After a failing stage the target may still be working off the queue it was given: wait this
 * long before the next stage (at most the stage length). */
#define SETTLE_NS (1000000000ull)
/* The generator's own CPU is "the limit" at this share of the cores it can use. */
#define GENERATOR_CPU_SHARE 0.85
/* Its connections are "the limit" when this share of them was busy on average (not all of
 * them: a stage just past the limit is short, and time from send includes the generator's own
 * turn-around). */
#define GENERATOR_BUSY_SHARE 0.75

void ceiling_stage_judge(ceiling_stage_t *s, double stage_s, const ceiling_options_t *o)
{
    size_t n = 0;
    s->why[0] = 0;
#define WHY(...)                                                                                   \
    do {                                                                                           \
        if (n < sizeof(s->why)) {                                                                  \
            int w = snprintf(s->why + n, sizeof(s->why) - n, "%s", n ? "; " : "");                 \
            if (w > 0) n += (size_t)w;                                                             \
            if (n < sizeof(s->why)) {                                                              \
                w = snprintf(s->why + n, sizeof(s->why) - n, __VA_ARGS__);                         \
                if (w > 0) n += (size_t)w;                                                         \
            }                                                                                      \
        }                                                                                          \
    } while (0)
    /* One request of slack: 49 answers of 50 due in a short stage is rounding, not a limit. */
    double allowed_short = stage_s > 0 ? 1.0 / stage_s : 0;
    if (s->achieved_rps + allowed_short < CEILING_ACHIEVED_SHARE * s->rate_rps)
        WHY("achieved %.1f/s < 98%% of %.1f/s", s->achieved_rps, s->rate_rps);
    if (s->missed_sends) WHY("%" PRIu64 " due sends never made (backlog)", s->missed_sends);
    if (!(s->p99_ms <= o->slo_p99_ms)) WHY("p99 %.1f ms > %.1f ms", s->p99_ms, o->slo_p99_ms);
    if (s->failures > o->slo_failures)
        WHY("%" PRIu64 " failures > %" PRIu64, s->failures, o->slo_failures);
#undef WHY
    s->passed = s->why[0] == 0;
}

double ceiling_next_rate(double good_rps, double bad_rps, double last_rps)
{
    if (bad_rps <= 0) return last_rps * 2;
    if (good_rps <= 0) return 0;
    double gap = bad_rps - good_rps;
    if (gap <= 1.0 || gap <= CEILING_PRECISION * good_rps) return 0;
    return (good_rps + bad_rps) / 2;
}

static double cpu_seconds(void)
{
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
    return (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 +
           (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
}

static void nap_ns(uint64_t ns, volatile sig_atomic_t *interrupted)
{
    uint64_t until_ns = loop_clock_ns() + ns;
    while (!*interrupted && loop_clock_ns() < until_ns) {
        struct timespec nap = {0, 50 * 1000000L};
        nanosleep(&nap, NULL);
    }
}

/* Runs one stage at rate_rps; returns 0 or -1 (engine could not start). */
static int run_stage(const engine_config_t *base, const ceiling_options_t *o, double rate_rps,
                     ceiling_stage_t *s, volatile sig_atomic_t *interrupted, char *err,
                     size_t err_len)
{
    engine_config_t config = *base;
    config.rate_rps = rate_rps;
    config.duration_ns = o->stage_ns;
    double cpu_before = cpu_seconds();
    uint64_t start_ns = loop_clock_ns();
    engine_t *engine = engine_new(&config);
    if (engine_start(engine, err, err_len) < 0) {
        engine_free(engine);
        return -1;
    }
    int stopped = 0;
    while (!engine_finished(engine)) {
        struct timespec nap = {0, 20 * 1000000L};
        nanosleep(&nap, NULL);
        if (*interrupted && !stopped) {
            engine_stop(engine);
            stopped = 1;
        }
    }
    loadtest_result_t r = {0};
    engine_join(engine, &r);
    engine_free(engine);
    memset(s, 0, sizeof(*s));
    s->rate_rps = rate_rps;
    s->seconds = (double)(loop_clock_ns() - start_ns) / 1e9;
    s->cpu_s = cpu_seconds() - cpu_before;
    s->cpu_cores = s->seconds > 0 ? s->cpu_s / s->seconds : 0;
    s->achieved_rps = r.window_s > 0 ? (double)r.window_responses / r.window_s : 0;
    s->p99_ms = r.latency.p99_ms;
    s->sent_avg_ms = r.sent_latency.avg_ms;
    s->sent_p50_ms = r.sent_latency.p50_ms;
    s->sent_p99_ms = r.sent_latency.p99_ms;
    s->responses = r.requests;
    s->ok_responses = r.requests - r.non2xx;
    s->failures = loadtest_failures(&r);
    s->sends = r.sends;
    s->late_sends = r.late_sends;
    s->missed_sends = r.missed_sends;
    ceiling_stage_judge(s, r.window_s, o);
    loadtest_result_free(&r);
    return 0;
}

static void print_stage(FILE *out, size_t index, const ceiling_stage_t *s, unsigned cpus)
{
    fprintf(out, "%5zu %10.1f %10.1f %9.1f %8" PRIu64 " %7" PRIu64 " %5.0f%% %5.2f/%u  %s%s%s\n",
            index + 1, s->rate_rps, s->achieved_rps, s->p99_ms, s->failures, s->missed_sends,
            s->sends ? 100.0 * (double)s->late_sends / (double)s->sends : 0.0, s->cpu_cores, cpus,
            s->passed ? "ok" : "BROKE", s->passed ? "" : ": ", s->why);
    fflush(out);
}

/* Which side was the limit at the lowest failing rate.  Just above the target's capacity its
 * queue is still short, so few connections are busy at a time; when the connections are the
 * limit they are all busy (Little's law: answers/s x time from send = requests in flight). */
static const char *limit_of(const ceiling_result_t *r, const ceiling_options_t *o,
                            unsigned connections)
{
    if (r->first_bad < 0) return "max_duration";
    const ceiling_stage_t *bad = &r->stages[r->first_bad];
    if (bad->cpu_cores >= GENERATOR_CPU_SHARE * o->cpus) return "generator_cpu";
    double in_flight = bad->achieved_rps * bad->sent_avg_ms / 1000.0;
    if (bad->late_sends && in_flight >= GENERATOR_BUSY_SHARE * connections)
        return "generator_connections";
    return "target";
}

int ceiling_run(const engine_config_t *base, const ceiling_options_t *o, ceiling_result_t *result,
                volatile sig_atomic_t *interrupted, FILE *out, char *err, size_t err_len)
{
    memset(result, 0, sizeof(*result));
    result->best = result->first_bad = -1;
    size_t cap = 0;
    double good = 0, bad = 0, rate = o->start_rps;
    uint64_t start_ns = loop_clock_ns();
    fprintf(out, "%5s %10s %10s %9s %8s %7s %6s %7s  %s\n", "stage", "target/s", "achieved/s",
            "p99 ms", "failures", "missed", "late", "cpu", "result");
    fflush(out);
    int status = 0;
    while (rate > 0) {
        if (*interrupted) break;
        uint64_t elapsed_ns = loop_clock_ns() - start_ns;
        if (elapsed_ns + o->stage_ns > o->max_duration_ns) break;
        if (result->stage_count == cap) {
            cap = cap ? cap * 2 : 16;
            result->stages = xrealloc(result->stages, cap * sizeof(*result->stages));
        }
        ceiling_stage_t *s = &result->stages[result->stage_count];
        if (run_stage(base, o, rate, s, interrupted, err, err_len) < 0) {
            status = -1;
            break;
        }
        if (*interrupted) break; /* a stage cut short says nothing */
        int index = (int)result->stage_count++;
        print_stage(out, (size_t)index, s, o->cpus);
        if (s->passed) {
            if (rate > good) {
                good = rate;
                result->best = index;
            }
        } else if (bad <= 0 || rate < bad) {
            bad = rate;
            result->first_bad = index;
        }
        if (s->ok_responses == 0 || (!s->passed && good <= 0)) break;
        rate = ceiling_next_rate(good, bad, rate);
        if (!s->passed && rate > 0) {
            uint64_t settle_ns = o->stage_ns < SETTLE_NS ? o->stage_ns : SETTLE_NS;
            if (loop_clock_ns() - start_ns + settle_ns + o->stage_ns <= o->max_duration_ns)
                nap_ns(settle_ns, interrupted);
        }
    }
    result->ceiling_rps = good;
    result->duration_s = (double)(loop_clock_ns() - start_ns) / 1e9;
    result->limited_by = *interrupted ? "interrupted" : limit_of(result, o, base->connections);
    return status;
}

/* The last line's N: whole requests/s, rounded down (a rate below 1 keeps two decimals). */
static void format_rate(char *out, size_t len, double rps)
{
    if (rps >= 1 || rps == 0)
        snprintf(out, len, "%.0f", floor(rps));
    else
        snprintf(out, len, "%.2f", rps);
}

void ceiling_summary_write(buf_t *out, const ceiling_result_t *r, const ceiling_options_t *o,
                           unsigned connections)
{
    char rate[32];
    const ceiling_stage_t *bad = r->first_bad >= 0 ? &r->stages[r->first_bad] : NULL;
    buf_printf(out,
               "\nSLO: p99 <= %.1f ms (from intended send times), failures <= %" PRIu64
               "; %zu stages in %.1f s\n",
               o->slo_p99_ms, o->slo_failures, r->stage_count, r->duration_s);
    if (strcmp(r->limited_by, "generator_cpu") == 0) {
        buf_printf(out,
                   "Limit: the generator itself: its CPU was at %.2f of %u cores at %.1f "
                   "requests/s, so the target may sustain more (run the generator elsewhere, "
                   "or give it more cores)\n",
                   bad->cpu_cores, o->cpus, bad->rate_rps);
    } else if (strcmp(r->limited_by, "generator_connections") == 0) {
        buf_printf(out,
                   "Limit: the generator's connections: all %u were busy at %.1f requests/s "
                   "(%.1f answers/s x %.1f ms each from send), so the target may sustain more "
                   "(rerun with more -c)\n",
                   connections, bad->rate_rps, bad->achieved_rps, bad->sent_avg_ms);
    } else if (strcmp(r->limited_by, "target") == 0) {
        buf_printf(out, "Limit: the target, at %.1f requests/s: %s\n", bad->rate_rps, bad->why);
    } else if (strcmp(r->limited_by, "max_duration") == 0 && r->stage_count) {
        buf_printf(out,
                   "Limit: none found: every stage passed before --max-duration, so the ceiling "
                   "is at least this (give it more time)\n");
    } else if (strcmp(r->limited_by, "interrupted") == 0) {
        buf_append_cstr(out, "Limit: not found: the search was interrupted\n");
    }
    if (r->best < 0) {
        if (r->stage_count)
            buf_printf(out, "Ceiling: none: the first stage, %.1f requests/s, broke the SLO (%s)\n",
                       r->stages[0].rate_rps, r->stages[0].why);
        else
            buf_append_cstr(out, "Ceiling: none: no stage ran\n");
        return;
    }
    const ceiling_stage_t *best = &r->stages[r->best];
    format_rate(rate, sizeof(rate), r->ceiling_rps);
    buf_printf(out, "Ceiling: %s requests/s (p99 %.1f ms, %" PRIu64 " failures)\n", rate,
               best->p99_ms, best->failures);
}

void ceiling_write_json(buf_t *out, const ceiling_result_t *r, const ceiling_options_t *o,
                        const engine_config_t *base, const char *label, const char *target)
{
    buf_append_cstr(out, "{\n  \"kind\": \"ceiling\",\n  \"label\": ");
    json_write_cstr(out, label);
    buf_append_cstr(out, ",\n  \"target\": ");
    json_write_cstr(out, target);
    const ceiling_stage_t *best = r->best >= 0 ? &r->stages[r->best] : NULL;
    buf_printf(out,
               ",\n  \"ceiling_rps\": %.3f,\n  \"ceiling_p99_ms\": %.3f,\n"
               "  \"ceiling_failures\": %" PRIu64 ",\n",
               r->ceiling_rps, best ? best->p99_ms : 0.0, best ? best->failures : 0);
    buf_printf(out, "  \"slo\": {\"p99_ms\": %.3f, \"failures\": %" PRIu64 "},\n", o->slo_p99_ms,
               o->slo_failures);
    buf_printf(out,
               "  \"limited_by\": \"%s\",\n  \"connections\": %u,\n  \"threads\": %u,\n"
               "  \"generator_cpus\": %u,\n  \"keep_alive\": %s,\n  \"stage_s\": %.3f,\n"
               "  \"max_duration_s\": %.3f,\n  \"start_rps\": %.3f,\n  \"duration_s\": %.3f,\n"
               "  \"routes\": [",
               r->limited_by, base->connections, base->threads, o->cpus,
               base->keep_alive ? "true" : "false", (double)o->stage_ns / 1e9,
               (double)o->max_duration_ns / 1e9, o->start_rps, r->duration_s);
    for (size_t i = 0; i < base->request_count; i++) {
        if (i) buf_append_cstr(out, ", ");
        json_write_cstr(out, base->requests[i].name);
    }
    buf_append_cstr(out, "],\n  \"stages\": [");
    for (size_t i = 0; i < r->stage_count; i++) {
        const ceiling_stage_t *s = &r->stages[i];
        buf_printf(out,
                   "%s\n    {\"rate_rps\": %.3f, \"achieved_rps\": %.3f, \"p99_ms\": %.3f, "
                   "\"failures\": %" PRIu64 ", \"passed\": %s, \"why\": ",
                   i ? "," : "", s->rate_rps, s->achieved_rps, s->p99_ms, s->failures,
                   s->passed ? "true" : "false");
        json_write_cstr(out, s->why);
        buf_printf(out,
                   ",\n     \"sends\": %" PRIu64 ", \"late_sends\": %" PRIu64
                   ", \"missed_sends\": %" PRIu64 ", \"responses\": %" PRIu64
                   ", \"sent_avg_ms\": %.3f, \"sent_p50_ms\": %.3f, \"sent_p99_ms\": %.3f"
                   ", \"seconds\": %.3f"
                   ", \"cpu_s\": %.3f, \"cpu_cores\": %.3f}",
                   s->sends, s->late_sends, s->missed_sends, s->responses, s->sent_avg_ms,
                   s->sent_p50_ms, s->sent_p99_ms, s->seconds, s->cpu_s, s->cpu_cores);
    }
    buf_append_cstr(out, r->stage_count ? "\n  ]\n}\n" : "]\n}\n");
}

void ceiling_result_free(ceiling_result_t *r)
{
    if (!r) return;
    free(r->stages);
    memset(r, 0, sizeof(*r));
}
