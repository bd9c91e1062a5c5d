/* tests/tests.h: the suites of the one Check binary, and small helpers they share. */
#ifndef TG_TESTS_TESTS_H
#define TG_TESTS_TESTS_H

#include <check.h>
#include <math.h>

#include "tapegrad.h"

/* One suite per module; tests/main.c runs them all. */
Suite *tensor_suite(void);
Suite *ops_suite(void);
Suite *gradcheck_suite(void);
Suite *nn_suite(void);
Suite *optim_suite(void);
Suite *checkpoint_suite(void);
Suite *gemm_suite(void);
Suite *observe_suite(void);
Suite *reliability_suite(void);

/* Shared file helpers (tests/test_util.c); they fail the test on any I/O error. */
/* The whole file, malloc'ed (caller frees), its length in *size. */
unsigned char *tg_test_read_file(const char *path, size_t *size);
/* Replaces path with n bytes of data. */
void tg_test_write_file(const char *path, const void *data, size_t n);
/* "dir/name" in one of four rotating static buffers (a few may be live at once). */
const char *tg_test_join(const char *dir, const char *name);

/* |a - b| <= tol, with both values printed on failure. */
#define ck_close(a, b, tol)                                                          \
    do {                                                                             \
        double ck_a_ = (double)(a), ck_b_ = (double)(b);                             \
        ck_assert_msg(fabs(ck_a_ - ck_b_) <= (tol), "%s = %.17g, expected %.17g (tol %g)", \
                      #a, ck_a_, ck_b_, (double)(tol));                              \
    } while (0)

#endif /* TG_TESTS_TESTS_H */
