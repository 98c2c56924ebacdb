/* test_url.c: unit tests for server/url (percent-decoding, query lookup) and loadtest/url_parse
 * (http:// parsing). */
#include "url.h"
#include "url_parse.h"
#include "test.h"

/* Decodes text; returns the length (or -1) and leaves the bytes in out. */
static long decode(const char *text, char *out, int plus_is_space)
{
    return url_decode(text, strlen(text), out, plus_is_space);
}

/* Looks name up in the query text; want_value is checked only when found. */
static void check_query(const char *query, const char *name, int want_rc, const char *want_value,
                        int line)
{
    buf_t value = {0};
    buf_append_cstr(&value, "stale");
    int rc = url_query_get(slice_cstr(query), name, &value);
    if (rc != want_rc) fprintf(stderr, "line %d: query \"%s\" name \"%s\"\n", line, query, name);
    CHECK_INT(rc, want_rc);
    CHECK_MEM(value.data, value.len, rc == 1 ? want_value : "");
    buf_free(&value);
}
#define CHECK_QUERY(q, name, rc, want) check_query((q), (name), (rc), (want), __LINE__)

/* Parses text and expects success with the given parts. */
static void check_url_ok(const char *text, const char *host, unsigned port, const char *path,
                         int line)
{
    url_t u;
    char err[256] = "";
    int rc = url_parse_http(text, &u, err, sizeof err);
    if (rc != 0) fprintf(stderr, "line %d: \"%s\" rejected: %s\n", line, text, err);
    CHECK_INT(rc, 0);
    if (rc != 0) return;
    CHECK_STR(u.host, host);
    CHECK_INT(u.port, port);
    CHECK_STR(u.path, path);
}
#define CHECK_URL_OK(t, h, p, path) check_url_ok((t), (h), (p), (path), __LINE__)

/* Parses text and expects failure with a message containing want_fragment. */
static void check_url_bad(const char *text, const char *want_fragment, int line)
{
    url_t u;
    char err[256] = "";
    int rc = url_parse_http(text, &u, err, sizeof err);
    if (rc != -1 || !strstr(err, want_fragment))
        fprintf(stderr, "line %d: \"%s\": rc %d, err \"%s\", want \"%s\"\n", line, text, rc, err,
                want_fragment);
    CHECK_INT(rc, -1);
    CHECK(strstr(err, want_fragment) != NULL);
}
#define CHECK_URL_BAD(t, fragment) check_url_bad((t), (fragment), __LINE__)

int main(void)
{
    char out[64];
    long n;
    n = decode("abc", out, 0);
    CHECK_MEM(out, n, "abc");
    n = decode("a%20b", out, 0);
    CHECK_MEM(out, n, "a b");
    n = decode("a+b", out, 0);
    CHECK_MEM(out, n, "a+b");
    n = decode("a+b", out, 1);
    CHECK_MEM(out, n, "a b");
    n = decode("%2B%2b%41%7e", out, 1);
    CHECK_MEM(out, n, "++A~");
    n = decode("caf%C3%A9", out, 0);
    CHECK_MEM(out, n, "caf\xc3\xa9");
    n = decode("a%00b", out, 0);
    CHECK_INT(n, 3);
    CHECK(memcmp(out, "a\0b", 3) == 0);
    n = decode("", out, 0);
    CHECK_INT(n, 0);
    CHECK_INT(decode("%zz", out, 0), -1);
    CHECK_INT(decode("%4", out, 0), -1);
    CHECK_INT(decode("ab%", out, 0), -1);
    CHECK_INT(decode("%g0", out, 0), -1);
    CHECK_INT(decode("%0g", out, 0), -1);
    CHECK_INT(url_decode("%41", 2, out, 0), -1); /* the length is honoured */

    CHECK_QUERY("category=electronics", "category", 1, "electronics");
    CHECK_QUERY("a=1&category=books&b=2", "category", 1, "books");
    CHECK_QUERY("a=1&b=2", "category", 0, "");
    CHECK_QUERY("", "category", 0, "");
    CHECK_QUERY("category=home&category=books", "category", 1, "home"); /* first wins */
    CHECK_QUERY("category=home+garden", "category", 1, "home garden");
    CHECK_QUERY("category=home%20garden", "category", 1, "home garden");
    CHECK_QUERY("category=a%2Bb%26c%3Dd", "category", 1, "a+b&c=d");
    CHECK_QUERY("category", "category", 1, ""); /* missing '=' */
    CHECK_QUERY("x&category&y=1", "category", 1, "");
    CHECK_QUERY("category=", "category", 1, "");
    CHECK_QUERY("category=a=b", "category", 1, "a=b");
    CHECK_QUERY("cat%65gory=books", "category", 1, "books"); /* decoded key */
    CHECK_QUERY("categoryx=1&xcategory=2", "category", 0, "");
    CHECK_QUERY("categor=1", "category", 0, "");
    CHECK_QUERY("&&category=books&&", "category", 1, "books");
    CHECK_QUERY("category=%zz", "category", -1, "");
    CHECK_QUERY("category=%4", "category", -1, "");
    CHECK_QUERY("%zz=1&category=books", "category", -1, "");         /* key examined first */
    CHECK_QUERY("other=%zz&category=books", "category", 1, "books"); /* value not examined */
    CHECK_QUERY("my+key=v", "my key", 1, "v");
    {
        buf_t value = {0};
        CHECK_INT(url_query_get((slice_t){NULL, 0}, "category", &value), 0);
        /* query is a slice: bytes past its length are not read */
        const char *text = "category=books&more";
        CHECK_INT(url_query_get(slice_make(text, 11), "category", &value), 1);
        CHECK_MEM(value.data, value.len, "bo");
        buf_free(&value);
    }

    CHECK_URL_OK("http://localhost:3000", "localhost", 3000, "/");
    CHECK_URL_OK("http://localhost", "localhost", 80, "/");
    CHECK_URL_OK("http://localhost/", "localhost", 80, "/");
    CHECK_URL_OK("HTTP://Example.com:8080/a/b?c=d&e=f", "Example.com", 8080, "/a/b?c=d&e=f");
    CHECK_URL_OK("http://127.0.0.1:8080/products?category=electronics", "127.0.0.1", 8080,
                 "/products?category=electronics");
    CHECK_URL_OK("http://[::1]:8080", "::1", 8080, "/");
    CHECK_URL_OK("http://[::1]/health", "::1", 80, "/health");
    CHECK_URL_OK("http://[fe80::1%25lo]:1/", "fe80::1%25lo", 1, "/");
    CHECK_URL_OK("http://h?x=1", "h", 80, "/?x=1");
    CHECK_URL_OK("http://h:65535/p#frag", "h", 65535, "/p");

    CHECK_URL_BAD("https://localhost:3000", "https is not supported");
    CHECK_URL_BAD("HTTPS://localhost", "https is not supported");
    CHECK_URL_BAD("localhost:3000", "not an http:// URL: ");
    CHECK_URL_BAD("ftp://x", "not an http:// URL: ");
    CHECK_URL_BAD("", "not an http:// URL: ");
    CHECK_URL_BAD("http://", "missing host");
    CHECK_URL_BAD("http://:3000/", "missing host");
    CHECK_URL_BAD("http:///path", "missing host");
    CHECK_URL_BAD("http://[]:80", "missing host");
    CHECK_URL_BAD("http://h:99999", "bad port '99999'");
    CHECK_URL_BAD("http://h:0", "bad port '0'");
    CHECK_URL_BAD("http://h:65536/", "bad port '65536'");
    CHECK_URL_BAD("http://h:/", "bad port ''");
    CHECK_URL_BAD("http://h:80x", "bad port '80x'");
    CHECK_URL_BAD("http://h:-1", "bad port '-1'");
    CHECK_URL_BAD("http://[::1:80", "missing ']'");
    CHECK_URL_BAD("http://[::1]x:80", "after ']'");
    CHECK_URL_BAD("http://user:pw@h/", "credentials");
    CHECK_URL_BAD("http://h /x", "space");
    CHECK_URL_BAD("http://h/a\tb", "control");
    {
        char long_url[2100 + 20];
        memset(long_url, 'a', sizeof long_url - 1);
        long_url[sizeof long_url - 1] = '\0';
        memcpy(long_url, "http://", 7);
        CHECK_URL_BAD(long_url, "host name longer than 255");
        memcpy(long_url, "http://h/", 9);
        CHECK_URL_BAD(long_url, "path longer than 2047");
        long_url[8 + 2047] = '\0'; /* a path of 2047 bytes fits */
        url_t u;
        CHECK_INT(url_parse_http(long_url, &u, NULL, 0), 0);
        CHECK_INT(strlen(u.path), 2047);
    }
    return test_report("url");
}
