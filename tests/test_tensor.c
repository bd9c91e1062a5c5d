/* tests/test_tensor.c: the tensor suite: creation, overflow, access, printing, RNG. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/tests.h"

START_TEST(test_new_zeroed_and_shape)
{
    tg_tensor *t = tg_tensor_new(TG_F32, 3, (int64_t[]){ 2, 3, 4 });
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->numel, 24);
    ck_assert_int_eq(t->ndim, 3);
    ck_assert_ptr_null(t->grad);
    for (int64_t i = 0; i < t->numel; i++)
        ck_assert(tg_tensor_get(t, i) == 0.0);
    char buf[64];
    ck_assert_str_eq(tg_shape_str(t, buf, sizeof buf), "(2,3,4)");
    tg_tensor_free(t);
}
END_TEST

/* Data and gradients start on a cache line, small or large (a large one comes from
 * mmap, which malloc returns 16 bytes into a page), and both come zeroed. */
START_TEST(test_new_data_on_cache_lines)
{
    const int64_t sizes[] = { 1, 3, 65, 256 * 128, 577 * 512 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        tg_tensor *t = tg_tensor_new(TG_F32, 1, &sizes[i]);
        ck_assert_ptr_nonnull(t);
        ck_assert_int_eq(tg_tensor_requires_grad(t), TG_OK);
        ck_assert_uint_eq((uintptr_t)t->data % 64, 0);
        ck_assert_uint_eq((uintptr_t)t->grad % 64, 0);
        for (int64_t j = 0; j < sizes[i]; j += 97)
            ck_assert(((float *)t->data)[j] == 0.0f && ((float *)t->grad)[j] == 0.0f);
        tg_tensor_free(t);
    }
}
END_TEST

START_TEST(test_new_rejects_bad_input)
{
    ck_assert_ptr_null(tg_tensor_new(TG_F32, 0, (int64_t[]){ 1 }));
    ck_assert_ptr_null(tg_tensor_new(TG_F32, 5, (int64_t[]){ 1, 1, 1, 1, 1 }));
    ck_assert_ptr_null(tg_tensor_new(TG_F32, 2, (int64_t[]){ 3, 0 }));
    ck_assert_ptr_null(tg_tensor_new(TG_F32, 2, (int64_t[]){ -1, 4 }));
    ck_assert_ptr_null(tg_tensor_new((tg_dtype)7, 1, (int64_t[]){ 4 }));
    ck_assert_ptr_null(tg_tensor_new(TG_F32, 1, NULL));
    tg_tensor_free(NULL);   /* no-op */
}
END_TEST

START_TEST(test_last_error_per_thread_message)
{
    tg_clear_error();
    ck_assert_str_eq(tg_last_error(), "");
    ck_assert_int_eq(tg_last_status(), TG_OK);
    ck_assert_ptr_null(tg_tensor_new(TG_F32, 5, (int64_t[]){ 1, 1, 1, 1, 1 }));
    ck_assert_int_eq(tg_last_status(), TG_ERR_ARG);
    ck_assert_msg(strstr(tg_last_error(), "tensor_new") && strstr(tg_last_error(), "5"),
                  "message: %s", tg_last_error());
    /* a success leaves the reason of the last failure in place */
    tg_tensor *t = tg_tensor_new(TG_F32, 1, (int64_t[]){ 2 });
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(tg_last_status(), TG_ERR_ARG);
    tg_tensor_free(t);
    tg_clear_error();
    ck_assert_str_eq(tg_last_error(), "");
}
END_TEST

START_TEST(test_new_overflow_is_an_error)
{
    /* 2^80 elements: the size computation overflows; must be NULL, not a crash */
    int64_t big = (int64_t)1 << 40;
    ck_assert_ptr_null(tg_tensor_new(TG_F64, 2, (int64_t[]){ big, big }));
    ck_assert_ptr_null(tg_tensor_new(TG_F32, 1, (int64_t[]){ INT64_MAX }));
    ck_assert_ptr_null(tg_tensor_new(TG_F32, 4, (int64_t[]){ 1 << 20, 1 << 20, 1 << 20, 2 }));
}
END_TEST

START_TEST(test_requires_grad_and_access)
{
    tg_tensor *t = tg_tensor_new(TG_F64, 1, (int64_t[]){ 3 });
    ck_assert_int_eq(tg_tensor_requires_grad(t), TG_OK);
    ck_assert_ptr_nonnull(t->grad);
    ck_assert(t->flags & TG_FLAG_REQUIRES_GRAD);
    ck_assert_int_eq(tg_tensor_fill_values(t, (double[]){ 1.5, -2, 3 }), TG_OK);
    ck_close(tg_tensor_get(t, 1), -2.0, 0);
    tg_tensor_set(t, 2, 7.25);
    ck_close(tg_tensor_get(t, 2), 7.25, 0);
    ((double *)t->grad)[0] = 4;
    ck_close(tg_tensor_grad_get(t, 0), 4, 0);
    tg_tensor_zero_grad(t);
    ck_close(tg_tensor_grad_get(t, 0), 0, 0);
    ck_assert_int_eq(tg_tensor_requires_grad(NULL), TG_ERR_NULL);
    ck_assert_int_eq(tg_tensor_fill_values(NULL, NULL), TG_ERR_NULL);
    tg_tensor_free(t);
}
END_TEST

START_TEST(test_copy_clone_and_mismatch)
{
    tg_tensor *a = tg_tensor_new(TG_F32, 2, (int64_t[]){ 2, 2 });
    tg_tensor *b = tg_tensor_new(TG_F32, 1, (int64_t[]){ 4 });
    tg_tensor *c = tg_tensor_new(TG_F64, 1, (int64_t[]){ 4 });
    tg_tensor *d = tg_tensor_new(TG_F32, 1, (int64_t[]){ 3 });
    tg_tensor_fill_values(a, (double[]){ 1, 2, 3, 4 });
    ck_assert_int_eq(tg_tensor_copy(b, a), TG_OK);
    ck_close(tg_tensor_get(b, 3), 4, 0);
    ck_assert_int_eq(tg_tensor_copy(c, a), TG_ERR_DTYPE);
    ck_assert_int_eq(tg_tensor_copy(d, a), TG_ERR_SHAPE);
    ck_assert_int_eq(tg_tensor_copy(NULL, a), TG_ERR_NULL);
    tg_tensor *e = tg_tensor_clone(a);
    ck_assert(tg_tensor_same_shape(a, e));
    ck_assert(!tg_tensor_same_shape(a, b));
    ck_assert_int_eq(memcmp(a->data, e->data, 16), 0);
    ck_assert_ptr_null(tg_tensor_clone(NULL));
    tg_tensor_free(a); tg_tensor_free(b); tg_tensor_free(c); tg_tensor_free(d);
    tg_tensor_free(e);
}
END_TEST

START_TEST(test_print_is_shape_aware)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    tg_tensor *t = tg_tensor_new(TG_F32, 2, (int64_t[]){ 2, 3 });
    tg_tensor_fill_values(t, (double[]){ 1, 2, 3, 4, 5, 6 });
    tg_tensor_print(f, "w", t);
    tg_tensor *big = tg_tensor_new(TG_F64, 1, (int64_t[]){ 100 });
    tg_tensor_print(f, "big", big);
    tg_tensor_print(f, "none", NULL);
    tg_tensor_print(NULL, "ignored", t);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "w: f32 (2,3)"));
    ck_assert_ptr_nonnull(strstr(buf, "[[         1          2          3]\n"
                                      " [         4          5          6]]"));
    ck_assert_ptr_nonnull(strstr(buf, "big: f64 (100)"));
    ck_assert_ptr_nonnull(strstr(buf, " ..."));
    ck_assert_ptr_nonnull(strstr(buf, "none: NULL"));
    free(buf);
    tg_tensor_free(t);
    tg_tensor_free(big);
}
END_TEST

START_TEST(test_status_strings)
{
    for (int s = TG_OK; s <= TG_ERR_NONFINITE; s++)
        ck_assert(strlen(tg_status_str((tg_status)s)) > 0);
    ck_assert_str_eq(tg_status_str(TG_ERR_SHAPE), "shape mismatch");
    ck_assert_str_eq(tg_status_str((tg_status)999), "unknown status");
}
END_TEST

START_TEST(test_rng_deterministic_and_distributed)
{
    tg_rng a, b;
    tg_rng_seed(&a, 42);
    tg_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++)
        ck_assert(tg_rng_next(&a) == tg_rng_next(&b));
    tg_rng_seed(&b, 43);
    ck_assert(tg_rng_next(&a) != tg_rng_next(&b));
    /* moments of 100k uniforms and normals */
    double su = 0, sn = 0, sn2 = 0;
    int n = 100000;
    for (int i = 0; i < n; i++) {
        double u = tg_rng_uniform(&a);
        ck_assert(u >= 0 && u < 1);
        su += u;
        double z = tg_rng_normal(&a);
        sn += z;
        sn2 += z * z;
    }
    ck_close(su / n, 0.5, 0.01);
    ck_close(sn / n, 0.0, 0.02);
    ck_close(sn2 / n, 1.0, 0.02);
    int counts[7] = { 0 };
    for (int i = 0; i < 70000; i++)
        counts[tg_rng_below(&a, 7)]++;
    for (int k = 0; k < 7; k++)
        ck_close(counts[k], 10000, 500);
    ck_assert_int_eq(tg_rng_below(&a, 0), 0);
}
END_TEST

START_TEST(test_fill_helpers)
{
    tg_rng r;
    tg_rng_seed(&r, 1);
    tg_tensor *t = tg_tensor_new(TG_F32, 2, (int64_t[]){ 50, 40 });
    tg_tensor_fill_uniform(t, &r, -0.08, 0.08);
    double lo = 1, hi = -1;
    for (int64_t i = 0; i < t->numel; i++) {
        double v = tg_tensor_get(t, i);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    ck_assert(lo >= -0.08 && hi < 0.08 && hi - lo > 0.15);
    tg_tensor_fill_normal(t, &r, 3.0, 0.5);
    double s = 0;
    for (int64_t i = 0; i < t->numel; i++)
        s += tg_tensor_get(t, i);
    ck_close(s / (double)t->numel, 3.0, 0.05);
    tg_tensor_fill(t, 2.5);
    ck_close(tg_tensor_get(t, 1999), 2.5, 0);
    tg_tensor_free(t);
}
END_TEST

START_TEST(test_params_collection)
{
    tg_params *ps = tg_params_new(TG_F64);
    tg_tensor *w = tg_params_add(ps, "layer.w", 2, (int64_t[]){ 3, 4 });
    tg_tensor *b = tg_params_add(ps, "layer.b", 1, (int64_t[]){ 4 });
    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_nonnull(w->grad);
    ck_assert_ptr_null(tg_params_add(ps, "layer.w", 1, (int64_t[]){ 1 }));  /* duplicate */
    ck_assert_ptr_null(tg_params_add(ps, NULL, 1, (int64_t[]){ 1 }));
    ck_assert_ptr_null(tg_params_add(ps, "bad", 1, (int64_t[]){ 0 }));
    char longname[100];
    memset(longname, 'x', 99);
    longname[99] = 0;
    ck_assert_ptr_null(tg_params_add(ps, longname, 1, (int64_t[]){ 1 }));
    ck_assert_int_eq(tg_params_count(ps), 2);
    ck_assert_int_eq(tg_params_numel(ps), 16);
    ck_assert_ptr_eq(tg_params_at(ps, 1), b);
    ck_assert_ptr_null(tg_params_at(ps, 2));
    ck_assert_str_eq(tg_params_name(ps, 0), "layer.w");
    ck_assert_ptr_eq(tg_params_find(ps, "layer.b"), b);
    ck_assert_ptr_null(tg_params_find(ps, "nope"));
    ((double *)b->grad)[2] = 5;
    tg_params_zero_grad(ps);
    ck_close(tg_tensor_grad_get(b, 2), 0, 0);
    ck_assert_int_eq(tg_params_dtype(ps), TG_F64);
    tg_params_free(ps);
    tg_params_free(NULL);
    ck_assert_ptr_null(tg_params_new((tg_dtype)9));
}
END_TEST

Suite *tensor_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("core", 0),
        TG_TEST(test_new_zeroed_and_shape),
        TG_TEST(test_new_data_on_cache_lines),
        TG_TEST(test_new_rejects_bad_input),
        TG_TEST(test_new_overflow_is_an_error),
        TG_TEST(test_last_error_per_thread_message),
        TG_TEST(test_requires_grad_and_access),
        TG_TEST(test_copy_clone_and_mismatch),
        TG_TEST(test_print_is_shape_aware),
        TG_TEST(test_status_strings),
        TG_TEST(test_rng_deterministic_and_distributed),
        TG_TEST(test_fill_helpers),
        TG_TEST(test_params_collection),
    };
    return TG_TEST_SUITE("tensor", rows);
}
