/* slice.c: {base, len} views of bytes someone else owns. */
#include "slice.h"

int slice_eq_nocase(slice_t a, slice_t b)
{
    if (a.len != b.len) return 0;
    for (size_t i = 0; i < a.len; i++) {
        unsigned char x = (unsigned char)a.base[i], y = (unsigned char)b.base[i];
        if ((unsigned)(x - 'A') < 26u) x |= 0x20;
        if ((unsigned)(y - 'A') < 26u) y |= 0x20;
        if (x != y) return 0;
    }
    return 1;
}
