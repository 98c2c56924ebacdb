/* metrics.h: Prometheus text exposition (format 0.0.4) helpers and the standard process metrics. */
#ifndef CATALOG_METRICS_H
#define CATALOG_METRICS_H

#include <stdint.h>

#include "buf.h"

/* Appends "# HELP name help\n# TYPE name type\n". */
void metrics_write_header(buf_t *out, const char *name, const char *type, const char *help);

/* Appends "name{labels} value\n"; labels is the text inside the braces ("" for none), already
 * escaped by the caller (label values here are fixed route names and ids checked at start-up). */
void metrics_write_u64(buf_t *out, const char *name, const char *labels, uint64_t value);
void metrics_write_double(buf_t *out, const char *name, const char *labels, double value);

/* Appends the _bucket, _sum and _count lines of one histogram series.  counts[i] is the number of
 * observations <= bounds[i] (cumulative); total is the count of all (the +Inf bucket). */
void metrics_write_histogram(buf_t *out, const char *name, const char *labels, const double *bounds,
                             const uint64_t *cumulative_counts, unsigned bound_count,
                             uint64_t total, double sum);

/* One metric with a single unlabelled series: its HELP and TYPE lines, then its value. */
void metrics_write_single_u64(buf_t *out, const char *name, const char *type, const char *help,
                              uint64_t value);
void metrics_write_single_double(buf_t *out, const char *name, const char *type, const char *help,
                                 double value);

/* Appends a label value with \, " and newline escaped, as the format requires. */
void metrics_escape_label(buf_t *out, const char *value);

/* The process metrics read from /proc/self: the standard names of Prometheus client libraries. */
typedef struct metrics_process {
    double cpu_user_seconds, cpu_system_seconds;
    double start_time_seconds; /* since the Unix epoch */
    uint64_t resident_memory_bytes, virtual_memory_bytes;
    uint64_t open_fds, max_fds;
} metrics_process_t;

/* Reads /proc/self/stat, /proc/stat (boot time), /proc/self/fd and the fd limit.  Returns 0, or
 * -1 when /proc is not readable (fields then zero). */
int metrics_read_process(metrics_process_t *out);
/* Appends process_cpu_seconds_total, process_cpu_user_seconds_total,
 * process_cpu_system_seconds_total, process_start_time_seconds,
 * process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds, process_max_fds.
 */
void metrics_write_process(buf_t *out, const metrics_process_t *process);

#endif
