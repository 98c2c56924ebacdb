/* handlers.h: the API's routes answered (docs/api.md): each request's input checked, its
 * statement run, its answer written. */
#ifndef CATALOG_HANDLERS_H
#define CATALOG_HANDLERS_H

#include "http_parse.h"
#include "request.h"
#include "slice.h"

/* Answers one request whose head is http and whose whole body is body (req_start has run):
 * at once, or later from a database callback, always through req_end.  Sets req->route. */
void handlers_dispatch(req_t *req, const http_request_t *http, slice_t body);

#endif
