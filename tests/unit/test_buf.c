/* test_buf.c: unit tests for lib/buf. */
#include "buf.h"
#include "test.h"

int main(void)
{
    buf_t b = {0};
    buf_append_cstr(&b, "a");
    buf_append_u64(&b, 0);
    buf_append_i64(&b, -42);
    buf_append_u64(&b, UINT64_MAX);
    CHECK_MEM(b.data, b.len, "a0-4218446744073709551615");
    buf_append_i64(&b, INT64_MIN);
    CHECK_MEM(b.data + 25, b.len - 25, "-9223372036854775808");
    buf_consume(&b, 2);
    CHECK_INT(b.data[0], '-');
    buf_reset(&b);
    for (int i = 0; i < 10000; i++)
        buf_append_char(&b, 'x');
    CHECK_INT(b.len, 10000);
    buf_printf(&b, "%d-%s", 7, "z");
    CHECK_MEM(b.data + 10000, 3, "7-z");
    buf_free(&b);
    /* buf_reserve: room without growing when it fits, growth that keeps the bytes */
    buf_init(&b, 64);
    buf_append_cstr(&b, "keep");
    size_t cap = b.cap, room = cap - 4;
    char *at = buf_reserve(&b, room);
    CHECK(at == b.data + 4);
    CHECK_INT(b.cap, cap);
    at = buf_reserve(&b, room + 1);
    CHECK(at == b.data + 4);
    CHECK(b.cap >= cap + 1);
    CHECK_MEM(b.data, b.len, "keep");
    memset(at, 'y', room + 1);
    b.len += room + 1;
    CHECK_INT(b.data[cap], 'y');
    buf_free(&b);
    buf_free(NULL);
    CHECK(slice_eq_nocase(SLICE_LIT("Content-Length"), SLICE_LIT("content-length")));
    CHECK(!slice_eq_nocase(SLICE_LIT("Content-Length"), SLICE_LIT("content-lengtx")));
    return test_report("buf");
}
