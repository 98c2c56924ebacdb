/* pgnotice.h: a PostgreSQL notice (or an error that arrives outside a query) as one line. */
#ifndef CATALOG_PGNOTICE_H
#define CATALOG_PGNOTICE_H

#include <libpq-fe.h>
#include <stddef.h>

/* Writes res's notice into out (out_len bytes, always NUL-terminated, cut when longer) as one
 * line without a newline: "SEVERITY SQLSTATE: message" and, when PostgreSQL sent them,
 * " (detail: ...)" and " (hint: ...)"; newlines and other control characters become spaces.
 * The severity is PostgreSQL's untranslated one (WARNING, FATAL, ...).  Returns out. */
char *pgnotice_format(const PGresult *res, char *out, size_t out_len);

/* The log level that fits res's severity: "error" for ERROR, FATAL and PANIC, "warn" for
 * WARNING, "info" for the rest (NOTICE, INFO, LOG, DEBUG).  Static storage. */
const char *pgnotice_level(const PGresult *res);

#endif
