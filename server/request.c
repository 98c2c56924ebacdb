/* request.c: one HTTP request being answered: its start, its parameters, and its answer through
 * the connection's req_host_t. */
#include "request.h"

#include <stdio.h>
#include <string.h>

#include "json.h"
#include "loop.h"

static enum method_label method_label_of(int method)
{
    switch (method) {
    case HTTP_METHOD_GET:
        return METHOD_GET;
    case HTTP_METHOD_HEAD:
        return METHOD_HEAD;
    case HTTP_METHOD_POST:
        return METHOD_POST;
    default:
        return METHOD_OTHER;
    }
}

/* Keeps "METHOD target" for the access and error logs: the request's own bytes may be gone by
 * the time a database callback logs.  The access log writes it between double quotes, so a '"'
 * or '\\' in the target is escaped with a backslash (the parser admits no other byte that needs
 * it: targets are 0x21-0x7E); a long target is cut (the line ends in "..."). */
static void remember_request_line(req_t *req, const http_request_t *http)
{
    size_t m = http->method_name.len < 32 ? http->method_name.len : 32;
    memcpy(req->log_line, http->method_name.base, m);
    char *out = req->log_line + m, *end = req->log_line + sizeof req->log_line - 4;
    *out++ = ' ';
    const char *t = http->target.base, *t_end = t + http->target.len;
    for (; t < t_end && out < end - 1; t++) {
        if (*t == '"' || *t == '\\') *out++ = '\\';
        *out++ = *t;
    }
    if (t < t_end) {
        memcpy(out, "...", 3);
        out += 3;
    }
    *out = 0;
}

void req_start(req_t *req, const http_request_t *http)
{
    req->route = ROUTE_UNMATCHED;
    req->start_ns = loop_clock_ns();
    req->keep_alive = http->keep_alive;
    req->head_only = http->method == HTTP_METHOD_HEAD;
    req->method_label = method_label_of(http->method);
    remember_request_line(req, http);
}

void req_start_rejected(req_t *req)
{
    req->keep_alive = 0;
    req->route = ROUTE_UNMATCHED;
    req->method_label = METHOD_OTHER;
    req->head_only = 0;
    req->start_ns = loop_clock_ns();
    snprintf(req->log_line, sizeof req->log_line, "-");
}

void req_free(req_t *req)
{
    buf_free(&req->category);
    buf_free(&req->idempotency_key);
}

buf_t *req_begin_as(req_t *req, http_response_t *resp, int status, const char *content_type,
                    const char *extra_headers)
{
    return req->host->begin(req, resp, status, content_type, extra_headers);
}

buf_t *req_begin(req_t *req, http_response_t *resp, int status, const char *extra_headers)
{
    return req_begin_as(req, resp, status, "application/json; charset=utf-8", extra_headers);
}

void req_reserve_output(req_t *req, size_t bytes)
{
    req->host->reserve(req, bytes);
}

void req_end(req_t *req, http_response_t *resp, int status)
{
    req->host->end(req, resp, status);
}

void req_error(req_t *req, int status, const char *message, const char *extra_headers)
{
    http_response_t resp;
    buf_t *out = req_begin(req, &resp, status, extra_headers);
    json_write_error(out, message);
    req_end(req, &resp, status);
}

int req_stopping(req_t *req)
{
    return req->host->stopping(req);
}

void req_render_metrics(req_t *req, buf_t *out)
{
    req->host->render_metrics(req, out);
}

void req_write_instances(req_t *req, buf_t *out)
{
    req->host->write_instances(req, out);
}

void req_submit(req_t *req, unsigned statement, int param_count, int binary, int read,
                pool_result_fn fn)
{
    req->read = read;
    req->query.statement = statement;
    req->query.param_count = param_count;
    req->query.binary_results = binary;
    req->query.fn = fn;
    req->query.user = req;
    int e = req->host->submit(req);
    /* Refused at once (database down, shutting down): the route's handler answers, in its own
     * shape, as it would a later failure. */
    if (e) fn(&req->query, NULL, e, "");
}

void req_set_product_id(req_t *req, int32_t product_id)
{
    req->product_id = product_id;
    snprintf(req->product_id_text, sizeof req->product_id_text, "%d", (int)product_id);
}

void req_set_quantity(req_t *req, int32_t quantity)
{
    req->quantity = quantity;
    snprintf(req->quantity_text, sizeof req->quantity_text, "%d", (int)quantity);
}
