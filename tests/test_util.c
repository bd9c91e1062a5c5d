/* tests/test_util.c: file helpers shared by the suites that write and corrupt checkpoints,
   the table-driven suite builder and the dropout mask check (see tests/tests.h). */
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

Suite *tg_test_suite(const char *name, const tg_test_row *rows, size_t n)
{
    Suite *s = suite_create(name);
    TCase *tc = NULL;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].tcase) {
            tc = tcase_create(rows[i].tcase);
            if (rows[i].timeout > 0)
                tcase_set_timeout(tc, rows[i].timeout);
            suite_add_tcase(s, tc);
            continue;
        }
        if (!tc) {
            fprintf(stderr, "suite %s: a test before the first TG_CASE\n", name);
            abort();
        }
        tcase_add_loop_test(tc, rows[i].test, 0, rows[i].loops);
    }
    return s;
}

int64_t tg_test_dropout_zeros(const tg_tensor *mask, const tg_tensor *same, double scale,
                              double tol)
{
    int64_t zeros = 0;
    for (int64_t i = 0; i < mask->numel; i++) {
        double v = tg_tensor_get(mask, i);
        ck_assert(v == 0.0 || v == scale || fabs(v - scale) < tol);
        zeros += v == 0.0;
        ck_assert_double_eq(v, tg_tensor_get(same, i));     /* a seed, a mask */
    }
    return zeros;
}
