/* test_order.c: unit tests for server/order (every 400 message of POST /orders). */
#include "order.h"
#include "test.h"

#include <stdlib.h>

/* Parses body and expects the given 400 message (a prefix match when want ends in '*'). */
static void check_rejected(const char *body, size_t len, const char *want, int line)
{
    order_request_t req = {-7, -7};
    char err[256] = "";
    int rc = order_parse_request(body, len, &req, err, sizeof err);
    size_t want_len = strlen(want);
    int prefix = want_len && want[want_len - 1] == '*';
    int matches = prefix ? strncmp(err, want, want_len - 1) == 0 : strcmp(err, want) == 0;
    if (rc != -1 || !matches)
        fprintf(stderr, "line %d: body '%.*s': rc %d, err \"%s\", want \"%s\"\n", line,
                (int)(len > 80 ? 80 : len), body, rc, err, want);
    CHECK_INT(rc, -1);
    CHECK(matches);
    CHECK_INT(req.product_id, -7); /* untouched on failure */
}
#define CHECK_REJECTED(body, want) check_rejected((body), strlen(body), (want), __LINE__)

static void check_accepted(const char *body, int32_t product_id, int32_t quantity, int line)
{
    order_request_t req = {0, 0};
    char err[256] = "";
    int rc = order_parse_request(body, strlen(body), &req, err, sizeof err);
    if (rc != 0) fprintf(stderr, "line %d: body '%s' rejected: %s\n", line, body, err);
    CHECK_INT(rc, 0);
    CHECK_INT(req.product_id, product_id);
    CHECK_INT(req.quantity, quantity);
}
#define CHECK_ACCEPTED(body, id, qty) check_accepted((body), (id), (qty), __LINE__)

int main(void)
{
    CHECK_ACCEPTED("{\"product_id\": 1, \"quantity\": 2}", 1, 2);
    CHECK_ACCEPTED("{\"quantity\":5,\"product_id\":4999}", 4999, 5);
    CHECK_ACCEPTED(" \n{\"product_id\":2147483647,\"quantity\":1000000,\"note\":[1,{}]} \n",
                   INT32_MAX, 1000000);

    /* not JSON */
    CHECK_REJECTED("{ \"product_id\": ", "invalid JSON: *");
    CHECK_REJECTED("{", "invalid JSON: *");
    CHECK_REJECTED("{\"product_id\":1,\"quantity\":2", "invalid JSON: *");
    CHECK_REJECTED("{\"product_id\":1,\"quantity\":2}x", "invalid JSON: *");
    CHECK_REJECTED("product_id=1&quantity=2", "invalid JSON: *");
    CHECK_REJECTED("{'product_id':1}", "invalid JSON: *");
    check_rejected("{\"product_id\":1,\0\"quantity\":2}", 29, "invalid JSON: *", __LINE__);
    /* duplicate keys */
    CHECK_REJECTED("{\"product_id\":1,\"quantity\":2,\"quantity\":900}", "invalid JSON: *");
    /* huge integers jansson cannot hold */
    CHECK_REJECTED("{\"product_id\":1,\"quantity\":99999999999999999999999}", "invalid JSON: *");
    CHECK_REJECTED("{\"product_id\":-99999999999999999999999,\"quantity\":1}", "invalid JSON: *");
    /* nesting beyond the limit is refused before jansson sees it */
    {
        size_t depth = 100000;
        char *deep = malloc(2 * depth + 1);
        memset(deep, '[', depth);
        memset(deep + depth, ']', depth);
        deep[2 * depth] = '\0';
        CHECK_REJECTED(deep, "invalid JSON: nested deeper than 32 levels");
        free(deep);
    }
    /* brackets inside strings do not count as nesting */
    CHECK_ACCEPTED("{\"product_id\":1,\"quantity\":1,\"x\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                   "[[[[[[[[[[\\\"[[[[\"}",
                   1, 1);

    /* not an object */
    CHECK_REJECTED("[1,2]", "request body must be a JSON object");
    CHECK_REJECTED("42", "request body must be a JSON object");
    CHECK_REJECTED("\"x\"", "request body must be a JSON object");
    CHECK_REJECTED("null", "request body must be a JSON object");

    /* missing or null */
    CHECK_REJECTED("{}", "product_id and quantity are required");
    CHECK_REJECTED("", "product_id and quantity are required"); /* as the reference */
    CHECK_REJECTED(" \r\n", "product_id and quantity are required");
    CHECK_REJECTED("{\"product_id\":1}", "product_id and quantity are required");
    CHECK_REJECTED("{\"quantity\":1}", "product_id and quantity are required");
    CHECK_REJECTED("{\"product_id\":null,\"quantity\":1}", "product_id and quantity are required");
    CHECK_REJECTED("{\"product_id\":1,\"quantity\":null}", "product_id and quantity are required");
    CHECK_REJECTED("{\"Product_ID\":1,\"quantity\":1}", "product_id and quantity are required");

    /* wrong types */
    CHECK_REJECTED("{\"product_id\":\"1\",\"quantity\":1}", "product_id must be an integer");
    CHECK_REJECTED("{\"product_id\":true,\"quantity\":1}", "product_id must be an integer");
    CHECK_REJECTED("{\"product_id\":[1],\"quantity\":1}", "product_id must be an integer");
    CHECK_REJECTED("{\"product_id\":{},\"quantity\":1}", "product_id must be an integer");
    CHECK_REJECTED("{\"product_id\":1,\"quantity\":\"2\"}", "quantity must be an integer");
    CHECK_REJECTED("{\"product_id\":1,\"quantity\":false}", "quantity must be an integer");
    CHECK_REJECTED("{\"product_id\":1,\"quantity\":[2]}", "quantity must be an integer");

    /* reals */
    CHECK_REJECTED("{\"product_id\":1,\"quantity\":2.5}", "quantity must be a whole number");
    CHECK_REJECTED("{\"product_id\":1,\"quantity\":2.0}", "quantity must be a whole number");
    CHECK_REJECTED("{\"product_id\":1,\"quantity\":1e3}", "quantity must be a whole number");
    CHECK_REJECTED("{\"product_id\":1,\"quantity\":-0.5}", "quantity must be a whole number");
    CHECK_REJECTED("{\"product_id\":1.5,\"quantity\":1}", "product_id must be a whole number");
    CHECK_REJECTED("{\"product_id\":1E2,\"quantity\":1}", "product_id must be a whole number");

    /* ranges */
    CHECK_REJECTED("{\"product_id\":0,\"quantity\":1}",
                   "product_id must be a positive 32-bit integer");
    CHECK_REJECTED("{\"product_id\":-3,\"quantity\":1}",
                   "product_id must be a positive 32-bit integer");
    CHECK_REJECTED("{\"product_id\":2147483648,\"quantity\":1}",
                   "product_id must be a positive 32-bit integer");
    CHECK_REJECTED("{\"product_id\":9223372036854775807,\"quantity\":1}",
                   "product_id must be a positive 32-bit integer");
    CHECK_REJECTED("{\"product_id\":1,\"quantity\":0}", "quantity must be a positive integer");
    CHECK_REJECTED("{\"product_id\":1,\"quantity\":-1}", "quantity must be a positive integer");
    CHECK_REJECTED("{\"product_id\":1,\"quantity\":-9223372036854775808}",
                   "quantity must be a positive integer");
    CHECK_REJECTED("{\"product_id\":1,\"quantity\":1000001}", "quantity must be at most 1000000");
    CHECK_REJECTED("{\"product_id\":1,\"quantity\":2147483648}",
                   "quantity must be at most 1000000");

    /* a short err buffer is truncated, never overrun */
    {
        order_request_t req;
        char small[8];
        memset(small, 'x', sizeof small);
        CHECK_INT(order_parse_request("{}", 2, &req, small, sizeof small), -1);
        CHECK_STR(small, "product");
        CHECK_INT(order_parse_request("{}", 2, &req, NULL, 0), -1);
    }
    {
        /* A NUL byte inside the body must not cut the JSON short (fuzz/test_server_hostile). */
        static const char body[] = "{\"product_id\":1,\"quantity\":1\0}";
        order_request_t nul_req;
        char nul_err[128];
        CHECK_INT(order_parse_request(body, sizeof body - 1, &nul_req, nul_err, sizeof nul_err),
                  -1);
        CHECK_STR(nul_err, "invalid JSON: NUL byte in the body");
    }
    return test_report("order");
}
