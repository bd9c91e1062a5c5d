/* tests/test_ops_reduce.c: reductions, softmax, cross-entropy, embedding and dropout: forward values,
   extreme inputs, gradient checks. */
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#include "autograd/autograd_internal.h"
#include "tests/ops_harness.h"
#include "tests/tests.h"

static tg_tensor *build_sum(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_sum(t, tg_tanh(t, in[0])); }
static tg_tensor *build_mean(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_mean(t, tg_tanh(t, in[0])); }
static tg_tensor *build_sum_dim(tg_tape *t, tg_tensor **in, double s)
{ return tg_sum_dim(t, in[0], (int)s); }
static tg_tensor *build_softmax(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_softmax(t, in[0]); }
static tg_tensor *build_log_softmax(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_log_softmax(t, in[0]); }
static const int32_t ce_targets[4] = { 2, 0, 4, 4 };
static tg_tensor *build_ce(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_cross_entropy(t, in[0], ce_targets); }
static const int32_t emb_idx[5] = { 1, 3, 1, 0, 1 };
static tg_tensor *build_embedding(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_embedding(t, in[0], emb_idx, 5); }

START_TEST(test_reductions_forward)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = mk(TG_F64, 3, (int64_t[]){ 2, 2, 3 },
                      (double[]){ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 });
    expect_values(tg_sum(tape, x), (double[]){ 78 }, 0);
    expect_values(tg_mean(tape, x), (double[]){ 6.5 }, 0);
    expect_values(tg_sum_dim(tape, x, 0), (double[]){ 8, 10, 12, 14, 16, 18 }, 0);
    expect_values(tg_sum_dim(tape, x, 1), (double[]){ 5, 7, 9, 17, 19, 21 }, 0);
    tg_tensor *s2 = tg_sum_dim(tape, x, 2);
    ck_assert_int_eq(s2->ndim, 3);
    ck_assert_int_eq(s2->shape[2], 1);
    expect_values(s2, (double[]){ 6, 15, 24, 33 }, 0);
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_softmax_and_cross_entropy_forward)
{
    tg_tape *tape = tg_tape_new();
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        double tol = d ? 1e-15 : 1e-6;
        tg_tensor *x = mk(dt, 2, (int64_t[]){ 2, 3 }, (double[]){ 1, 2, 3, 0, 0, 0 });
        /* softmax(1,2,3) = (0.0900306, 0.2447285, 0.6652410) */
        expect_values(tg_softmax(tape, x),
                      (double[]){ 0.09003057317038046, 0.24472847105479764, 0.6652409557748219,
                                  1.0 / 3, 1.0 / 3, 1.0 / 3 }, tol);
        expect_values(tg_log_softmax(tape, x),
                      (double[]){ -2.4076059644443806, -1.4076059644443806,
                                  -0.40760596444438046, -1.0986122886681098,
                                  -1.0986122886681098, -1.0986122886681098 }, tol * 4);
        /* cross_entropy: mean of -log p[target]: (1.4076059644443806 + 1.0986122886681098)/2 */
        expect_values(tg_cross_entropy(tape, x, (int32_t[]){ 1, 2 }),
                      (double[]){ 1.2531091265562452 }, tol * 2);
        tg_tensor_free(x);
    }
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_cross_entropy_extreme_logits_finite)
{
    tg_tape *tape = tg_tape_new();
    for (int d = 0; d < 2; d++) {
        tg_tensor *x = mk(d ? TG_F64 : TG_F32, 2, (int64_t[]){ 2, 3 },
                          (double[]){ 1000, -1000, 0, -1000, 1000, 1000 });
        tg_tensor_requires_grad(x);
        tg_tensor *loss = tg_cross_entropy(tape, x, (int32_t[]){ 1, 2 });
        /* row 0: 2000; row 1: log 2 */
        expect_values(loss, (double[]){ (2000 + 0.6931471805599453) / 2 }, 1e-3);
        ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
        for (int64_t i = 0; i < 6; i++)
            ck_assert(isfinite(tg_tensor_grad_get(x, i)));
        ck_close(tg_tensor_grad_get(x, 0), 0.5, 1e-6);     /* (1 - 0)/2 */
        ck_close(tg_tensor_grad_get(x, 1), -0.5, 1e-6);    /* (0 - 1)/2 */
        tg_tensor *sm = tg_log_softmax(tape, x);
        for (int64_t i = 0; i < 6; i++)
            ck_assert(!isnan(tg_tensor_get(sm, i)));
        tg_tensor_free(x);
        tg_tape_reset(tape);
    }
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_reduce_softmax_ce_embedding_gradcheck)
{
    tg_tensor *x = rnd(3, (int64_t[]){ 2, 3, 4 }, -2, 2, 1);
    tg_tensor *l = rnd(2, (int64_t[]){ 4, 5 }, -3, 3, 2);
    double e[8];
    e[0] = gradcheck_case(build_sum, &x, 1, 0);
    e[1] = gradcheck_case(build_mean, &x, 1, 0);
    e[2] = fmax(fmax(gradcheck_case(build_sum_dim, &x, 1, 0),
                     gradcheck_case(build_sum_dim, &x, 1, 1)),
                gradcheck_case(build_sum_dim, &x, 1, 2));
    e[3] = gradcheck_case(build_softmax, &l, 1, 0);
    e[4] = gradcheck_case(build_log_softmax, &l, 1, 0);
    e[5] = gradcheck_case(build_ce, &l, 1, 0);
    e[6] = gradcheck_case(build_embedding, &l, 1, 0);
    printf("gradcheck sum=%.3g mean=%.3g sum_dim=%.3g softmax=%.3g log_softmax=%.3g "
           "cross_entropy=%.3g embedding=%.3g\n", e[0], e[1], e[2], e[3], e[4], e[5], e[6]);
    tg_tensor_free(x);
    tg_tensor_free(l);
}
END_TEST

START_TEST(test_embedding_repeated_indices_accumulate)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *w = mk(TG_F32, 2, (int64_t[]){ 3, 2 }, (double[]){ 1, 2, 3, 4, 5, 6 });
    tg_tensor_requires_grad(w);
    int32_t idx[4] = { 2, 0, 2, 2 };
    tg_tensor *y = tg_embedding(tape, w, idx, 4);
    idx[0] = 99;    /* the op copied the indices: reusing the buffer is safe */
    expect_values(y, (double[]){ 5, 6, 1, 2, 5, 6, 5, 6 }, 0);
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, y)), TG_OK);
    expect_values(&(tg_tensor){ .dtype = TG_F32, .numel = 6, .data = w->grad },
                  (double[]){ 1, 1, 0, 0, 3, 3 }, 0);
    tg_tensor_free(w);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_dropout)
{
    tg_tape *tape = tg_tape_new();
    tg_rng r1, r2;
    tg_rng_seed(&r1, 5);
    tg_rng_seed(&r2, 5);
    tg_tensor *x = mk(TG_F64, 2, (int64_t[]){ 100, 100 }, NULL);
    tg_tensor_fill(x, 1.0);
    tg_tensor_requires_grad(x);
    ck_assert_ptr_eq(tg_dropout(tape, x, 0.0, &r1), x);
    tg_tensor *y = tg_dropout(tape, x, 0.25, &r1);
    tg_tensor *y2 = tg_dropout(tape, x, 0.25, &r2);
    int64_t zeros = tg_test_dropout_zeros(y, y2, 1 / 0.75, 1e-15);
    ck_close((double)zeros / 10000, 0.25, 0.02);
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, y)), TG_OK);
    for (int64_t i = 0; i < y->numel; i++)
        ck_close(tg_tensor_grad_get(x, i), tg_tensor_get(y, i), 0);
    ck_assert_ptr_null(tg_dropout(tape, x, 1.0, &r1));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_ARG);
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

Suite *ops_reduce_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("forward", 0),
        TG_TEST(test_reductions_forward),
        TG_TEST(test_softmax_and_cross_entropy_forward),
        TG_TEST(test_cross_entropy_extreme_logits_finite),
        TG_TEST(test_embedding_repeated_indices_accumulate),
        TG_TEST(test_dropout),
        TG_CASE("gradcheck", 60),
        TG_TEST(test_reduce_softmax_ce_embedding_gradcheck),
    };
    return TG_TEST_SUITE("ops_reduce", rows);
}
