/* url.h: percent-decoding and query-string lookup of the request target. */
#ifndef CATALOG_URL_H
#define CATALOG_URL_H

#include <stddef.h>

#include "buf.h"

/* Percent-decodes in[0..len) into out, which must hold at least len bytes (decoding never
 * grows).  With plus_is_space, '+' decodes to ' ' (form/query encoding).  Returns the decoded
 * length, or -1 when a '%' is not followed by two hex digits ("%zz", "%4" at the end); then
 * out holds garbage.  Decoded NUL bytes are allowed: the caller decides whether they are. */
long url_decode(const char *in, size_t len, char *out, int plus_is_space);

/* Looks up name in query (the text after '?', without the '?').  Pairs are separated by '&';
 * the first pair whose decoded key equals name wins; a pair without '=' has an empty value;
 * '+' decodes to a space.  Returns 1 with value reset to the decoded value, 0 when no pair
 * has that key, -1 when a key examined on the way (or the matching pair's value) has invalid
 * percent-encoding.  On 0 and -1 value is left empty.  value is used as scratch space, so
 * the lookup allocates nothing beyond its growth; the caller owns and frees it. */
int url_query_get(slice_t query, const char *name, buf_t *value);

#endif
