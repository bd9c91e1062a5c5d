/* tests/test_ops.c: the ops suite: forward values, float64 gradient checks (generated from
   the op tables), broadcasting, errors, accumulation, tape memory, determinism. */
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "autograd/autograd_internal.h"
#include "tensor/vmath_internal.h"
#include "tests/tests.h"

/* ---- helpers -------------------------------------------------------------------------- */

static tg_tensor *mk(tg_dtype dt, int ndim, const int64_t *shape, const double *vals)
{
    tg_tensor *t = tg_tensor_new(dt, ndim, shape);
    ck_assert_ptr_nonnull(t);
    if (vals)
        tg_tensor_fill_values(t, vals);
    return t;
}

/* A float64 leaf with requires_grad, uniform in [lo, hi). */
static tg_tensor *rnd(int ndim, const int64_t *shape, double lo, double hi, uint64_t seed)
{
    tg_rng r;
    tg_rng_seed(&r, seed);
    tg_tensor *t = mk(TG_F64, ndim, shape, NULL);
    tg_tensor_fill_uniform(t, &r, lo, hi);
    ck_assert_int_eq(tg_tensor_requires_grad(t), TG_OK);
    return t;
}

static void expect_values(const tg_tensor *t, const double *want, double tol)
{
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < t->numel; i++)
        ck_assert_msg(fabs(tg_tensor_get(t, i) - want[i]) <= tol,
                      "element %lld = %.17g, expected %.17g", (long long)i,
                      tg_tensor_get(t, i), want[i]);
}

/* Gradient-check harness: loss = sum(op(inputs) * weights), weights fixed and random so
   every output element gets a different upstream gradient. */
typedef tg_tensor *(*build_fn)(tg_tape *tape, tg_tensor **in, double s);
typedef struct gc_case {
    build_fn   build;
    tg_tensor **in;
    double     s;
    tg_tensor *w;       /* made on first call, shaped like the op's output */
} gc_case;

static tg_tensor *gc_loss(tg_tape *tape, void *user)
{
    gc_case *c = user;
    tg_tensor *y = c->build(tape, c->in, c->s);
    if (!y)
        return NULL;
    if (!c->w) {
        tg_rng r;
        tg_rng_seed(&r, 99);
        c->w = tg_tensor_new(TG_F64, y->ndim, y->shape);
        tg_tensor_fill_uniform(c->w, &r, -1, 1);
    }
    return tg_sum(tape, tg_mul(tape, y, c->w));
}

static double gradcheck_case(build_fn build, tg_tensor **in, int nin, double s)
{
    gc_case c = { build, in, s, NULL };
    tg_gradcheck_result res;
    tg_status st = tg_gradcheck(in, nin, gc_loss, &c, NULL, &res, NULL);
    ck_assert_msg(st == TG_OK, "gradcheck failed to run: %s", tg_status_str(st));
    ck_assert_msg(res.passed, "worst rel err %.3g at tensor %d index %lld: analytic %.12g "
                  "numeric %.12g", res.max_rel_err, res.worst_tensor,
                  (long long)res.worst_index, res.analytic, res.numeric);
    tg_tensor_free(c.w);
    return res.max_rel_err;
}

static void free_all(tg_tensor **ts, int n)
{
    for (int i = 0; i < n; i++)
        tg_tensor_free(ts[i]);
}

/* ---- pointwise: forward values and table-generated gradient checks ---------------------- */

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
#define UNARY_BUILDER(name, fwd, bwd, vec)                                              \
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
#define UNARY_ENTRY(name, fwd, bwd, vec) { #name, build_##name },
static const struct { const char *name; build_fn build; } unary_cases[] = {
    TG_UNARY_OPS(UNARY_ENTRY)
};

START_TEST(test_unary_gradcheck_table)
{
    for (size_t k = 0; k < sizeof unary_cases / sizeof unary_cases[0]; k++) {
        /* log needs x > 0, relu stays away from its kink */
        tg_tensor *x = rnd(2, (int64_t[]){ 3, 5 }, 0.2, 2.0, 7 + k);
        for (int64_t i = 0; i < x->numel; i += 2)
            if (strcmp(unary_cases[k].name, "log") != 0)
                ((double *)x->data)[i] *= -1;
        double err = gradcheck_case(unary_cases[k].build, &x, 1, 1.7);
        printf("gradcheck %-10s max_rel_err=%.3g\n", unary_cases[k].name, err);
        tg_tensor_free(x);
    }
}
END_TEST

/* ---- binary ops: broadcasting forward and gradient checks -------------------------------- */
#define BINARY_BUILDER(name, fwd, ga, gb)                                           \
    static tg_tensor *build_##name(tg_tape *t, tg_tensor **in, double s)            \
    {                                                                               \
        (void)s;                                                                    \
        return tg_##name(t, in[0], in[1]);                                          \
    }
TG_BINARY_OPS(BINARY_BUILDER)
#define BINARY_ENTRY(name, fwd, ga, gb) { #name, build_##name },
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

/* ---- matmul, affine, transpose ------------------------------------------------------------- */
static tg_tensor *build_matmul(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_matmul(t, in[0], in[1]); }
static tg_tensor *build_affine(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_affine(t, in[0], in[1], in[2]); }
static tg_tensor *build_affine_nobias(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_affine(t, in[0], in[1], NULL); }
static tg_tensor *build_transpose(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_transpose(t, in[0]); }
static tg_tensor *build_gate_sigmoid(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_gate_op(t, in[0], in[1], in[2], false); }
static tg_tensor *build_gate_tanh_nobias(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_gate_op(t, in[0], in[1], NULL, true); }

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
    expect_values(tg_gate_op(tape, a, w, b, false), (double[]){ 1 / (1 + exp(-0.75)) }, 1e-15);
    expect_values(tg_gate_op(tape, a, w, NULL, true), (double[]){ 0.0 }, 0);
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
                y[v] = v == 0 ? tg_gate_op(tape, x[v], wt[v], bt[v], act)
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
            tg_tensor *g0 = tg_gate_op(tape, x[0], wt[0], bt[0], act);
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

/* ---- shape ops ---------------------------------------------------------------------------- */
static tg_tensor *build_reshape(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_tanh(t, tg_reshape(t, in[0], 3, (int64_t[]){ 2, 3, 2 })); }
static tg_tensor *build_concat0(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_concat(t, in[0], in[1], 0); }
static tg_tensor *build_concat1(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_concat(t, in[0], in[2], 1); }
static tg_tensor *build_concat_n(tg_tape *t, tg_tensor **in, double s)
{ (void)s; tg_tensor *xs[4] = { in[0], in[1], in[0], in[1] }; return tg_concat_n(t, xs, 4, 0); }
static tg_tensor *build_slice0(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_slice(t, in[0], 0, 1, 2); }
static tg_tensor *build_slice1(tg_tape *t, tg_tensor **in, double s)
{ (void)s; return tg_slice(t, in[0], 1, 2, 2); }

START_TEST(test_shape_ops_forward)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = mk(TG_F32, 2, (int64_t[]){ 2, 2 }, (double[]){ 1, 2, 3, 4 });
    tg_tensor *b = mk(TG_F32, 2, (int64_t[]){ 2, 1 }, (double[]){ 5, 6 });
    tg_tensor *c = mk(TG_F32, 2, (int64_t[]){ 1, 2 }, (double[]){ 7, 8 });
    expect_values(tg_concat(tape, a, b, 1), (double[]){ 1, 2, 5, 3, 4, 6 }, 0);
    expect_values(tg_concat(tape, a, c, 0), (double[]){ 1, 2, 3, 4, 7, 8 }, 0);
    tg_tensor *xs[3] = { c, a, c };
    tg_tensor *cn = tg_concat_n(tape, xs, 3, 0);
    ck_assert_int_eq(cn->shape[0], 4);
    expect_values(cn, (double[]){ 7, 8, 1, 2, 3, 4, 7, 8 }, 0);
    expect_values(tg_slice(tape, a, 1, 1, 1), (double[]){ 2, 4 }, 0);
    expect_values(tg_slice(tape, a, 0, 1, 1), (double[]){ 3, 4 }, 0);
    tg_tensor *r = tg_reshape(tape, a, 1, (int64_t[]){ 4 });
    ck_assert_int_eq(r->ndim, 1);
    expect_values(r, (double[]){ 1, 2, 3, 4 }, 0);
    ck_assert_ptr_eq(r->data, a->data);   /* a view, no copy */
    ck_assert_int_eq(tg_tape_status(tape), TG_OK);
    tg_tensor_free(a); tg_tensor_free(b); tg_tensor_free(c);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_shape_ops_gradcheck)
{
    tg_tensor *in[3] = { rnd(2, (int64_t[]){ 3, 4 }, -1, 1, 1),
                         rnd(2, (int64_t[]){ 2, 4 }, -1, 1, 2),
                         rnd(2, (int64_t[]){ 3, 2 }, -1, 1, 3) };
    double worst = 0, e;
    e = gradcheck_case(build_reshape, in, 1, 0); worst = fmax(worst, e);
    e = gradcheck_case(build_concat0, in, 2, 0); worst = fmax(worst, e);
    e = gradcheck_case(build_concat1, in, 3, 0); worst = fmax(worst, e);
    e = gradcheck_case(build_concat_n, in, 2, 0); worst = fmax(worst, e);
    e = gradcheck_case(build_slice0, in, 1, 0); worst = fmax(worst, e);
    e = gradcheck_case(build_slice1, in, 1, 0); worst = fmax(worst, e);
    printf("gradcheck shape ops (reshape concat concat_n slice) max_rel_err=%.3g\n", worst);
    free_all(in, 3);
}
END_TEST

/* ---- reductions, softmax, cross-entropy ------------------------------------------------------ */
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
    int64_t zeros = 0;
    for (int64_t i = 0; i < y->numel; i++) {
        double v = tg_tensor_get(y, i);
        ck_assert(v == 0.0 || fabs(v - 1 / 0.75) < 1e-15);
        zeros += v == 0.0;
        ck_assert(v == tg_tensor_get(y2, i));   /* same seed, same mask */
    }
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

/* ---- autograd semantics ------------------------------------------------------------------------ */
START_TEST(test_fanout_and_repeated_backward_accumulate)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = mk(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 3, -2 });
    tg_tensor_requires_grad(x);
    /* y = sum(x*x + 3x): dy/dx = 2x + 3 */
    tg_tensor *y = tg_sum(tape, tg_add(tape, tg_mul(tape, x, x), tg_scale(tape, x, 3)));
    ck_assert_int_eq(tg_backward(tape, y), TG_OK);
    ck_close(tg_tensor_grad_get(x, 0), 9, 0);
    ck_close(tg_tensor_grad_get(x, 1), -1, 0);
    ck_assert_int_eq(tg_backward(tape, y), TG_OK);  /* accumulates, like PyTorch */
    ck_close(tg_tensor_grad_get(x, 0), 18, 0);
    ck_close(tg_tensor_grad_get(x, 1), -2, 0);
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

/* Two losses on one tape, one backward each: the second walk starts afresh (what the first
   reached, and the gradient buffers it recycled, do not carry over). */
START_TEST(test_backward_from_two_losses_on_one_tape)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = mk(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 0.5, -1 });
    tg_tensor_requires_grad(x);
    tg_tensor *y1 = tg_sum(tape, tg_tanh(tape, x));
    tg_tensor *y2 = tg_sum(tape, tg_exp(tape, x));
    ck_assert_int_eq(tg_backward(tape, y1), TG_OK);
    ck_close(tg_tensor_grad_get(x, 0), 1 - tanh(0.5) * tanh(0.5), 1e-15);
    tg_tensor_zero_grad(x);
    ck_assert_int_eq(tg_backward(tape, y2), TG_OK);
    ck_close(tg_tensor_grad_get(x, 0), exp(0.5), 1e-15);
    ck_close(tg_tensor_grad_get(x, 1), exp(-1.0), 1e-15);
    ck_assert_int_eq(tg_backward(tape, y1), TG_OK);   /* adds, like PyTorch */
    ck_close(tg_tensor_grad_get(x, 1), exp(-1.0) + 1 - tanh(1.0) * tanh(1.0), 1e-15);
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

/* More gradient sizes than the backward pool keeps free lists for (40 sizes, 64 bytes
   apart, in one chain): a second backward on the same tape gives the same gradient, not
   that plus the first backward's leftovers. */
START_TEST(test_repeated_backward_with_many_gradient_sizes)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = mk(TG_F64, 1, (int64_t[]){ 320 }, NULL);
    for (int64_t i = 0; i < 320; i++)
        tg_tensor_set(x, i, 0.001 * (double)i);
    tg_tensor_requires_grad(x);
    tg_tensor *y = tg_tanh(tape, x);
    for (int64_t k = 39; k >= 1; k--)   /* 39 more sizes: slices of 8k doubles */
        y = tg_tanh(tape, tg_slice(tape, y, 0, 0, 8 * k));
    tg_tensor *loss = tg_sum(tape, y);
    ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
    double first = tg_tensor_grad_get(x, 0);
    tg_tensor_zero_grad(x);
    ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
    ck_close(tg_tensor_grad_get(x, 0), first, 0);
    ck_close(tg_tensor_grad_get(x, 319), 0, 0);
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

/* Gradient buffers of tape tensors start as garbage that the first op to reach them
   overwrites (or zeroes, for ops that add): exercise every kind of first writer on tape
   tensors: GEMM (matmul's A and B, affine's x, weight and bias from other ops), unary,
   binary full-shape and broadcast, the same tensor twice in one op, concat of one tensor
   with itself, reductions and softmax. */
static tg_tensor *build_fresh_mix(tg_tape *t, tg_tensor **in, double s)
{
    (void)s;
    tg_tensor *a = tg_tanh(t, in[0]), *b = tg_sigmoid(t, in[1]), *v = tg_tanh(t, in[2]);
    tg_tensor *ab = tg_matmul(t, a, b);                           /* (4,3) */
    tg_tensor *aff = tg_affine(t, a, tg_exp(t, b), v);            /* weight, bias from ops */
    tg_tensor *sq = tg_mul(t, ab, ab);                            /* one tensor twice */
    tg_tensor *bc = tg_add(t, aff, v);                            /* v broadcast */
    tg_tensor *cat = tg_concat(t, sq, sq, 1);                     /* (4,6) */
    tg_tensor *sm = tg_softmax(t, tg_concat(t, bc, tg_scale(t, ab, 0.5), 1));
    return tg_add(t, tg_sum_dim(t, cat, 1), tg_sum_dim(t, tg_mul(t, sm, sm), 1));
}

START_TEST(test_fresh_gradients_gradcheck)
{
    tg_tensor *in[3] = { rnd(2, (int64_t[]){ 4, 5 }, -1, 1, 21),
                         rnd(2, (int64_t[]){ 5, 3 }, -1, 1, 22),
                         rnd(1, (int64_t[]){ 3 }, -1, 1, 23) };
    double e = gradcheck_case(build_fresh_mix, in, 3, 0);
    printf("gradcheck fresh-gradient mix max_rel_err=%.3g\n", e);
    free_all(in, 3);
}
END_TEST

/* combine = [h | x] with x needing no gradient (the one-hot input of a first layer): the
   concat marks the x columns of its gradient as never read (TG_FLAG_GRAD_LEAD) and the
   products skip them. h's gradient must stay right through matmul, affine and gate, with
   an odd width (a partial last panel) and x in the middle of three inputs (no skip). */
static tg_tensor *build_dead_tail(tg_tape *t, tg_tensor **in, double s)
{
    (void)s;
    tg_tensor *x = tg_tape_tensor(t, TG_F64, 2, (int64_t[]){ 4, 3 });
    if (!x)
        return NULL;
    for (int64_t i = 0; i < x->numel; i++)
        ((double *)x->data)[i] = 0.1 * (double)(i % 7) - 0.3;
    tg_tensor *h = tg_tanh(t, in[0]);                               /* (4,5) */
    tg_tensor *combine = tg_concat(t, h, x, 1);                     /* (4,8) */
    tg_tensor *middle = tg_concat_n(t, (tg_tensor *[]){ h, x, h }, 3, 1);   /* (4,13) */
    if (combine->flags & TG_FLAG_REQUIRES_GRAD) {   /* recorded for backward */
        ck_assert(combine->flags & TG_FLAG_GRAD_LEAD);
        ck_assert_int_eq(tg_grad_cols(combine), 5);
        ck_assert(!(middle->flags & TG_FLAG_GRAD_LEAD));
    }
    tg_tensor *m = tg_matmul(t, combine, in[1]);                    /* (4,2) */
    tg_tensor *a = tg_affine(t, combine, in[1], in[2]);
    tg_tensor *g = tg_gate_op(t, combine, in[1], in[2], true);
    tg_tensor *u = tg_matmul(t, middle, tg_transpose(t, middle));   /* (4,4) */
    return tg_add(t, tg_sum_dim(t, tg_add(t, tg_mul(t, m, a), tg_mul(t, g, g)), 1),
                  tg_sum_dim(t, u, 1));
}

START_TEST(test_dead_gradient_columns_gradcheck)
{
    tg_tensor *in[3] = { rnd(2, (int64_t[]){ 4, 5 }, -1, 1, 31),
                         rnd(2, (int64_t[]){ 8, 2 }, -1, 1, 32),
                         rnd(1, (int64_t[]){ 2 }, -1, 1, 33) };
    double e = gradcheck_case(build_dead_tail, in, 3, 0);
    printf("gradcheck dead gradient columns max_rel_err=%.3g\n", e);
    free_all(in, 3);
}
END_TEST

/* x made to require gradients after the concat was recorded gets none from it (the graph
   is what was recorded, as in PyTorch), rather than the columns nobody computed. */
START_TEST(test_dead_gradient_columns_late_requires_grad)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *h = mk(TG_F64, 2, (int64_t[]){ 1, 2 }, (double[]){ 0.5, -1 });
    tg_tensor *x = mk(TG_F64, 2, (int64_t[]){ 1, 1 }, (double[]){ 2 });
    tg_tensor *w = mk(TG_F64, 2, (int64_t[]){ 3, 1 }, (double[]){ 1, 2, 3 });
    tg_tensor_requires_grad(h);
    tg_tensor *y = tg_matmul(tape, tg_concat(tape, h, x, 1), w);   /* 0.5 - 2 + 6 */
    tg_tensor_requires_grad(x);
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, y)), TG_OK);
    ck_close(tg_tensor_grad_get(h, 0), 1, 0);
    ck_close(tg_tensor_grad_get(h, 1), 2, 0);
    ck_close(tg_tensor_grad_get(x, 0), 0, 0);
    tg_tensor_free(h);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tape_free(tape);
}
END_TEST

/* Skipping the dead columns changes no bit of h's gradient when h's width is a whole number
   of GEMM panels (32), f32: x needing a gradient or not. */
START_TEST(test_dead_gradient_columns_same_bits)
{
    float dh[2][50 * 32];
    for (int pass = 0; pass < 2; pass++) {
        tg_tape *tape = tg_tape_new();
        tg_tensor *h = tg_tensor_new(TG_F32, 2, (int64_t[]){ 50, 32 });
        tg_tensor *x = tg_tensor_new(TG_F32, 2, (int64_t[]){ 50, 65 });
        tg_tensor *w = tg_tensor_new(TG_F32, 2, (int64_t[]){ 97, 48 });
        for (int64_t i = 0; i < h->numel; i++)
            ((float *)h->data)[i] = (float)((i * 37) % 19) / 19.0f - 0.5f;
        for (int64_t i = 0; i < x->numel; i++)
            ((float *)x->data)[i] = i % 65 == i / 65 % 65 ? 1.0f : 0.0f;
        for (int64_t i = 0; i < w->numel; i++)
            ((float *)w->data)[i] = (float)((i * 53) % 23) / 23.0f - 0.5f;
        tg_tensor_requires_grad(h);
        tg_tensor_requires_grad(w);
        if (pass == 1)
            tg_tensor_requires_grad(x);
        tg_tensor *y = tg_gate_op(tape, tg_concat(tape, h, x, 1), w, NULL, false);
        ck_assert_int_eq(tg_backward(tape, tg_sum(tape, tg_mul(tape, y, y))), TG_OK);
        memcpy(dh[pass], h->grad, sizeof dh[pass]);
        tg_tensor_free(h);
        tg_tensor_free(x);
        tg_tensor_free(w);
        tg_tape_free(tape);
    }
    ck_assert(memcmp(dh[0], dh[1], sizeof dh[0]) == 0);
}
END_TEST

/* A node output's gradient buffer is recycled once its node has run backward: a chain of
   200 tanh over 4096 floats needs its activations (3.2 MB) and a few gradient buffers,
   not 200 more; the gradient is the same as a short chain's would be, and the recycled
   intermediates keep no gradient afterwards. */
START_TEST(test_gradient_buffers_are_recycled)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tensor_new(TG_F32, 1, (int64_t[]){ 4096 });
    for (int64_t i = 0; i < x->numel; i++)
        ((float *)x->data)[i] = (float)(i % 17) / 17.0f - 0.5f;
    tg_tensor_requires_grad(x);
    tg_tensor *y = x, *mid = NULL;
    for (int k = 0; k < 200; k++) {
        y = tg_tanh(tape, y);
        if (k == 100)
            mid = y;
    }
    size_t forward = tg_tape_bytes_used(tape);
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, y)), TG_OK);
    size_t grads = tg_tape_bytes_peak(tape) - forward;
    ck_assert_msg(grads < 8 * 4096 * sizeof(float), "backward took %zu bytes", grads);
    ck_assert_ptr_null(mid->grad);
    /* d/dx of tanh^200(x) = prod over the chain of (1 - y_k^2) */
    double want = 1.0, v = tg_tensor_get(x, 5);
    for (int k = 0; k < 200; k++) {
        float t = tanhf((float)v);
        want *= 1.0 - (double)t * t;
        v = t;
    }
    ck_close(tg_tensor_grad_get(x, 5), want, 1e-5 * fabs(want));
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

/* Ops recorded after (or beside) the loss never reached it: their backward must not run,
   or a non-finite value there (0 * inf) would poison the gradients. */
START_TEST(test_nodes_off_the_loss_path_are_skipped)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = mk(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 1, 1000 });
    tg_tensor_requires_grad(x);
    tg_tensor *y = tg_sum(tape, tg_scale(tape, x, 2));
    tg_tensor *off = tg_sum(tape, tg_exp(tape, x));      /* inf, not part of y */
    ck_assert(isinf(tg_tensor_get(off, 0)));
    ck_assert_int_eq(tg_backward(tape, y), TG_OK);
    ck_close(tg_tensor_grad_get(x, 0), 2, 0);
    ck_close(tg_tensor_grad_get(x, 1), 2, 0);
    ck_assert_ptr_null(off->grad);          /* never reached: no gradient, as before */
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_constants_get_no_gradient)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = mk(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 1, 2 });
    tg_tensor *c = mk(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 5, 6 });
    tg_tensor_requires_grad(x);
    tg_tensor *y = tg_sum(tape, tg_mul(tape, x, c));
    ck_assert_int_eq(tg_backward(tape, y), TG_OK);
    ck_assert_ptr_null(c->grad);
    ck_close(tg_tensor_grad_get(x, 1), 6, 0);
    /* a loss built only from constants has nothing to differentiate */
    tg_tensor *k = tg_sum(tape, c);
    ck_assert_int_eq(tg_backward(tape, k), TG_ERR_ARG);
    tg_tensor_free(x);
    tg_tensor_free(c);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_grad_disabled_records_nothing)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = mk(TG_F32, 1, (int64_t[]){ 3 }, (double[]){ 1, 2, 3 });
    tg_tensor_requires_grad(x);
    tg_tape_set_grad_enabled(tape, false);
    ck_assert(!tg_tape_grad_enabled(tape));
    tg_tensor *y = tg_sum(tape, tg_tanh(tape, x));
    ck_assert_ptr_nonnull(y);
    ck_assert(!(y->flags & TG_FLAG_REQUIRES_GRAD));
    ck_assert_int_eq(tg_backward(tape, y), TG_ERR_ARG);
    tg_tape_set_grad_enabled(tape, true);
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

/* ---- errors: sticky, NULL-propagating, never a crash --------------------------------------------- */
START_TEST(test_errors_are_sticky_and_clear_on_reset)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = mk(TG_F32, 2, (int64_t[]){ 50, 193 }, NULL);
    tg_tensor *b = mk(TG_F32, 2, (int64_t[]){ 192, 128 }, NULL);
    tg_tensor *c = mk(TG_F64, 2, (int64_t[]){ 50, 193 }, NULL);
    ck_assert_ptr_null(tg_matmul(tape, a, b));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_SHAPE);
    ck_assert_str_eq(tg_tape_errmsg(tape), "matmul: (50,193) @ (192,128): inner dimensions differ");
    /* later errors do not overwrite the first; every op now returns NULL */
    ck_assert_ptr_null(tg_add(tape, a, c));
    ck_assert_ptr_null(tg_tanh(tape, a));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_SHAPE);
    ck_assert_int_eq(tg_backward(tape, NULL), TG_ERR_SHAPE);
    tg_tape_reset(tape);
    ck_assert_int_eq(tg_tape_status(tape), TG_OK);
    ck_assert_str_eq(tg_tape_errmsg(tape), "");
    ck_assert_ptr_nonnull(tg_tanh(tape, a));
    /* dtype mix */
    ck_assert_ptr_null(tg_add(tape, a, c));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_DTYPE);
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(tape), "add: operand 2 is f64"));
    tg_tensor_free(a); tg_tensor_free(b); tg_tensor_free(c);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_null_in_null_out)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = mk(TG_F32, 1, (int64_t[]){ 3 }, NULL);
    /* a forward pass written straight through, checked once */
    tg_tensor *y = tg_sum(tape, tg_mul(tape, tg_tanh(tape, NULL), x));
    ck_assert_ptr_null(y);
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    ck_assert_str_eq(tg_tape_errmsg(tape), "tanh: operand 1 is NULL");
    ck_assert_int_eq(tg_backward(tape, y), TG_ERR_NULL);
    /* NULL tape: NULL result, no crash */
    ck_assert_ptr_null(tg_tanh(NULL, x));
    ck_assert_ptr_null(tg_concat_n(NULL, NULL, 0, 0));
    ck_assert_int_eq(tg_backward(NULL, x), TG_ERR_NULL);
    ck_assert_int_eq(tg_tape_status(NULL), TG_ERR_NULL);
    tg_tape_reset(NULL);
    tg_tape_free(NULL);
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

/* Each call must fail with the given status and a message starting with the op's name. */
#define EXPECT_FAIL(tape, call, status, prefix)                                          \
    do {                                                                                 \
        tg_tape_reset(tape);                                                             \
        ck_assert_ptr_null(call);                                                        \
        ck_assert_int_eq(tg_tape_status(tape), status);                                  \
        ck_assert_msg(strncmp(tg_tape_errmsg(tape), prefix, strlen(prefix)) == 0,       \
                      "message '%s' should start with '%s'", tg_tape_errmsg(tape), prefix); \
    } while (0)

START_TEST(test_every_op_rejects_bad_shapes_and_args)
{
    tg_tape *t = tg_tape_new();
    tg_tensor *m23 = mk(TG_F32, 2, (int64_t[]){ 2, 3 }, NULL);
    tg_tensor *m43 = mk(TG_F32, 2, (int64_t[]){ 4, 3 }, NULL);
    tg_tensor *v3 = mk(TG_F32, 1, (int64_t[]){ 3 }, NULL);
    tg_tensor *v2 = mk(TG_F32, 1, (int64_t[]){ 2 }, NULL);
    tg_tensor *m22 = mk(TG_F32, 2, (int64_t[]){ 2, 2 }, NULL);
    EXPECT_FAIL(t, tg_add(t, m23, m43), TG_ERR_SHAPE, "add: (2,3) and (4,3) do not broadcast");
    EXPECT_FAIL(t, tg_mul(t, m23, v2), TG_ERR_SHAPE, "mul:");
    EXPECT_FAIL(t, tg_matmul(t, v3, m23), TG_ERR_SHAPE, "matmul: (3) @ (2,3): operands must");
    EXPECT_FAIL(t, tg_affine(t, m23, m23, v3), TG_ERR_SHAPE, "affine:");
    EXPECT_FAIL(t, tg_affine(t, m22, m23, v2), TG_ERR_SHAPE, "affine: bias (2)");
    EXPECT_FAIL(t, tg_gate_op(t, m23, m23, v3, false), TG_ERR_SHAPE, "gate:");
    EXPECT_FAIL(t, tg_gate_op(t, m22, m23, v2, true), TG_ERR_SHAPE, "gate: bias (2)");
    EXPECT_FAIL(t, tg_transpose(t, v3), TG_ERR_SHAPE, "transpose:");
    EXPECT_FAIL(t, tg_reshape(t, m23, 2, (int64_t[]){ 4, 2 }), TG_ERR_SHAPE, "reshape:");
    EXPECT_FAIL(t, tg_reshape(t, m23, 5, (int64_t[]){ 1, 1, 1, 2, 3 }), TG_ERR_SHAPE, "reshape:");
    EXPECT_FAIL(t, tg_reshape(t, m23, 2, NULL), TG_ERR_NULL, "reshape:");
    EXPECT_FAIL(t, tg_concat(t, m23, m43, 1), TG_ERR_SHAPE, "concat: (2,3) and (4,3)");
    EXPECT_FAIL(t, tg_concat(t, m23, v3, 0), TG_ERR_SHAPE, "concat:");
    EXPECT_FAIL(t, tg_concat(t, m23, m43, 2), TG_ERR_ARG, "concat: dim 2");
    EXPECT_FAIL(t, tg_concat_n(t, NULL, 0, 0), TG_ERR_ARG, "concat:");
    EXPECT_FAIL(t, tg_slice(t, m23, 1, 2, 2), TG_ERR_ARG, "slice: [2, 4) out of range");
    EXPECT_FAIL(t, tg_slice(t, m23, 0, -1, 1), TG_ERR_ARG, "slice:");
    EXPECT_FAIL(t, tg_slice(t, m23, 0, 0, 0), TG_ERR_ARG, "slice:");
    EXPECT_FAIL(t, tg_slice(t, m23, 3, 0, 1), TG_ERR_ARG, "slice: dim 3");
    EXPECT_FAIL(t, tg_sum_dim(t, m23, -1), TG_ERR_ARG, "sum_dim:");
    EXPECT_FAIL(t, tg_cross_entropy(t, m23, (int32_t[]){ 0, 3 }), TG_ERR_ARG,
                "cross_entropy: target 3 at row 1 out of range [0,3)");
    EXPECT_FAIL(t, tg_cross_entropy(t, m23, (int32_t[]){ -1, 0 }), TG_ERR_ARG, "cross_entropy:");
    EXPECT_FAIL(t, tg_cross_entropy(t, v3, (int32_t[]){ 0 }), TG_ERR_SHAPE, "cross_entropy:");
    EXPECT_FAIL(t, tg_cross_entropy(t, m23, NULL), TG_ERR_NULL, "cross_entropy:");
    EXPECT_FAIL(t, tg_embedding(t, m23, (int32_t[]){ 0, 2 }, 2), TG_ERR_ARG,
                "embedding: index 2 at position 1 out of range [0,2)");
    EXPECT_FAIL(t, tg_embedding(t, m23, (int32_t[]){ 0 }, 0), TG_ERR_ARG, "embedding:");
    EXPECT_FAIL(t, tg_embedding(t, v3, (int32_t[]){ 0 }, 1), TG_ERR_SHAPE, "embedding:");
    EXPECT_FAIL(t, tg_embedding(t, m23, NULL, 1), TG_ERR_NULL, "embedding:");
    EXPECT_FAIL(t, tg_dropout(t, m23, -0.1, NULL), TG_ERR_ARG, "dropout:");
    EXPECT_FAIL(t, tg_dropout(t, m23, 0.5, NULL), TG_ERR_NULL, "dropout:");
    EXPECT_FAIL(t, tg_tape_tensor(t, TG_F32, 0, (int64_t[]){ 1 }), TG_ERR_ARG, "tape_tensor:");
    tg_tensor *xs[] = { m23, m43, v3, v2, m22 };
    free_all(xs, 5);
    tg_tape_free(t);
}
END_TEST

START_TEST(test_backward_rejects_non_scalar)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = mk(TG_F32, 1, (int64_t[]){ 3 }, NULL);
    tg_tensor_requires_grad(x);
    tg_tensor *y = tg_tanh(tape, x);
    ck_assert_int_eq(tg_backward(tape, y), TG_ERR_SHAPE);
    ck_assert_str_eq(tg_tape_errmsg(tape), "backward: loss (3) must have exactly one element");
    tg_tape_reset(tape);
    ck_assert_int_eq(tg_backward(tape, NULL), TG_ERR_NULL);
    tg_tape_reset(tape);
    ck_assert_int_eq(tg_backward(tape, x), TG_ERR_SHAPE);   /* not even a scalar */
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

/* ---- tape memory ------------------------------------------------------------------------------- */
static tg_tensor *small_step(tg_tape *tape, tg_tensor *w, tg_tensor *x)
{
    tg_tensor *h = tg_tanh(tape, tg_matmul(tape, x, w));
    return tg_mean(tape, tg_mul(tape, h, h));
}

START_TEST(test_reset_reuses_memory_no_malloc)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *w = mk(TG_F32, 2, (int64_t[]){ 64, 64 }, NULL);
    tg_tensor *x = mk(TG_F32, 2, (int64_t[]){ 50, 64 }, NULL);
    tg_rng r;
    tg_rng_seed(&r, 1);
    tg_tensor_fill_uniform(w, &r, -0.1, 0.1);
    tg_tensor_fill_uniform(x, &r, -1, 1);
    tg_tensor_requires_grad(w);
    ck_assert_int_eq(tg_backward(tape, small_step(tape, w, x)), TG_OK);
    size_t peak = tg_tape_bytes_peak(tape);
    int64_t mallocs = tg_tape_mallocs(tape);
    ck_assert(peak > 0 && mallocs > 0);
    for (int step = 0; step < 10; step++) {
        tg_tape_reset(tape);
        ck_assert_int_eq(tg_tape_bytes_used(tape), 0);
        ck_assert_int_eq(tg_backward(tape, small_step(tape, w, x)), TG_OK);
    }
    ck_assert_int_eq(tg_tape_mallocs(tape), mallocs);   /* no malloc after the first step */
    ck_assert_int_eq(tg_tape_bytes_peak(tape), peak);   /* and no growth */
    tg_tensor_free(w);
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_large_allocations_grow_chunks)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *big = tg_tape_tensor(tape, TG_F64, 2, (int64_t[]){ 1024, 1024 }); /* 8 MiB */
    ck_assert_ptr_nonnull(big);
    ck_assert_int_eq(((uintptr_t)big->data) % 64, 0);
    ck_assert(tg_tape_bytes_used(tape) >= (size_t)8 << 20);
    tg_tensor *huge = tg_tape_tensor(tape, TG_F64, 2, (int64_t[]){ (int64_t)1 << 40,
                                                                    (int64_t)1 << 40 });
    ck_assert_ptr_null(huge);
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NOMEM);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_memory_limit_gives_nomem)
{
    tg_tape *tape = tg_tape_new();
    tg_tape_set_memory_limit(tape, 4 << 20);
    tg_tensor *x = mk(TG_F32, 2, (int64_t[]){ 1024, 1024 }, NULL);   /* 4 MiB */
    tg_tensor_requires_grad(x);
    tg_tensor *y = tg_tanh(tape, x);
    tg_tensor *z = tg_tanh(tape, y);     /* would need 8 MiB of tape */
    ck_assert_ptr_null(z);
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NOMEM);
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(tape), "out of memory"));
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, z)), TG_ERR_NOMEM);
    /* the limit also covers gradient buffers made during backward */
    tg_tape_reset(tape);
    tg_tape_set_memory_limit(tape, 0);
    ck_assert_ptr_nonnull(tg_tanh(tape, tg_tanh(tape, x)));
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST

static void count_gate_calls(void *user, const char *name, const tg_tensor *t)
{
    ck_assert_str_eq(name, "gate");
    ck_assert_int_eq(t->numel, 2);
    (*(int *)user)++;
}

START_TEST(test_observer_sees_named_steps)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = mk(TG_F32, 1, (int64_t[]){ 2 }, (double[]){ 0, 1 });
    int calls = 0;
    tg_name(tape, x, "ignored");          /* no observer: nothing happens */
    tg_tape_set_observer(tape, count_gate_calls, &calls);
    ck_assert_ptr_eq(tg_name(tape, x, "gate"), x);
    ck_assert_ptr_null(tg_name(tape, NULL, "gate"));
    ck_assert_int_eq(calls, 1);
    tg_tensor_free(x);
    tg_tape_free(tape);
}
END_TEST


/* ---- determinism: any thread count gives the same bits ------------------------------------------ */
static void run_chain(int threads, tg_tensor *w, tg_tensor *x, float *out, float *grad)
{
#ifdef _OPENMP
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
    tg_tape *tape = tg_tape_new();
    tg_tensor_zero_grad(w);
    tg_tensor *h = tg_sigmoid(tape, tg_matmul(tape, x, w));
    tg_tensor *s = tg_softmax(tape, tg_mul(tape, h, tg_tanh(tape, h)));
    tg_tensor *loss = tg_cross_entropy(tape, tg_log(tape, tg_add_scalar(tape, s, 1)),
                                       (int32_t[512]){ 0 });
    ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
    memcpy(out, s->data, (size_t)s->numel * sizeof(float));
    memcpy(grad, w->grad, (size_t)w->numel * sizeof(float));
    tg_tape_free(tape);
}

START_TEST(test_thread_count_determinism)
{
    tg_rng r;
    tg_rng_seed(&r, 3);
    tg_tensor *w = mk(TG_F32, 2, (int64_t[]){ 300, 400 }, NULL);
    tg_tensor *x = mk(TG_F32, 2, (int64_t[]){ 512, 300 }, NULL);
    tg_tensor_fill_uniform(w, &r, -0.1, 0.1);
    tg_tensor_fill_uniform(x, &r, -1, 1);
    tg_tensor_requires_grad(w);
    size_t n = 512 * 400;
    float *o1 = malloc(n * 4), *o2 = malloc(n * 4), *g1 = malloc(n * 4), *g2 = malloc(n * 4);
    run_chain(1, w, x, o1, g1);
    run_chain(2, w, x, o2, g2);
    ck_assert_int_eq(memcmp(o1, o2, n * 4), 0);
    ck_assert_int_eq(memcmp(g1, g2, 300 * 400 * 4), 0);
    free(o1); free(o2); free(g1); free(g2);
    tg_tensor_free(w);
    tg_tensor_free(x);
}
END_TEST

Suite *ops_suite(void)
{
    Suite *s = suite_create("ops");
    TCase *fw = tcase_create("forward");
    tcase_add_test(fw, test_unary_forward_known_values);
    tcase_add_test(fw, test_sigmoid_tanh_saturate_finite);
    tcase_add_test(fw, test_vectorised_float_math_accuracy);
    tcase_add_test(fw, test_binary_broadcast_forward);
    tcase_add_test(fw, test_matmul_forward_known);
    tcase_add_test(fw, test_shape_ops_forward);
    tcase_add_test(fw, test_reductions_forward);
    tcase_add_test(fw, test_softmax_and_cross_entropy_forward);
    tcase_add_test(fw, test_cross_entropy_extreme_logits_finite);
    tcase_add_test(fw, test_embedding_repeated_indices_accumulate);
    tcase_add_test(fw, test_dropout);
    suite_add_tcase(s, fw);

    TCase *gc = tcase_create("gradcheck");
    tcase_set_timeout(gc, 60);
    tcase_add_test(gc, test_unary_gradcheck_table);
    tcase_add_test(gc, test_binary_gradcheck_table_broadcasting);
    tcase_add_test(gc, test_same_tensor_both_operands);
    tcase_add_test(gc, test_matmul_affine_transpose_gradcheck);
    tcase_add_test(gc, test_gate_op_matches_composition);
    tcase_add_test(gc, test_matmul_f32_f64_agree_odd_shapes);
    tcase_add_test(gc, test_shape_ops_gradcheck);
    tcase_add_test(gc, test_reduce_softmax_ce_embedding_gradcheck);
    suite_add_tcase(s, gc);

    TCase *ag = tcase_create("autograd");
    tcase_set_timeout(ag, 60);
    tcase_add_test(ag, test_fanout_and_repeated_backward_accumulate);
    tcase_add_test(ag, test_constants_get_no_gradient);
    tcase_add_test(ag, test_nodes_off_the_loss_path_are_skipped);
    tcase_add_test(ag, test_backward_from_two_losses_on_one_tape);
    tcase_add_test(ag, test_repeated_backward_with_many_gradient_sizes);
    tcase_add_test(ag, test_fresh_gradients_gradcheck);
    tcase_add_test(ag, test_dead_gradient_columns_gradcheck);
    tcase_add_test(ag, test_dead_gradient_columns_same_bits);
    tcase_add_test(ag, test_dead_gradient_columns_late_requires_grad);
    tcase_add_test(ag, test_gradient_buffers_are_recycled);
    tcase_add_test(ag, test_grad_disabled_records_nothing);
    tcase_add_test(ag, test_errors_are_sticky_and_clear_on_reset);
    tcase_add_test(ag, test_null_in_null_out);
    tcase_add_test(ag, test_every_op_rejects_bad_shapes_and_args);
    tcase_add_test(ag, test_backward_rejects_non_scalar);
    tcase_add_test(ag, test_reset_reuses_memory_no_malloc);
    tcase_add_test(ag, test_large_allocations_grow_chunks);
    tcase_add_test(ag, test_memory_limit_gives_nomem);
    tcase_add_test(ag, test_observer_sees_named_steps);
    tcase_add_test(ag, test_thread_count_determinism);
    suite_add_tcase(s, ag);
    return s;
}
