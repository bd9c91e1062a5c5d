/* tests/test_ops_matmul.c: matmul, affine, transpose and the fused gate op: known values, agreement with
   the composition, float32/float64 agreement, gradient checks. */
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#include "autograd/autograd_internal.h"
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
    };
    return TG_TEST_SUITE("ops_matmul", rows);
}
