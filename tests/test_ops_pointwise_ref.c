/* tests/test_ops_pointwise_ref.c: sqrt, rsqrt, pow, abs, clamp, softplus, maximum, minimum and
   where against PyTorch's values and gradients (tests/ref/pointwise_ref.h), float64 against
   torch's float64 and float32 against torch's float32, edges included (inf, NaN, signed
   zeros); a float64 gradient check of every smooth case. TG_TEST_VERBOSE=1 prints each case's
   deviations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/ops_harness.h"
#include "tests/ref/pointwise_ref.h"
#include "tests/tests.h"

/* The case's op applied to in[0..nin-1] with its scalars. */
static tg_tensor *apply(tg_tape *t, const pwref_case *c, tg_tensor **in)
{
    const char *op = c->op;
    if (strcmp(op, "sqrt") == 0)
        return tg_sqrt(t, in[0]);
    if (strcmp(op, "rsqrt") == 0)
        return tg_rsqrt(t, in[0]);
    if (strcmp(op, "pow") == 0)
        return tg_pow(t, in[0], c->s);
    if (strcmp(op, "abs") == 0)
        return tg_abs(t, in[0]);
    if (strcmp(op, "clamp") == 0)
        return tg_clamp(t, in[0], c->s, c->s2);
    if (strcmp(op, "softplus") == 0)
        return tg_softplus(t, in[0]);
    if (strcmp(op, "maximum") == 0)
        return tg_maximum(t, in[0], in[1]);
    if (strcmp(op, "minimum") == 0)
        return tg_minimum(t, in[0], in[1]);
    if (strcmp(op, "where") == 0)
        return tg_where(t, in[0], in[1], in[2]);
    ck_abort_msg("no test for op %s", op);
    return NULL;
}

/* The case's inputs as new tensors of dtype dt; those with a reference gradient require
   one (where's mask does not). */
static void make_inputs(const pwref_case *c, tg_dtype dt, tg_tensor **in)
{
    for (int i = 0; i < c->nin; i++) {
        in[i] = mk(dt, c->ndim[i], c->shape[i], c->in[i]);
        if (c->grad[0][i])
            ck_assert_int_eq(tg_tensor_requires_grad(in[i]), TG_OK);
    }
}

/* |got - want| / max(1, |want|); an infinite or NaN reference must be matched exactly (the
   same infinity, or NaN), else the deviation is infinite. */
static double deviation(double got, double want)
{
    if (isnan(want) || isinf(want))
        return (isnan(want) && isnan(got)) || got == want ? 0 : INFINITY;
    return fabs(got - want) / fmax(1.0, fabs(want));
}

static double element(const tg_tensor *t, const void *buf, int64_t i)
{
    return t->dtype == TG_F64 ? ((const double *)buf)[i] : (double)((const float *)buf)[i];
}

/* loss = sum(op(in) * r); its output deviation from the reference into *dev. */
static tg_tensor *ref_loss(tg_tape *t, const pwref_case *c, tg_tensor **in, int d,
                           double *dev)
{
    tg_tensor *y = apply(t, c, in);
    if (!y)
        return NULL;
    ck_assert_int_eq(y->numel, c->nout);
    tg_tensor *r = tg_tape_tensor(t, y->dtype, y->ndim, y->shape);
    if (!r)
        return NULL;
    tg_tensor_fill_values(r, c->r);
    for (int64_t i = 0; dev && i < y->numel; i++) {
        double e = deviation(element(y, y->data, i), c->out[d][i]);
        ck_assert_msg(e < INFINITY, "%s: out[%lld] = %g, torch %g", c->op, (long long)i,
                      element(y, y->data, i), c->out[d][i]);
        *dev = fmax(*dev, e);
    }
    return tg_sum(t, tg_mul(t, y, r));
}

/* Values and gradients in dtype d (0: float64, 1: float32) against torch's; returns the
   largest deviation. */
static double compare_case(const pwref_case *c, int d)
{
    tg_tensor *in[3] = { NULL, NULL, NULL };
    make_inputs(c, d ? TG_F32 : TG_F64, in);
    tg_tape *t = tg_tape_new();
    double dev = 0;
    tg_tensor *loss = ref_loss(t, c, in, d, &dev);
    ck_assert_msg(tg_backward(t, loss) == TG_OK, "%s: %s", c->op, tg_tape_errmsg(t));
    for (int i = 0; i < c->nin; i++) {
        if (!c->grad[d][i]) {
            ck_assert_ptr_null(in[i]->grad);
            continue;
        }
        for (int64_t k = 0; k < in[i]->numel; k++) {
            double got = element(in[i], in[i]->grad, k), e = deviation(got, c->grad[d][i][k]);
            ck_assert_msg(e < INFINITY, "%s: grad %d [%lld] = %g, torch %g", c->op, i,
                          (long long)k, got, c->grad[d][i][k]);
            dev = fmax(dev, e);
        }
    }
    tg_tape_free(t);
    free_all(in, c->nin);
    return dev;
}

typedef struct gc_user {
    const pwref_case *c;
    tg_tensor **in;
} gc_user;

static tg_tensor *gc_loss(tg_tape *t, void *user)
{
    gc_user *u = user;
    return ref_loss(t, u->c, u->in, 0, NULL);
}

/* tg_gradcheck (its default rule) over the inputs that have a gradient; the worst error. */
static double gradcheck_ref_case(const pwref_case *c)
{
    tg_tensor *in[3] = { NULL, NULL, NULL }, *checked[3];
    int n = 0;
    make_inputs(c, TG_F64, in);
    for (int i = 0; i < c->nin; i++)
        if (c->grad[0][i])
            checked[n++] = in[i];
    gc_user u = { c, in };
    tg_gradcheck_result res;
    ck_assert_int_eq(tg_gradcheck(checked, n, gc_loss, &u, NULL, &res, NULL), TG_OK);
    ck_assert_msg(res.passed, "%s: worst rel err %.3g at input %d [%lld]: analytic %.12g "
                  "numeric %.12g", c->op, res.max_rel_err, res.worst_tensor,
                  (long long)res.worst_index, res.analytic, res.numeric);
    free_all(in, c->nin);
    return res.max_rel_err;
}

START_TEST(test_pointwise_ref_case)
{
    const pwref_case *c = &pwref_cases[_i];
    double d64 = compare_case(c, 0), d32 = compare_case(c, 1);
    double gc = c->smooth ? gradcheck_ref_case(c) : 0;
    if (getenv("TG_TEST_VERBOSE"))
        printf("pwref %-8s case %2d s %-6g s2 %-6g torch dev f64 %.2e f32 %.2e gradcheck "
               "%.2e\n", c->op, _i, c->s, c->s2, d64, d32, gc);
    ck_assert_msg(d64 <= 1e-15, "%s case %d: f64 deviates from torch by %.3g", c->op, _i, d64);
    ck_assert_msg(d32 <= 1e-6, "%s case %d: f32 deviates from torch by %.3g", c->op, _i, d32);
}
END_TEST

Suite *ops_pointwise_ref_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("torch", 0),
        TG_LOOP(test_pointwise_ref_case, PWREF_NCASES),
    };
    return TG_TEST_SUITE("ops_pointwise_ref", rows);
}
