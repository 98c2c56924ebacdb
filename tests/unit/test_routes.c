/* test_routes.c: unit tests for server/route_table (route_match: the path of a request to its
 * route, from the one route table ROUTE_MAP in server/route_table.h). */
#include "route_table.h"
#include "test.h"

/* Matches path; checks the route and, for ROUTE_PRODUCT, the id segment. */
static void check_match(const char *path, route_t want, const char *want_id, int line)
{
    slice_t id = slice_cstr("untouched");
    route_t got = route_match(slice_cstr(path), &id);
    if (got != want)
        fprintf(stderr, "line %d: \"%s\" matched %d, want %d\n", line, path, got, want);
    CHECK_INT(got, want);
    CHECK_MEM(id.base, id.len, want_id);
}
#define CHECK_MATCH(path, route, id) check_match((path), (route), (id), __LINE__)

int main(void)
{
    CHECK_MATCH("/health", ROUTE_HEALTH, "untouched");
    CHECK_MATCH("/health/live", ROUTE_HEALTH_LIVE, "untouched");
    CHECK_MATCH("/health/ready", ROUTE_HEALTH_READY, "untouched");
    CHECK_MATCH("/products", ROUTE_PRODUCTS, "untouched");
    CHECK_MATCH("/report", ROUTE_REPORT, "untouched");
    CHECK_MATCH("/orders", ROUTE_ORDERS, "untouched");
    CHECK_MATCH("/metrics", ROUTE_METRICS, "untouched");

    /* "/products/" and one segment: the id is whatever the segment holds; the route checks it. */
    CHECK_MATCH("/products/42", ROUTE_PRODUCT, "42");
    CHECK_MATCH("/products/abc", ROUTE_PRODUCT, "abc");
    CHECK_MATCH("/products/", ROUTE_PRODUCT, "");
    CHECK_MATCH("/products/42/", ROUTE_UNMATCHED, "untouched");
    CHECK_MATCH("/products/4/2", ROUTE_UNMATCHED, "untouched");

    /* Exact paths only: no trailing slash, no prefix, no case folding, no dot segments. */
    CHECK_MATCH("/", ROUTE_UNMATCHED, "untouched");
    CHECK_MATCH("", ROUTE_UNMATCHED, "untouched");
    CHECK_MATCH("/health/", ROUTE_UNMATCHED, "untouched");
    CHECK_MATCH("/healthz", ROUTE_UNMATCHED, "untouched");
    CHECK_MATCH("/health/live/x", ROUTE_UNMATCHED, "untouched");
    CHECK_MATCH("/Health", ROUTE_UNMATCHED, "untouched");
    CHECK_MATCH("/product", ROUTE_UNMATCHED, "untouched");
    CHECK_MATCH("/productsx", ROUTE_UNMATCHED, "untouched");
    CHECK_MATCH("/orders/1", ROUTE_UNMATCHED, "untouched");
    CHECK_MATCH("/./health", ROUTE_UNMATCHED, "untouched");
    CHECK_MATCH("//health", ROUTE_UNMATCHED, "untouched");

    /* A path with a NUL byte inside does not match the route it starts with. */
    static const char nul_path[] = "/health\0x";
    slice_t id = {0};
    CHECK_INT(route_match(slice_make(nul_path, sizeof nul_path - 1), &id), ROUTE_UNMATCHED);
    return test_report("routes");
}
