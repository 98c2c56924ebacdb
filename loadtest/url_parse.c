/* url_parse.c: parsing the load generator's http:// target URL. */
#include "url_parse.h"

#include <string.h>
#include <strings.h>

#include "error.h"
#include "number.h"

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
