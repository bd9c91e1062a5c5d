/* tests/test_ops_norm.c: reductions over one dim, layer_norm and mse_loss: known values,
   extreme inputs, negative dims, every error path, thread-count determinism. */
#include <stdlib.h>
#include <string.h>

#include "tests/ops_harness.h"
#include "tests/tests.h"

static void expect_grad(const tg_tensor *t, const double *want, double tol)
{
    for (int64_t i = 0; i < t->numel; i++) {
        double g = t->dtype == TG_F64 ? ((double *)t->grad)[i] : ((float *)t->grad)[i];
        ck_assert_msg(fabs(g - want[i]) <= tol, "grad %lld = %.17g, expected %.17g",
                      (long long)i, g, want[i]);
    }
}

/* ---- reductions ------------------------------------------------------------------------ */

START_TEST(test_dim_reductions_known_values)
{
    tg_tape *t = tg_tape_new();
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        double tol = d ? 1e-14 : 1e-5;
        /* [[1, 2, 3], [4, 6, 8]] */
        tg_tensor *x = mk(dt, 2, (int64_t[]){ 2, 3 }, (double[]){ 1, 2, 3, 4, 6, 8 });
        tg_tensor *y = tg_mean_dim(t, x, -1);
        ck_assert_int_eq(y->ndim, 2);
        ck_assert_int_eq(y->shape[1], 1);
        expect_values_n(y, (double[]){ 2, 6 }, 2, tol);
        expect_values_n(tg_mean_dim(t, x, 0), (double[]){ 2.5, 4, 5.5 }, 3, tol);
        expect_values_n(tg_var_dim(t, x, 1, 0), (double[]){ 2.0 / 3, 8.0 / 3 }, 2, tol);
        expect_values_n(tg_var_dim(t, x, -1, 1), (double[]){ 1, 4 }, 2, tol);
        expect_values_n(tg_var_dim(t, x, 0, 1), (double[]){ 4.5, 8, 12.5 }, 3, tol);
        expect_values_n(tg_max_dim(t, x, 1), (double[]){ 3, 8 }, 2, tol);
        expect_values_n(tg_max_dim(t, x, -2), (double[]){ 4, 6, 8 }, 3, tol);
        expect_values_n(tg_logsumexp_dim(t, x, 1),
                      (double[]){ 3.4076059644443806, 8.1429316284999 }, 2, tol * 8);
        ck_assert_int_eq(tg_tape_status(t), TG_OK);
        tg_tensor_free(x);
        tg_tape_reset(t);
    }
    tg_tape_free(t);
}
END_TEST

START_TEST(test_dim_reductions_extremes_finite)
{
    tg_tape *t = tg_tape_new();
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        /* a constant row's variance is exactly 0, in either dtype */
        tg_tensor *c = mk(dt, 2, (int64_t[]){ 2, 5 },
                          (double[]){ 0.1, 0.1, 0.1, 0.1, 0.1, -3e7, -3e7, -3e7, -3e7, -3e7 });
        ck_assert_int_eq(tg_tensor_requires_grad(c), TG_OK);
        tg_tensor *v = tg_var_dim(t, c, -1, 1);
        expect_values_n(v, (double[]){ 0, 0 }, 2, 0);
        ck_assert_int_eq(tg_backward(t, tg_sum(t, v)), TG_OK);
        expect_grad(c, (double[10]){ 0 }, 0);
        tg_tape_reset(t);
        /* logsumexp at +-1000: finite values, gradients = softmax */
        tg_tensor *x = mk(dt, 2, (int64_t[]){ 2, 2 }, (double[]){ 1000, 1000, -1000, -1001 });
        ck_assert_int_eq(tg_tensor_requires_grad(x), TG_OK);
        tg_tensor *l = tg_logsumexp_dim(t, x, 1);
        expect_values_n(l, (double[]){ 1000 + log(2.0), -1000 + log1p(exp(-1.0)) }, 2,
                      d ? 1e-12 : 1e-3);
        ck_assert_int_eq(tg_backward(t, tg_sum(t, l)), TG_OK);
        double s = 1 / (1 + exp(-1.0));
        expect_grad(x, (double[]){ 0.5, 0.5, s, 1 - s }, d ? 1e-12 : 1e-6);
        tg_tape_reset(t);
        tg_tensor_free(c);
        tg_tensor_free(x);
    }
    /* rows of -inf and +inf, as torch: -inf and +inf, NaN gradients where torch has them */
    tg_tensor *x = mk(TG_F64, 2, (int64_t[]){ 2, 3 },
                      (double[]){ -INFINITY, -INFINITY, -INFINITY, INFINITY, 0, 1 });
    ck_assert_int_eq(tg_tensor_requires_grad(x), TG_OK);
    tg_tensor *l = tg_logsumexp_dim(t, x, -1);
    ck_assert(isinf(tg_tensor_get(l, 0)) && tg_tensor_get(l, 0) < 0);
    ck_assert(isinf(tg_tensor_get(l, 1)) && tg_tensor_get(l, 1) > 0);
    ck_assert_int_eq(tg_backward(t, tg_sum(t, l)), TG_OK);
    const double *g = x->grad;
    ck_assert(isnan(g[0]) && isnan(g[1]) && isnan(g[2]) && isnan(g[3]));
    ck_assert(g[4] == 0 && g[5] == 0);
    tg_tensor_free(x);
    /* fewer elements than the correction: a division by 0, as torch (NaN here) */
    tg_tape_reset(t);
    tg_tensor *one = mk(TG_F64, 2, (int64_t[]){ 1, 1 }, (double[]){ 2 });
    ck_assert(isnan(tg_tensor_get(tg_var_dim(t, one, 1, 1), 0)));
    tg_tensor_free(one);
    tg_tape_free(t);
}
END_TEST

START_TEST(test_max_dim_first_maximum_and_nan)
{
    tg_tape *t = tg_tape_new();
    tg_tensor *x = mk(TG_F64, 2, (int64_t[]){ 2, 4 }, (double[]){ 1, 3, 3, 2, 5, NAN, 7, NAN });
    ck_assert_int_eq(tg_tensor_requires_grad(x), TG_OK);
    tg_tensor *m = tg_max_dim(t, x, 1);
    ck_assert(tg_tensor_get(m, 0) == 3 && isnan(tg_tensor_get(m, 1)));
    ck_assert_int_eq(tg_backward(t, tg_sum(t, m)), TG_OK);
    expect_grad(x, (double[]){ 0, 1, 0, 0, 0, 1, 0, 0 }, 0);
    tg_tensor_free(x);
    tg_tape_free(t);
}
END_TEST

/* ---- layer_norm --------------------------------------------------------------------------- */

START_TEST(test_layer_norm_known_values)
{
    tg_tape *t = tg_tape_new();
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        double tol = d ? 1e-12 : 1e-5;
        /* rows [1, 2, 3] and [2, 4, 6]: xhat = (-k, 0, k) for k = sqrt(3/2) (eps 0) */
        tg_tensor *x = mk(dt, 2, (int64_t[]){ 2, 3 }, (double[]){ 1, 2, 3, 2, 4, 6 });
        tg_tensor *gamma = mk(dt, 1, (int64_t[]){ 3 }, (double[]){ 2, 1, -1 });
        tg_tensor *beta = mk(dt, 1, (int64_t[]){ 3 }, (double[]){ 0.5, 0, 1 });
        double k = sqrt(1.5);
        expect_values_n(tg_layer_norm(t, x, NULL, NULL, 0), (double[]){ -k, 0, k, -k, 0, k }, 6,
                      tol);
        expect_values_n(tg_layer_norm(t, x, gamma, beta, 0),
                      (double[]){ 0.5 - 2 * k, 0, 1 - k, 0.5 - 2 * k, 0, 1 - k }, 6, tol);
        ck_assert_int_eq(tg_tape_status(t), TG_OK);
        tg_tensor_free(x);
        tg_tensor_free(gamma);
        tg_tensor_free(beta);
        tg_tape_reset(t);
    }
    tg_tape_free(t);
}
END_TEST

START_TEST(test_layer_norm_constant_row_finite)
{
    tg_tape *t = tg_tape_new();
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        int64_t D = 37;
        tg_tensor *x = mk(dt, 2, (int64_t[]){ 3, D }, NULL);
        tg_tensor *gamma = mk(dt, 1, &D, NULL), *beta = mk(dt, 1, &D, NULL);
        for (int64_t j = 0; j < D; j++) {
            tg_tensor_set(x, j, 0.1);               /* constant */
            tg_tensor_set(x, D + j, 1e6);           /* constant and large */
            tg_tensor_set(x, 2 * D + j, j % 2 ? 1e-4 : -1e-4);
            tg_tensor_set(gamma, j, 1 + 0.01 * (double)j);
            tg_tensor_set(beta, j, 0.5);
        }
        tg_tensor *ts[] = { x, gamma, beta };
        for (int i = 0; i < 3; i++)
            ck_assert_int_eq(tg_tensor_requires_grad(ts[i]), TG_OK);
        tg_tensor *y = tg_layer_norm(t, x, gamma, beta, 1e-5);
        tg_tensor *w = tg_tape_tensor(t, dt, 2, (int64_t[]){ 3, D });
        for (int64_t i = 0; i < w->numel; i++)
            tg_tensor_set(w, i, sin((double)i));
        ck_assert_int_eq(tg_backward(t, tg_sum(t, tg_mul(t, y, w))), TG_OK);
        for (int64_t j = 0; j < D; j++) {   /* constant rows give exactly beta */
            ck_assert(tg_tensor_get(y, j) == 0.5);
            ck_assert(tg_tensor_get(y, D + j) == 0.5);
        }
        for (int i = 0; i < 3; i++)
            for (int64_t k = 0; k < ts[i]->numel; k++) {
                double g = dt == TG_F64 ? ((double *)ts[i]->grad)[k] : ((float *)ts[i]->grad)[k];
                ck_assert_msg(isfinite(g), "input %d grad %lld = %g", i, (long long)k, g);
            }
        for (int i = 0; i < 3; i++)
            tg_tensor_free(ts[i]);
        tg_tape_reset(t);
    }
    tg_tape_free(t);
}
END_TEST

/* One layer norm forward and backward at the given thread count. */
static void run_layer_norm(int threads, tg_tensor *x, tg_tensor *gamma, tg_tensor *beta,
                           float *y, float *dx, float *dg, float *db)
{
    set_threads(threads);
    tg_tape *t = tg_tape_new();
    tg_tensor_zero_grad(x);
    tg_tensor_zero_grad(gamma);
    tg_tensor_zero_grad(beta);
    tg_tensor *out = tg_layer_norm(t, x, gamma, beta, 1e-5);
    ck_assert_int_eq(tg_backward(t, tg_sum(t, tg_mul(t, out, tg_tanh(t, out)))), TG_OK);
    memcpy(y, out->data, (size_t)out->numel * sizeof *y);
    memcpy(dx, x->grad, (size_t)x->numel * sizeof *dx);
    memcpy(dg, gamma->grad, (size_t)gamma->numel * sizeof *dg);
    memcpy(db, beta->grad, (size_t)beta->numel * sizeof *db);
    tg_tape_free(t);
}

START_TEST(test_layer_norm_thread_count_determinism)
{
    enum { R = 203, D = 515 };
    tg_rng r;
    tg_rng_seed(&r, 11);
    tg_tensor *x = mk(TG_F32, 2, (int64_t[]){ R, D }, NULL);
    tg_tensor *gamma = mk(TG_F32, 1, (int64_t[]){ D }, NULL);
    tg_tensor *beta = mk(TG_F32, 1, (int64_t[]){ D }, NULL);
    tg_tensor_fill_uniform(x, &r, -3, 3);
    tg_tensor_fill_uniform(gamma, &r, 0.5, 1.5);
    tg_tensor_fill_uniform(beta, &r, -1, 1);
    tg_tensor_requires_grad(x);
    tg_tensor_requires_grad(gamma);
    tg_tensor_requires_grad(beta);
    float *buf[2][4];
    for (int k = 0; k < 2; k++) {
        buf[k][0] = malloc(R * D * sizeof(float));
        buf[k][1] = malloc(R * D * sizeof(float));
        buf[k][2] = malloc(D * sizeof(float));
        buf[k][3] = malloc(D * sizeof(float));
        run_layer_norm(k + 1, x, gamma, beta, buf[k][0], buf[k][1], buf[k][2], buf[k][3]);
    }
    ck_assert_int_eq(memcmp(buf[0][0], buf[1][0], R * D * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(buf[0][1], buf[1][1], R * D * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(buf[0][2], buf[1][2], D * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(buf[0][3], buf[1][3], D * sizeof(float)), 0);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 4; i++)
            free(buf[k][i]);
    tg_tensor_free(x);
    tg_tensor_free(gamma);
    tg_tensor_free(beta);
}
END_TEST

/* x's gradient may be overwritten (fresh) or added to (x also used elsewhere): both the
   same as torch's sum. Here y = layer_norm(x) + x, so dx = dLN + 1. */
START_TEST(test_layer_norm_gradient_accumulates_with_other_uses)
{
    tg_tape *t = tg_tape_new();
    int64_t shp[2] = { 2, 4 };
    tg_tensor *p = mk(TG_F64, 2, shp, (double[]){ 1, -2, 0.5, 3, 0, 1, 4, -1 });
    ck_assert_int_eq(tg_tensor_requires_grad(p), TG_OK);
    tg_tensor *x = tg_scale(t, p, 1.0);                /* a tape tensor */
    tg_tensor *ln = tg_layer_norm(t, x, NULL, NULL, 1e-5);
    tg_tensor *w = tg_tape_tensor(t, TG_F64, 2, shp);
    for (int i = 0; i < 8; i++)
        ((double *)w->data)[i] = 0.1 * i - 0.3;
    ck_assert_int_eq(tg_backward(t, tg_sum(t, tg_mul(t, tg_add(t, ln, x), w))), TG_OK);
    double with_x[8];
    memcpy(with_x, p->grad, sizeof with_x);
    tg_tensor_zero_grad(p);
    tg_tape_reset(t);
    x = tg_scale(t, p, 1.0);
    ln = tg_layer_norm(t, x, NULL, NULL, 1e-5);
    w = tg_tape_tensor(t, TG_F64, 2, shp);
    for (int i = 0; i < 8; i++)
        ((double *)w->data)[i] = 0.1 * i - 0.3;
    ck_assert_int_eq(tg_backward(t, tg_sum(t, tg_mul(t, ln, w))), TG_OK);
    for (int i = 0; i < 8; i++)
        ck_close(with_x[i], ((double *)p->grad)[i] + (0.1 * i - 0.3), 1e-14);
    tg_tensor_free(p);
    tg_tape_free(t);
}
END_TEST

/* ---- mse_loss ----------------------------------------------------------------------------- */

START_TEST(test_mse_loss_known_values)
{
    tg_tape *t = tg_tape_new();
    tg_tensor *a = mk(TG_F64, 2, (int64_t[]){ 2, 2 }, (double[]){ 1, 2, 3, 4 });
    tg_tensor *b = mk(TG_F64, 2, (int64_t[]){ 2, 2 }, (double[]){ 0, 2, 5, 4 });
    tg_tensor_requires_grad(a);
    tg_tensor_requires_grad(b);
    tg_tensor *l = tg_mse_loss(t, a, b);
    expect_values_n(l, (double[]){ 1.25 }, 1, 1e-15);
    ck_assert_int_eq(tg_backward(t, l), TG_OK);
    expect_grad(a, (double[]){ 0.5, 0, -1, 0 }, 1e-15);
    expect_grad(b, (double[]){ -0.5, 0, 1, 0 }, 1e-15);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tape_free(t);
}
END_TEST

/* ---- negative dims and errors --------------------------------------------------------------- */

START_TEST(test_negative_dims_in_old_ops)
{
    tg_tape *t = tg_tape_new();
    tg_tensor *x = mk(TG_F64, 2, (int64_t[]){ 2, 3 }, (double[]){ 1, 2, 3, 4, 5, 6 });
    expect_values_n(tg_sum_dim(t, x, -1), (double[]){ 6, 15 }, 2, 0);
    expect_values_n(tg_sum_dim(t, x, -2), (double[]){ 5, 7, 9 }, 3, 0);
    expect_values_n(tg_slice(t, x, -1, 1, 2), (double[]){ 2, 3, 5, 6 }, 4, 0);
    tg_tensor *c = tg_concat(t, x, x, -1);
    ck_assert_int_eq(c->shape[1], 6);
    expect_values_n(c, (double[]){ 1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6 }, 12, 0);
    tg_tensor *xs[] = { x, x, x };
    ck_assert_int_eq(tg_concat_n(t, xs, 3, -2)->shape[0], 6);
    ck_assert_int_eq(tg_tape_status(t), TG_OK);
    tg_tensor_free(x);
    tg_tape_free(t);
}
END_TEST

START_TEST(test_norm_ops_error_paths)
{
    tg_tape *t = tg_tape_new();
    tg_tensor *m23 = mk(TG_F32, 2, (int64_t[]){ 2, 3 }, NULL);
    tg_tensor *m32 = mk(TG_F32, 2, (int64_t[]){ 3, 2 }, NULL);
    tg_tensor *d23 = mk(TG_F64, 2, (int64_t[]){ 2, 3 }, NULL);
    tg_tensor *v3 = mk(TG_F32, 1, (int64_t[]){ 3 }, NULL);
    tg_tensor *v2 = mk(TG_F32, 1, (int64_t[]){ 2 }, NULL);
    EXPECT_FAIL(t, tg_sum_dim(t, m23, -3), TG_ERR_ARG, "sum_dim: dim -3 out of range [-2, 2)");
    EXPECT_FAIL(t, tg_sum_dim(t, m23, 2), TG_ERR_ARG, "sum_dim: dim 2 out of range [-2, 2)");
    EXPECT_FAIL(t, tg_mean_dim(t, m23, -3), TG_ERR_ARG, "mean_dim: dim -3 out of range");
    EXPECT_FAIL(t, tg_var_dim(t, m23, 5, 0), TG_ERR_ARG, "var_dim: dim 5 out of range");
    EXPECT_FAIL(t, tg_var_dim(t, m23, 0, -1), TG_ERR_ARG, "var_dim: correction -1");
    EXPECT_FAIL(t, tg_max_dim(t, m23, -3), TG_ERR_ARG, "max_dim: dim -3");
    EXPECT_FAIL(t, tg_logsumexp_dim(t, m23, 2), TG_ERR_ARG, "logsumexp_dim: dim 2");
    EXPECT_FAIL(t, tg_concat(t, m23, m23, -3), TG_ERR_ARG, "concat: dim -3 out of range");
    EXPECT_FAIL(t, tg_slice(t, m23, -3, 0, 1), TG_ERR_ARG, "slice: dim -3 out of range");
    EXPECT_FAIL(t, tg_mean_dim(t, NULL, 0), TG_ERR_NULL, "mean_dim:");
    EXPECT_FAIL(t, tg_var_dim(t, NULL, 0, 0), TG_ERR_NULL, "var_dim:");
    EXPECT_FAIL(t, tg_max_dim(t, NULL, 0), TG_ERR_NULL, "max_dim:");
    EXPECT_FAIL(t, tg_logsumexp_dim(t, NULL, 0), TG_ERR_NULL, "logsumexp_dim:");
    EXPECT_FAIL(t, tg_layer_norm(t, NULL, v3, v3, 1e-5), TG_ERR_NULL, "layer_norm: x is NULL");
    EXPECT_FAIL(t, tg_layer_norm(t, m23, v2, NULL, 1e-5), TG_ERR_SHAPE,
                "layer_norm: gamma (2) must be (3) for x (2,3)");
    EXPECT_FAIL(t, tg_layer_norm(t, m23, NULL, m23, 1e-5), TG_ERR_SHAPE,
                "layer_norm: beta (2,3) must be (3)");
    EXPECT_FAIL(t, tg_layer_norm(t, m23, v3, v3, -1), TG_ERR_ARG, "layer_norm: eps -1");
    EXPECT_FAIL(t, tg_layer_norm(t, m23, v3, v3, NAN), TG_ERR_ARG, "layer_norm: eps");
    EXPECT_FAIL(t, tg_layer_norm(t, m23, v3, v3, INFINITY), TG_ERR_ARG, "layer_norm: eps");
    EXPECT_FAIL(t, tg_layer_norm(t, d23, v3, NULL, 1e-5), TG_ERR_DTYPE, "layer_norm:");
    EXPECT_FAIL(t, tg_mse_loss(t, m23, m32), TG_ERR_SHAPE,
                "mse_loss: (2,3) and (3,2) must have one shape");
    EXPECT_FAIL(t, tg_mse_loss(t, m23, v3), TG_ERR_SHAPE, "mse_loss:");
    EXPECT_FAIL(t, tg_mse_loss(t, m23, d23), TG_ERR_DTYPE, "mse_loss:");
    EXPECT_FAIL(t, tg_mse_loss(t, m23, NULL), TG_ERR_NULL, "mse_loss:");
    /* the first error sticks: a later op on the failed tape returns NULL, keeps it */
    tg_tape_reset(t);
    ck_assert_ptr_null(tg_var_dim(t, m23, 9, 0));
    ck_assert_ptr_null(tg_layer_norm(t, m23, NULL, NULL, 1e-5));
    ck_assert_ptr_null(tg_mean_dim(t, m23, 0));
    ck_assert(strstr(tg_tape_errmsg(t), "var_dim: dim 9") == tg_tape_errmsg(t));
    ck_assert_ptr_null(tg_layer_norm(NULL, m23, NULL, NULL, 1e-5));
    tg_tensor *ts[] = { m23, m32, d23, v3, v2 };
    for (int i = 0; i < 5; i++)
        tg_tensor_free(ts[i]);
    tg_tape_free(t);
}
END_TEST

/* Out of memory while recording or in backward: a clean TG_ERR_NOMEM, never a crash. The
   tape grows in chunks of at least 1 MiB: x's 512 KiB output fills most of the first, its
   gradient needs a second, so the caps below fail forward, then backward, then fit. */
START_TEST(test_norm_ops_out_of_memory)
{
    tg_tensor *x = mk(TG_F64, 2, (int64_t[]){ 256, 256 }, NULL);
    tg_tensor *g = mk(TG_F64, 1, (int64_t[]){ 256 }, NULL);
    tg_tensor_requires_grad(x);
    tg_tensor_requires_grad(g);
    int failed_forward = 0, failed_backward = 0, passed = 0;
    for (size_t limit = 1 << 19; limit <= (3 << 20); limit += 1 << 19) {
        tg_tape *t = tg_tape_new();
        tg_tape_set_memory_limit(t, limit);
        tg_tensor *loss = tg_sum(t, tg_var_dim(t, tg_layer_norm(t, x, g, g, 1e-5), -1, 0));
        tg_status st = tg_backward(t, loss);
        ck_assert_msg(st == TG_OK || st == TG_ERR_NOMEM, "%s", tg_tape_errmsg(t));
        failed_forward += !loss;
        failed_backward += loss && st == TG_ERR_NOMEM;
        passed += st == TG_OK;
        tg_tape_free(t);
    }
    ck_assert(failed_forward > 0 && failed_backward > 0 && passed > 0);
    tg_tensor_free(x);
    tg_tensor_free(g);
}
END_TEST

Suite *ops_norm_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("reductions", 0),
        TG_TEST(test_dim_reductions_known_values),
        TG_TEST(test_dim_reductions_extremes_finite),
        TG_TEST(test_max_dim_first_maximum_and_nan),
        TG_TEST(test_mse_loss_known_values),
        TG_TEST(test_negative_dims_in_old_ops),
        TG_TEST(test_norm_ops_error_paths),
        TG_TEST(test_norm_ops_out_of_memory),
        TG_CASE("layer_norm", 0),
        TG_TEST(test_layer_norm_known_values),
        TG_TEST(test_layer_norm_constant_row_finite),
        TG_TEST(test_layer_norm_thread_count_determinism),
        TG_TEST(test_layer_norm_gradient_accumulates_with_other_uses),
    };
    return TG_TEST_SUITE("ops_norm", rows);
}
