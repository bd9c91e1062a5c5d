/* tests/test_ops_pointwise.c: the pointwise ops: forward values, saturation, the vectorised
   float math, the gradients at the edges (abs at 0, clamp's bounds, ties, where's broadcast),
   and from the unary and binary op tables: gradient checks (broadcasting included), errors and
   the same bits for 1 and 2 threads. PyTorch's values are in test_ops_pointwise_ref.c. */
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

START_TEST(test_more_unary_forward_known_values)
{
    tg_tape *tape = tg_tape_new();
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        double tol = d ? 1e-15 : 1e-6;
        tg_tensor *p = mk(dt, 1, (int64_t[]){ 3 }, (double[]){ 0.25, 1.0, 4.0 });
        tg_tensor *x = mk(dt, 1, (int64_t[]){ 5 }, (double[]){ -2.0, -0.5, 0.0, 0.5, 3.0 });
        expect_values(tg_sqrt(tape, p), (double[]){ 0.5, 1.0, 2.0 }, 0);
        expect_values(tg_rsqrt(tape, p), (double[]){ 2.0, 1.0, 0.5 }, 0);
        expect_values(tg_pow(tape, p, 1.5), (double[]){ 0.125, 1.0, 8.0 }, tol);
        expect_values(tg_pow(tape, p, -1), (double[]){ 4.0, 1.0, 0.25 }, 0);
        expect_values(tg_pow(tape, x, 3), (double[]){ -8.0, -0.125, 0.0, 0.125, 27.0 }, 0);
        expect_values(tg_pow(tape, x, 0), (double[]){ 1, 1, 1, 1, 1 }, 0);
        expect_values(tg_abs(tape, x), (double[]){ 2.0, 0.5, 0.0, 0.5, 3.0 }, 0);
        expect_values(tg_clamp(tape, x, -1, 1), (double[]){ -1.0, -0.5, 0.0, 0.5, 1.0 }, 0);
        /* lo > hi is no error: hi everywhere, as torch.clamp */
        expect_values(tg_clamp(tape, x, 1, -1), (double[]){ -1, -1, -1, -1, -1 }, 0);
        tg_tensor *sp = mk(dt, 1, (int64_t[]){ 5 }, (double[]){ -1000, -20, 0, 1, 1000 });
        expect_values(tg_softplus(tape, sp), (double[]){ 0.0, 2.0611536181902037e-09,
                      0.6931471805599453, 1.3132616875182228, 1000.0 }, tol);
        ck_assert_int_eq(tg_tape_status(tape), TG_OK);
        tg_tensor *xs[] = { p, x, sp };
        free_all(xs, 3);
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
static tg_tensor *unary_public_sqrt(tg_tape *t, tg_tensor *x, double s)
{ (void)s; return tg_sqrt(t, x); }
static tg_tensor *unary_public_rsqrt(tg_tape *t, tg_tensor *x, double s)
{ (void)s; return tg_rsqrt(t, x); }
static tg_tensor *unary_public_pow(tg_tape *t, tg_tensor *x, double s)
{ return tg_pow(t, x, s); }
static tg_tensor *unary_public_abs(tg_tape *t, tg_tensor *x, double s)
{ (void)s; return tg_abs(t, x); }
static tg_tensor *unary_public_clamp(tg_tape *t, tg_tensor *x, double s)
{ return tg_clamp(t, x, -s / 2, s / 2); }
static tg_tensor *unary_public_softplus(tg_tape *t, tg_tensor *x, double s)
{ (void)s; return tg_softplus(t, x); }
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

/* ---- every table row and where: errors, and the same bits for 1 and 2 threads ------------- */
static tg_tensor *build_where(tg_tape *t, tg_tensor **in, double s)
{
    (void)s;
    return tg_where(t, in[0], in[1], in[2]);
}

/* NULL operands, operands that do not broadcast, two dtypes: each fails with its status and
   a message that names the op. */
START_TEST(test_table_ops_reject_bad_operands)
{
    tg_tape *t = tg_tape_new();
    tg_tensor *m23 = mk(TG_F32, 2, (int64_t[]){ 2, 3 }, NULL);
    tg_tensor *m43 = mk(TG_F32, 2, (int64_t[]){ 4, 3 }, NULL);
    tg_tensor *m22 = mk(TG_F32, 2, (int64_t[]){ 2, 2 }, NULL);
    tg_tensor *d3 = mk(TG_F64, 1, (int64_t[]){ 3 }, NULL);
    char want[96];
    for (size_t k = 0; k < sizeof unary_cases / sizeof unary_cases[0]; k++) {
        snprintf(want, sizeof want, "%s: operand 1 is NULL", unary_cases[k].name);
        EXPECT_FAIL(t, unary_cases[k].build(t, (tg_tensor *[]){ NULL }, 1.7), TG_ERR_NULL, want);
        ck_assert_ptr_null(unary_cases[k].build(NULL, &m23, 1.7));
    }
    for (size_t k = 0; k < sizeof binary_cases / sizeof binary_cases[0]; k++) {
        const char *name = binary_cases[k].name;
        snprintf(want, sizeof want, "%s: operand 2 is NULL", name);
        EXPECT_FAIL(t, binary_cases[k].build(t, (tg_tensor *[]){ m23, NULL }, 0), TG_ERR_NULL,
                    want);
        snprintf(want, sizeof want, "%s: (2,3) and (4,3) do not broadcast", name);
        EXPECT_FAIL(t, binary_cases[k].build(t, (tg_tensor *[]){ m23, m43 }, 0), TG_ERR_SHAPE,
                    want);
        snprintf(want, sizeof want, "%s: operand 2 is f64 but operand 1 is f32", name);
        EXPECT_FAIL(t, binary_cases[k].build(t, (tg_tensor *[]){ m23, d3 }, 0), TG_ERR_DTYPE,
                    want);
        ck_assert_ptr_null(binary_cases[k].build(NULL, (tg_tensor *[]){ m23, m23 }, 0));
    }
    EXPECT_FAIL(t, tg_where(t, NULL, m23, m23), TG_ERR_NULL, "where: operand 1 is NULL");
    EXPECT_FAIL(t, tg_where(t, m23, m23, NULL), TG_ERR_NULL, "where: operand 3 is NULL");
    EXPECT_FAIL(t, tg_where(t, m22, m23, m23), TG_ERR_SHAPE,
                "where: mask (2,2), a (2,3) and b (2,3) do not broadcast");
    EXPECT_FAIL(t, tg_where(t, m23, m23, m43), TG_ERR_SHAPE,
                "where: mask (2,3), a (2,3) and b (4,3) do not broadcast");
    EXPECT_FAIL(t, tg_where(t, d3, m23, m23), TG_ERR_DTYPE,
                "where: operand 2 is f32 but operand 1 is f64");
    EXPECT_FAIL(t, tg_where(t, m23, m23, d3), TG_ERR_DTYPE,
                "where: operand 3 is f64 but operand 1 is f32");
    ck_assert_ptr_null(tg_where(NULL, m23, m23, m23));
    tg_tensor *xs[] = { m23, m43, m22, d3 };
    free_all(xs, 4);
    tg_tape_free(t);
}
END_TEST

/* A leaf of dtype dt filled uniformly in [0.2, 2], every other element negated unless the
   domain is positive; requires grad. */
static tg_tensor *domain_leaf(tg_dtype dt, int ndim, const int64_t *shape, int domain,
                              uint64_t seed)
{
    tg_rng r;
    tg_rng_seed(&r, seed);
    tg_tensor *x = mk(dt, ndim, shape, NULL);
    for (int64_t i = 0; i < x->numel; i++) {
        double v = 0.2 + 1.8 * tg_rng_uniform(&r);
        tg_tensor_set(x, i, domain == TG_GC_SIGNED && i % 2 ? -v : v);
    }
    ck_assert_int_eq(tg_tensor_requires_grad(x), TG_OK);
    return x;
}

/* The thread-count tests' full shape: a binary op's work (2 per element) passes the
   threshold from which kernels split over threads. */
enum { SPLIT_ROWS = 256, SPLIT_COLS = 160 };
_Static_assert(2 * SPLIT_ROWS * SPLIT_COLS > TG_PAR_THRESHOLD, "too small to split");

/* build's output and its inputs' gradients (loss sum(y * w), w fixed) at a thread count,
   appended to out; returns the bytes written. */
static size_t run_threads(int threads, build_fn build, tg_tensor **in, int nin,
                          unsigned char *out)
{
    set_threads(threads);
    tg_tape *t = tg_tape_new();
    for (int i = 0; i < nin; i++)
        tg_tensor_zero_grad(in[i]);
    tg_tensor *y = build(t, in, 1.7);
    ck_assert_ptr_nonnull(y);
    tg_tensor *w = tg_tape_tensor(t, y->dtype, y->ndim, y->shape);
    for (int64_t i = 0; w && i < w->numel; i++)
        tg_tensor_set(w, i, sin((double)i));
    ck_assert_int_eq(tg_backward(t, tg_sum(t, tg_mul(t, y, w))), TG_OK);
    size_t bytes = (size_t)y->numel * tg_dtype_size(y->dtype);
    memcpy(out, y->data, bytes);
    for (int i = 0; i < nin; i++) {
        size_t b = (size_t)in[i]->numel * tg_dtype_size(in[i]->dtype);
        memcpy(out + bytes, in[i]->grad, b);
        bytes += b;
    }
    tg_tape_free(t);
    return bytes;
}

/* Compares run_threads at 1 and 2 threads; the inputs are freed. */
static void expect_same_bits(const char *name, build_fn build, tg_tensor **in, int nin)
{
    enum { MAX_BYTES = 4 * SPLIT_ROWS * SPLIT_COLS * 8 };
    unsigned char *one = malloc(MAX_BYTES), *two = malloc(MAX_BYTES);
    ck_assert(one && two);
    size_t n1 = run_threads(1, build, in, nin, one), n2 = run_threads(2, build, in, nin, two);
    ck_assert(n1 == n2 && n1 <= MAX_BYTES);
    ck_assert_msg(memcmp(one, two, n1) == 0, "%s: 1 and 2 threads differ", name);
    free(one);
    free(two);
    free_all(in, nin);
}

/* Large enough to split over threads: the full-shape paths in parallel, a broadcast
   operand's reduction serially. */
START_TEST(test_table_ops_same_bits_any_thread_count)
{
    tg_dtype dt = _i ? TG_F64 : TG_F32;
    const int64_t full[2] = { SPLIT_ROWS, SPLIT_COLS }, row[1] = { SPLIT_COLS },
                  col[2] = { SPLIT_ROWS, 1 };
    for (size_t k = 0; k < sizeof unary_cases / sizeof unary_cases[0]; k++) {
        tg_tensor *in[1] = { domain_leaf(dt, 2, full, unary_cases[k].domain, 5 + k) };
        expect_same_bits(unary_cases[k].name, unary_cases[k].build, in, 1);
    }
    for (size_t k = 0; k < sizeof binary_cases / sizeof binary_cases[0]; k++) {
        tg_tensor *same[2] = { domain_leaf(dt, 2, full, TG_GC_SIGNED, 31 + k),
                               domain_leaf(dt, 2, full, TG_GC_SIGNED, 47 + k) };
        expect_same_bits(binary_cases[k].name, binary_cases[k].build, same, 2);
        tg_tensor *bc[2] = { domain_leaf(dt, 2, full, TG_GC_SIGNED, 61 + k),
                             domain_leaf(dt, 1, row, TG_GC_SIGNED, 73 + k) };
        expect_same_bits(binary_cases[k].name, binary_cases[k].build, bc, 2);
    }
    tg_tensor *w[3] = { domain_leaf(dt, 2, col, TG_GC_SIGNED, 89),
                        domain_leaf(dt, 2, full, TG_GC_SIGNED, 97),
                        domain_leaf(dt, 1, row, TG_GC_SIGNED, 101) };
    for (int64_t i = 0; i < w[0]->numel; i++)       /* a mask of 0s and 1s */
        tg_tensor_set(w[0], i, tg_tensor_get(w[0], i) > 0);
    expect_same_bits("where", build_where, w, 3);
}
END_TEST

/* ---- gradients at the edges (PyTorch's, see tests/ref/pointwise_ref.py) ------------------ */
/* Backward from sum(y): every upstream gradient is 1. */
static void backward_sum(tg_tape *tape, tg_tensor *y)
{
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, y)), TG_OK);
}

/* Fails unless t's gradient is want (NaN matching NaN, inf the same inf), then zeroes it and
   resets the tape for the next case. */
static void expect_grad(tg_tape *tape, tg_tensor *t, const double *want)
{
    for (int64_t i = 0; i < t->numel; i++) {
        double g = t->dtype == TG_F64 ? ((double *)t->grad)[i] : ((float *)t->grad)[i];
        ck_assert_msg(isnan(want[i]) ? isnan(g) : g == want[i],
                      "gradient %lld = %g, expected %g", (long long)i, g, want[i]);
    }
    tg_tensor_zero_grad(t);
    tg_tape_reset(tape);
}

/* A leaf of dtype dt with these values that requires grad. */
static tg_tensor *leaf(tg_dtype dt, int ndim, const int64_t *shape, const double *vals)
{
    tg_tensor *t = mk(dt, ndim, shape, vals);
    ck_assert_int_eq(tg_tensor_requires_grad(t), TG_OK);
    return t;
}

/* abs at 0, sqrt and rsqrt at 0, pow at 0 for each kind of exponent (float32 and float64). */
START_TEST(test_unary_edge_gradients)
{
    tg_dtype dt = _i ? TG_F64 : TG_F32;
    tg_tape *t = tg_tape_new();
    tg_tensor *x = leaf(dt, 1, (int64_t[]){ 5 }, (double[]){ 0.0, -0.0, 4.0, -4.0, NAN });
    backward_sum(t, tg_abs(t, x));                  /* sign x: 0 at +-0 and at NaN */
    expect_grad(t, x, (double[]){ 0, 0, 1, -1, 0 });
    backward_sum(t, tg_sqrt(t, x));                 /* 1/(2 sqrt x): +-inf at +-0 */
    expect_grad(t, x, (double[]){ INFINITY, -INFINITY, 0.25, NAN, NAN });
    backward_sum(t, tg_rsqrt(t, x));                /* -x^(-3/2)/2 */
    expect_grad(t, x, (double[]){ -INFINITY, INFINITY, -0.0625, NAN, NAN });
    backward_sum(t, tg_pow(t, x, 0));               /* 0 everywhere, NaN included */
    expect_grad(t, x, (double[]){ 0, 0, 0, 0, 0 });
    backward_sum(t, tg_pow(t, x, 1));               /* 1 everywhere */
    expect_grad(t, x, (double[]){ 1, 1, 1, 1, 1 });
    backward_sum(t, tg_pow(t, x, 2));
    expect_grad(t, x, (double[]){ 0, 0, 8, -8, NAN });
    backward_sum(t, tg_pow(t, x, 3));
    expect_grad(t, x, (double[]){ 0, 0, 48, 48, NAN });
    backward_sum(t, tg_pow(t, x, 1.5));             /* 1.5 x^0.5: 0 at 0 */
    expect_grad(t, x, (double[]){ 0, 0, 3, NAN, NAN });
    backward_sum(t, tg_pow(t, x, 0.5));             /* 0.5 x^-0.5: inf at 0 */
    expect_grad(t, x, (double[]){ INFINITY, -INFINITY, 0.25, NAN, NAN });
    backward_sum(t, tg_pow(t, x, -1));              /* -x^-2 */
    expect_grad(t, x, (double[]){ -INFINITY, -INFINITY, -0.0625, -0.0625, NAN });
    tg_tensor *sp = leaf(dt, 1, (int64_t[]){ 3 }, (double[]){ -1000, 0, 1000 });
    backward_sum(t, tg_softplus(t, sp));            /* sigmoid x */
    expect_grad(t, sp, (double[]){ 0, 0.5, 1 });
    tg_tensor *xs[] = { x, sp };
    free_all(xs, 2);
    tg_tape_free(t);
}
END_TEST

/* clamp passes the gradient on its bounds (lo <= x <= hi, as torch); lo > hi gives hi and no
   gradient; lo == hi passes it only at x == lo. */
START_TEST(test_clamp_edge_gradients)
{
    tg_dtype dt = _i ? TG_F64 : TG_F32;
    tg_tape *t = tg_tape_new();
    tg_tensor *x = leaf(dt, 1, (int64_t[]){ 5 }, (double[]){ -1.0, -0.5, 0.0, 0.8, 1.0 });
    backward_sum(t, tg_clamp(t, x, -0.5, 0.8));
    expect_grad(t, x, (double[]){ 0, 1, 1, 1, 0 });
    tg_tensor *y = tg_clamp(t, x, 0.8, -0.5);
    expect_values(y, (double[]){ -0.5, -0.5, -0.5, -0.5, -0.5 }, 0);
    backward_sum(t, y);
    expect_grad(t, x, (double[]){ 0, 0, 0, 0, 0 });
    backward_sum(t, tg_clamp(t, x, 0, 0));
    expect_grad(t, x, (double[]){ 0, 0, 1, 0, 0 });
    backward_sum(t, tg_clamp(t, x, -INFINITY, 0));  /* one-sided */
    expect_grad(t, x, (double[]){ 1, 1, 1, 0, 0 });
    y = tg_clamp(t, x, NAN, 1);                     /* a NaN bound: NaN, as torch */
    ck_assert(y && isnan(tg_tensor_get(y, 0)) && isnan(tg_tensor_get(y, 4)));
    tg_tensor_free(x);
    tg_tape_free(t);
}
END_TEST

/* maximum and minimum split a tie's gradient half and half, also where a broadcast operand
   collects it from several elements. */
START_TEST(test_maximum_minimum_ties)
{
    tg_dtype dt = _i ? TG_F64 : TG_F32;
    tg_tape *t = tg_tape_new();
    tg_tensor *a = leaf(dt, 1, (int64_t[]){ 3 }, (double[]){ 1, 2, 3 });
    tg_tensor *b = leaf(dt, 1, (int64_t[]){ 3 }, (double[]){ 1, 3, 2 });
    expect_values(tg_maximum(t, a, b), (double[]){ 1, 3, 3 }, 0);
    backward_sum(t, tg_maximum(t, a, b));
    expect_grad(t, a, (double[]){ 0.5, 0, 1 });
    expect_grad(t, b, (double[]){ 0.5, 1, 0 });
    backward_sum(t, tg_minimum(t, a, b));
    expect_grad(t, a, (double[]){ 0.5, 1, 0 });
    expect_grad(t, b, (double[]){ 0.5, 0, 1 });
    /* (2,3) of 2s against (3) = { 2, 1, 3 }: column 0 ties in both rows */
    tg_tensor *m = leaf(dt, 2, (int64_t[]){ 2, 3 }, (double[]){ 2, 2, 2, 2, 2, 2 });
    tg_tensor *r = leaf(dt, 1, (int64_t[]){ 3 }, (double[]){ 2, 1, 3 });
    expect_values(tg_maximum(t, m, r), (double[]){ 2, 2, 3, 2, 2, 3 }, 0);
    backward_sum(t, tg_maximum(t, m, r));
    expect_grad(t, m, (double[]){ 0.5, 1, 0, 0.5, 1, 0 });
    expect_grad(t, r, (double[]){ 1, 0, 2 });
    backward_sum(t, tg_minimum(t, m, r));
    expect_grad(t, m, (double[]){ 0.5, 0, 1, 0.5, 0, 1 });
    expect_grad(t, r, (double[]){ 1, 2, 0 });
    tg_tensor *xs[] = { a, b, m, r };
    free_all(xs, 4);
    tg_tape_free(t);
}
END_TEST

/* where broadcasts mask (3,1), a (4) and b (1) to (3,4); a collects the gradient of the rows
   that chose it, b that of every element that chose it, and the mask gets none. */
START_TEST(test_where_broadcasting)
{
    tg_dtype dt = _i ? TG_F64 : TG_F32;
    tg_tape *t = tg_tape_new();
    tg_tensor *mask = leaf(dt, 2, (int64_t[]){ 3, 1 }, (double[]){ 1, 0, -2 });
    tg_tensor *a = leaf(dt, 1, (int64_t[]){ 4 }, (double[]){ 1, 2, 3, 4 });
    tg_tensor *b = leaf(dt, 1, (int64_t[]){ 1 }, (double[]){ 10 });
    tg_tensor *y = tg_where(t, mask, a, b);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(y->ndim, 2);
    ck_assert_int_eq(y->shape[0], 3);
    ck_assert_int_eq(y->shape[1], 4);
    expect_values(y, (double[]){ 1, 2, 3, 4, 10, 10, 10, 10, 1, 2, 3, 4 }, 0);
    /* upstream gradient w: row-major 1..12 */
    tg_tensor *w = mk(dt, 2, (int64_t[]){ 3, 4 }, (double[]){ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                                                               11, 12 });
    ck_assert_int_eq(tg_backward(t, tg_sum(t, tg_mul(t, y, w))), TG_OK);
    expect_grad(t, a, (double[]){ 1 + 9, 2 + 10, 3 + 11, 4 + 12 });
    expect_grad(t, b, (double[]){ 5 + 6 + 7 + 8 });
    expect_grad(t, mask, (double[]){ 0, 0, 0 });
    /* a NaN mask chooses a, a -0 one b (mask != 0) */
    tg_tensor *odd = mk(dt, 1, (int64_t[]){ 2 }, (double[]){ NAN, -0.0 });
    expect_values(tg_where(t, odd, tg_slice(t, a, 0, 0, 2), b), (double[]){ 1, 10 }, 0);
    tg_tensor *xs[] = { mask, a, b, w, odd };
    free_all(xs, 5);
    tg_tape_free(t);
}
END_TEST

Suite *ops_pointwise_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("forward", 0),
        TG_TEST(test_unary_forward_known_values),
        TG_TEST(test_more_unary_forward_known_values),
        TG_TEST(test_sigmoid_tanh_saturate_finite),
        TG_TEST(test_float_exp_underflows_to_zero),
        TG_TEST(test_vectorised_float_math_accuracy),
        TG_TEST(test_binary_broadcast_forward),
        TG_CASE("edges", 0),
        TG_LOOP(test_unary_edge_gradients, 2),
        TG_LOOP(test_clamp_edge_gradients, 2),
        TG_LOOP(test_maximum_minimum_ties, 2),
        TG_LOOP(test_where_broadcasting, 2),
        TG_CASE("tables", 60),
        TG_TEST(test_table_ops_reject_bad_operands),
        TG_LOOP(test_table_ops_same_bits_any_thread_count, 2),
        TG_CASE("gradcheck", 60),
        TG_TEST(test_unary_gradcheck_table),
        TG_TEST(test_binary_gradcheck_table_broadcasting),
        TG_TEST(test_same_tensor_both_operands),
    };
    return TG_TEST_SUITE("ops_pointwise", rows);
}
