/* test.h: the unit-test harness: CHECK macros that print both values, one binary per area.
 * Each test binary prints one "name: N passed, N failed" line and exits non-zero on failure. */
#ifndef CATALOG_TEST_H
#define CATALOG_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int test_passed, test_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            test_passed++;                                                                         \
        } else {                                                                                   \
            test_failed++;                                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_INT(got, want)                                                                       \
    do {                                                                                           \
        long long g_ = (long long)(got), w_ = (long long)(want);                                   \
        if (g_ == w_) {                                                                            \
            test_passed++;                                                                         \
        } else {                                                                                   \
            test_failed++;                                                                         \
            fprintf(stderr, "%s:%d: %s == %lld, want %lld\n", __FILE__, __LINE__, #got, g_, w_);   \
        }                                                                                          \
    } while (0)

/* Compares len bytes at got with the NUL-terminated want. */
#define CHECK_MEM(got, got_len, want)                                                              \
    do {                                                                                           \
        const char *w_ = (want);                                                                   \
        size_t gl_ = (size_t)(got_len);                                                            \
        if (gl_ == strlen(w_) && (gl_ == 0 || memcmp((got), w_, gl_) == 0)) {                      \
            test_passed++;                                                                         \
        } else {                                                                                   \
            test_failed++;                                                                         \
            fprintf(stderr, "%s:%d: %s == \"%.*s\", want \"%s\"\n", __FILE__, __LINE__, #got,      \
                    (int)gl_, (const char *)(got), w_);                                            \
        }                                                                                          \
    } while (0)

#define CHECK_STR(got, want) CHECK_MEM((got), strlen(got), (want))

/* Prints the closing line and returns the exit status for main. */
static inline int test_report(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, test_passed, test_failed);
    return test_failed ? 1 : 0;
}

#endif
