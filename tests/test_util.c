/* tests/test_util.c: file helpers shared by the suites that write and corrupt checkpoints. */
#include <stdio.h>
#include <stdlib.h>

#include "tests/tests.h"

unsigned char *tg_test_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return b;
}

void tg_test_write_file(const char *path, const void *data, size_t n)
{
    remove(path);   /* ext4 flushes a file truncated and rewritten in place on close */
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

const char *tg_test_join(const char *dir, const char *name)
{
    static char bufs[4][160];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}
