/* number.h: strict decimal parsing of untrusted text (path ids, query and env values), and
 * decimal formatting. */
#ifndef CATALOG_NUMBER_H
#define CATALOG_NUMBER_H

#include <stddef.h>
#include <stdint.h>

/* Parses s[0..len) as an optional '-' followed by one or more ASCII digits and nothing else
 * (no '+', no spaces, no trailing bytes; leading zeros are fine).  Returns 0 and sets *out,
 * or -1 (and leaves *out alone) when the text has another shape or does not fit int32_t. */
int number_parse_i32(const char *s, size_t len, int32_t *out);

/* Parses s[0..len) as one or more ASCII digits and nothing else.  Returns 0 and sets *out,
 * or -1 (and leaves *out alone) on any other shape or a value above UINT64_MAX. */
int number_parse_u64(const char *s, size_t len, uint64_t *out);

/* Most digits number_format_u64 writes (UINT64_MAX has 20). */
#define NUMBER_U64_DIGITS_MAX 20

/* Writes the decimal digits of v, no padding and no NUL, into out (which has room for
 * NUMBER_U64_DIGITS_MAX bytes); returns how many it wrote.  Can't fail. */
size_t number_format_u64(uint64_t v, char *out);

#endif
