/* json.h: JSON writing: escaped strings and error bodies appended to a buf_t. */
#ifndef CATALOG_JSON_H
#define CATALOG_JSON_H

#include <stddef.h>

#include "buf.h"

/* Appends s[0..len) as a quoted JSON string.  Escapes '"' and '\\', uses \n \r \t \b \f,
 * writes other control characters (< 0x20 and 0x7f) as \u00XX, passes valid UTF-8 through
 * unchanged and replaces each byte of an invalid UTF-8 sequence with \ufffd, so the output is
 * always valid JSON.  s may contain NUL bytes.  Can't fail (buf growth aborts on OOM). */
void json_write_string(buf_t *b, const char *s, size_t len);

/* Room json_escape_into may need for len input bytes: each byte may become a 6-byte escape
 * (an invalid byte becomes \ufffd), plus the two quotes. */
#define JSON_ESCAPED_MAX(len) ((len)*6 + 2)

/* Writes the quoted, escaped string at dst, which must have JSON_ESCAPED_MAX(len) bytes of room;
 * returns the end of what was written.  The same output as json_write_string. */
char *json_escape_into(char *dst, const char *s, size_t len);

/* Same as json_write_string for a NUL-terminated string; NULL writes the JSON literal null. */
void json_write_cstr(buf_t *b, const char *s);

/* 1 when s[0..len) is valid UTF-8 by the rule json_write_string passes through unchanged
 * (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF), else 0.  NUL bytes are
 * valid UTF-8; a caller that cannot take them checks for them itself.  Can't fail. */
int json_utf8_valid(const char *s, size_t len);

/* Appends {"error":"<escaped message>"}.  Can't fail. */
void json_write_error(buf_t *b, const char *message);

#endif
