/* tests/test_ops_pointwise.c: the pointwise ops: forward values, saturation, the vectorised float math, and
   gradient checks generated from the unary and binary op tables (broadcasting included). */
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#include "autograd/autograd_internal.h"
#include "tensor/vmath_internal.h"
#include "tests/ops_harness.h"
#include "tests/tests.h"

START_TEST(test_unary_forward_known_values)
{
    tg_tape *tape = tg_tape_new();
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        double tol = d ? 1e-15 : 1e-6;
        tg_tensor *x = mk(dt, 1, (int64_t[]){ 3 }, (double[]){ -1.0, 0.5, 2.0 });
        expect_values(tg_neg(tape, x), (double[]){ 1.0, -0.5, -2.0 }, tol);
        expect_values(tg_scale(tape, x, 3.0), (double[]){ -3.0, 1.5, 6.0 }, tol);
        expect_values(tg_add_scalar(tape, x, 1.0), (double[]){ 0.0, 1.5, 3.0 }, tol);
        expect_values(tg_sigmoid(tape, x),
                      (double[]){ 0.2689414213699951, 0.6224593312018546, 0.8807970779778823 },
                      tol);
        expect_values(tg_tanh(tape, x),
                      (double[]){ -0.7615941559557649, 0.46211715726000974, 0.9640275800758169 },
                      tol);
        expect_values(tg_relu(tape, x), (double[]){ 0.0, 0.5, 2.0 }, tol);
        expect_values(tg_exp(tape, x),
                      (double[]){ 0.36787944117144233, 1.6487212707001282, 7.38905609893065 },
                      tol * 8);
        tg_tensor *p = mk(dt, 1, (int64_t[]){ 3 }, (double[]){ 0.5, 1.0, 10.0 });
        expect_values(tg_log(tape, p),
                      (double[]){ -0.6931471805599453, 0.0, 2.302585092994046 }, tol * 4);
        ck_assert_int_eq(tg_tape_status(tape), TG_OK);
        tg_tensor_free(x);
        tg_tensor_free(p);
        tg_tape_reset(tape);
    }
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_sigmoid_tanh_saturate_finite)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = mk(TG_F32, 1, (int64_t[]){ 2 }, (double[]){ -1000, 1000 });
    expect_values(tg_sigmoid(tape, x), (double[]){ 0, 1 }, 1e-37);
    expect_values(tg_tanh(tape, x), (double[]){ -1, 1 }, 0);
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

/* Float exp below the normal range: subnormal results as libm's expf gives them, and 0
   below half the smallest subnormal (-200, -inf), as libm and float64 give. */
START_TEST(test_float_exp_underflows_to_zero)
{
    const float xs[] = { -87.0f, -87.3f, -88.0f, -95.5f, -100.0f, -103.0f, -103.9f,
                         -103.98f, -104.0f, -200.0f, -1e30f, -INFINITY };
    enum { N = sizeof xs / sizeof xs[0] };
    float out[N];
    tg_vexpf(xs, out, N);
    for (int i = 0; i < N; i++) {
        float want = expf(xs[i]);   /* subnormal or 0 below -87.34 */
        ck_assert_msg(fabsf(out[i] - want) <= 2 * 0x1p-149f + 2.4e-7f * want,
                      "exp(%g) = %g, libm %g", (double)xs[i], (double)out[i], (double)want);
    }
    ck_assert(out[9] == 0.0f && out[10] == 0.0f && out[11] == 0.0f);
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = mk(TG_F32, 1, (int64_t[]){ 3 }, (double[]){ -200, -INFINITY, -1000 });
    expect_values(tg_exp(tape, x), (double[]){ 0, 0, 0 }, 0);
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

/* The vectorised float exp/sigmoid/tanh against libm in double, over [-20, 20] and beyond. */
START_TEST(test_vectorised_float_math_accuracy)
{
    enum { N = 200003 };    /* odd: exercises the tail */
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    for (int i = 0; i < N; i++)
        x[i] = -20.0f + 40.0f * (float)i / (N - 1);
    double worst[3] = { 0, 0, 0 };
    for (int f = 0; f < 3; f++) {
        (f == 0 ? tg_vexpf : f == 1 ? tg_vsigmoidf : tg_vtanhf)(x, y, N);
        for (int i = 0; i < N; i++) {
            double xd = x[i];
            double want = f == 0 ? exp(xd) : f == 1 ? 1 / (1 + exp(-xd)) : tanh(xd);
            double err = fabs(y[i] - want) / fmax(fabs(want), 1e-3);
            worst[f] = err > worst[f] ? err : worst[f];
        }
    }
    ck_assert_msg(worst[0] < 2.4e-7 && worst[1] < 4e-7 && worst[2] < 4e-7,
                  "exp %.3g sigmoid %.3g tanh %.3g", worst[0], worst[1], worst[2]);
    float edge[6] = { -1000.0f, 1000.0f, NAN, 0.0f, -0.0f, 1e-30f }, out[6];
    tg_vsigmoidf(edge, out, 6);
    ck_assert(out[0] >= 0.0f && out[0] < 1e-37f && out[1] == 1.0f && isnan(out[2]));
    ck_assert(out[3] == 0.5f);
    tg_vtanhf(edge, out, 6);
    ck_assert(out[0] == -1.0f && out[1] == 1.0f && isnan(out[2]) && out[3] == 0.0f);
    ck_assert(out[5] == 1e-30f);
    tg_vexpf(edge, out, 6);
    ck_assert(out[0] < 1e-37f && out[0] >= 0 && isnan(out[2]) && out[3] == 1.0f);
    free(x);
    free(y);
}
END_TEST

/* One builder per unary table row; each is gradient-checked by the loop test below. */
#define UNARY_BUILDER(name, forward, backward, domain)                                 \
    static tg_tensor *build_##name(tg_tape *t, tg_tensor **in, double s)           \
    {                                                                              \
        return unary_public_##name(t, in[0], s);                                   \
    }
static tg_tensor *unary_public_neg(tg_tape *t, tg_tensor *x, double s)
{ (void)s; return tg_neg(t, x); }
static tg_tensor *unary_public_scale(tg_tape *t, tg_tensor *x, double s)
{ return tg_scale(t, x, s); }
static tg_tensor *unary_public_add_scalar(tg_tape *t, tg_tensor *x, double s)
{ return tg_add_scalar(t, x, s); }
static tg_tensor *unary_public_sigmoid(tg_tape *t, tg_tensor *x, double s)
{ (void)s; return tg_sigmoid(t, x); }
static tg_tensor *unary_public_tanh(tg_tape *t, tg_tensor *x, double s)
{ (void)s; return tg_tanh(t, x); }
static tg_tensor *unary_public_relu(tg_tape *t, tg_tensor *x, double s)
{ (void)s; return tg_relu(t, x); }
static tg_tensor *unary_public_exp(tg_tape *t, tg_tensor *x, double s)
{ (void)s; return tg_exp(t, x); }
static tg_tensor *unary_public_log(tg_tape *t, tg_tensor *x, double s)
{ (void)s; return tg_log(t, x); }
TG_UNARY_OPS(UNARY_BUILDER)

/* Every row of the table, so adding a row without a checked builder fails to compile. */
#define UNARY_ENTRY(name, forward, backward, domain) { #name, build_##name, domain },
static const struct { const char *name; build_fn build; int domain; } unary_cases[] = {
    TG_UNARY_OPS(UNARY_ENTRY)
};

START_TEST(test_unary_gradcheck_table)
{
    for (size_t k = 0; k < sizeof unary_cases / sizeof unary_cases[0]; k++) {
        /* the row's domain: +-[0.2, 2] (away from the kinks at 0) or [0.2, 2] */
        tg_tensor *x = rnd(2, (int64_t[]){ 3, 5 }, 0.2, 2.0, 7 + k);
        for (int64_t i = 0; i < x->numel; i += 2)
            if (unary_cases[k].domain == TG_GC_SIGNED)
                ((double *)x->data)[i] *= -1;
        double err = gradcheck_case(unary_cases[k].build, &x, 1, 1.7);
        printf("gradcheck %-10s max_rel_err=%.3g\n", unary_cases[k].name, err);
        tg_tensor_free(x);
    }
}
END_TEST

/* ---- binary ops: broadcasting forward and gradient checks -------------------------------- */
#define BINARY_BUILDER(name, forward, backward)                                      \
    static tg_tensor *build_##name(tg_tape *t, tg_tensor **in, double s)            \
    {                                                                               \
        (void)s;                                                                    \
        return tg_##name(t, in[0], in[1]);                                          \
    }
TG_BINARY_OPS(BINARY_BUILDER)
#define BINARY_ENTRY(name, forward, backward) { #name, build_##name },
static const struct { const char *name; build_fn build; } binary_cases[] = {
    TG_BINARY_OPS(BINARY_ENTRY)
};

START_TEST(test_binary_broadcast_forward)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = mk(TG_F64, 2, (int64_t[]){ 2, 3 }, (double[]){ 1, 2, 3, 4, 5, 6 });
    tg_tensor *row = mk(TG_F64, 1, (int64_t[]){ 3 }, (double[]){ 10, 20, 30 });
    tg_tensor *col = mk(TG_F64, 2, (int64_t[]){ 2, 1 }, (double[]){ 2, 4 });
    tg_tensor *one = mk(TG_F64, 1, (int64_t[]){ 1 }, (double[]){ 0.5 });
    expect_values(tg_add(tape, a, row), (double[]){ 11, 22, 33, 14, 25, 36 }, 0);
    expect_values(tg_sub(tape, row, a), (double[]){ 9, 18, 27, 6, 15, 24 }, 0);
    expect_values(tg_mul(tape, a, col), (double[]){ 2, 4, 6, 16, 20, 24 }, 0);
    expect_values(tg_div(tape, a, one), (double[]){ 2, 4, 6, 8, 10, 12 }, 0);
    tg_tensor *outer = tg_mul(tape, col, row);   /* (2,1) * (3) -> (2,3) */
    ck_assert_int_eq(outer->ndim, 2);
    ck_assert_int_eq(outer->shape[0], 2);
    ck_assert_int_eq(outer->shape[1], 3);
    expect_values(outer, (double[]){ 20, 40, 60, 40, 80, 120 }, 0);
    tg_tensor *a4 = mk(TG_F64, 4, (int64_t[]){ 2, 1, 2, 1 }, (double[]){ 1, 2, 3, 4 });
    tg_tensor *b4 = mk(TG_F64, 3, (int64_t[]){ 3, 1, 2 }, (double[]){ 1, 2, 3, 4, 5, 6 });
    tg_tensor *c4 = tg_add(tape, a4, b4);      /* -> (2,3,2,2) */
    ck_assert_int_eq(c4->numel, 24);
    ck_close(tg_tensor_get(c4, 0), 2, 0);      /* a[0,0,0,0] + b[0,0,0] */
    ck_close(tg_tensor_get(c4, 23), 10, 0);    /* a[1,0,1,0] + b[2,0,1] = 4 + 6 */
    ck_assert_int_eq(tg_tape_status(tape), TG_OK);
    tg_tensor *xs[] = { a, row, col, one, a4, b4 };
    free_all(xs, 6);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_binary_gradcheck_table_broadcasting)
{
    /* pairs of shapes: equal, row, column, scalar, 3-D/4-D mixes */
    static const struct { int na; int64_t a[4]; int nb; int64_t b[4]; } shapes[] = {
        { 2, { 3, 4 }, 2, { 3, 4 } },
        { 2, { 3, 4 }, 1, { 4 } },
        { 1, { 4 }, 2, { 3, 4 } },
        { 2, { 3, 1 }, 2, { 1, 4 } },
        { 2, { 3, 4 }, 1, { 1 } },
        { 3, { 2, 1, 3 }, 2, { 4, 1 } },
        { 4, { 2, 1, 2, 3 }, 3, { 3, 1, 3 } },
    };
    for (size_t k = 0; k < sizeof binary_cases / sizeof binary_cases[0]; k++) {
        double worst = 0;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            tg_tensor *in[2] = {
                rnd(shapes[s].na, shapes[s].a, 0.5, 2.0, 11 + s),
                rnd(shapes[s].nb, shapes[s].b, 0.5, 2.0, 23 + s),
            };
            double err = gradcheck_case(binary_cases[k].build, in, 2, 0);
            worst = err > worst ? err : worst;
            free_all(in, 2);
        }
        printf("gradcheck %-10s max_rel_err=%.3g\n", binary_cases[k].name, worst);
    }
}
END_TEST

START_TEST(test_same_tensor_both_operands)
{
    tg_tensor *x = rnd(1, (int64_t[]){ 5 }, -1, 1, 3);
    tg_tensor *in[2] = { x, x };
    gradcheck_case(build_mul, in, 1, 0);    /* x*x: both halves land in one buffer */
    tg_tensor_free(x);
}
END_TEST

Suite *ops_pointwise_suite(void)
{
    Suite *s = suite_create("ops_pointwise");
    TCase *fw = tcase_create("forward");
    tcase_add_test(fw, test_unary_forward_known_values);
    tcase_add_test(fw, test_sigmoid_tanh_saturate_finite);
    tcase_add_test(fw, test_float_exp_underflows_to_zero);
    tcase_add_test(fw, test_vectorised_float_math_accuracy);
    tcase_add_test(fw, test_binary_broadcast_forward);
    suite_add_tcase(s, fw);
    TCase *gc = tcase_create("gradcheck");
    tcase_set_timeout(gc, 60);
    tcase_add_test(gc, test_unary_gradcheck_table);
    tcase_add_test(gc, test_binary_gradcheck_table_broadcasting);
    tcase_add_test(gc, test_same_tensor_both_operands);
    suite_add_tcase(s, gc);
    return s;
}
