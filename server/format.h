/* format.h: money and time as the API writes them ("$1234.56", "2026-11-28T21:38:19.711Z"). */
#ifndef CATALOG_FORMAT_H
#define CATALOG_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Appends cents as dollars with exactly two decimals and no separators: "$0.00", "$5.07",
 * "$1234.56", negative "-$0.05".  Every int64_t value works (INT64_MIN too).  Can't fail. */
void format_money_cents(buf_t *b, int64_t cents);

/* Appends the UTC time unix_ms (milliseconds since 1970, may be negative) as ISO 8601 with
 * milliseconds: "2026-11-28T21:38:19.711Z".  Years outside 0..9999 are written with as many
 * digits as they need (and a '-' before 0).  Thread-safe, no allocation beyond buf growth. */
void format_iso8601_ms(buf_t *b, int64_t unix_ms);

/* Room format_iso8601_text needs: the longest int64_t time plus a NUL. */
#define FORMAT_ISO8601_MAX 40

/* Same text as format_iso8601_ms, written into out (FORMAT_ISO8601_MAX bytes) with a NUL;
 * returns the length without the NUL.  For callers that must not allocate (the logger). */
size_t format_iso8601_text(char *out, int64_t unix_ms);

/* Converts PostgreSQL's text for a `timestamp without time zone` in DateStyle ISO
 * ("2026-11-28 21:38:02.359123", fraction absent or 1-6 digits, 4-digit year) into
 * "2026-11-28T21:38:02.359Z" (truncated to milliseconds).  Returns 0, or -1 when text does
 * not have that shape or a field is out of range (BC dates, infinity, 5-digit years); on -1
 * nothing is appended. */
int format_pg_timestamp(buf_t *b, const char *text, size_t len);

#endif
