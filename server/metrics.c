/* metrics.c: Prometheus text exposition helpers and process metrics. */
#include "metrics.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

void metrics_write_header(buf_t *out, const char *name, const char *type, const char *help)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void write_name_labels(buf_t *out, const char *name, const char *labels)
{
    buf_append_cstr(out, name);
    if (labels && *labels) {
        buf_append_char(out, '{');
        buf_append_cstr(out, labels);
        buf_append_char(out, '}');
    }
    buf_append_char(out, ' ');
}

void metrics_write_u64(buf_t *out, const char *name, const char *labels, uint64_t value)
{
    write_name_labels(out, name, labels);
    buf_append_u64(out, value);
    buf_append_char(out, '\n');
}

void metrics_write_double(buf_t *out, const char *name, const char *labels, double value)
{
    write_name_labels(out, name, labels);
    if (isnan(value))
        buf_append_cstr(out, "NaN");
    else if (isinf(value))
        buf_append_cstr(out, value > 0 ? "+Inf" : "-Inf");
    else if (value == floor(value) && fabs(value) < 1e15)
        buf_printf(out, "%.0f", value);
    else
        buf_printf(out, "%.17g", value); /* exact: start times need every digit */
    buf_append_char(out, '\n');
}

void metrics_write_single_u64(buf_t *out, const char *name, const char *type, const char *help,
                              uint64_t value)
{
    metrics_write_header(out, name, type, help);
    metrics_write_u64(out, name, "", value);
}

void metrics_write_single_double(buf_t *out, const char *name, const char *type, const char *help,
                                 double value)
{
    metrics_write_header(out, name, type, help);
    metrics_write_double(out, name, "", value);
}

void metrics_write_histogram(buf_t *out, const char *name, const char *labels, const double *bounds,
                             const uint64_t *cumulative_counts, unsigned bound_count,
                             uint64_t total, double sum)
{
    const char *sep = labels && *labels ? "," : "";
    for (unsigned i = 0; i < bound_count; i++)
        buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels ? labels : "", sep,
                   bounds[i], (unsigned long long)cumulative_counts[i]);
    buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels ? labels : "", sep,
               (unsigned long long)total);
    char series[256];
    snprintf(series, sizeof series, "%s_sum", name);
    metrics_write_double(out, series, labels, sum);
    snprintf(series, sizeof series, "%s_count", name);
    metrics_write_u64(out, series, labels, total);
}

void metrics_escape_label(buf_t *out, const char *value)
{
    for (const char *p = value; *p; p++) {
        if (*p == '\\')
            buf_append_cstr(out, "\\\\");
        else if (*p == '"')
            buf_append_cstr(out, "\\\"");
        else if (*p == '\n')
            buf_append_cstr(out, "\\n");
        else
            buf_append_char(out, *p);
    }
}

static double boot_time_seconds(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    char line[256];
    double btime = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "btime ", 6) == 0) {
            btime = strtod(line + 6, NULL);
            break;
        }
    fclose(f);
    return btime;
}

int metrics_read_process(metrics_process_t *out)
{
    memset(out, 0, sizeof *out);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) out->max_fds = rl.rlim_cur;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') out->open_fds++;
        closedir(d);
        out->open_fds--; /* the directory handle itself */
    }
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return -1;
    char text[1024];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    /* Fields after the command name, which is in parentheses and may hold spaces. */
    char *p = strrchr(text, ')');
    if (!p) return -1;
    p += 2;
    unsigned long long field[40] = {0};
    int count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok && count < 40; tok = strtok_r(NULL, " ", &save))
        field[count++] = strtoull(tok, NULL, 10);
    if (count < 22) return -1;
    /* Indices relative to field 3 (state): utime 14, stime 15, starttime 22, vsize 23, rss 24. */
    double ticks = (double)sysconf(_SC_CLK_TCK);
    out->cpu_user_seconds = (double)field[14 - 3] / ticks;
    out->cpu_system_seconds = (double)field[15 - 3] / ticks;
    out->start_time_seconds = boot_time_seconds() + (double)field[22 - 3] / ticks;
    out->virtual_memory_bytes = field[23 - 3];
    out->resident_memory_bytes = field[24 - 3] * (uint64_t)sysconf(_SC_PAGESIZE);
    return 0;
}

void metrics_write_process(buf_t *out, const metrics_process_t *m)
{
    metrics_write_single_double(out, "process_cpu_user_seconds_total", "counter",
                                "Total user CPU time spent in seconds.", m->cpu_user_seconds);
    metrics_write_single_double(out, "process_cpu_system_seconds_total", "counter",
                                "Total system CPU time spent in seconds.", m->cpu_system_seconds);
    metrics_write_single_double(out, "process_cpu_seconds_total", "counter",
                                "Total user and system CPU time spent in seconds.",
                                m->cpu_user_seconds + m->cpu_system_seconds);
    metrics_write_single_double(out, "process_start_time_seconds", "gauge",
                                "Start time of the process since unix epoch in seconds.",
                                m->start_time_seconds);
    metrics_write_single_u64(out, "process_resident_memory_bytes", "gauge",
                             "Resident memory size in bytes.", m->resident_memory_bytes);
    metrics_write_single_u64(out, "process_virtual_memory_bytes", "gauge",
                             "Virtual memory size in bytes.", m->virtual_memory_bytes);
    metrics_write_single_u64(out, "process_open_fds", "gauge", "Number of open file descriptors.",
                             m->open_fds);
    metrics_write_single_u64(out, "process_max_fds", "gauge",
                             "Maximum number of open file descriptors.", m->max_fds);
}
