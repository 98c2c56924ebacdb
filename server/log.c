/* log.c: one-line logs on stderr, one write(2) per line. */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "format.h"

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

void log_write(const char *level, const char *fmt, ...)
{
    int saved_errno = errno;
    char line[4096];
    size_t len = log_timestamp(line);
    pthread_mutex_lock(&log_name_lock);
    int header = snprintf(line + len, sizeof line - len, " %s %s ", log_name, level);
    pthread_mutex_unlock(&log_name_lock);
    if (header > 0) len += (size_t)header;
    if (len > sizeof line - 64) len = sizeof line - 64; /* absurd name: keep room for text */

    size_t message_start = len;
    size_t room = sizeof line - len - 1; /* one byte kept for the '\n' */
    va_list ap;
    va_start(ap, fmt);
    int message_len = vsnprintf(line + len, room + 1, fmt, ap);
    va_end(ap);
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

    const char *p = line;
    while (len > 0) {
        ssize_t written = write(STDERR_FILENO, p, len);
        if (written < 0) {
            if (errno == EINTR) continue;
            break;
        }
        p += written;
        len -= (size_t)written;
    }
    errno = saved_errno;
}
