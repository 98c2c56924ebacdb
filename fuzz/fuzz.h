/* fuzz.h: what the libFuzzer drivers share. */
#ifndef CATALOG_FUZZ_H
#define CATALOG_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

/* Aborts with a message when an invariant breaks (libFuzzer then saves the input). */
#define INVARIANT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
