/* order.h: validation of the POST /orders body ({"product_id": int, "quantity": int}). */
#ifndef CATALOG_ORDER_H
#define CATALOG_ORDER_H

#include <stddef.h>
#include <stdint.h>

/* Largest quantity one order may ask for; bigger is a 400, so price * quantity stays small. */
#define ORDER_MAX_QUANTITY 1000000
/* Deepest nesting of arrays and objects accepted in the body (jansson's own limit is 2048). */
#define ORDER_MAX_NESTING_DEPTH 32

/* The validated fields of an order request. */
typedef struct order_request {
    int32_t product_id; /* 1..INT32_MAX */
    int32_t quantity;   /* 1..ORDER_MAX_QUANTITY */
} order_request_t;

/* Parses and validates body[0..len) with jansson (duplicate keys rejected, nesting limited,
 * unknown keys ignored; an empty body counts as {} as in the reference).  Returns 0 and fills *out,
 * or -1 with the message for the 400 body in err (NUL-terminated, truncated to err_len), e.g.
 * "product_id and quantity are required", "quantity must be a whole number", "invalid JSON:
 * <jansson's text>".  Allocates nothing that outlives the call. */
int order_parse_request(const char *body, size_t len, order_request_t *out, char *err,
                        size_t err_len);

#endif
