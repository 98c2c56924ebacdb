/* fuzz_order.c: libFuzzer driver for server/order (the JSON body of POST /orders, untrusted).
 * Built by `make fuzzers` (clang, ASan, UBSan); scripts/fuzz.sh runs it, or by hand:
 *   build-fuzz/fuzz_order -dict=fuzz/order.dict -max_total_time=30 fuzz/corpus/order */
#include "order.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

/* The body is parsed from a heap copy of exactly size bytes (no NUL after it, as in the server's
 * read buffer), so ASan catches any read past the body.  An accepted order is within the
 * documented ranges, the error text is always NUL-terminated inside err, and a small err buffer
 * truncates instead of overflowing. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = malloc(size ? size : 1);
    memcpy(body, data, size);

    order_request_t order = {-7, -7};
    char err[256];
    memset(err, 'x', sizeof err);
    int rc = order_parse_request(body, size, &order, err, sizeof err);
    if (rc == 0) {
        /* The server hands the body to nothing else, but a NUL is never valid JSON text. */
        INVARIANT(memchr(body, '\0', size) == NULL);
        INVARIANT(order.product_id >= 1);
        INVARIANT(order.quantity >= 1 && order.quantity <= ORDER_MAX_QUANTITY);
    } else {
        INVARIANT(rc == -1);
        INVARIANT(order.product_id == -7 && order.quantity == -7);
        INVARIANT(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
    }

    /* Same verdict with a tiny error buffer; with none at all it must not write. */
    order_request_t again = {-7, -7};
    char small[8];
    INVARIANT(order_parse_request(body, size, &again, small, sizeof small) == rc);
    INVARIANT(rc != 0 ||
              (again.product_id == order.product_id && again.quantity == order.quantity));
    if (rc != 0) INVARIANT(memchr(small, '\0', sizeof small) != NULL);
    INVARIANT(order_parse_request(body, size, &again, NULL, 0) == rc);

    free(body);
    return 0;
}
