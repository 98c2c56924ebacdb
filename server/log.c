/* log.c: one-line logs on stderr: written at once, or (log_start_async) through a bounded
 * buffer that a writer thread drains, so no caller ever waits on a slow reader. */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "format.h"
#include "loop.h"

/* The asynchronous mode: callers append whole lines to `fill` under `lock`; the writer thread
 * swaps it with its own buffer and writes that with no lock held.  A line that does not fit is
 * dropped and counted. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;    /* lines to write, or stopping */
    pthread_cond_t drained; /* the writer wrote everything it had */
    char *fill, *drain;     /* two buffers of `capacity` bytes */
    size_t capacity, fill_len;
    int started, stopping, writing;
    int writer_asleep;           /* waiting with no timeout: a caller must wake it */
    uint64_t dropped_unreported; /* lines dropped since the last report line */
    uint64_t last_report_ms;
    pthread_t thread;
} async = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .drained = PTHREAD_COND_INITIALIZER,
};
static atomic_ullong lines_dropped;

/* How long the writer stays awake after a batch before it sleeps until woken. */
#define LOG_LINGER_MS 10
/* Drops reports of dropped lines closer together than this. */
#define LOG_DROP_REPORT_INTERVAL_MS 10000

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Writes all of data to stderr (blocking); gives up on an error other than EINTR. */
static void write_all(const char *p, size_t len)
{
    while (len > 0) {
        ssize_t written = write(STDERR_FILENO, p, len);
        if (written < 0) {
            if (errno == EINTR) continue;
            return;
        }
        p += written;
        len -= (size_t)written;
    }
}

static size_t count_lines(const char *p, size_t len)
{
    size_t n = 0;
    for (const char *end = p + len; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
        n++;
    return n;
}

/* The name written on every line, guarded by log_name_lock. */
static char log_name[128] = "catalog";
static pthread_mutex_t log_name_lock = PTHREAD_MUTEX_INITIALIZER;

void log_set_name(const char *name)
{
    pthread_mutex_lock(&log_name_lock);
    snprintf(log_name, sizeof log_name, "%s", name ? name : "catalog");
    pthread_mutex_unlock(&log_name_lock);
}

/* Writes the current UTC time into out (FORMAT_ISO8601_MAX bytes); returns its length. */
static size_t log_timestamp(char *out)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return format_iso8601_text(out, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
}

/* Formats one whole line (LOG_LINE_MAX bytes at most, ending in '\n') into line. */
#define LOG_LINE_MAX 4096
static size_t format_line(char *line, const char *level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static size_t format_line(char *line, const char *level, const char *fmt, va_list ap)
{
    size_t len = log_timestamp(line);
    pthread_mutex_lock(&log_name_lock);
    int header = snprintf(line + len, LOG_LINE_MAX - len, " %s %s ", log_name, level);
    pthread_mutex_unlock(&log_name_lock);
    if (header > 0) len += (size_t)header;
    if (len > LOG_LINE_MAX - 64) len = LOG_LINE_MAX - 64; /* absurd name: keep room for text */

    size_t message_start = len;
    size_t room = LOG_LINE_MAX - len - 1; /* one byte kept for the '\n' */
    int message_len = vsnprintf(line + len, room + 1, fmt, ap);
    if (message_len < 0) message_len = 0;
    if ((size_t)message_len > room) {
        len += room;
        memcpy(line + len - 3, "...", 3);
    } else {
        len += (size_t)message_len;
    }
    for (size_t i = message_start; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7f) line[i] = ' ';
    }
    line[len++] = '\n';
    return len;
}

void log_write(const char *level, const char *fmt, ...)
{
    int saved_errno = errno;
    char line[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    size_t len = format_line(line, level, fmt, ap);
    va_end(ap);
    log_write_lines(line, len);
    errno = saved_errno;
}

/* The writer's own line, written at once (it is the only writer of stderr meanwhile). */
static void writer_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void writer_note(const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    size_t len = format_line(line, "warn", fmt, ap);
    va_end(ap);
    write_all(line, len);
}

void log_write_lines(const char *lines, size_t len)
{
    if (len == 0) return;
    if (!async.started) {
        write_all(lines, len);
        return;
    }
    pthread_mutex_lock(&async.lock);
    size_t room = async.capacity - async.fill_len;
    size_t take = len;
    if (take > room) {
        /* keep the whole lines that fit */
        take = room;
        while (take > 0 && lines[take - 1] != '\n')
            take--;
        uint64_t dropped = count_lines(lines + take, len - take);
        if (lines[len - 1] != '\n') dropped++;
        async.dropped_unreported += dropped;
        atomic_fetch_add_explicit(&lines_dropped, dropped, memory_order_relaxed);
    }
    if (take) {
        int was_empty = async.fill_len == 0;
        memcpy(async.fill + async.fill_len, lines, take);
        async.fill_len += take;
        if (was_empty && async.writer_asleep) pthread_cond_signal(&async.wake);
    }
    pthread_mutex_unlock(&async.lock);
}

uint64_t log_lines_dropped(void)
{
    return atomic_load_explicit(&lines_dropped, memory_order_relaxed);
}

static void *log_writer(void *arg)
{
    pthread_mutex_lock(&async.lock);
    for (;;) {
        if (async.fill_len == 0 && !async.dropped_unreported && !async.stopping) {
            /* Stay awake a little first: lines logged meanwhile need no wake-up, so a busy
             * server's callers never make a syscall to log. */
            struct timespec until = loop_deadline_after(CLOCK_REALTIME, LOG_LINGER_MS);
            pthread_cond_timedwait(&async.wake, &async.lock, &until);
            async.writer_asleep = 1;
            while (async.fill_len == 0 && !async.dropped_unreported && !async.stopping)
                pthread_cond_wait(&async.wake, &async.lock);
            async.writer_asleep = 0;
        }
        if (async.fill_len == 0 && async.stopping) break;
        char *batch = async.fill;
        size_t batch_len = async.fill_len;
        async.fill = async.drain;
        async.drain = batch;
        async.fill_len = 0;
        async.writing = 1;
        pthread_mutex_unlock(&async.lock);

        write_all(batch, batch_len);

        pthread_mutex_lock(&async.lock);
        async.writing = 0;
        uint64_t now = monotonic_ms();
        if (async.dropped_unreported &&
            (async.last_report_ms == 0 ||
             now - async.last_report_ms >= LOG_DROP_REPORT_INTERVAL_MS || async.stopping)) {
            uint64_t n = async.dropped_unreported;
            async.dropped_unreported = 0;
            async.last_report_ms = now;
            pthread_mutex_unlock(&async.lock);
            writer_note(
                "log: %llu lines dropped: stderr was not read fast enough (at most one such "
                "line per %d s; log_lines_dropped_total counts them all)",
                (unsigned long long)n, LOG_DROP_REPORT_INTERVAL_MS / 1000);
            pthread_mutex_lock(&async.lock);
        } else if (async.dropped_unreported && async.fill_len == 0) {
            /* report later: wait for more lines or the end of the interval */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait(&async.wake, &async.lock, &until);
        }
        if (async.fill_len == 0) pthread_cond_broadcast(&async.drained);
    }
    pthread_cond_broadcast(&async.drained);
    pthread_mutex_unlock(&async.lock);
    return NULL;
}

/* At exit: what is buffered gets up to a second to reach a slow reader, then is abandoned. */
void log_finish(void)
{
    if (!async.started) return;
    pthread_mutex_lock(&async.lock);
    async.stopping = 1;
    pthread_cond_signal(&async.wake);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    while ((async.fill_len > 0 || async.writing) &&
           pthread_cond_timedwait(&async.drained, &async.lock, &until) == 0) {
    }
    pthread_mutex_unlock(&async.lock);
}

int log_start_async(size_t capacity)
{
    if (async.started) return 0;
    async.fill = xmalloc(capacity);
    async.drain = xmalloc(capacity);
    async.capacity = capacity;
    if (pthread_create(&async.thread, NULL, log_writer, NULL) != 0) {
        free(async.fill);
        free(async.drain);
        async.fill = async.drain = NULL;
        return -1;
    }
    pthread_detach(async.thread);
    async.started = 1;
    atexit(log_finish);
    return 0;
}
