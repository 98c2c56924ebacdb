/* test_metrics.c: unit tests for server/metrics (exposition lines, histograms, escaping,
 * process). */
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "metrics.h"
#include "test.h"

/* Runs one writer into a fresh buffer and compares the whole text. */
#define CHECK_TEXT(stmt, want)                                                                     \
    do {                                                                                           \
        buf_t out = {0};                                                                           \
        stmt;                                                                                      \
        CHECK_MEM(out.data, out.len, (want));                                                      \
        buf_free(&out);                                                                            \
    } while (0)

/* The value written by metrics_write_double must read back as exactly the same double. */
static void check_double_round_trip(double value, int line)
{
    buf_t out = {0};
    metrics_write_double(&out, "m", "", value);
    buf_append_char(&out, 0);
    const char *number = out.data + 2; /* after "m " */
    double back = strtod(number, NULL);
    if (back != value)
        fprintf(stderr, "line %d: %.17g written as \"%.*s\" reads back as %.17g\n", line, value,
                (int)strcspn(number, "\n"), number, back);
    CHECK(back == value);
    buf_free(&out);
}
#define CHECK_ROUND_TRIP(value) check_double_round_trip((value), __LINE__)

static double process_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
    /* header, counters and gauges */
    CHECK_TEXT(metrics_write_header(&out, "http_requests_total", "counter", "HTTP requests."),
               "# HELP http_requests_total HTTP requests.\n# TYPE http_requests_total counter\n");
    CHECK_TEXT(metrics_write_u64(&out, "up", "", 1), "up 1\n");
    CHECK_TEXT(metrics_write_u64(&out, "up", NULL, 0), "up 0\n");
    CHECK_TEXT(metrics_write_u64(&out, "c", "a=\"x\",b=\"y\"", UINT64_MAX),
               "c{a=\"x\",b=\"y\"} 18446744073709551615\n");
    CHECK_TEXT(metrics_write_double(&out, "g", "", 0), "g 0\n");
    CHECK_TEXT(metrics_write_double(&out, "g", "", 42), "g 42\n");
    CHECK_TEXT(metrics_write_double(&out, "g", "", -3), "g -3\n");
    CHECK_TEXT(metrics_write_double(&out, "g", "", 0.25), "g 0.25\n");
    CHECK_TEXT(metrics_write_double(&out, "g", "", 1.5), "g 1.5\n");
    CHECK_TEXT(metrics_write_double(&out, "g", "l=\"v\"", NAN), "g{l=\"v\"} NaN\n");
    CHECK_TEXT(metrics_write_double(&out, "g", "", INFINITY), "g +Inf\n");
    CHECK_TEXT(metrics_write_double(&out, "g", "", -INFINITY), "g -Inf\n");

    /* Values keep their precision: a start time in seconds with hundredths (what
     * process_start_time_seconds holds), a large millisecond sum, tiny CPU times. */
    CHECK_ROUND_TRIP(1795901899.53);
    CHECK_ROUND_TRIP(1795901899.0);
    CHECK_ROUND_TRIP(123456789.125);
    CHECK_ROUND_TRIP(9876543210.5);
    CHECK_ROUND_TRIP(0.01);
    CHECK_ROUND_TRIP(0.001234567891234);
    CHECK_ROUND_TRIP(1e15);
    CHECK_ROUND_TRIP(1e300);
    CHECK_ROUND_TRIP(-2.5e-7);

    /* histograms: cumulative buckets, +Inf equal to the count, _sum and _count */
    {
        static const double bounds[] = {10, 50, 2.5};
        static const uint64_t cumulative[] = {1, 4, 4};
        CHECK_TEXT(metrics_write_histogram(&out, "d_ms", "method=\"GET\",route=\"/report\"", bounds,
                                           cumulative, 3, 6, 812.5),
                   "d_ms_bucket{method=\"GET\",route=\"/report\",le=\"10\"} 1\n"
                   "d_ms_bucket{method=\"GET\",route=\"/report\",le=\"50\"} 4\n"
                   "d_ms_bucket{method=\"GET\",route=\"/report\",le=\"2.5\"} 4\n"
                   "d_ms_bucket{method=\"GET\",route=\"/report\",le=\"+Inf\"} 6\n"
                   "d_ms_sum{method=\"GET\",route=\"/report\"} 812.5\n"
                   "d_ms_count{method=\"GET\",route=\"/report\"} 6\n");
        CHECK_TEXT(metrics_write_histogram(&out, "w", "", bounds, cumulative, 2, 0, 0),
                   "w_bucket{le=\"10\"} 1\n"
                   "w_bucket{le=\"50\"} 4\n"
                   "w_bucket{le=\"+Inf\"} 0\n"
                   "w_sum 0\n"
                   "w_count 0\n");
        CHECK_TEXT(metrics_write_histogram(&out, "n", NULL, bounds, cumulative, 1, 1, 3),
                   "n_bucket{le=\"10\"} 1\nn_bucket{le=\"+Inf\"} 1\nn_sum 3\nn_count 1\n");
        static const double big_bounds[] = {1000, 5000, 100000};
        static const uint64_t zero[] = {0, 0, 0};
        CHECK_TEXT(metrics_write_histogram(&out, "b", "", big_bounds, zero, 3, 0, 0),
                   "b_bucket{le=\"1000\"} 0\nb_bucket{le=\"5000\"} 0\nb_bucket{le=\"100000\"} 0\n"
                   "b_bucket{le=\"+Inf\"} 0\nb_sum 0\nb_count 0\n");
    }

    /* label escaping: backslash, double quote and newline; everything else as is */
    CHECK_TEXT(metrics_escape_label(&out, "plain-id_1.2"), "plain-id_1.2");
    CHECK_TEXT(metrics_escape_label(&out, "a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    CHECK_TEXT(metrics_escape_label(&out, ""), "");
    CHECK_TEXT(metrics_escape_label(&out, "caf\xc3\xa9 {x=1}"), "caf\xc3\xa9 {x=1}");

    /* process metrics from /proc */
    {
        metrics_process_t before, after;
        CHECK_INT(metrics_read_process(&before), 0);
        int fds[3];
        int pipe_fds[2];
        CHECK_INT(pipe(pipe_fds), 0);
        fds[0] = pipe_fds[0];
        fds[1] = pipe_fds[1];
        fds[2] = open("/dev/null", O_RDONLY);
        /* burn 0.3 s of CPU (measured by the kernel, so a busy machine only makes it slower) */
        volatile double sink = 0;
        double until = process_cpu_seconds() + 0.3;
        while (process_cpu_seconds() < until)
            for (int i = 0; i < 10000; i++)
                sink += i * 0.5;
        CHECK_INT(metrics_read_process(&after), 0);
        CHECK_INT(after.open_fds, before.open_fds + 3);
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        CHECK_INT(after.max_fds, rl.rlim_cur);
        CHECK(after.open_fds >= 3);
        CHECK(after.resident_memory_bytes > 100000);
        CHECK(after.virtual_memory_bytes >= after.resident_memory_bytes);
        double used = (after.cpu_user_seconds + after.cpu_system_seconds) -
                      (before.cpu_user_seconds + before.cpu_system_seconds);
        if (!(used >= 0.2 && used <= 2)) fprintf(stderr, "CPU seconds used: %f\n", used);
        CHECK(used >= 0.2 && used <= 2);
        double now = (double)time(NULL);
        if (!(after.start_time_seconds > now - 60 && after.start_time_seconds <= now + 1))
            fprintf(stderr, "start %.2f, now %.0f\n", after.start_time_seconds, now);
        CHECK(after.start_time_seconds > now - 60 && after.start_time_seconds <= now + 1);
        for (int i = 0; i < 3; i++)
            close(fds[i]);

        /* the rendered block: every standard name, TYPE lines, user + system = total */
        buf_t out = {0};
        metrics_process_t fixed = {.cpu_user_seconds = 1.25,
                                   .cpu_system_seconds = 0.5,
                                   .start_time_seconds = 1795901899.53,
                                   .resident_memory_bytes = 1234567,
                                   .virtual_memory_bytes = 7654321,
                                   .open_fds = 12,
                                   .max_fds = 1024};
        metrics_write_process(&out, &fixed);
        buf_append_char(&out, 0);
        static const char *const lines[] = {
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.75\n",
            "# TYPE process_cpu_user_seconds_total counter\nprocess_cpu_user_seconds_total 1.25\n",
            "# TYPE process_cpu_system_seconds_total counter\n"
            "process_cpu_system_seconds_total 0.5\n",
            "# TYPE process_start_time_seconds gauge\n",
            "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1234567\n",
            "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes 7654321\n",
            "# TYPE process_open_fds gauge\nprocess_open_fds 12\n",
            "# TYPE process_max_fds gauge\nprocess_max_fds 1024\n",
        };
        for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
            if (!strstr(out.data, lines[i])) fprintf(stderr, "missing: %s", lines[i]);
            CHECK(strstr(out.data, lines[i]) != NULL);
        }
        const char *start = strstr(out.data, "\nprocess_start_time_seconds ");
        CHECK(start != NULL);
        if (start) {
            double value = strtod(start + strlen("\nprocess_start_time_seconds "), NULL);
            if (fabs(value - 1795901899.53) > 0.005)
                fprintf(stderr, "process_start_time_seconds written as %.3f, want 1795901899.53\n",
                        value);
            CHECK(fabs(value - 1795901899.53) <= 0.005);
        }
        buf_free(&out);
        (void)sink;
    }
    return test_report("test_metrics");
}
