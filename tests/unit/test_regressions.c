/* test_regressions.c: every input that once crashed a fuzz driver or tripped a sanitizer, replayed
 * through the same function; built with the rest of the unit tests, so the sanitized tree
 * (build-san/) catches a return of the bug, and the plain tree checks the answer. */
#include "http_parse.h"
#include "number.h"
#include "order.h"
#include "test.h"
#include "url.h"

#include <stdlib.h>

/* fuzz_url, server/url.c:50: a query pair with an empty key ("=1") looked up with an empty name
 * passed value->data == NULL to memcmp (UBSan: null pointer passed as argument 1).  Input
 * fuzz/regressions/url_empty_key_null_memcmp. */
static void test_url_query_empty_key(void)
{
    static const char text[] = "=1&category=%43%3D%26&b";
    char *query = malloc(sizeof text - 1); /* no NUL after the query, as in the server */
    memcpy(query, text, sizeof text - 1);
    buf_t value = {0};
    CHECK_INT(url_query_get(slice_make(query, sizeof text - 1), "", &value), 1);
    CHECK_MEM(value.data ? value.data : "", value.len, "1");
    CHECK_INT(url_query_get(slice_make(query, sizeof text - 1), "category", &value), 1);
    CHECK_MEM(value.data, value.len, "C=&");
    CHECK_INT(url_query_get(slice_make(query, sizeof text - 1), "b", &value), 1);
    CHECK_INT(value.len, 0);
    buf_free(&value);
    free(query);
}

int main(void)
{
    test_url_query_empty_key();
    return test_report("test_regressions");
}
