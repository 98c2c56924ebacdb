/* http_parse.c: strict HTTP/1.1 request head parser and in-place chunked body decoder. */
#include "http_parse.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

const http_limits_t http_default_limits = {
    .max_request_line = HTTP_DEFAULT_MAX_REQUEST_LINE,
    .max_header_bytes = HTTP_DEFAULT_MAX_HEADER_BYTES,
    .max_headers = HTTP_DEFAULT_MAX_HEADERS,
    .max_body = HTTP_DEFAULT_MAX_BODY,
};

/* ---------------------------------------------------------------- character classes */

enum {
    CHAR_TCHAR = 1,  /* RFC 9110 tchar: method and field-name bytes */
    CHAR_VALUE = 2,  /* field-value bytes: HTAB, SP, VCHAR, obs-text */
    CHAR_TARGET = 4, /* request-target bytes we accept: 0x21-0x7E */
};

/* One lookup per byte keeps the full parse of a typical head at a few hundred nanoseconds. */
static const unsigned char char_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    2, 7, 6, 7, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 6, /* 0x20 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6, /* 0x30 */
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, /* 0x40 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 7, 7, /* 0x50 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, /* 0x60 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 7, 6, 7, 0, /* 0x70 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x90 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xA0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xB0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xC0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xD0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xE0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xF0 */
};

static inline int has_class(char c, int class_bit)
{
    return char_class[(unsigned char)c] & class_bit;
}

static inline int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* ---------------------------------------------------------------- incomplete heads */

/* Finds the first "\r\n\r\n" in buf[0..len).  A memchr on CR (one per line) is about four
 * times faster than glibc's memmem, whose setup dominates on heads of a few hundred bytes. */
static const char *find_head_end(const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len;
    while (end - p >= 4 && (p = memchr(p, '\r', (size_t)(end - p) - 3)) != NULL) {
        if (p[1] == '\n' && p[2] == '\r' && p[3] == '\n') return p;
        p++;
    }
    return NULL;
}

/* Called while the buffer holds no "\r\n\r\n" within the head limit: rejects early what can
 * never become a valid head (bare LF or CR, a request line or a head over its limit, too many
 * header lines), so a slow or hostile client is refused without waiting.  Linear in len. */
static int check_incomplete_head(const char *buf, size_t len, size_t search_len,
                                 const http_limits_t *limits)
{
    size_t first_lf = SIZE_MAX, lines = 0;
    const char *p = buf, *end = buf + search_len;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        if (p == buf || p[-1] != '\r') return -400;
        if (first_lf == SIZE_MAX) first_lf = (size_t)(p - buf);
        lines++;
        p++;
    }
    p = buf;
    while ((p = memchr(p, '\r', (size_t)(end - p))) != NULL) {
        if (p + 1 < end && p[1] != '\n') return -400;
        p++;
    }
    size_t request_line_len;
    if (first_lf != SIZE_MAX) {
        request_line_len = first_lf - 1;
    } else {
        request_line_len = search_len;
        if (search_len && buf[search_len - 1] == '\r') request_line_len--;
    }
    if (request_line_len > limits->max_request_line) return -414;
    /* every complete line after the request line is a header line: the blank one is not here */
    if (lines > 1 && lines - 1 > limits->max_headers) return -431;
    /* the head will end at least one byte after what we hold */
    if (len >= limits->max_header_bytes) return -431;
    return 0;
}

/* ---------------------------------------------------------------- complete heads */

static int method_from_token(slice_t m)
{
    switch (m.len) {
    case 3:
        if (memcmp(m.base, "GET", 3) == 0) return HTTP_METHOD_GET;
        if (memcmp(m.base, "PUT", 3) == 0) return HTTP_METHOD_PUT;
        break;
    case 4:
        if (memcmp(m.base, "HEAD", 4) == 0) return HTTP_METHOD_HEAD;
        if (memcmp(m.base, "POST", 4) == 0) return HTTP_METHOD_POST;
        break;
    case 5:
        if (memcmp(m.base, "PATCH", 5) == 0) return HTTP_METHOD_PATCH;
        break;
    case 6:
        if (memcmp(m.base, "DELETE", 6) == 0) return HTTP_METHOD_DELETE;
        break;
    case 7:
        if (memcmp(m.base, "OPTIONS", 7) == 0) return HTTP_METHOD_OPTIONS;
        break;
    }
    return HTTP_METHOD_OTHER;
}

/* Parses "token SP request-target SP HTTP/1.x" (line_len bytes, CRLF excluded). */
static int parse_request_line(const char *line, size_t line_len, http_request_t *req)
{
    const char *p = line, *end = line + line_len;
    while (p < end && has_class(*p, CHAR_TCHAR))
        p++;
    if (p == line || p == end || *p != ' ') return -400;
    req->method_name = slice_make(line, (size_t)(p - line));
    req->method = method_from_token(req->method_name);

    const char *target = ++p;
    while (p < end && has_class(*p, CHAR_TARGET))
        p++;
    if (p == target || p == end || *p != ' ') return -400;
    size_t target_len = (size_t)(p - target);
    req->target = slice_make(target, target_len);
    req->authority = slice_make(NULL, 0);
    const char *origin = target; /* where the origin-form part (path and query) starts */
    if (target[0] == '/') {
        /* origin-form */
    } else if (target_len == 1 && target[0] == '*') {
        /* asterisk-form: OPTIONS only (RFC 9112 3.2.4) */
        if (req->method != HTTP_METHOD_OPTIONS) return -400;
        req->path = req->target;
        req->query = slice_make(p, 0);
        goto version;
    } else {
        /* absolute-form (RFC 9112 3.2.2): "http://" or "https://" authority [path-abempty]
         * [? query]; the authority stands for Host */
        size_t scheme = 0;
        if (target_len >= 7 && strncasecmp(target, "http://", 7) == 0)
            scheme = 7;
        else if (target_len >= 8 && strncasecmp(target, "https://", 8) == 0)
            scheme = 8;
        else
            return -400; /* authority-form (CONNECT) or anything else */
        const char *a = target + scheme, *a_end = a;
        while (a_end < p && *a_end != '/' && *a_end != '?' && *a_end != '#')
            a_end++;
        req->authority = slice_make(a, (size_t)(a_end - a));
        if (req->authority.len == 0 || !http_host_valid(req->authority)) return -400;
        origin = a_end;
    }
    if (memchr(origin, '#', (size_t)(p - origin))) return -400; /* no fragment in a request */
    const char *question = memchr(origin, '?', (size_t)(p - origin));
    const char *path_end = question ? question : p;
    /* "http://host" and "http://host?q" have an empty path: it means "/" */
    req->path =
        path_end > origin ? slice_make(origin, (size_t)(path_end - origin)) : SLICE_LIT("/");
    req->query = question ? slice_make(question + 1, (size_t)(p - question - 1)) : slice_make(p, 0);

version:;

    const char *version = ++p;
    if (end - version != 8 || memcmp(version, "HTTP/", 5) != 0 || version[6] != '.' ||
        (unsigned)(version[5] - '0') > 9 || (unsigned)(version[7] - '0') > 9)
        return -400;
    if (version[5] != '1' || (version[7] != '0' && version[7] != '1')) return -505;
    req->version_minor = version[7] - '0';
    return 0;
}

/* Content-Length: 1*DIGIT, at most 15 digits (no sign, no list, no inner spaces). */
static int64_t parse_content_length(slice_t v)
{
    if (v.len == 0 || v.len > 15) return -1;
    int64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        unsigned digit = (unsigned)(v.base[i] - '0');
        if (digit > 9) return -1;
        n = n * 10 + (int64_t)digit;
    }
    return n;
}

/* Walks the comma-separated tokens of a Connection value. */
static void scan_connection(slice_t v, int *saw_close, int *saw_keep_alive)
{
    size_t i = 0;
    while (i < v.len) {
        while (i < v.len && (is_ows(v.base[i]) || v.base[i] == ','))
            i++;
        size_t start = i;
        while (i < v.len && v.base[i] != ',' && !is_ows(v.base[i]))
            i++;
        slice_t token = slice_make(v.base + start, i - start);
        if (slice_eq_nocase(token, SLICE_LIT("close")))
            *saw_close = 1;
        else if (slice_eq_nocase(token, SLICE_LIT("keep-alive")))
            *saw_keep_alive = 1;
    }
}

/* RFC 3986 uri-host [":" port]: an IP-literal in brackets, or reg-name (unreserved,
 * pct-encoded, sub-delims), then an optional port of at most 5 digits.  Empty is valid. */
int http_host_valid(slice_t host)
{
    const char *p = host.base, *end = host.base + host.len;
    if (p < end && *p == '[') {
        p++;
        const char *start = p;
        while (p < end && (isxdigit((unsigned char)*p) || *p == ':' || *p == '.'))
            p++;
        if (p == start || p == end || *p != ']') return 0;
        p++;
    } else {
        for (; p < end && *p != ':'; p++) {
            unsigned char c = (unsigned char)*p;
            if (isalnum(c) || strchr("-._~!$&'()*+,;=", c)) continue;
            if (c == '%' && end - p >= 3 && isxdigit((unsigned char)p[1]) &&
                isxdigit((unsigned char)p[2])) {
                p += 2;
                continue;
            }
            return 0;
        }
    }
    if (p == end) return 1;
    if (*p != ':') return 0;
    p++;
    if (end - p > 5) return 0;
    for (; p < end; p++)
        if (!isdigit((unsigned char)*p)) return 0;
    return 1;
}

/* What the Transfer-Encoding fields say, over every such field in order. */
typedef struct te_facts {
    unsigned codings; /* transfer codings listed */
    unsigned chunked; /* of which "chunked" */
    int last_chunked; /* the last coding listed is "chunked" */
    int malformed;    /* an element that is not a token (with parameters) */
} te_facts_t;

static void scan_transfer_encoding(slice_t v, te_facts_t *te)
{
    size_t i = 0;
    int empty = 1;
    while (i < v.len) {
        while (i < v.len && (is_ows(v.base[i]) || v.base[i] == ','))
            i++;
        if (i == v.len) break;
        size_t start = i;
        while (i < v.len && has_class(v.base[i], CHAR_TCHAR))
            i++;
        slice_t token = slice_make(v.base + start, i - start);
        while (i < v.len && is_ows(v.base[i]))
            i++;
        if (token.len == 0) {
            te->malformed = 1;
            return;
        }
        empty = 0;
        te->codings++;
        te->last_chunked = slice_eq_nocase(token, SLICE_LIT("chunked"));
        if (te->last_chunked) te->chunked++;
        if (i < v.len && v.base[i] == ';') {
            /* parameters: a coding we do not know anyway (chunked takes none) */
            te->last_chunked = 0;
            while (i < v.len && v.base[i] != ',')
                i++;
        } else if (i < v.len && v.base[i] != ',') {
            te->malformed = 1;
            return;
        }
    }
    if (empty) te->malformed = 1;
}

/* What the header walk learns about the message framing. */
typedef struct head_facts {
    unsigned host_count;
    slice_t host;
    te_facts_t te;
    int saw_transfer_encoding;
    int saw_close;
    int saw_keep_alive;
    int saw_expect_continue;
} head_facts_t;

/* Records what a known header means; returns 0 or a negative status. */
static int note_header(http_request_t *req, const http_header_t *h, head_facts_t *facts)
{
    switch (h->name.len) {
    case 4:
        if (slice_eq_nocase(h->name, SLICE_LIT("Host"))) {
            facts->host_count++;
            facts->host = h->value;
        }
        break;
    case 6:
        if (slice_eq_nocase(h->name, SLICE_LIT("Expect")) &&
            slice_eq_nocase(h->value, SLICE_LIT("100-continue")))
            facts->saw_expect_continue = 1;
        break;
    case 10:
        if (slice_eq_nocase(h->name, SLICE_LIT("Connection")))
            scan_connection(h->value, &facts->saw_close, &facts->saw_keep_alive);
        break;
    case 12:
        if (req->content_type.len == 0 && slice_eq_nocase(h->name, SLICE_LIT("Content-Type")))
            req->content_type = h->value;
        break;
    case 14:
        if (slice_eq_nocase(h->name, SLICE_LIT("Content-Length"))) {
            int64_t n = parse_content_length(h->value);
            if (n < 0) return -400;
            if (req->content_length >= 0 && req->content_length != n) return -400;
            req->content_length = n;
        }
        break;
    case 17:
        if (slice_eq_nocase(h->name, SLICE_LIT("Transfer-Encoding"))) {
            facts->saw_transfer_encoding = 1;
            scan_transfer_encoding(h->value, &facts->te);
        }
        break;
    }
    return 0;
}

/* Parses the header lines in [p, end), end being the final CRLF of the head. */
static int parse_headers(const char *p, const char *end, unsigned max_headers, http_request_t *req,
                         head_facts_t *facts)
{
    while (p < end) {
        /* obs-fold, or whitespace between the request line and the first field */
        if (is_ows(*p)) return -400;
        const char *name = p;
        while (has_class(*p, CHAR_TCHAR))
            p++;
        if (p == name || *p != ':') return -400;
        const char *name_end = p++;
        while (is_ows(*p))
            p++;
        const char *value = p;
        while (has_class(*p, CHAR_VALUE))
            p++;
        /* the head ends in "\r\n\r\n", so every scan above stops at a CR by the end */
        if (*p != '\r' || p[1] != '\n') return -400;
        const char *value_end = p;
        while (value_end > value && is_ows(value_end[-1]))
            value_end--;
        p += 2;

        if (req->header_count >= max_headers) return -431;
        http_header_t *h = &req->headers[req->header_count++];
        h->name = slice_make(name, (size_t)(name_end - name));
        h->value = slice_make(value, (size_t)(value_end - value));
        int rc = note_header(req, h, facts);
        if (rc) return rc;
    }
    return 0;
}

size_t http_empty_lines(const char *buf, size_t len)
{
    size_t skip = 0;
    while (len - skip >= 2 && buf[skip] == '\r' && buf[skip + 1] == '\n')
        skip += 2;
    return skip;
}

int http_parse_request(const char *buf, size_t len, const http_limits_t *limits,
                       http_request_t *req)
{
    if (!limits) limits = &http_default_limits;
    /* RFC 9112 2.2: empty lines (CRLF) before a request line are ignored; they count towards
     * the head limit. */
    size_t skip = http_empty_lines(buf, len);
    if (skip) {
        if (skip >= limits->max_header_bytes) return -431;
        if (len - skip == 1 && buf[skip] == '\r') return 0;
        int rc = http_parse_request(buf + skip, len - skip, limits, req);
        if (rc == 0 && len >= limits->max_header_bytes) return -431;
        if (rc <= 0) return rc;
        if ((size_t)rc + skip > limits->max_header_bytes) return -431;
        req->head_len = (size_t)rc + skip;
        return (int)req->head_len;
    }
    /* The terminator must lie within the head limit, so look no further than that. */
    size_t search_len = len < limits->max_header_bytes ? len : limits->max_header_bytes;
    const char *terminator = find_head_end(buf, search_len);
    if (!terminator) return check_incomplete_head(buf, len, search_len, limits);
    size_t head_len = (size_t)(terminator - buf) + 4;

    /* The first LF is at the latest the terminator's. */
    const char *first_lf = memchr(buf, '\n', head_len);
    if (first_lf == buf || first_lf[-1] != '\r') return -400;
    size_t request_line_len = (size_t)(first_lf - buf) - 1;
    if (request_line_len > limits->max_request_line) return -414;

    req->content_length = -1;
    req->content_type = slice_make(NULL, 0);
    req->header_count = 0;
    int rc = parse_request_line(buf, request_line_len, req);
    if (rc) return rc;

    unsigned max_headers =
        limits->max_headers < HTTP_MAX_HEADERS ? limits->max_headers : HTTP_MAX_HEADERS;
    head_facts_t facts = {0};
    rc = parse_headers(first_lf + 1, buf + head_len - 2, max_headers, req, &facts);
    if (rc) return rc;

    req->chunked = 0;
    if (facts.saw_transfer_encoding) {
        /* RFC 9112 6.1, 6.3: with Content-Length, in HTTP/1.0, malformed, or chunked not the
         * final coding (or applied twice), the body's length is unknown: 400.  Chunked after
         * another coding: a coding we do not implement, 501. */
        const te_facts_t *te = &facts.te;
        if (req->content_length >= 0 || req->version_minor == 0 || te->malformed ||
            !te->last_chunked || te->chunked > 1)
            return -400;
        if (te->codings > 1) return -501;
        req->chunked = 1;
    }
    if (facts.host_count > 1 || (req->version_minor == 1 && facts.host_count == 0)) return -400;
    if (facts.host_count == 1 && !http_host_valid(facts.host)) return -400;
    if (req->content_length >= 0 && (uint64_t)req->content_length > limits->max_body) return -413;

    if (req->version_minor == 1) {
        req->keep_alive = !facts.saw_close;
        req->expect_continue = facts.saw_expect_continue;
    } else {
        req->keep_alive = facts.saw_keep_alive && !facts.saw_close;
        req->expect_continue = 0;
    }
    req->head_len = head_len;
    return (int)head_len;
}

/* ---------------------------------------------------------------- chunked bodies */

enum {
    CH_SIZE,    /* hex digits of a chunk size */
    CH_EXT,     /* after the size: BWS, then ";" extensions, up to CR */
    CH_SIZE_LF, /* the LF after a size line */
    CH_DATA,    /* chunk data */
    CH_DATA_CR, /* the CRLF after chunk data */
    CH_DATA_LF,
    CH_TRAILER,    /* at the start of a trailer line (or of the final CRLF) */
    CH_TRAILER_IN, /* inside a trailer line */
    CH_TRAILER_LF, /* the LF ending a trailer line */
    CH_FINAL_LF,   /* the LF of the final CRLF */
    CH_DONE
};

void http_chunked_init(http_chunked_t *d)
{
    memset(d, 0, sizeof *d);
    d->state = CH_SIZE;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int http_chunked_decode(http_chunked_t *d, char *data, size_t len, const http_limits_t *limits)
{
    if (!limits) limits = &http_default_limits;
    size_t i = d->consumed;
    while (i < len && d->state != CH_DONE) {
        char c = data[i];
        switch (d->state) {
        case CH_DATA: {
            size_t n = len - i;
            if (n > d->chunk_left) n = (size_t)d->chunk_left;
            if (d->body_len != i) memmove(data + d->body_len, data + i, n);
            d->body_len += n;
            d->chunk_left -= n;
            i += n;
            if (d->chunk_left == 0) d->state = CH_DATA_CR;
            continue;
        }
        case CH_SIZE: {
            int v = hex_value(c);
            if (v < 0) {
                if (d->size_digits == 0) return -400;
                d->state = CH_EXT;
                continue; /* look at this byte again */
            }
            if (++d->size_digits > 16) return -400;
            d->chunk_left = d->chunk_left * 16 + (uint64_t)v;
            if (d->body_len + d->chunk_left > limits->max_body) return -413;
            break;
        }
        case CH_EXT:
            /* chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ): the extensions are
             * ignored, so any field-value bytes are taken up to the CR */
            if (c == '\r')
                d->state = CH_SIZE_LF;
            else if (!has_class(c, CHAR_VALUE))
                return -400;
            else if (c == ';')
                d->in_ext = 1;
            else if (!d->in_ext && !is_ows(c))
                return -400; /* only BWS between the size and the first ';' */
            break;
        case CH_SIZE_LF:
            if (c != '\n') return -400;
            d->in_ext = 0;
            d->size_digits = 0;
            d->state = d->chunk_left ? CH_DATA : CH_TRAILER;
            break;
        case CH_DATA_CR:
            if (c != '\r') return -400;
            d->state = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (c != '\n') return -400;
            d->state = CH_SIZE;
            break;
        case CH_TRAILER:
            if (c == '\r') {
                d->state = CH_FINAL_LF;
                break;
            }
            if (!has_class(c, CHAR_TCHAR)) return -400; /* a field name starts the line */
            d->state = CH_TRAILER_IN;
            break;
        case CH_TRAILER_IN:
            if (c == '\r')
                d->state = CH_TRAILER_LF;
            else if (!has_class(c, CHAR_VALUE | CHAR_TCHAR))
                return -400;
            break;
        case CH_TRAILER_LF:
            if (c != '\n') return -400;
            d->state = CH_TRAILER;
            break;
        case CH_FINAL_LF:
            if (c != '\n') return -400;
            d->state = CH_DONE;
            break;
        }
        i++;
        /* every byte that is not data is framing: sizes, extensions, line ends, trailers */
        if (++d->framing > limits->max_header_bytes) return -413;
    }
    d->consumed = i;
    return d->state == CH_DONE ? 1 : 0;
}

slice_t http_request_header(const http_request_t *req, slice_t name)
{
    for (unsigned i = 0; i < req->header_count; i++)
        if (slice_eq_nocase(req->headers[i].name, name)) return req->headers[i].value;
    return slice_make(NULL, 0);
}
