/* tests/test_ops_ref.c: the second wave's dim, norm, shape and loss ops against PyTorch's
   values and gradients (tests/ref/ops_ref.h), in float64 and float32, plus a float64
   gradient check of each case. TG_TEST_VERBOSE=1 prints each case's errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/ref/ops_ref.h"
#include "tests/tests.h"

enum { MAX_OUT = 8 };

/* Applies the case's op to in (absent inputs NULL); its outputs go to out[], their count
   is returned (0 on failure). */
typedef int (*ref_build)(tg_tape *t, const opsref_case *c, tg_tensor **in, tg_tensor **out);

static int b_mean_dim(tg_tape *t, const opsref_case *c, tg_tensor **in, tg_tensor **out)
{
    return (out[0] = tg_mean_dim(t, in[0], c->iarg[0])) != NULL;
}
static int b_var_dim(tg_tape *t, const opsref_case *c, tg_tensor **in, tg_tensor **out)
{
    return (out[0] = tg_var_dim(t, in[0], c->iarg[0], c->iarg[1])) != NULL;
}
static int b_max_dim(tg_tape *t, const opsref_case *c, tg_tensor **in, tg_tensor **out)
{
    return (out[0] = tg_max_dim(t, in[0], c->iarg[0])) != NULL;
}
static int b_lse_dim(tg_tape *t, const opsref_case *c, tg_tensor **in, tg_tensor **out)
{
    return (out[0] = tg_logsumexp_dim(t, in[0], c->iarg[0])) != NULL;
}
static int b_layer_norm(tg_tape *t, const opsref_case *c, tg_tensor **in, tg_tensor **out)
{
    return (out[0] = tg_layer_norm(t, in[0], in[1], in[2], c->darg)) != NULL;
}
static int b_mse_loss(tg_tape *t, const opsref_case *c, tg_tensor **in, tg_tensor **out)
{
    (void)c;
    return (out[0] = tg_mse_loss(t, in[0], in[1])) != NULL;
}

static int b_stack(tg_tape *t, const opsref_case *c, tg_tensor **in, tg_tensor **out)
{
    return (out[0] = tg_stack(t, in, c->nin, c->iarg[0])) != NULL;
}
static int b_chunk(tg_tape *t, const opsref_case *c, tg_tensor **in, tg_tensor **out)
{
    ck_assert_int_le(c->iarg[1], MAX_OUT);
    return tg_chunk(t, in[0], c->iarg[1], c->iarg[0], out) == TG_OK ? c->iarg[1] : 0;
}
static int b_flip(tg_tape *t, const opsref_case *c, tg_tensor **in, tg_tensor **out)
{
    return (out[0] = tg_flip(t, in[0], c->iarg[0])) != NULL;
}
static int b_bmm(tg_tape *t, const opsref_case *c, tg_tensor **in, tg_tensor **out)
{
    (void)c;
    return (out[0] = tg_bmm(t, in[0], in[1])) != NULL;
}

static const struct { const char *op; ref_build build; } builders[] = {
    { "mean_dim", b_mean_dim }, { "var_dim", b_var_dim }, { "max_dim", b_max_dim },
    { "logsumexp_dim", b_lse_dim }, { "layer_norm", b_layer_norm }, { "mse_loss", b_mse_loss },
    { "stack", b_stack }, { "chunk", b_chunk }, { "flip", b_flip }, { "bmm", b_bmm },
};

static ref_build find_builder(const char *op)
{
    for (size_t i = 0; i < sizeof builders / sizeof builders[0]; i++)
        if (strcmp(builders[i].op, op) == 0)
            return builders[i].build;
    return NULL;
}

/* The case's inputs as new tensors of dtype dt that require grad (absent ones NULL). */
static void make_inputs(const opsref_case *c, tg_dtype dt, tg_tensor **in)
{
    for (int i = 0; i < 3; i++) {
        in[i] = NULL;
        if (i >= c->nin || !c->in[i])
            continue;
        in[i] = tg_tensor_new(dt, c->ndim[i], c->shape[i]);
        ck_assert_ptr_nonnull(in[i]);
        tg_tensor_fill_values(in[i], c->in[i]);
        ck_assert_int_eq(tg_tensor_requires_grad(in[i]), TG_OK);
    }
}

static void free_inputs(tg_tensor **in)
{
    for (int i = 0; i < 3; i++)
        tg_tensor_free(in[i]);
}

/* loss = sum_k sum(out_k * r_k), r the case's weights laid over the outputs in order. Also
   the largest |out - reference| / max(1, |reference|) into *dev when dev is not NULL. */
static tg_tensor *ref_loss(tg_tape *t, const opsref_case *c, tg_tensor **in, double *dev)
{
    tg_tensor *out[MAX_OUT];
    int nout = find_builder(c->op)(t, c, in, out);
    tg_tensor *loss = NULL;
    int64_t off = 0;
    for (int k = 0; k < nout; k++) {
        tg_tensor *r = tg_tape_tensor(t, out[k]->dtype, out[k]->ndim, out[k]->shape);
        if (!r)
            return NULL;
        ck_assert_int_le(off + out[k]->numel, c->nout);
        tg_tensor_fill_values(r, c->r + off);
        for (int64_t i = 0; dev && i < out[k]->numel; i++) {
            double want = c->out[off + i], e = fabs(tg_tensor_get(out[k], i) - want);
            *dev = fmax(*dev, e / fmax(1.0, fabs(want)));
        }
        off += out[k]->numel;
        tg_tensor *term = tg_sum(t, tg_mul(t, out[k], r));
        loss = loss ? tg_add(t, loss, term) : term;
    }
    if (nout > 0)
        ck_assert_int_eq(off, c->nout);
    return loss;
}

typedef struct gc_user {
    const opsref_case *c;
    tg_tensor **in;
} gc_user;

static tg_tensor *gc_loss(tg_tape *t, void *user)
{
    gc_user *u = user;
    return ref_loss(t, u->c, u->in, NULL);
}

/* Forward values and every gradient against the reference; returns the worst deviation. */
static double compare_case(const opsref_case *c, tg_dtype dt)
{
    tg_tensor *in[3];
    make_inputs(c, dt, in);
    tg_tape *t = tg_tape_new();
    double dev = 0;
    tg_tensor *loss = ref_loss(t, c, in, &dev);
    ck_assert_msg(tg_backward(t, loss) == TG_OK, "%s: %s", c->op, tg_tape_errmsg(t));
    for (int i = 0; i < c->nin; i++) {
        if (!in[i])
            continue;
        for (int64_t k = 0; k < in[i]->numel; k++) {
            double want = c->grad[i][k];
            double got = dt == TG_F64 ? ((double *)in[i]->grad)[k] : ((float *)in[i]->grad)[k];
            dev = fmax(dev, fabs(got - want) / fmax(1.0, fabs(want)));
        }
    }
    tg_tape_free(t);
    free_inputs(in);
    return dev;
}

static double gradcheck_ref_case(const opsref_case *c)
{
    tg_tensor *in[3], *checked[3];
    int n = 0;
    make_inputs(c, TG_F64, in);
    for (int i = 0; i < 3; i++)
        if (in[i])
            checked[n++] = in[i];
    gc_user u = { c, in };
    /* a step relative to the inputs' scale: layer norm with eps 1e-5 bends on a scale of
       sqrt(eps) near a constant row, where the default step's truncation error would
       exceed the tolerance, while inputs of +-50 want a larger step against rounding */
    double scale = 1;
    for (int i = 0; i < n; i++)
        for (int64_t k = 0; k < checked[i]->numel; k++)
            scale = fmax(scale, fabs(((double *)checked[i]->data)[k]));
    tg_gradcheck_opts opts = { .eps = 1e-6 * scale, .tolerance = 1e-6 };
    tg_gradcheck_result res;
    tg_status st = tg_gradcheck(checked, n, gc_loss, &u, &opts, &res, NULL);
    ck_assert_msg(st == TG_OK, "%s: gradcheck could not run: %s", c->op, tg_status_str(st));
    ck_assert_msg(res.passed, "%s: worst rel err %.3g at input %d [%lld]: analytic %.12g "
                  "numeric %.12g", c->op, res.max_rel_err, res.worst_tensor,
                  (long long)res.worst_index, res.analytic, res.numeric);
    free_inputs(in);
    return res.max_rel_err;
}

START_TEST(test_ref_case)
{
    const opsref_case *c = &opsref_cases[_i];
    ck_assert_msg(find_builder(c->op), "no test builder for op %s", c->op);
    double d64 = compare_case(c, TG_F64), d32 = compare_case(c, TG_F32);
    double gc = c->smooth ? gradcheck_ref_case(c) : 0;
    if (getenv("TG_TEST_VERBOSE"))
        printf("ref %-14s case %2d  torch dev f64 %.2e  f32 %.2e  gradcheck %.2e\n", c->op,
               _i, d64, d32, gc);
    ck_assert_msg(d64 <= 1e-12, "%s case %d: f64 deviates from torch by %.3g", c->op, _i, d64);
    ck_assert_msg(d32 <= 2e-5, "%s case %d: f32 deviates from torch by %.3g", c->op, _i, d32);
}
END_TEST

START_TEST(test_ref_one_hot)
{
    tg_tape *t = tg_tape_new();
    for (int d = 0; d < 2; d++) {
        tg_tensor *y = tg_one_hot(t, d ? TG_F64 : TG_F32, opsref_one_hot_idx, OPSREF_ONE_HOT_N,
                                  OPSREF_ONE_HOT_CLASSES);
        ck_assert_ptr_nonnull(y);
        ck_assert_int_eq(y->dtype, d ? TG_F64 : TG_F32);
        ck_assert_int_eq(y->shape[0], OPSREF_ONE_HOT_N);
        ck_assert_int_eq(y->shape[1], OPSREF_ONE_HOT_CLASSES);
        for (int64_t i = 0; i < y->numel; i++)
            ck_assert(tg_tensor_get(y, i) == opsref_one_hot_out[i]);
    }
    tg_tape_free(t);
}
END_TEST

Suite *ops_ref_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("torch", 0),
        TG_LOOP(test_ref_case, OPSREF_NCASES),
        TG_TEST(test_ref_one_hot),
    };
    return TG_TEST_SUITE("ops_ref", rows);
}
