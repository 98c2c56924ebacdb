/* error.h: error text written into a caller's buffer, the one way lib/ and its programs do it. */
#ifndef CATALOG_ERROR_H
#define CATALOG_ERROR_H

#include <stddef.h>

/* Formats a message (printf-style) into err, NUL-terminated and truncated to err_len bytes;
 * writes nothing when err is NULL or err_len is 0.  Always returns -1, so that a failing
 * function can end with `return error_set(err, err_len, "...", ...);`.  This function can't
 * fail and allocates nothing. */
int error_set(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
