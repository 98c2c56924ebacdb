/* fuzz_number.c: libFuzzer driver for lib/number (ids in paths, numbers in query and env values).
 * Built by `make fuzzers` (clang, ASan, UBSan); scripts/fuzz.sh runs it, or by hand:
 *   build-fuzz/fuzz_number -dict=fuzz/number.dict -max_total_time=30 fuzz/corpus/number */
#include "number.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

/* Nonzero when s[0..len) is an optional '-' then one or more ASCII digits. */
static int decimal_shape(const char *s, size_t len, int allow_minus)
{
    size_t i = (allow_minus && len && s[0] == '-') ? 1 : 0;
    if (i == len) return 0;
    for (; i < len; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

/* Both parsers are checked against strtoll/strtoull on a NUL-terminated copy, which agree with
 * them on every input of the strict shape. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *exact = malloc(size ? size : 1); /* no NUL: ASan catches a read past len */
    memcpy(exact, data, size);
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';

    int32_t i32 = 12345;
    int rc = number_parse_i32(exact, size, &i32);
    if (!decimal_shape(text, size, 1)) {
        INVARIANT(rc == -1 && i32 == 12345);
    } else {
        errno = 0;
        long long want = strtoll(text, NULL, 10);
        int fits = errno == 0 && want >= INT32_MIN && want <= INT32_MAX;
        INVARIANT(rc == (fits ? 0 : -1));
        if (fits)
            INVARIANT(i32 == want);
        else
            INVARIANT(i32 == 12345);
    }

    uint64_t u64 = 777;
    rc = number_parse_u64(exact, size, &u64);
    if (!decimal_shape(text, size, 0)) {
        INVARIANT(rc == -1 && u64 == 777);
    } else {
        errno = 0;
        unsigned long long want = strtoull(text, NULL, 10);
        INVARIANT(rc == (errno == 0 ? 0 : -1));
        if (rc == 0) INVARIANT(u64 == want);
    }
    free(text);
    free(exact);
    return 0;
}
