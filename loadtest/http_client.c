/* http_client.c: incremental HTTP/1.1 response parser for clients (the load test). */
#include "http_client.h"

#include <string.h>

/* Parser states, in the order a response walks through them. */
enum {
    STATE_STATUS_LINE,  /* expecting "HTTP/1.x NNN reason" */
    STATE_HEADER_LINE,  /* expecting a header or the empty line ending the block */
    STATE_BODY_LENGTH,  /* skipping `remaining` body bytes (Content-Length) */
    STATE_CHUNK_SIZE,   /* expecting a chunk-size line */
    STATE_CHUNK_DATA,   /* skipping `remaining` chunk bytes */
    STATE_CHUNK_END,    /* expecting the empty line after a chunk's data */
    STATE_TRAILER_LINE, /* expecting trailers or the empty line after the last chunk */
    STATE_BODY_CLOSE,   /* body runs until the peer closes */
    STATE_COMPLETE,     /* done; http_client_init before the next */
    STATE_ERROR,        /* failed; `error` says why */
};

void http_client_init(http_client_response_t *r, int head_request)
{
    r->status = 0;
    r->version_minor = 1;
    r->content_length = -1;
    r->chunked = 0;
    r->keep_alive = 0;
    r->server_id_len = 0;
    r->body_bytes = 0;
    r->error = NULL;
    r->state = STATE_STATUS_LINE;
    r->head_request = head_request;
    r->connection_close = 0;
    r->connection_keep_alive = 0;
    r->remaining = 0;
    r->header_bytes = 0;
    r->line_len = 0;
}

static int fail(http_client_response_t *r, const char *why)
{
    r->state = STATE_ERROR;
    r->error = why;
    return HTTP_CLIENT_ERROR;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

static slice_t trim(const char *p, size_t n)
{
    while (n && is_space(*p))
        p++, n--;
    while (n && is_space(p[n - 1]))
        n--;
    return slice_make(p, n);
}

/* Nonzero when the comma-separated list value holds token (any case). */
static int list_has_token(slice_t value, slice_t token)
{
    const char *p = value.base, *end = value.base + value.len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        if (slice_eq_nocase(trim(p, (size_t)(item_end - p)), token)) return 1;
        p = item_end + 1;
    }
    return 0;
}

static int parse_status_line(http_client_response_t *r, const char *p, size_t n)
{
    /* "HTTP/1.1 200" then optionally " reason". */
    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return fail(r, "malformed status line (expected \"HTTP/1.x NNN reason\")");
    if ((unsigned)(p[9] - '1') > 8u || (unsigned)(p[10] - '0') > 9u ||
        (unsigned)(p[11] - '0') > 9u || (n > 12 && p[12] != ' '))
        return fail(r, "malformed status code in the status line");
    r->version_minor = p[7] - '0';
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    r->state = STATE_HEADER_LINE;
    return HTTP_CLIENT_INCOMPLETE;
}

static int parse_content_length(http_client_response_t *r, slice_t value)
{
    if (value.len == 0 || value.len > 18) return fail(r, "bad Content-Length (empty or too large)");
    int64_t length = 0;
    for (size_t i = 0; i < value.len; i++) {
        unsigned digit = (unsigned)(value.base[i] - '0');
        if (digit > 9) return fail(r, "bad Content-Length (not a decimal number)");
        length = length * 10 + (int64_t)digit;
    }
    if (r->content_length >= 0 && r->content_length != length)
        return fail(r, "two different Content-Length headers");
    r->content_length = length;
    return HTTP_CLIENT_INCOMPLETE;
}

static int parse_header_line(http_client_response_t *r, const char *p, size_t n)
{
    if (is_space(p[0])) return fail(r, "folded header line (obsolete line folding)");
    const char *colon = memchr(p, ':', n);
    if (!colon || colon == p) return fail(r, "malformed header line (no name or no ':')");
    slice_t name = slice_make(p, (size_t)(colon - p));
    slice_t value = trim(colon + 1, n - name.len - 1);
    if (is_space(name.base[name.len - 1])) return fail(r, "space before ':' in a header");
    /* Compare only names of the right length: most headers cost one switch. */
    switch (name.len) {
    case 14:
        if (slice_eq_nocase(name, SLICE_LIT("Content-Length")))
            return parse_content_length(r, value);
        break;
    case 17:
        if (slice_eq_nocase(name, SLICE_LIT("Transfer-Encoding"))) {
            if (list_has_token(value, SLICE_LIT("chunked"))) r->chunked = 1;
        }
        break;
    case 10:
        if (slice_eq_nocase(name, SLICE_LIT("Connection"))) {
            if (list_has_token(value, SLICE_LIT("close"))) r->connection_close = 1;
            if (list_has_token(value, SLICE_LIT("keep-alive"))) r->connection_keep_alive = 1;
        }
        break;
    case 11:
        if (slice_eq_nocase(name, SLICE_LIT("X-Server-Id"))) {
            size_t keep = value.len < sizeof(r->server_id) ? value.len : sizeof(r->server_id);
            memcpy(r->server_id, value.base, keep);
            r->server_id_len = keep;
        }
        break;
    default:
        break;
    }
    return HTTP_CLIENT_INCOMPLETE;
}

/* The empty line after the headers: decide how the body is delimited. */
static int end_of_headers(http_client_response_t *r)
{
    if (r->status < 200) {
        if (r->status == 101) return fail(r, "unexpected 101 Switching Protocols");
        /* Interim response (100 Continue, 103 Early Hints): the real one follows. */
        int head_request = r->head_request;
        http_client_init(r, head_request);
        return HTTP_CLIENT_INCOMPLETE;
    }
    r->keep_alive = r->version_minor >= 1 ? !r->connection_close
                                          : r->connection_keep_alive && !r->connection_close;
    if (r->head_request || r->status == 204 || r->status == 304) {
        r->state = STATE_COMPLETE;
    } else if (r->chunked) {
        r->state = STATE_CHUNK_SIZE;
    } else if (r->content_length >= 0) {
        r->remaining = (uint64_t)r->content_length;
        r->state = r->remaining ? STATE_BODY_LENGTH : STATE_COMPLETE;
    } else {
        r->keep_alive = 0;
        r->state = STATE_BODY_CLOSE;
    }
    return r->state == STATE_COMPLETE ? HTTP_CLIENT_COMPLETE : HTTP_CLIENT_INCOMPLETE;
}

static int parse_chunk_size(http_client_response_t *r, const char *p, size_t n)
{
    uint64_t size = 0;
    size_t i = 0, digits = 0;
    for (; i < n; i++) {
        char c = p[i];
        unsigned value;
        if ((unsigned)(c - '0') <= 9u) {
            value = (unsigned)(c - '0');
        } else if ((unsigned)((c | 0x20) - 'a') <= 5u) {
            value = (unsigned)((c | 0x20) - 'a') + 10;
        } else {
            break;
        }
        if (++digits > 15) return fail(r, "chunk size too large");
        size = size * 16 + value;
    }
    if (digits == 0) return fail(r, "malformed chunk size line");
    while (i < n && is_space(p[i]))
        i++;
    if (i < n && p[i] != ';') return fail(r, "malformed chunk size line");
    if (size == 0) {
        r->state = STATE_TRAILER_LINE;
    } else {
        r->remaining = size;
        r->state = STATE_CHUNK_DATA;
    }
    return HTTP_CLIENT_INCOMPLETE;
}

/* One complete line without its line ending. */
static int parse_line(http_client_response_t *r, const char *p, size_t n)
{
    switch (r->state) {
    case STATE_STATUS_LINE:
        return parse_status_line(r, p, n);
    case STATE_HEADER_LINE:
        return n == 0 ? end_of_headers(r) : parse_header_line(r, p, n);
    case STATE_CHUNK_SIZE:
        return parse_chunk_size(r, p, n);
    case STATE_CHUNK_END:
        if (n != 0) return fail(r, "chunk data longer than its size");
        r->state = STATE_CHUNK_SIZE;
        return HTTP_CLIENT_INCOMPLETE;
    case STATE_TRAILER_LINE:
        if (n != 0) return HTTP_CLIENT_INCOMPLETE; /* trailers are ignored */
        r->state = STATE_COMPLETE;
        return HTTP_CLIENT_COMPLETE;
    default:
        return fail(r, "internal error: line in a body state");
    }
}

static int in_header_block(const http_client_response_t *r)
{
    return r->state == STATE_STATUS_LINE || r->state == STATE_HEADER_LINE;
}

int http_client_feed(http_client_response_t *r, const char *data, size_t len, size_t *consumed)
{
    size_t pos = 0;
    int result = HTTP_CLIENT_INCOMPLETE;
    while (pos < len && result == HTTP_CLIENT_INCOMPLETE) {
        switch (r->state) {
        case STATE_BODY_LENGTH:
        case STATE_CHUNK_DATA: {
            size_t take = len - pos;
            if (take > r->remaining) take = (size_t)r->remaining;
            pos += take;
            r->remaining -= take;
            r->body_bytes += take;
            if (r->remaining == 0) {
                if (r->state == STATE_CHUNK_DATA) {
                    r->state = STATE_CHUNK_END;
                } else {
                    r->state = STATE_COMPLETE;
                    result = HTTP_CLIENT_COMPLETE;
                }
            }
            break;
        }
        case STATE_BODY_CLOSE:
            r->body_bytes += len - pos;
            pos = len;
            break;
        case STATE_COMPLETE:
            *consumed = pos;
            return HTTP_CLIENT_COMPLETE;
        case STATE_ERROR:
            *consumed = pos;
            return HTTP_CLIENT_ERROR;
        default: {
            /* A line-oriented state: find the line end. */
            const char *newline = memchr(data + pos, '\n', len - pos);
            size_t piece = newline ? (size_t)(newline - (data + pos)) + 1 : len - pos;
            if (in_header_block(r)) {
                r->header_bytes += piece;
                if (r->header_bytes > HTTP_CLIENT_HEADERS_MAX) {
                    result = fail(r, "response headers too large");
                    break;
                }
            }
            if (!newline || r->line_len) {
                /* Split line: collect it in r->line. */
                if (r->line_len + piece > sizeof(r->line)) {
                    result = fail(r, "response line too long");
                    break;
                }
                memcpy(r->line + r->line_len, data + pos, piece);
                r->line_len += piece;
                pos += piece;
                if (!newline) break;
                size_t n = r->line_len - 1;
                if (n && r->line[n - 1] == '\r') n--;
                r->line_len = 0;
                result = parse_line(r, r->line, n);
            } else {
                size_t n = piece - 1;
                if (n && data[pos + n - 1] == '\r') n--;
                if (n + 1 > sizeof(r->line)) {
                    result = fail(r, "response line too long");
                    break;
                }
                const char *line = data + pos;
                pos += piece;
                result = parse_line(r, line, n);
            }
            break;
        }
        }
    }
    *consumed = pos;
    return result;
}

int http_client_finish(http_client_response_t *r)
{
    if (r->state == STATE_BODY_CLOSE) {
        r->state = STATE_COMPLETE;
        return HTTP_CLIENT_COMPLETE;
    }
    if (r->state == STATE_COMPLETE) return HTTP_CLIENT_COMPLETE;
    if (r->state == STATE_ERROR) return HTTP_CLIENT_ERROR;
    if (r->state == STATE_STATUS_LINE && r->header_bytes == 0 && r->line_len == 0)
        return fail(r, "connection closed before any response byte");
    return fail(r, "connection closed before the response ended");
}
