/* log.h: one-line logs on stderr: "<ISO 8601 UTC ms> <name> <level> <message>". */
#ifndef CATALOG_LOG_H
#define CATALOG_LOG_H

#include <stddef.h>
#include <stdint.h>

/* Sets the name written on every line, e.g. "catalog-server[app]" (copied; at most 127
 * bytes kept).  Safe to call at any time; threads logging meanwhile see the old or the new
 * name, never a mix. */
void log_set_name(const char *name);

/* Writes one line to stderr, whole, so lines from different threads never interleave: with
 * one write(2), or after log_start_async into the buffer the writer thread drains.  Newlines and
 * other control characters in the message become spaces; a message longer than about 4 KiB is
 * cut and ends in "...".  Errors writing are ignored (there is nowhere left to report them).
 * errno is preserved. */
void log_write(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes lines already formatted (each ending in '\n', e.g. a batch of access-log lines) the
 * same way.  In the asynchronous mode the whole lines that fit are kept, the others dropped. */
void log_write_lines(const char *lines, size_t len);

/* From now on every line goes into a buffer of `capacity` bytes (twice: one filling, one being
 * written) drained by a writer thread, so a caller never blocks on stderr, even when nobody
 * reads it: lines that do not fit are dropped and counted, and the writer reports them in one
 * line (at most one every 10 s) once stderr takes lines again.  At exit what is buffered gets up
 * to a second to be written.  The writer thread inherits the caller's signal mask: block the
 * signals it must not take first.  Returns 0, or -1 when no thread can be started (then logging
 * stays synchronous). */
int log_start_async(size_t capacity);
/* Gives what is buffered up to a second to reach stderr, then stops the writer (lines logged
 * afterwards are lost).  log_start_async registers it with atexit; a process that leaves with
 * _exit calls it first.  Does nothing in the synchronous mode. */
void log_finish(void);
/* Lines dropped since the start (asynchronous mode only). */
uint64_t log_lines_dropped(void);

#define log_info(...) log_write("info", __VA_ARGS__)
#define log_warn(...) log_write("warn", __VA_ARGS__)
#define log_error(...) log_write("error", __VA_ARGS__)

#endif
