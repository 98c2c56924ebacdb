/* route_table.h: the API's routes, written once (ROUTE_MAP), and the request methods as
 * /metrics labels them. */
#ifndef CATALOG_ROUTE_TABLE_H
#define CATALOG_ROUTE_TABLE_H

#include "slice.h"

/* The routes, written once.  ROUTE_MAP(X) calls X(NAME, path, param) for each route in the
 * order /metrics lists them.  A route without a param matches its path exactly; one with a
 * param (":id") matches path followed by one segment without '/'.  path param (the two strings
 * joined) is the route's label in /metrics.  route_match tries the routes in this order. */
#define ROUTE_MAP(X)                                                                               \
    X(HEALTH, "/health", "")                                                                       \
    X(HEALTH_LIVE, "/health/live", "")                                                             \
    X(HEALTH_READY, "/health/ready", "")                                                           \
    X(PRODUCTS, "/products", "")                                                                   \
    X(PRODUCT, "/products/", ":id")                                                                \
    X(REPORT, "/report", "")                                                                       \
    X(ORDERS, "/orders", "")                                                                       \
    X(METRICS, "/metrics", "")

/* clang-format off */
typedef enum route {
#define ROUTE_ENUM(name, path, param) ROUTE_##name,
    ROUTE_MAP(ROUTE_ENUM)
#undef ROUTE_ENUM
    ROUTE_UNMATCHED, /* no route matched, or the request could not be parsed */
} route_t;
/* clang-format on */
#define ROUTE_COUNT (ROUTE_UNMATCHED + 1)

/* A request's method as /metrics labels it. */
enum method_label { METHOD_GET, METHOD_HEAD, METHOD_POST, METHOD_OTHER, METHOD_COUNT };

/* The route of a request path (ROUTE_UNMATCHED when none); for ROUTE_PRODUCT, *id is set to
 * the segment after "/products/" (possibly empty), pointing into path. */
route_t route_match(slice_t path, slice_t *id);

#endif
