/* url.c: percent-decoding, query-string lookup and http:// URL parsing. */
#include "url.h"

#include <strings.h>

#include "error.h"
#include "number.h"

/* Value of an ASCII hex digit, or -1. */
static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long url_decode(const char *in, size_t len, char *out, int plus_is_space)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            if (len - i < 3) return -1;
            int high = hex_value((unsigned char)in[i + 1]);
            int low = hex_value((unsigned char)in[i + 2]);
            if (high < 0 || low < 0) return -1;
            out[n++] = (char)(high << 4 | low);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out[n++] = ' ';
        } else {
            out[n++] = c;
        }
    }
    return (long)n;
}

/* Resets value and decodes text into it; returns 0 or -1 on invalid encoding. */
static int decode_into(buf_t *value, const char *text, size_t len)
{
    buf_reset(value);
    if (len == 0) return 0;
    long n = url_decode(text, len, buf_reserve(value, len), 1);
    if (n < 0) return -1;
    value->len = (size_t)n;
    return 0;
}

int url_query_get(slice_t query, const char *name, buf_t *value)
{
    size_t name_len = strlen(name);
    const char *p = query.base, *end = query.base + query.len;
    buf_reset(value);
    while (query.len && p <= end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp ? amp : end;
        if (pair_end > p) {
            const char *eq = memchr(p, '=', (size_t)(pair_end - p));
            const char *key_end = eq ? eq : pair_end;
            if (decode_into(value, p, (size_t)(key_end - p))) goto invalid;
            /* An empty key leaves value->data NULL, which memcmp must not get (C11 7.24.1). */
            if (value->len == name_len &&
                (name_len == 0 || memcmp(value->data, name, name_len) == 0)) {
                const char *value_start = eq ? eq + 1 : pair_end;
                if (decode_into(value, value_start, (size_t)(pair_end - value_start))) goto invalid;
                return 1;
            }
        }
        if (!amp) break;
        p = amp + 1;
    }
    buf_reset(value);
    return 0;
invalid:
    buf_reset(value);
    return -1;
}

int url_parse_http(const char *text, url_t *out, char *err, size_t err_len)
{
    static const char prefix[] = "http://";
    if (strncasecmp(text, "https://", 8) == 0)
        return error_set(err, err_len, "https is not supported (use http://): %.200s", text);
    if (strncasecmp(text, prefix, sizeof prefix - 1) != 0)
        return error_set(err, err_len, "not an http:// URL: '%.200s'", text);
    for (const char *c = text; *c; c++) {
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return error_set(err, err_len, "URL contains a space or control character: '%.200s'",
                             text);
    }

    const char *authority = text + sizeof prefix - 1;
    size_t authority_len = strcspn(authority, "/?#");
    const char *rest = authority + authority_len;
    if (memchr(authority, '@', authority_len))
        return error_set(err, err_len, "credentials in the URL are not supported: '%.200s'", text);

    const char *host = authority, *host_end, *after_host;
    if (authority_len && authority[0] == '[') {
        const char *close = memchr(authority, ']', authority_len);
        if (!close)
            return error_set(err, err_len, "missing ']' after the IPv6 address in '%.200s'", text);
        host = authority + 1;
        host_end = close;
        after_host = close + 1;
        if (after_host < rest && *after_host != ':')
            return error_set(err, err_len, "unexpected text after ']' in '%.200s'", text);
    } else {
        const char *colon = memchr(authority, ':', authority_len);
        host_end = colon ? colon : rest;
        after_host = host_end;
    }
    size_t host_len = (size_t)(host_end - host);
    if (host_len == 0) return error_set(err, err_len, "missing host in '%.200s'", text);
    if (host_len >= sizeof out->host)
        return error_set(err, err_len, "host name longer than %zu bytes", sizeof out->host - 1);

    uint16_t port = 80;
    if (after_host < rest) { /* ":port" */
        const char *port_text = after_host + 1;
        size_t port_len = (size_t)(rest - port_text);
        uint64_t value;
        if (number_parse_u64(port_text, port_len, &value) || value < 1 || value > 65535)
            return error_set(err, err_len, "bad port '%.*s' (want 1 to 65535)", (int)port_len,
                             port_text);
        port = (uint16_t)value;
    }

    size_t path_len = strcspn(rest, "#");
    const char *path_prefix = (path_len == 0 || rest[0] == '?') ? "/" : "";
    if (strlen(path_prefix) + path_len >= sizeof out->path)
        return error_set(err, err_len, "path longer than %zu bytes", sizeof out->path - 1);

    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = port;
    size_t prefix_len = strlen(path_prefix);
    memcpy(out->path, path_prefix, prefix_len);
    memcpy(out->path + prefix_len, rest, path_len);
    out->path[prefix_len + path_len] = '\0';
    return 0;
}
