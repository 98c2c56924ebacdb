/* order.c: validation of the POST /orders body with jansson. */
#include "order.h"

#include <jansson.h>
#include <string.h>

#include "error.h"

/* Deepest nesting of '[' and '{' outside strings.  jansson has no runtime depth limit, so this
 * scan keeps a hostile body from making the parser recurse 2048 levels per request. */
static size_t nesting_depth(const char *body, size_t len)
{
    size_t depth = 0, max_depth = 0;
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) max_depth = depth;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return max_depth;
}

/* Checks one field that must be a whole number in [min, max]; returns 0 with *out set, or -1
 * with the message in err.  range_message is used for integers outside the range. */
static int integer_field(json_t *value, const char *name, json_int_t min, json_int_t max,
                         const char *range_message, int32_t *out, char *err, size_t err_len)
{
    if (json_is_real(value)) return error_set(err, err_len, "%s must be a whole number", name);
    if (!json_is_integer(value)) return error_set(err, err_len, "%s must be an integer", name);
    json_int_t v = json_integer_value(value);
    if (v < min) return error_set(err, err_len, "%s", range_message);
    if (v > max) {
        if (max == ORDER_MAX_QUANTITY)
            return error_set(err, err_len, "%s must be at most %d", name, ORDER_MAX_QUANTITY);
        return error_set(err, err_len, "%s", range_message);
    }
    *out = (int32_t)v;
    return 0;
}

/* Nonzero when body holds nothing but JSON whitespace. */
static int is_blank(const char *body, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (body[i] != ' ' && body[i] != '\t' && body[i] != '\n' && body[i] != '\r') return 0;
    }
    return 1;
}

int order_parse_request(const char *body, size_t len, order_request_t *out, char *err,
                        size_t err_len)
{
    /* The reference (express.json) treats an empty body as {}: same message here. */
    if (is_blank(body, len)) return error_set(err, err_len, "product_id and quantity are required");
    /* jansson stops at a NUL and would take what comes before it as the whole body. */
    if (memchr(body, 0, len)) return error_set(err, err_len, "invalid JSON: NUL byte in the body");
    if (nesting_depth(body, len) > ORDER_MAX_NESTING_DEPTH)
        return error_set(err, err_len, "invalid JSON: nested deeper than %d levels",
                         ORDER_MAX_NESTING_DEPTH);

    json_error_t json_err;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &json_err);
    if (!root) return error_set(err, err_len, "invalid JSON: %s", json_err.text);

    int rc = -1;
    order_request_t parsed;
    if (!json_is_object(root)) {
        error_set(err, err_len, "request body must be a JSON object");
        goto done;
    }
    json_t *product_id = json_object_get(root, "product_id");
    json_t *quantity = json_object_get(root, "quantity");
    if (!product_id || json_is_null(product_id) || !quantity || json_is_null(quantity)) {
        error_set(err, err_len, "product_id and quantity are required");
        goto done;
    }
    if (integer_field(product_id, "product_id", 1, INT32_MAX,
                      "product_id must be a positive 32-bit integer", &parsed.product_id, err,
                      err_len) ||
        integer_field(quantity, "quantity", 1, ORDER_MAX_QUANTITY,
                      "quantity must be a positive integer", &parsed.quantity, err, err_len))
        goto done;
    *out = parsed;
    rc = 0;
done:
    json_decref(root);
    return rc;
}
