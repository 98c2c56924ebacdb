/* http_write.c: the HTTP/1.1 response head writer; Content-Length patched in place. */
#include "http_write.h"

#include <string.h>
#include <time.h>

#include "number.h"

const char *http_status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

#define IMF_FIXDATE_LEN 29 /* "Sun, 06 Nov 1994 08:49:37 GMT" */

/* The Date value, formatted once per second per thread (no locale, no lock). */
static const char *imf_fixdate_now(void)
{
    static _Thread_local time_t cached_second = (time_t)-1;
    static _Thread_local char cached_text[IMF_FIXDATE_LEN + 1];
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    if (now != cached_second) {
        struct tm tm;
        gmtime_r(&now, &tm);
        char *s = cached_text;
        memcpy(s, days[tm.tm_wday], 3);
        s[3] = ',';
        s[4] = ' ';
        s[5] = (char)('0' + tm.tm_mday / 10);
        s[6] = (char)('0' + tm.tm_mday % 10);
        s[7] = ' ';
        memcpy(s + 8, months[tm.tm_mon], 3);
        s[11] = ' ';
        int year = tm.tm_year + 1900;
        s[12] = (char)('0' + year / 1000 % 10);
        s[13] = (char)('0' + year / 100 % 10);
        s[14] = (char)('0' + year / 10 % 10);
        s[15] = (char)('0' + year % 10);
        s[16] = ' ';
        s[17] = (char)('0' + tm.tm_hour / 10);
        s[18] = (char)('0' + tm.tm_hour % 10);
        s[19] = ':';
        s[20] = (char)('0' + tm.tm_min / 10);
        s[21] = (char)('0' + tm.tm_min % 10);
        s[22] = ':';
        s[23] = (char)('0' + tm.tm_sec / 10);
        s[24] = (char)('0' + tm.tm_sec % 10);
        memcpy(s + 25, " GMT", 4);
        s[IMF_FIXDATE_LEN] = '\0';
        cached_second = now;
    }
    return cached_text;
}

/* RFC 9110 8.6: no Content-Length in 1xx and 204; 304 would need the GET's length. */
static int status_has_length(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

void http_response_begin(buf_t *out, http_response_t *resp, int status, const char *content_type,
                         slice_t server_id, int keep_alive, const char *extra_headers)
{
    if (status < 100 || status > 999) status = 500;
    resp->start = out->len;
    char status_digits[4] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
                             (char)('0' + status % 10), ' '};
    buf_append(out, "HTTP/1.1 ", 9);
    buf_append(out, status_digits, 4);
    buf_append_cstr(out, http_status_reason(status));
    buf_append(out, "\r\n", 2);
    if (content_type) {
        buf_append(out, "Content-Type: ", 14);
        buf_append_cstr(out, content_type);
        buf_append(out, "\r\n", 2);
    }
    resp->length_field = 0;
    if (status_has_length(status)) {
        buf_append(out, "Content-Length: ", 16);
        resp->length_field = out->len;
        memset(buf_reserve(out, HTTP_CONTENT_LENGTH_WIDTH), ' ', HTTP_CONTENT_LENGTH_WIDTH);
        out->len += HTTP_CONTENT_LENGTH_WIDTH;
        buf_append(out, "\r\n", 2);
    }
    if (server_id.len) {
        buf_append(out, "X-Server-Id: ", 13);
        buf_append_slice(out, server_id);
        buf_append(out, "\r\n", 2);
    }
    buf_append(out, "Date: ", 6);
    buf_append(out, imf_fixdate_now(), IMF_FIXDATE_LEN);
    if (keep_alive)
        buf_append(out, "\r\nConnection: keep-alive\r\n", 26);
    else
        buf_append(out, "\r\nConnection: close\r\n", 21);
    if (extra_headers) buf_append_cstr(out, extra_headers);
    buf_append(out, "\r\n", 2);
    resp->body_start = out->len;
}

void http_response_end(buf_t *out, http_response_t *resp, int head_only)
{
    uint64_t body_len = out->len - resp->body_start;
    if (resp->length_field == 0 || head_only) out->len = resp->body_start;
    if (resp->length_field == 0) return;

    char digits[NUMBER_U64_DIGITS_MAX];
    size_t n = number_format_u64(body_len, digits);
    if (n > HTTP_CONTENT_LENGTH_WIDTH) {
        /* widen the field by shifting what follows it */
        size_t extra = n - HTTP_CONTENT_LENGTH_WIDTH;
        size_t tail_from = resp->length_field + HTTP_CONTENT_LENGTH_WIDTH;
        buf_reserve(out, extra);
        memmove(out->data + tail_from + extra, out->data + tail_from, out->len - tail_from);
        out->len += extra;
        resp->body_start += extra;
        memcpy(out->data + resp->length_field, digits, n);
        return;
    }
    char *field = out->data + resp->length_field;
    memset(field, ' ', HTTP_CONTENT_LENGTH_WIDTH - n);
    memcpy(field + HTTP_CONTENT_LENGTH_WIDTH - n, digits, n);
}
