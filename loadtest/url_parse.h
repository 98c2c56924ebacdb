/* url_parse.h: parsing the load generator's http:// target URL. */
#ifndef CATALOG_URL_PARSE_H
#define CATALOG_URL_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* A parsed http:// URL. */
typedef struct url {
    char host[256];  /* name, IPv4 address, or IPv6 address without the brackets */
    uint16_t port;   /* 80 unless the URL says otherwise */
    char path[2048]; /* "/" when absent; keeps the "?query"; the "#fragment" is dropped */
} url_t;

/* Parses "http://host[:port][/path[?query]]" (scheme case-insensitive).  Returns 0 and fills
 * *out, or -1 with a sentence for a person in err (err may be NULL when err_len is 0), e.g.
 * "https is not supported", "missing host", "bad port '99999'", "not an http:// URL: ...".
 * Credentials ("user@host"), spaces and control characters are rejected. */
int url_parse_http(const char *text, url_t *out, char *err, size_t err_len);

#endif
