/* alloc.h: memory allocation that does not fail: the one out-of-memory rule of every program.
 * A program out of memory cannot answer, log or measure anything correctly, so an allocation
 * that fails prints "catalog: out of memory (N bytes)" on stderr and aborts, as redis's zmalloc
 * and h2o's h2o_mem_alloc do.  No caller checks for NULL. */
#ifndef CATALOG_ALLOC_H
#define CATALOG_ALLOC_H

#include <stddef.h>

/* malloc(size); never NULL (size 0 gives a unique pointer to free). */
void *xmalloc(size_t size);
/* calloc(count, size): zeroed; never NULL; aborts on a count * size overflow too. */
void *xcalloc(size_t count, size_t size);
/* realloc(p, size); never NULL.  p may be NULL. */
void *xrealloc(void *p, size_t size);
/* strdup(s); never NULL.  s must not be NULL. */
char *xstrdup(const char *s);

#endif
