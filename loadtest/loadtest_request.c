/* loadtest_request.c: the load test's routes: "--path" specs parsed, request bytes built once. */
#include "loadtest_request.h"

#include <string.h>

#include "error.h"

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int loadtest_request_parse(const char *spec, const char *prefix, loadtest_request_t *out, char *err,
                           size_t err_len)
{
    memset(out, 0, sizeof(*out));
    const char *p = spec;
    while (is_space(*p))
        p++;
    if (*p == '/') {
        strcpy(out->method, "GET");
    } else {
        size_t n = 0;
        while (p[n] >= 'A' && p[n] <= 'Z')
            n++;
        if (n == 0 || n >= sizeof(out->method) || !is_space(p[n])) {
            return error_set(err, err_len,
                             "bad --path '%s': expected \"/path\" or \"METHOD /path [body]\" "
                             "(method in capitals, e.g. POST /orders {...})",
                             spec);
        }
        memcpy(out->method, p, n);
        out->method[n] = 0;
        p += n;
        while (is_space(*p))
            p++;
        if (*p != '/') {
            return error_set(err, err_len, "bad --path '%s': the path must start with '/'", spec);
        }
    }
    size_t path_len = 0;
    while (p[path_len] && !is_space(p[path_len])) {
        unsigned char c = (unsigned char)p[path_len];
        if (c < 0x21 || c == 0x7f) {
            return error_set(err, err_len, "bad --path '%s': control character in the path", spec);
        }
        path_len++;
    }
    if (!prefix) prefix = "";
    size_t prefix_len = strlen(prefix);
    while (prefix_len && prefix[prefix_len - 1] == '/')
        prefix_len--;
    if (prefix_len + path_len >= sizeof(out->path)) {
        return error_set(err, err_len, "bad --path: longer than %zu bytes", sizeof(out->path) - 1);
    }
    memcpy(out->path, prefix, prefix_len);
    memcpy(out->path + prefix_len, p, path_len);
    out->path[prefix_len + path_len] = 0;
    p += path_len;
    while (is_space(*p))
        p++;
    size_t body_len = strlen(p);
    while (body_len && is_space(p[body_len - 1]))
        body_len--;
    if (body_len) buf_append(&out->body, p, body_len);
    out->is_head = strcmp(out->method, "HEAD") == 0;
    /* Truncated on purpose: the name labels table rows. */
    size_t method_len = strlen(out->method), room = sizeof(out->name) - method_len - 2;
    memcpy(out->name, out->method, method_len);
    out->name[method_len] = ' ';
    size_t copy = strlen(out->path) < room ? strlen(out->path) : room;
    memcpy(out->name + method_len + 1, out->path, copy);
    out->name[method_len + 1 + copy] = 0;
    return 0;
}

void loadtest_request_build(loadtest_request_t *r, const char *host, uint16_t port, int keep_alive)
{
    buf_t *b = &r->bytes;
    buf_reset(b);
    buf_printf(b, "%s %s HTTP/1.1\r\nHost: ", r->method, r->path);
    int ipv6 = strchr(host, ':') != NULL;
    buf_printf(b, ipv6 ? "[%s]" : "%s", host);
    if (port != 80) buf_printf(b, ":%u", (unsigned)port);
    buf_append_cstr(b, "\r\nUser-Agent: catalog-loadtest\r\nAccept: */*\r\n");
    if (!keep_alive) buf_append_cstr(b, "Connection: close\r\n");
    int wants_length = strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0 ||
                       strcmp(r->method, "PATCH") == 0;
    if (r->body.len || wants_length) {
        if (r->body.len) buf_append_cstr(b, "Content-Type: application/json\r\n");
        buf_printf(b, "Content-Length: %zu\r\n", r->body.len);
    }
    buf_append_cstr(b, "\r\n");
    buf_append(b, r->body.data, r->body.len);
}

void loadtest_request_free(loadtest_request_t *r)
{
    if (!r) return;
    buf_free(&r->body);
    buf_free(&r->bytes);
}
