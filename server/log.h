/* log.h: one-line logs on stderr: "<ISO 8601 UTC ms> <name> <level> <message>". */
#ifndef CATALOG_LOG_H
#define CATALOG_LOG_H

/* Sets the name written on every line, e.g. "catalog-server[app]" (copied; at most 127
 * bytes kept).  Safe to call at any time; threads logging meanwhile see the old or the new
 * name, never a mix. */
void log_set_name(const char *name);

/* Writes one line to stderr with a single write(2), so lines from different threads never
 * interleave.  Newlines and other control characters in the message become spaces; a message
 * longer than about 4 KiB is cut and ends in "...".  Errors writing are ignored (there is
 * nowhere left to report them).  errno is preserved. */
void log_write(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_info(...) log_write("info", __VA_ARGS__)
#define log_warn(...) log_write("warn", __VA_ARGS__)
#define log_error(...) log_write("error", __VA_ARGS__)

#endif
