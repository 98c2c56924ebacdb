/* main.c: catalog-loadtest: the scenario's load test (docs/api.md, Load test) on a wrk-class
 * engine. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "ceiling.h"
#include "engine.h"
#include "loadtest_request.h"
#include "loadtest_result.h"
#include "loop.h"
#include "url_parse.h"

#define DEFAULT_URL "http://localhost:3000"
#define DEFAULT_CONNECTIONS 100
#define DEFAULT_DURATION_S 30
#define DEFAULT_TIMEOUT_S 10
/* After the run, in-flight requests get at most this long to finish (or the timeout). */
#define DRAIN_MAX_NS (2 * 1000000000ull)
#define PATHS_MAX 64

#define EXIT_NOTHING_SUCCEEDED 1
#define EXIT_USAGE 2
#define EXIT_SLO_BROKEN 3

/* Option bounds: every duration and rate stays far inside what a uint64_t of nanoseconds and
 * the -R schedule can hold. */
#define NS_PER_S 1000000000.0
#define DURATION_MAX_S (7 * 24 * 3600.0) /* -d, --max-duration */
#define TIMEOUT_MAX_S 3600.0             /* --timeout, --slo-p99, --stage */
#define RATE_MIN_RPS 0.01
#define RATE_MAX_RPS 10000000.0

static const char usage_text[] =
    "Usage: catalog-loadtest [options] [URL]\n"
    "       catalog-loadtest ceiling [options] [URL]\n"
    "       catalog-loadtest compare RESULT.json RESULT.json...\n"
    "\n"
    "The scenario's load test: URL (default $BASE_URL, else " DEFAULT_URL "), 100 connections\n"
    "for 30 s, 10 s timeout; each connection walks GET /products?category=electronics,\n"
    "GET /products/1, GET /report in turn.  A URL with a path other than / tests that path.\n"
    "\n"
    "  -c, --connections N   concurrent connections (default 100)\n"
    "  -d, --duration T      how long to send requests: 30, 30s, 500ms, 2m (default 30s)\n"
    "  -t, --threads N       worker threads (default: the number of CPUs, at most N connections)\n"
    "      --timeout T       per request; a late request closes its connection (default 10s)\n"
    "      --path SPEC       a route, repeatable: \"/products/1\" or \"METHOD /path [body]\",\n"
    "                        e.g. --path 'POST /orders {\"product_id\":1,\"quantity\":1}'\n"
    "  -R, --rate N          fixed rate in requests/s over all connections; latency counts\n"
    "                        from each request's intended send time (coordinated omission)\n"
    "      --no-keepalive    one request per connection (\"Connection: close\")\n"
    "      --slo-p99 T       threshold: p99 at most T (500ms, 2s); exit 3 when it broke\n"
    "      --slo-failures N  threshold: at most N failures (errors + timeouts + 5xx +\n"
    "                        unfinished); exit 3 when it broke\n"
    "      --json FILE       also write the figures as JSON (\"-\" for stdout)\n"
    "      --label NAME      name of this run in the JSON and in comparisons\n"
    "  -h, --help            this text\n"
    "\n"
    "Failures are errors + timeouts + 5xx + unfinished (requests still unanswered when the run\n"
    "ended, counted in the latency at their elapsed time).  Verdict, on the thresholds only:\n"
    "red when p99 > 2000 ms or more than 10 failures; yellow when p99 > 500 ms or a request\n"
    "was unanswered for more than 500 ms at the end; green otherwise.\n"
    "Exit status: 0; 1 when no request got a 2xx answer; 2 on bad usage; 3 when an --slo-*\n"
    "threshold broke (1 wins over 3).  compare prints saved results side by side.\n"
    "\n"
    "ceiling: the highest arrival rate the target sustains within the SLO (open model, like\n"
    "-R).  Stages of --stage each at a fixed rate: 10 requests/s first (--start-rate), doubled\n"
    "while stages pass, then bisected between the last good and the first bad rate until they\n"
    "are within 3%.  A stage passes when it achieved >= 98% of its rate, left no due send\n"
    "unsent, and kept p99 (from intended send times) and failures within the SLO.\n"
    "      --stage T         each stage's length (default 5s)\n"
    "      --start-rate N    the first stage's rate (default 10 requests/s)\n"
    "      --max-duration T  no stage starts that would end later (default 2m)\n"
    "      --slo-p99 T       default 500ms;  --slo-failures N: default 0\n"
    "  -c, -t, --timeout, --path, --no-keepalive, --json, --label as above (not -d, -R).\n"
    "It prints each stage, which side was the limit (the target, or the generator's own CPU or\n"
    "connections), and last \"Ceiling: N requests/s (p99 X ms, F failures)\".  Exit 3 when\n"
    "even the first stage broke the SLO, 1 when it got no 2xx answer.\n";

static volatile sig_atomic_t interrupted;

static void on_sigint(int signo)
{
    (void)signo;
    interrupted = 1;
    signal(SIGINT, SIG_DFL); /* a second Ctrl-C ends the process at once */
}

/* Parses "30", "1.5", "30s", "500ms", "2m" into nanoseconds, at least 1 ms and at most max_s
 * seconds; returns 0 or -1 (other text, or out of range). */
static int parse_duration(const char *text, double max_s, uint64_t *out_ns)
{
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno || end == text || !(value >= 0) || value > 1e9) return -1;
    double scale = 1e9;
    if (strcmp(end, "ms") == 0)
        scale = 1e6;
    else if (strcmp(end, "m") == 0)
        scale = 60e9;
    else if (strcmp(end, "h") == 0)
        scale = 3600e9;
    else if (*end && strcmp(end, "s") != 0)
        return -1;
    double ns = value * scale;
    if (!(ns >= 1e6) || ns > max_s * NS_PER_S) return -1; /* also keeps the cast defined */
    *out_ns = (uint64_t)ns;
    return 0;
}

/* Parses a rate in requests/s within [RATE_MIN_RPS, RATE_MAX_RPS]; returns 0 or -1. */
static int parse_rate(const char *text, double *out)
{
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno || end == text || *end || !(value >= RATE_MIN_RPS) || !(value <= RATE_MAX_RPS))
        return -1;
    *out = value;
    return 0;
}

static int parse_count(const char *text, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-' || value < min || value > max) return -1;
    *out = value;
    return 0;
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "catalog-loadtest: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun catalog-loadtest --help for the options.\n");
    return EXIT_USAGE;
}

static int write_file(const char *path, const buf_t *b)
{
    if (strcmp(path, "-") == 0) return fwrite(b->data, 1, b->len, stdout) == b->len ? 0 : -1;
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    size_t n = fwrite(b->data, 1, b->len, f);
    if (fclose(f) != 0 || n != b->len) return -1;
    return 0;
}

static int run_compare(int count, char **paths)
{
    if (count < 2) {
        fprintf(stderr, "catalog-loadtest: compare needs two or more result files "
                        "(written with --json FILE)\n");
        return EXIT_USAGE;
    }
    loadtest_result_t *runs = xcalloc((size_t)count, sizeof(*runs));
    int status = 0, skipped = 0;
    for (int i = 0; i < count && status == 0; i++) {
        char err[512];
        int rc = loadtest_result_read_json(paths[i], &runs[i], err, sizeof(err));
        if (rc == LOADTEST_OTHER_KIND) {
            /* A ceiling beside runs (a lab's results folder): not a column of this table. */
            fprintf(stderr, "catalog-loadtest: compare: skipping %s\n", err);
            memmove(&paths[i], &paths[i + 1], (size_t)(count - i - 1) * sizeof(*paths));
            count--;
            i--;
            skipped++;
            continue;
        }
        if (rc < 0) {
            fprintf(stderr, "catalog-loadtest: %s\n", err);
            status = EXIT_USAGE;
            break;
        }
        if (!runs[i].label[0]) {
            const char *base = strrchr(paths[i], '/');
            base = base ? base + 1 : paths[i];
            size_t len = strlen(base);
            if (len > 5 && strcmp(base + len - 5, ".json") == 0) len -= 5;
            if (len >= sizeof(runs[i].label)) len = sizeof(runs[i].label) - 1;
            memcpy(runs[i].label, base, len);
            runs[i].label[len] = 0;
        }
    }
    if (status == 0 && count < 2) {
        fprintf(stderr,
                "catalog-loadtest: compare needs two or more runs (%d other result%s "
                "skipped)\n",
                skipped, skipped == 1 ? "" : "s");
        status = EXIT_USAGE;
    }
    if (status == 0) {
        buf_t out = {0};
        for (int i = 0; i < count; i++)
            buf_printf(&out, "#%d %s: %s, %u connections, %.1f s\n", i + 1, runs[i].label,
                       runs[i].target, runs[i].connections, runs[i].duration_s);
        buf_append_char(&out, '\n');
        loadtest_compare_write(&out, runs, (size_t)count);
        fwrite(out.data, 1, out.len, stdout);
        buf_free(&out);
    }
    for (int i = 0; i < count; i++)
        loadtest_result_free(&runs[i]);
    free(runs);
    return status;
}

/* Resolves the target; returns 0 or -1 with a message printed. */
static int resolve(const url_t *url, engine_config_t *config)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *found = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)url->port);
    int rc = getaddrinfo(url->host, port, &hints, &found);
    if (rc != 0 || !found) {
        fprintf(stderr, "catalog-loadtest: cannot resolve host '%s': %s\n", url->host,
                rc ? gai_strerror(rc) : "no address");
        return -1;
    }
    memcpy(&config->address, found->ai_addr, found->ai_addrlen);
    config->address_len = found->ai_addrlen;
    char host[NI_MAXHOST] = "?";
    getnameinfo(found->ai_addr, found->ai_addrlen, host, sizeof(host), NULL, 0, NI_NUMERICHOST);
    snprintf(config->address_text, sizeof(config->address_text),
             found->ai_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, (unsigned)url->port);
    freeaddrinfo(found);
    return 0;
}

/* Sleeps until the engine finishes, printing a progress line to stderr once a second: with
 * \r redraws on a terminal, as plain lines otherwise (CI logs stay free of control codes). */
static void show_progress(engine_t *engine, uint64_t duration_ns)
{
    int tty = isatty(STDERR_FILENO);
    uint64_t start_ns = loop_clock_ns(), next_ns = start_ns + 1000000000ull;
    uint64_t last_responses = 0, last_ns = start_ns;
    int stopped = 0;
    while (!engine_finished(engine)) {
        struct timespec nap = {0, 50 * 1000000L};
        nanosleep(&nap, NULL);
        if (interrupted && !stopped) {
            engine_stop(engine);
            stopped = 1;
        }
        uint64_t now_ns = loop_clock_ns();
        if (now_ns < next_ns || now_ns - start_ns > duration_ns + 500000000ull) continue;
        next_ns += 1000000000ull;
        uint64_t responses, failures;
        engine_progress(engine, &responses, &failures);
        double rps = (double)(responses - last_responses) * 1e9 / (double)(now_ns - last_ns);
        last_responses = responses;
        last_ns = now_ns;
        double elapsed_s = (double)(now_ns - start_ns) / 1e9, total_s = (double)duration_ns / 1e9;
        if (tty) {
            char bar[21];
            int filled = total_s > 0 ? (int)(20 * elapsed_s / total_s) : 20;
            if (filled > 20) filled = 20;
            for (int i = 0; i < 20; i++)
                bar[i] = i < filled ? '#' : '.';
            bar[20] = 0;
            fprintf(stderr,
                    "\r[%s] %4.0f/%.0f s  %9.0f req/s  %10" PRIu64 " done  %6" PRIu64
                    " failures\033[K",
                    bar, elapsed_s, total_s, rps, responses, failures);
        } else {
            fprintf(stderr,
                    "progress: %.0f/%.0f s, %.0f req/s, %" PRIu64 " done, %" PRIu64 " failures\n",
                    elapsed_s, total_s, rps, responses, failures);
        }
        fflush(stderr);
    }
    if (tty) fprintf(stderr, "\r\033[K");
}

/* Explains a run where nothing succeeded, for a person; returns the exit status. */
static int explain_failure(const loadtest_result_t *r, const char *url_text)
{
    if (r->requests == 0 && r->connect_errors > 0 && r->read_errors + r->write_errors == 0) {
        fprintf(stderr,
                "catalog-loadtest: error: could not connect to %s: %" PRIu64
                " attempts failed, the first with \"%s\".\n"
                "Is the server running and listening there?  The target comes from the URL "
                "argument or BASE_URL (now %s).\n",
                url_text, r->connect_errors, r->first_error, url_text);
    } else if (r->requests == 0) {
        fprintf(stderr, "catalog-loadtest: error: no response at all from %s (%s).\n", url_text,
                r->first_error[0] ? r->first_error
                : r->timeouts     ? "every request timed out"
                                  : "nothing was sent");
    } else {
        fprintf(stderr,
                "catalog-loadtest: error: no request succeeded: all %" PRIu64
                " responses from %s had a status outside 2xx (%" PRIu64 " of them 5xx).\n",
                r->requests, url_text, r->status_5xx);
    }
    return EXIT_NOTHING_SUCCEEDED;
}

/* ceiling: runs the search and prints/writes its result; returns the exit status. */
static int run_ceiling(const engine_config_t *config, const ceiling_options_t *options,
                       const char *json_path, const char *label, const char *url_text)
{
    printf("catalog-loadtest ceiling: %s (%s), %u connections, %u threads, timeout %.1f s, %s\n"
           "  stages of %.1f s from %.1f requests/s, at most %.0f s; SLO p99 <= %.1f ms, "
           "failures <= %" PRIu64 "\n  routes, walked in turn by each connection:",
           url_text, config->address_text, config->connections, config->threads,
           (double)config->timeout_ns / 1e9, config->keep_alive ? "keep-alive" : "no keep-alive",
           (double)options->stage_ns / 1e9, options->start_rps,
           (double)options->max_duration_ns / 1e9, options->slo_p99_ms, options->slo_failures);
    for (size_t i = 0; i < config->request_count; i++)
        printf("%s %s", i ? "," : "", config->requests[i].name);
    printf("\n\n");
    fflush(stdout);
    ceiling_result_t result;
    char err[512];
    if (ceiling_run(config, options, &result, &interrupted, stdout, err, sizeof(err)) < 0) {
        fprintf(stderr, "catalog-loadtest: %s\n", err);
        ceiling_result_free(&result);
        return EXIT_NOTHING_SUCCEEDED;
    }
    buf_t out = {0};
    ceiling_summary_write(&out, &result, options, config->connections);
    fwrite(out.data, 1, out.len, stdout);
    fflush(stdout);
    int status = 0;
    if (json_path) {
        buf_reset(&out);
        ceiling_write_json(&out, &result, options, config, label, url_text);
        if (write_file(json_path, &out) < 0) {
            fprintf(stderr, "catalog-loadtest: cannot write %s: %s\n", json_path, strerror(errno));
            status = EXIT_NOTHING_SUCCEEDED;
        }
    }
    buf_free(&out);
    if (result.stage_count == 0 || result.stages[0].ok_responses == 0) {
        fprintf(stderr, "catalog-loadtest: error: no 2xx answer from %s in the first stage%s\n",
                url_text, result.stage_count ? "" : " (none ran)");
        status = EXIT_NOTHING_SUCCEEDED;
    } else if (status == 0 && result.best < 0) {
        status = EXIT_SLO_BROKEN;
    }
    ceiling_result_free(&result);
    return status;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "compare") == 0 || strcmp(argv[1], "--compare") == 0))
        return run_compare(argc - 2, argv + 2);
    int ceiling = argc >= 2 && strcmp(argv[1], "ceiling") == 0;
    if (ceiling) {
        argv[1] = argv[0];
        argv++;
        argc--;
    }
    ceiling_options_t ceiling_options = {
        .start_rps = CEILING_DEFAULT_START_RPS,
        .stage_ns = CEILING_DEFAULT_STAGE_NS,
        .max_duration_ns = CEILING_DEFAULT_MAX_DURATION_NS,
        .slo_p99_ms = CEILING_DEFAULT_SLO_P99_MS,
        .slo_failures = 0,
    };
    int slo_p99_set = 0, slo_failures_set = 0;
    uint64_t slo_p99_ns = 0;
    unsigned long slo_failures = 0;

    unsigned long connections = DEFAULT_CONNECTIONS, threads = 0;
    uint64_t duration_ns = DEFAULT_DURATION_S * 1000000000ull;
    uint64_t timeout_ns = DEFAULT_TIMEOUT_S * 1000000000ull;
    double rate_rps = 0;
    int keep_alive = 1;
    const char *json_path = NULL, *label = "";
    const char *path_specs[PATHS_MAX];
    size_t path_count = 0;

    enum {
        OPT_TIMEOUT = 256,
        OPT_PATH,
        OPT_NO_KEEPALIVE,
        OPT_JSON,
        OPT_LABEL,
        OPT_SLO_P99,
        OPT_SLO_FAILURES,
        OPT_STAGE,
        OPT_START_RATE,
        OPT_MAX_DURATION,
    };
    static const struct option options[] = {
        {"connections", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},
        {"threads", required_argument, NULL, 't'},
        {"rate", required_argument, NULL, 'R'},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"path", required_argument, NULL, OPT_PATH},
        {"no-keepalive", no_argument, NULL, OPT_NO_KEEPALIVE},
        {"json", required_argument, NULL, OPT_JSON},
        {"label", required_argument, NULL, OPT_LABEL},
        {"slo-p99", required_argument, NULL, OPT_SLO_P99},
        {"slo-failures", required_argument, NULL, OPT_SLO_FAILURES},
        {"stage", required_argument, NULL, OPT_STAGE},
        {"start-rate", required_argument, NULL, OPT_START_RATE},
        {"max-duration", required_argument, NULL, OPT_MAX_DURATION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int option;
    while ((option = getopt_long(argc, argv, "c:d:t:R:h", options, NULL)) != -1) {
        switch (option) {
        case 'c':
            if (parse_count(optarg, 1, 1000000, &connections) < 0)
                return usage_error("bad -c '%s': connections must be 1..1000000", optarg);
            break;
        case 'd':
            if (ceiling) return usage_error("ceiling sets its own durations: use --stage");
            if (parse_duration(optarg, DURATION_MAX_S, &duration_ns) < 0)
                return usage_error("bad -d '%s': a duration like 30, 30s, 500ms or 2m, from 1ms "
                                   "to 7 days",
                                   optarg);
            break;
        case 't':
            if (parse_count(optarg, 1, 1024, &threads) < 0)
                return usage_error("bad -t '%s': threads must be 1..1024", optarg);
            break;
        case 'R':
            if (ceiling) return usage_error("ceiling sets its own rates: use --start-rate");
            if (parse_rate(optarg, &rate_rps) < 0)
                return usage_error("bad -R '%s': a rate in requests/s from 0.01 to 10000000",
                                   optarg);
            break;
        case OPT_TIMEOUT:
            if (parse_duration(optarg, TIMEOUT_MAX_S, &timeout_ns) < 0)
                return usage_error("bad --timeout '%s': a duration from 1ms to 1h, like 10s",
                                   optarg);
            break;
        case OPT_SLO_P99:
            if (parse_duration(optarg, TIMEOUT_MAX_S, &slo_p99_ns) < 0)
                return usage_error("bad --slo-p99 '%s': a duration with its unit from 1ms to 1h, "
                                   "like 500ms or 2s",
                                   optarg);
            slo_p99_set = 1;
            break;
        case OPT_SLO_FAILURES:
            if (parse_count(optarg, 0, 1000000000000ul, &slo_failures) < 0)
                return usage_error(
                    "bad --slo-failures '%s': a count of failures allowed, 0 or more", optarg);
            slo_failures_set = 1;
            break;
        case OPT_STAGE:
        case OPT_MAX_DURATION:
        case OPT_START_RATE:
            if (!ceiling)
                return usage_error("--stage, --start-rate and --max-duration are for "
                                   "'catalog-loadtest ceiling'");
            if (option == OPT_START_RATE) {
                if (parse_rate(optarg, &ceiling_options.start_rps) < 0)
                    return usage_error("bad --start-rate '%s': requests/s from 0.01 to 10000000",
                                       optarg);
            } else if (option == OPT_STAGE) {
                if (parse_duration(optarg, TIMEOUT_MAX_S, &ceiling_options.stage_ns) < 0 ||
                    ceiling_options.stage_ns < 100000000ull)
                    return usage_error("bad --stage '%s': a duration from 100ms to 1h, like 5s",
                                       optarg);
            } else if (parse_duration(optarg, DURATION_MAX_S, &ceiling_options.max_duration_ns) <
                       0) {
                return usage_error("bad --max-duration '%s': a duration from 1ms to 7 days, "
                                   "like 2m",
                                   optarg);
            }
            break;
        case OPT_PATH:
            if (path_count == PATHS_MAX)
                return usage_error("too many --path options (at most %d)", PATHS_MAX);
            path_specs[path_count++] = optarg;
            break;
        case OPT_NO_KEEPALIVE:
            keep_alive = 0;
            break;
        case OPT_JSON:
            json_path = optarg;
            break;
        case OPT_LABEL:
            label = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default:
            fputs("Run catalog-loadtest --help for the options.\n", stderr);
            return EXIT_USAGE;
        }
    }
    if (argc - optind > 1) return usage_error("one URL at most (got '%s' too)", argv[optind + 1]);
    const char *url_text = optind < argc ? argv[optind] : getenv("BASE_URL");
    if (!url_text || !*url_text) url_text = DEFAULT_URL;

    url_t url;
    char err[512];
    if (url_parse_http(url_text, &url, err, sizeof(err)) < 0) {
        fprintf(stderr, "catalog-loadtest: bad URL '%s': %s\n", url_text, err);
        return EXIT_USAGE;
    }
    static const char *const default_paths[] = LOADTEST_DEFAULT_PATHS;
    const char *prefix = "";
    if (path_count == 0) {
        if (strcmp(url.path, "/") == 0) {
            for (size_t i = 0; i < LOADTEST_DEFAULT_PATH_COUNT; i++)
                path_specs[path_count++] = default_paths[i];
        } else {
            path_specs[path_count++] = url.path;
        }
    } else {
        prefix = url.path;
    }

    loadtest_request_t *requests = xcalloc(path_count, sizeof(*requests));
    for (size_t i = 0; i < path_count; i++) {
        if (loadtest_request_parse(path_specs[i], prefix, &requests[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "catalog-loadtest: %s\n", err);
            return EXIT_USAGE;
        }
        loadtest_request_build(&requests[i], url.host, url.port, keep_alive);
    }

    engine_config_t config = {0};
    if (resolve(&url, &config) < 0) return EXIT_USAGE;
    if (threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 0 ? (unsigned long)cpus : 1;
    }
    if (threads > connections) threads = connections;
    config.connections = (unsigned)connections;
    config.threads = (unsigned)threads;
    config.duration_ns = duration_ns;
    config.timeout_ns = timeout_ns;
    config.drain_ns = timeout_ns < DRAIN_MAX_NS ? timeout_ns : DRAIN_MAX_NS;
    config.rate_rps = rate_rps;
    config.keep_alive = keep_alive;
    config.requests = requests;
    config.request_count = path_count;

    if (ceiling) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        ceiling_options.cpus =
            cpus > 0 && (unsigned long)cpus < threads ? (unsigned)cpus : (unsigned)threads;
        if (slo_p99_set) ceiling_options.slo_p99_ms = (double)slo_p99_ns / 1e6;
        if (slo_failures_set) ceiling_options.slo_failures = slo_failures;
        signal(SIGPIPE, SIG_IGN);
        signal(SIGINT, on_sigint);
        int ceiling_status = run_ceiling(&config, &ceiling_options, json_path, label, url_text);
        for (size_t i = 0; i < path_count; i++)
            loadtest_request_free(&requests[i]);
        free(requests);
        return ceiling_status;
    }

    printf("catalog-loadtest: %s (%s) for %.1f s, %lu connections, %lu threads, timeout %.1f s, "
           "%s",
           url_text, config.address_text, (double)duration_ns / 1e9, connections, threads,
           (double)timeout_ns / 1e9, keep_alive ? "keep-alive" : "no keep-alive");
    if (rate_rps > 0) printf(", fixed rate %.1f requests/s", rate_rps);
    printf("\n  routes, walked in turn by each connection:");
    for (size_t i = 0; i < path_count; i++)
        printf("%s %s", i ? "," : "", requests[i].name);
    printf("\n\n");
    fflush(stdout);

    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_sigint);
    engine_t *engine = engine_new(&config);
    if (engine_start(engine, err, sizeof(err)) < 0) {
        fprintf(stderr, "catalog-loadtest: %s\n", err);
        engine_free(engine);
        for (size_t i = 0; i < path_count; i++)
            loadtest_request_free(&requests[i]);
        free(requests);
        return EXIT_NOTHING_SUCCEEDED;
    }
    show_progress(engine, duration_ns);
    loadtest_result_t result = {0};
    engine_join(engine, &result);
    engine_free(engine);
    snprintf(result.label, sizeof(result.label), "%s", label);
    snprintf(result.target, sizeof(result.target), "%s", url_text);
    result.slo_p99_set = slo_p99_set;
    result.slo_p99_ms = (double)slo_p99_ns / 1e6;
    result.slo_failures_set = slo_failures_set;
    result.slo_failures = slo_failures;

    buf_t out = {0};
    loadtest_summary_write(&out, &result, isatty(STDOUT_FILENO));
    fwrite(out.data, 1, out.len, stdout);
    fflush(stdout);
    int status = 0;
    if (json_path) {
        buf_reset(&out);
        loadtest_result_write_json(&out, &result);
        if (write_file(json_path, &out) < 0) {
            fprintf(stderr, "catalog-loadtest: cannot write %s: %s\n", json_path, strerror(errno));
            status = EXIT_NOTHING_SUCCEEDED;
        }
    }
    buf_free(&out);
    if (result.requests == result.non2xx)
        status = explain_failure(&result, url_text);
    else if (status == 0 && !loadtest_slo_check(&result, NULL, NULL))
        status = EXIT_SLO_BROKEN;
    loadtest_result_free(&result);
    for (size_t i = 0; i < path_count; i++)
        loadtest_request_free(&requests[i]);
    free(requests);
    return status;
}
