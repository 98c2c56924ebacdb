/* route_table.c: a request path to its route, from the one table ROUTE_MAP. */
#include "route_table.h"

#include <string.h>

route_t route_match(slice_t path, slice_t *id)
{
    static const struct {
        const char *path;
        size_t len;
        int has_param;
    } table[ROUTE_UNMATCHED] = {
#define ROUTE_PATTERN(name, path, param) {path, sizeof path - 1, sizeof param > 1},
        ROUTE_MAP(ROUTE_PATTERN)
#undef ROUTE_PATTERN
    };
    for (route_t r = 0; r < ROUTE_UNMATCHED; r++) {
        size_t n = table[r].len;
        if (!table[r].has_param) {
            if (path.len == n && memcmp(path.base, table[r].path, n) == 0) return r;
        } else if (path.len >= n && memcmp(path.base, table[r].path, n) == 0 &&
                   !memchr(path.base + n, '/', path.len - n)) {
            *id = slice_make(path.base + n, path.len - n);
            return r;
        }
    }
    return ROUTE_UNMATCHED;
}
