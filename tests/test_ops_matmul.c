/* tests/test_ops_matmul.c: matmul, affine, transpose and the fused gate op: known values, agreement with
   the composition, float32/float64 agreement, gradient checks. */
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#include "autograd/autograd_internal.h"
#include "tensor/gemm.h"
#include "tests/ops_harness.h"
#include "tests/tests.h"

static tg_tensor *build_matmul(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_matmul(t, in[0], in[1]); }
static tg_tensor *build_affine(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_affine(t, in[0], in[1], in[2]); }
static tg_tensor *build_affine_nobias(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_affine(t, in[0], in[1], NULL); }
static tg_tensor *build_transpose(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_transpose(t, in[0]); }
static tg_tensor *build_gate_sigmoid(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_affine_act_op(t, in[0], in[1], in[2], false); }
static tg_tensor *build_gate_tanh_nobias(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_affine_act_op(t, in[0], in[1], NULL, true); }

START_TEST(test_matmul_forward_known)
{
    tg_tape *tape = tg_tape_new();
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        tg_tensor *a = mk(dt, 2, (int64_t[]){ 2, 3 }, (double[]){ 1, 2, 3, 4, 5, 6 });
        tg_tensor *b = mk(dt, 2, (int64_t[]){ 3, 2 }, (double[]){ 7, 8, 9, 10, 11, 12 });
        tg_tensor *bias = mk(dt, 1, (int64_t[]){ 2 }, (double[]){ 0.5, -1 });
        expect_values(tg_matmul(tape, a, b), (double[]){ 58, 64, 139, 154 }, 0);
        expect_values(tg_affine(tape, a, b, bias), (double[]){ 58.5, 63, 139.5, 153 }, 0);
        expect_values(tg_transpose(tape, a), (double[]){ 1, 4, 2, 5, 3, 6 }, 0);
        ck_assert_int_eq(tg_tape_status(tape), TG_OK);
        tg_tensor_free(a); tg_tensor_free(b); tg_tensor_free(bias);
    }
    tg_tape_free(tape);
}
END_TEST

/* The fused gate (what tg_gate records for sigmoid and tanh) equals the composition
   act(affine) bit for bit, forward and backward, in both dtypes and with known values. */
START_TEST(test_gate_op_matches_composition)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = mk(TG_F64, 2, (int64_t[]){ 1, 2 }, (double[]){ 1, -2 });
    tg_tensor *w = mk(TG_F64, 2, (int64_t[]){ 2, 1 }, (double[]){ 0.5, 0.25 });
    tg_tensor *b = mk(TG_F64, 1, (int64_t[]){ 1 }, (double[]){ 0.75 });
    expect_values(tg_affine_act_op(tape, a, w, b, false), (double[]){ 1 / (1 + exp(-0.75)) },
                  1e-15);
    expect_values(tg_affine_act_op(tape, a, w, NULL, true), (double[]){ 0.0 }, 0);
    tg_tensor_free(a), tg_tensor_free(w), tg_tensor_free(b);
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        for (int act = 0; act < 2; act++) {
            int64_t M = 13, K = 37, N = 21;
            tg_tensor *x[2], *wt[2], *bt[2], *y[2];
            for (int v = 0; v < 2; v++) {
                tg_tensor *x64 = rnd(2, (int64_t[]){ M, K }, -1, 1, 11);
                tg_tensor *w64 = rnd(2, (int64_t[]){ K, N }, -1, 1, 12);
                tg_tensor *b64 = rnd(1, (int64_t[]){ N }, -1, 1, 13);
                x[v] = tg_tensor_new(dt, 2, x64->shape);
                wt[v] = tg_tensor_new(dt, 2, w64->shape);
                bt[v] = tg_tensor_new(dt, 1, b64->shape);
                for (int64_t i = 0; i < x64->numel; i++)
                    tg_tensor_set(x[v], i, tg_tensor_get(x64, i));
                for (int64_t i = 0; i < w64->numel; i++)
                    tg_tensor_set(wt[v], i, tg_tensor_get(w64, i));
                for (int64_t i = 0; i < b64->numel; i++)
                    tg_tensor_set(bt[v], i, tg_tensor_get(b64, i));
                tg_tensor_free(x64), tg_tensor_free(w64), tg_tensor_free(b64);
                tg_tensor_requires_grad(x[v]);
                tg_tensor_requires_grad(wt[v]);
                tg_tensor_requires_grad(bt[v]);
                tg_tape_reset(tape);
                y[v] = v == 0 ? tg_affine_act_op(tape, x[v], wt[v], bt[v], act)
                              : (act ? tg_tanh : tg_sigmoid)(tape,
                                                             tg_affine(tape, x[v], wt[v], bt[v]));
                tg_tensor *loss = tg_sum(tape, tg_mul(tape, y[v], y[v]));
                ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
                size_t es = d ? 8 : 4;
                if (v == 1) {
                    ck_assert_msg(memcmp(x[0]->grad, x[1]->grad, (size_t)(M * K) * es) == 0 &&
                                  memcmp(wt[0]->grad, wt[1]->grad, (size_t)(K * N) * es) == 0 &&
                                  memcmp(bt[0]->grad, bt[1]->grad, (size_t)N * es) == 0,
                                  "gate gradients differ from act(affine) (dtype %d act %d)", d,
                                  act);
                }
            }
            /* forward values: recompute both on one tape and compare */
            tg_tape_reset(tape);
            tg_tensor *g0 = tg_affine_act_op(tape, x[0], wt[0], bt[0], act);
            tg_tensor *g1 = (act ? tg_tanh : tg_sigmoid)(tape,
                                                         tg_affine(tape, x[1], wt[1], bt[1]));
            ck_assert(memcmp(g0->data, g1->data, (size_t)(M * N) * (d ? 8 : 4)) == 0);
            for (int v = 0; v < 2; v++)
                tg_tensor_free(x[v]), tg_tensor_free(wt[v]), tg_tensor_free(bt[v]);
        }
    }
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_matmul_affine_transpose_gradcheck)
{
    tg_tensor *in[3] = { rnd(2, (int64_t[]){ 4, 5 }, -1, 1, 1),
                         rnd(2, (int64_t[]){ 5, 3 }, -1, 1, 2),
                         rnd(1, (int64_t[]){ 3 }, -1, 1, 3) };
    double e1 = gradcheck_case(build_matmul, in, 2, 0);
    double e2 = gradcheck_case(build_affine, in, 3, 0);
    double e3 = gradcheck_case(build_affine_nobias, in, 2, 0);
    double e4 = gradcheck_case(build_transpose, in, 1, 0);
    double e5 = gradcheck_case(build_gate_sigmoid, in, 3, 0);
    double e6 = gradcheck_case(build_gate_tanh_nobias, in, 2, 0);
    printf("gradcheck matmul max_rel_err=%.3g affine=%.3g/%.3g transpose=%.3g "
           "gate=%.3g/%.3g\n", e1, e2, e3, e4, e5, e6);
    free_all(in, 3);
}
END_TEST

/* f32 and f64 agree on odd shapes (f32 error grows ~ sqrt(K) * 6e-8 relative). */
START_TEST(test_matmul_f32_f64_agree_odd_shapes)
{
    static const int64_t shapes[][3] = { { 1, 1, 1 }, { 7, 13, 9 }, { 513, 257, 1031 } };
    tg_tape *tape = tg_tape_new();
    for (size_t s = 0; s < 3; s++) {
        int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        tg_rng r;
        tg_rng_seed(&r, 5 + s);
        tg_tensor *a64 = mk(TG_F64, 2, (int64_t[]){ M, K }, NULL);
        tg_tensor *b64 = mk(TG_F64, 2, (int64_t[]){ K, N }, NULL);
        tg_tensor_fill_uniform(a64, &r, -1, 1);
        tg_tensor_fill_uniform(b64, &r, -1, 1);
        tg_tensor *a32 = mk(TG_F32, 2, a64->shape, NULL);
        tg_tensor *b32 = mk(TG_F32, 2, b64->shape, NULL);
        /* the same f32-representable values in both */
        for (int64_t i = 0; i < a64->numel; i++) {
            tg_tensor_set(a32, i, tg_tensor_get(a64, i));
            tg_tensor_set(a64, i, tg_tensor_get(a32, i));
        }
        for (int64_t i = 0; i < b64->numel; i++) {
            tg_tensor_set(b32, i, tg_tensor_get(b64, i));
            tg_tensor_set(b64, i, tg_tensor_get(b32, i));
        }
        tg_tensor *c64 = tg_matmul(tape, a64, b64), *c32 = tg_matmul(tape, a32, b32);
        ck_assert_ptr_nonnull(c64);
        ck_assert_ptr_nonnull(c32);
        double worst = 0;
        for (int64_t i = 0; i < c64->numel; i++) {
            double e = fabs(tg_tensor_get(c64, i) - tg_tensor_get(c32, i));
            worst = e > worst ? e : worst;
        }
        ck_assert_msg(worst <= 1e-6 * sqrt((double)K) * 4, "%lldx%lldx%lld: %g",
                      (long long)M, (long long)K, (long long)N, worst);
        /* and f64 against a naive sum for a few entries */
        for (int64_t t = 0; t < 5; t++) {
            int64_t i = (t * 7919) % M, j = (t * 104729) % N;
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += tg_tensor_get(a64, i * K + k) * tg_tensor_get(b64, k * N + j);
            ck_close(tg_tensor_get(c64, i * N + j), acc, 1e-12 * K);
        }
        tg_tensor_free(a64); tg_tensor_free(b64); tg_tensor_free(a32); tg_tensor_free(b32);
        tg_tape_reset(tape);
    }
    tg_tape_free(tape);
}
END_TEST

/* The queued weight gradient reads dY at the end of backward, after a later tensor's
   gradient (r's, the same size) may have taken dY's buffer: dW = x^T q must come out
   whether W needed a gradient when y was recorded (the buffer is kept) or only afterwards,
   y needing one for x's sake (the queue takes a copy). y keeps no gradient after backward either way. */
START_TEST(test_queued_weight_grad_survives_recycling)
{
    for (int late = 0; late < 2; late++) {
        tg_tape *t = tg_tape_new();
        tg_tensor *x = mk(TG_F64, 2, (int64_t[]){ 3, 4 }, NULL);
        tg_tensor *w = mk(TG_F64, 2, (int64_t[]){ 4, 5 }, NULL);
        tg_tensor *p = mk(TG_F64, 2, (int64_t[]){ 3, 5 }, NULL);
        for (int64_t i = 0; i < 20; i++) {
            tg_tensor_set(w, i, 0.1 * (double)i - 0.9);
            tg_tensor_set(x, i % 12, 0.3 * (double)(i % 7) - 1);
        }
        for (int64_t i = 0; i < 15; i++)
            tg_tensor_set(p, i, 0.2 * (double)i - 1.4);
        ck_assert_int_eq(tg_tensor_requires_grad(p), TG_OK);
        ck_assert_int_eq(tg_tensor_requires_grad(x), TG_OK);  /* y needs a gradient anyway */
        if (!late)
            ck_assert_int_eq(tg_tensor_requires_grad(w), TG_OK);
        tg_tensor *q = tg_sigmoid(t, tg_scale(t, p, 2.0));          /* r = 2p, q = sigmoid(r) */
        tg_tensor *y = tg_matmul(t, x, w);                                        /* (3,5) */
        if (late)
            ck_assert_int_eq(tg_tensor_requires_grad(w), TG_OK);
        ck_assert_int_eq(tg_backward(t, tg_sum(t, tg_mul(t, y, q))), TG_OK);  /* dy = q */
        ck_assert_ptr_null(y->grad);
        for (int64_t k = 0; k < 4; k++)
            for (int64_t j = 0; j < 5; j++) {
                double want = 0;
                for (int64_t i = 0; i < 3; i++)
                    want += tg_tensor_get(x, i * 4 + k) * tg_tensor_get(q, i * 5 + j);
                ck_close(tg_tensor_grad_get(w, k * 5 + j), want, 1e-14);
            }
        tg_tensor *own[] = { x, w, p };
        free_all(own, 3);
        tg_tape_free(t);
    }
}
END_TEST

/* ---- one-hot tails: products gather W's rows instead of multiplying zeros ---------- */

enum { HOT_STEPS = 3 };

/* One run of HOT_STEPS products of x_t = [h, one_hot(idx_t)] (M, H+V) with a shared W (and
   bias), loss = sum(y_t * y_t) over the steps; x_t dense (a caller-owned one-hot, so no
   tail) when dense, W a tape copy of w (its gradient added at once) when w_on_tape. Op:
   0 matmul, 1 affine, 2 affine without bias, 3 sigmoid gate, 4 tanh gate. Returns the
   last y (on tape); gradients land in h, w, b. */
static tg_tensor *hot_run(tg_tape *t, int op, bool dense, bool w_on_tape, tg_tensor *h,
                          tg_tensor *w, tg_tensor *b, const int32_t *idx, int64_t V)
{
    int64_t M = h->shape[0];
    tg_tensor *loss = NULL, *y = NULL;
    tg_tensor *wt = w_on_tape ? tg_scale(t, w, 1.0) : w;
    for (int s = 0; s < HOT_STEPS; s++) {
        tg_tensor *oh = NULL;
        if (dense) {
            oh = tg_tape_tensor(t, h->dtype, 2, (int64_t[]){ M, V });
            for (int64_t i = 0; i < M; i++)
                tg_tensor_set(oh, i * V + idx[s * M + i], 1.0);
        } else {
            oh = tg_one_hot(t, h->dtype, idx + s * M, M, V);
        }
        tg_tensor *x = tg_concat(t, h, oh, 1);
        const int32_t *hot;
        ck_assert_int_eq(tg_dense_cols(x, &hot), dense ? h->shape[1] + V : h->shape[1]);
        y = op == 0 ? tg_matmul(t, x, wt)
          : op == 1 ? tg_affine(t, x, wt, b)
          : op == 2 ? tg_affine(t, x, wt, NULL)
                    : tg_affine_act_op(t, x, wt, b, op == 4);
        tg_tensor *l = tg_sum(t, tg_mul(t, y, y));
        loss = loss ? tg_add(t, loss, l) : l;
    }
    ck_assert_int_eq(tg_backward(t, loss), TG_OK);
    return y;
}

/* A copy of src (any dtype) as dtype dt. */
static tg_tensor *as_dtype(const tg_tensor *src, tg_dtype dt)
{
    tg_tensor *c = mk(dt, src->ndim, src->shape, NULL);
    for (int64_t i = 0; i < src->numel; i++)
        tg_tensor_set(c, i, tg_tensor_get(src, i));
    return c;
}

/* max |a_i - b_i| over the gradients (grad) or values of two same-shaped tensors */
static double worst_diff(const tg_tensor *a, const tg_tensor *b, bool grad)
{
    double worst = 0;
    for (int64_t i = 0; i < a->numel; i++) {
        double d = grad ? tg_tensor_grad_get(a, i) - tg_tensor_grad_get(b, i)
                        : tg_tensor_get(a, i) - tg_tensor_get(b, i);
        worst = fabs(d) > worst ? fabs(d) : worst;
    }
    return worst;
}

/* Products of [h, one_hot] give what the same products of a dense [h, one-hot] give,
   values and the gradients of h, W (queued, or added at once for a W on the tape) and b,
   in both dtypes, for every product op; N = 70 puts W's rows in two column blocks. */
START_TEST(test_one_hot_tail_products)
{
    int64_t M = 6, H = 5, V = 7, N = 70;
    int32_t idx[HOT_STEPS * 6];
    for (int i = 0; i < HOT_STEPS * 6; i++)
        idx[i] = (int32_t)((i * 5 + 3) % V);
    idx[1] = idx[2];           /* two rows gathering the same row of W */
    tg_tensor *h64 = rnd(2, (int64_t[]){ M, H }, -1, 1, 21);
    tg_tensor *w64 = rnd(2, (int64_t[]){ H + V, N }, -1, 1, 22);
    tg_tensor *b64 = rnd(1, (int64_t[]){ N }, -1, 1, 23);
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        double tol = d ? 1e-13 : 2e-5;
        for (int op = 0; op < 5; op++) {
            for (int on_tape = 0; on_tape < 2; on_tape++) {
                tg_tensor *h[2], *w[2], *b[2], *y[2];
                tg_tape *t[2];
                for (int v = 0; v < 2; v++) {
                    h[v] = as_dtype(h64, dt), w[v] = as_dtype(w64, dt), b[v] = as_dtype(b64, dt);
                    tg_tensor_requires_grad(h[v]);
                    tg_tensor_requires_grad(w[v]);
                    tg_tensor_requires_grad(b[v]);
                    t[v] = tg_tape_new();
                    y[v] = hot_run(t[v], op, v == 1, on_tape, h[v], w[v], b[v], idx, V);
                }
                ck_assert_msg(worst_diff(y[0], y[1], false) <= tol &&
                              worst_diff(h[0], h[1], true) <= tol &&
                              worst_diff(w[0], w[1], true) <= tol &&
                              worst_diff(b[0], b[1], true) <= tol,
                              "dtype %d op %d w on tape %d: y %g dh %g dw %g db %g", d, op,
                              on_tape, worst_diff(y[0], y[1], false),
                              worst_diff(h[0], h[1], true), worst_diff(w[0], w[1], true),
                              worst_diff(b[0], b[1], true));
                for (int v = 0; v < 2; v++) {
                    tg_tensor_free(h[v]), tg_tensor_free(w[v]), tg_tensor_free(b[v]);
                    tg_tape_free(t[v]);
                }
            }
        }
    }
    tg_tensor *own[] = { h64, w64, b64 };
    free_all(own, 3);
}
END_TEST

/* The tail is where it is: a one-hot first (concat(one_hot, h)) or a reshaped one gives a
   dense product; a one-hot alone is all tail; one W used with and without a tail queues one
   dense weight gradient. */
START_TEST(test_one_hot_tail_where)
{
    tg_tape *t = tg_tape_new();
    const int32_t *hot;
    tg_tensor *h = rnd(2, (int64_t[]){ 2, 3 }, -1, 1, 31);
    tg_tensor *oh = tg_one_hot(t, TG_F64, (int32_t[]){ 2, 0 }, 2, 4);
    ck_assert_int_eq(tg_dense_cols(oh, &hot), 0);
    ck_assert_int_eq(hot[0], 2);
    ck_assert_int_eq(tg_dense_cols(tg_concat(t, h, oh, 1), &hot), 3);
    ck_assert_int_eq(tg_dense_cols(tg_concat(t, oh, h, 1), &hot), 7);
    ck_assert_ptr_null(hot);
    ck_assert_int_eq(tg_dense_cols(tg_reshape(t, oh, 2, (int64_t[]){ 4, 2 }), &hot), 2);
    ck_assert_ptr_null(hot);
    tg_tensor *x3 = tg_concat_n(t, (tg_tensor *[]){ h, h, oh }, 3, 1);
    ck_assert_int_eq(tg_dense_cols(x3, &hot), 6);
    /* all tail: y = W's rows 2 and 0 plus b */
    tg_tensor *w = mk(TG_F64, 2, (int64_t[]){ 4, 2 }, (double[]){ 1, 2, 3, 4, 5, 6, 7, 8 });
    tg_tensor *b = mk(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 0.5, -1 });
    tg_tensor_requires_grad(w);
    expect_values(tg_affine(t, oh, w, b), (double[]){ 5.5, 5, 1.5, 1 }, 0);
    /* W used with a tail and without: dW = oh^T 1 + x^T 1 */
    tg_tape_reset(t);
    oh = tg_one_hot(t, TG_F64, (int32_t[]){ 2, 2 }, 2, 4);
    tg_tensor *x = mk(TG_F64, 2, (int64_t[]){ 2, 4 }, (double[]){ 1, 0, 0, 1, 0, 0, 1, 0 });
    tg_tensor *loss = tg_add(t, tg_sum(t, tg_matmul(t, oh, w)), tg_sum(t, tg_matmul(t, x, w)));
    ck_assert_int_eq(tg_backward(t, loss), TG_OK);
    const double want[8] = { 1, 1, 0, 0, 3, 3, 1, 1 };
    for (int i = 0; i < 8; i++)
        ck_assert_double_eq(tg_tensor_grad_get(w, i), want[i]);
    tg_tensor *own[] = { h, w, b, x };
    free_all(own, 4);
    tg_tape_free(t);
}
END_TEST

/* The gathered weight gradient is the same bits on 1 and 2 threads (rows large enough
   for its column blocks to split). */
START_TEST(test_one_hot_tail_threads)
{
    int64_t M = 400, V = 9, N = 130;
    int32_t idx[400];
    for (int i = 0; i < M; i++)
        idx[i] = (int32_t)((i * 7) % V);
    tg_tensor *w64 = rnd(2, (int64_t[]){ V, N }, -1, 1, 41);
    float *grads[2];
    for (int threads = 1; threads <= 2; threads++) {
        set_threads(threads);
        tg_tape *t = tg_tape_new();
        tg_tensor *w = as_dtype(w64, TG_F32);
        tg_tensor_requires_grad(w);
        tg_tensor *y = tg_matmul(t, tg_one_hot(t, TG_F32, idx, M, V), w);
        ck_assert_int_eq(tg_backward(t, tg_sum(t, tg_mul(t, y, y))), TG_OK);
        grads[threads - 1] = malloc((size_t)(V * N) * sizeof(float));
        memcpy(grads[threads - 1], w->grad, (size_t)(V * N) * sizeof(float));
        tg_tensor_free(w);
        tg_tape_free(t);
    }
    set_threads(2);
    ck_assert(memcmp(grads[0], grads[1], (size_t)(V * N) * sizeof(float)) == 0);
    free(grads[0]), free(grads[1]);
    tg_tensor_free(w64);
}
END_TEST

static const int32_t gc_hot_idx[4] = { 3, 0, 3, 1 };
static tg_tensor *build_gate_hot(tg_tape *t, tg_tensor **in, double s)
{
    (void)s;
    tg_tensor *x = tg_concat(t, in[0], tg_one_hot(t, TG_F64, gc_hot_idx, 4, 4), 1);
    return tg_affine_act_op(t, x, in[1], in[2], false);
}

START_TEST(test_one_hot_tail_gradcheck)
{
    tg_tensor *in[3] = { rnd(2, (int64_t[]){ 4, 3 }, -1, 1, 51),
                         rnd(2, (int64_t[]){ 7, 5 }, -1, 1, 52),
                         rnd(1, (int64_t[]){ 5 }, -1, 1, 53) };
    printf("gradcheck gate over [h, one_hot] max_rel_err=%.3g\n",
           gradcheck_case(build_gate_hot, in, 3, 0));
    free_all(in, 3);
}
END_TEST

/* ---- products that share an input (autograd/ops_groups.c) --------------------------- */

enum { SHARE_STEPS = 4, SHARE_W = 4 };

/* The parameters of test_shared_products: h (M,H), weights (K,N_k) and biases. */
typedef struct share_params {
    tg_tensor *h, *w[SHARE_W], *b[SHARE_W];
} share_params;

/* SHARE_STEPS steps of a cell-like recording over x_t = [h*s_t, one_hot] (hot) or h*s_t:
   a sigmoid gate, a tanh gate, an op between, an affine, a gate without bias, all of
   x_t; the last step leaves out the tanh gate and the affine. Backward of the sum of
   squares. Copies every step's outputs to out (floats, in order) and returns how many;
   *grouped: the tape's count of products taken from a group's block. */
static int64_t share_run(const share_params *p, bool hot, bool grouping, float *out,
                         int64_t *grouped)
{
    tg_tape *t = tg_tape_new();
    tg_tape_set_grouping(t, grouping);
    int64_t M = p->h->shape[0], V = 6, n = 0;
    int32_t idx[64];
    tg_tensor *loss = NULL;
    for (int s = 0; s < SHARE_STEPS; s++) {
        for (int64_t i = 0; i < M; i++)
            idx[i] = (int32_t)((i * 3 + s) % V);
        tg_tensor *xh = tg_scale(t, p->h, 1.0 + 0.25 * s);
        tg_tensor *x = hot ? tg_concat(t, xh, tg_one_hot(t, TG_F32, idx, M, V), 1) : xh;
        bool last = s == SHARE_STEPS - 1;
        tg_tensor *y[4] = {
            tg_affine_act_op(t, x, p->w[0], p->b[0], false),
            last ? NULL : tg_affine_act_op(t, x, p->w[1], p->b[1], true),
            last ? NULL : tg_affine(t, x, p->w[2], p->b[2]),
            tg_affine_act_op(t, x, p->w[3], NULL, false),
        };
        for (int k = 0; k < 4; k++) {
            if (!y[k])
                continue;
            memcpy(out + n, y[k]->data, (size_t)y[k]->numel * sizeof(float));
            n += y[k]->numel;
            tg_tensor *l = tg_sum(t, tg_mul(t, y[k], y[k]));
            loss = loss ? tg_add(t, loss, l) : l;
        }
    }
    ck_assert_int_eq(tg_backward(t, loss), TG_OK);
    *grouped = tg_tape_grouped_products(t);
    tg_tape_free(t);
    return n;
}

/* Products grouped by their shared input give the same bits as products run alone:
   values and every gradient, with and without a one-hot tail; a group's product that
   does not come, one of another input, or one too narrow for the GEMM's column unit or
   with too few rows runs alone. */
START_TEST(test_shared_products_same_bits)
{
    int64_t unit = tg_sgemm_column_unit();
    if (unit == 0)
        return;   /* OpenBLAS: nothing is grouped */
    for (int shape = 0; shape < 3; shape++) {
        /* 0: widths of 2 and 3 units; 1: two rows; 2: a width off the unit */
        int64_t M = shape == 1 ? 2 : 7, H = 5, extra = shape == 2 ? 1 : 0;
        for (int hot = 0; hot < 2; hot++) {
            int64_t K = H + (hot ? 6 : 0);
            share_params p;
            p.h = mk(TG_F32, 2, (int64_t[]){ M, H }, NULL);
            tg_rng r;
            tg_rng_seed(&r, 61);
            tg_tensor_fill_uniform(p.h, &r, -1, 1);
            tg_tensor_requires_grad(p.h);
            for (int k = 0; k < SHARE_W; k++) {
                int64_t N = (k == 2 ? 3 : 2) * unit + (k == 1 ? extra : 0);
                p.w[k] = mk(TG_F32, 2, (int64_t[]){ K, N }, NULL);
                p.b[k] = mk(TG_F32, 1, (int64_t[]){ N }, NULL);
                tg_tensor_fill_uniform(p.w[k], &r, -1, 1);
                tg_tensor_fill_uniform(p.b[k], &r, -1, 1);
                tg_tensor_requires_grad(p.w[k]);
                tg_tensor_requires_grad(p.b[k]);
            }
            float *out[2];
            tg_tensor *grads[2][1 + 2 * SHARE_W];
            int64_t n[2], grouped[2];
            for (int on = 0; on < 2; on++) {
                out[on] = malloc((size_t)(SHARE_STEPS * 4 * M * 4 * unit) * sizeof(float));
                n[on] = share_run(&p, hot, on, out[on], &grouped[on]);
                tg_tensor *own[] = { p.h, p.w[0], p.w[1], p.w[2], p.w[3],
                                     p.b[0], p.b[1], p.b[2], p.b[3] };
                for (int i = 0; i < 1 + 2 * SHARE_W; i++) {
                    grads[on][i] = mk(TG_F32, own[i]->ndim, own[i]->shape, NULL);
                    memcpy(grads[on][i]->data, own[i]->grad, (size_t)own[i]->numel * 4);
                    tg_tensor_zero_grad(own[i]);
                }
            }
            ck_assert_int_eq(grouped[0], 0);
            /* steps 2 and 3 take 4 products each from blocks, step 4 two; a width off
               the unit runs alone and leaves the others grouped */
            ck_assert_msg(grouped[1] == (shape == 0 ? 10 : shape == 1 ? 0 : 8), "shape %d hot %d: %lld grouped",
                          shape, hot, (long long)grouped[1]);
            ck_assert_int_eq(n[0], n[1]);
            ck_assert_msg(memcmp(out[0], out[1], (size_t)n[0] * sizeof(float)) == 0,
                          "shape %d hot %d: values differ", shape, hot);
            for (int i = 0; i < 1 + 2 * SHARE_W; i++)
                ck_assert_msg(memcmp(grads[0][i]->data, grads[1][i]->data,
                                     (size_t)grads[0][i]->numel * 4) == 0,
                              "shape %d hot %d: gradient %d differs", shape, hot, i);
            for (int on = 0; on < 2; on++) {
                free(out[on]);
                free_all(grads[on], 1 + 2 * SHARE_W);
            }
            tg_tensor_free(p.h);
            free_all(p.w, SHARE_W);
            free_all(p.b, SHARE_W);
        }
    }
}
END_TEST

Suite *ops_matmul_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("forward", 0),
        TG_TEST(test_matmul_forward_known),
        TG_CASE("gradcheck", 60),
        TG_TEST(test_matmul_affine_transpose_gradcheck),
        TG_TEST(test_gate_op_matches_composition),
        TG_TEST(test_matmul_f32_f64_agree_odd_shapes),
        TG_TEST(test_queued_weight_grad_survives_recycling),
        TG_TEST(test_one_hot_tail_products),
        TG_TEST(test_one_hot_tail_where),
        TG_TEST(test_one_hot_tail_threads),
        TG_TEST(test_one_hot_tail_gradcheck),
        TG_TEST(test_shared_products_same_bits),
    };
    return TG_TEST_SUITE("ops_matmul", rows);
}
