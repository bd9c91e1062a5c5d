/* tests/test_custom.c: tg_custom: values, gradient checks, the tape's backward protocol
   (fresh and recycled gradient buffers, leading-column gradients, queued weight
   gradients), a straight-through estimator that trains, and every error path. */
#include <string.h>

#include "tests/ops_harness.h"
#include "tests/tests.h"

/* Element i of a tensor's data, and adding to it, in either dtype. */
static double at(const tg_tensor *t, int64_t i)
{
    return t->dtype == TG_F64 ? ((const double *)t->data)[i] : ((const float *)t->data)[i];
}

static void add_at(tg_tensor *t, int64_t i, double v)
{
    if (t->dtype == TG_F64)
        ((double *)t->data)[i] += v;
    else
        ((float *)t->data)[i] += (float)v;
}

/* How often the callbacks ran, and which din were NULL in the last backward. */
typedef struct calls {
    int forward, backward;
    bool din_null[4];
} calls;

/* ---- mul_exp: y = a * b + e^a, elementwise (one shape) ------------------------------------
 * da += dy * (b + e^a)     db += dy * a
 */
static void mul_exp_forward(void *ctx, const tg_tensor *const *in, int nin, tg_tensor *out)
{
    (void)nin;
    ((calls *)ctx)->forward++;
    for (int64_t i = 0; i < out->numel; i++)
        add_at(out, i, at(in[0], i) * at(in[1], i) + exp(at(in[0], i)));
}

static void mul_exp_backward(void *ctx, const tg_tensor *const *in, int nin,
                             const tg_tensor *out, const tg_tensor *dout,
                             tg_tensor *const *din)
{
    calls *c = ctx;
    c->backward++;
    for (int i = 0; i < nin; i++)
        c->din_null[i] = din[i] == NULL;
    for (int64_t i = 0; i < out->numel; i++) {
        double a = at(in[0], i), b = at(in[1], i), g = at(dout, i);
        if (din[0])
            add_at(din[0], i, g * (b + exp(a)));
        if (din[1])
            add_at(din[1], i, g * a);
    }
}

static const tg_custom_op mul_exp_op = { "mul_exp", mul_exp_forward, mul_exp_backward };

static tg_tensor *mul_exp(tg_tape *t, tg_tensor *a, tg_tensor *b, calls *c)
{
    tg_tensor *in[2] = { a, b };
    return tg_custom(t, &mul_exp_op, in, 2, a->ndim, a->shape, c);
}

/* ---- double_it: y = 2 (x_0 + ... + x_{n-1}), one shape (what tg_scale(x, 2n) computes
   when every input is x) -------------------------------------------------------------------- */
static void double_forward(void *ctx, const tg_tensor *const *in, int nin, tg_tensor *out)
{
    (void)ctx;
    for (int k = 0; k < nin; k++)
        for (int64_t i = 0; i < out->numel; i++)
            add_at(out, i, 2 * at(in[k], i));
}

static void double_backward(void *ctx, const tg_tensor *const *in, int nin,
                            const tg_tensor *out, const tg_tensor *dout, tg_tensor *const *din)
{
    (void)ctx, (void)in, (void)out;
    for (int k = 0; k < nin; k++)
        for (int64_t i = 0; din[k] && i < dout->numel; i++)
            add_at(din[k], i, 2 * at(dout, i));
}

static const tg_custom_op double_op = { "double_it", double_forward, double_backward };

static tg_tensor *double_it(tg_tape *t, tg_tensor *x, bool custom)
{
    return custom ? tg_custom(t, &double_op, &x, 1, x->ndim, x->shape, NULL)
                  : tg_scale(t, x, 2.0);
}

START_TEST(test_custom_values_and_gradients_match_composition)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        double tol = d ? 1e-14 : 1e-5;
        int64_t shp[2] = { 2, 3 };
        tg_tensor *a = mk(dt, 2, shp, (double[]){ 0.1, -0.5, 1.2, 0.3, 2.0, -1.0 });
        tg_tensor *b = mk(dt, 2, shp, (double[]){ 1.0, 0.5, -0.2, 0.7, -1.5, 0.4 });
        tg_tensor *w = mk(dt, 2, shp, (double[]){ 0.3, -0.1, 0.8, 0.5, -0.6, 0.2 });
        tg_tensor_requires_grad(a);
        tg_tensor_requires_grad(b);
        double ga[2][6], gb[2][6], y[2][6];
        calls c = { 0 };
        for (int custom = 0; custom < 2; custom++) {
            tg_tape *t = tg_tape_new();
            tg_tensor_zero_grad(a);
            tg_tensor_zero_grad(b);
            tg_tensor *out = custom ? mul_exp(t, a, b, &c)
                                    : tg_add(t, tg_mul(t, a, b), tg_exp(t, a));
            ck_assert_int_eq(tg_backward(t, tg_sum(t, tg_mul(t, out, w))), TG_OK);
            for (int i = 0; i < 6; i++) {
                y[custom][i] = tg_tensor_get(out, i);
                ga[custom][i] = dt == TG_F64 ? ((double *)a->grad)[i] : ((float *)a->grad)[i];
                gb[custom][i] = dt == TG_F64 ? ((double *)b->grad)[i] : ((float *)b->grad)[i];
            }
            tg_tape_free(t);
        }
        ck_assert_int_eq(c.forward, 1);
        ck_assert_int_eq(c.backward, 1);
        for (int i = 0; i < 6; i++) {
            ck_close(y[1][i], y[0][i], tol);
            ck_close(ga[1][i], ga[0][i], tol);
            ck_close(gb[1][i], gb[0][i], tol);
        }
        tg_tensor_free(a);
        tg_tensor_free(b);
        tg_tensor_free(w);
    }
}
END_TEST

/* din[i] is NULL for an input without gradient; with gradients off there is no node. */
START_TEST(test_custom_din_null_and_no_grad)
{
    int64_t shp[1] = { 3 };
    tg_tensor *a = mk(TG_F64, 1, shp, (double[]){ 1, 2, 3 });
    tg_tensor *b = mk(TG_F64, 1, shp, (double[]){ 4, 5, 6 });   /* no gradient */
    tg_tensor_requires_grad(a);
    tg_tape *t = tg_tape_new();
    calls c = { 0 };
    tg_tensor *y = mul_exp(t, a, b, &c);
    ck_assert(y->flags & TG_FLAG_REQUIRES_GRAD);
    ck_assert_int_eq(tg_backward(t, tg_sum(t, y)), TG_OK);
    ck_assert_int_eq(c.backward, 1);
    ck_assert(!c.din_null[0] && c.din_null[1]);
    for (int i = 0; i < 3; i++)
        ck_close(((double *)a->grad)[i], (double)(4 + i) + exp(1.0 + i), 1e-12);
    /* no input needs a gradient: the result needs none, backward is refused */
    tg_tape_reset(t);
    tg_tensor *z = mul_exp(t, b, b, &c);
    ck_assert_ptr_nonnull(z);
    ck_assert(!(z->flags & TG_FLAG_REQUIRES_GRAD));
    /* inference mode: forward runs, nothing is recorded */
    tg_tape_reset(t);
    tg_tape_set_grad_enabled(t, false);
    ck_assert_ptr_nonnull(mul_exp(t, a, b, &c));
    ck_assert_int_eq(c.forward, 3);
    ck_assert_int_eq(c.backward, 1);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tape_free(t);
}
END_TEST

typedef struct gc_user {
    tg_tensor *a, *b, *w;
    calls c;
} gc_user;

static tg_tensor *gc_loss(tg_tape *t, void *user)
{
    gc_user *u = user;
    tg_tensor *y = mul_exp(t, tg_tanh(t, u->a), u->b, &u->c);
    return tg_sum(t, tg_mul(t, mul_exp(t, y, u->b, &u->c), u->w));
}

START_TEST(test_custom_gradcheck)
{
    int64_t shp[2] = { 3, 4 };
    tg_rng r;
    tg_rng_seed(&r, 5);
    gc_user u = { mk(TG_F64, 2, shp, NULL), mk(TG_F64, 2, shp, NULL), mk(TG_F64, 2, shp, NULL),
                  { 0 } };
    tg_tensor_fill_uniform(u.a, &r, -1, 1);
    tg_tensor_fill_uniform(u.b, &r, -1, 1);
    tg_tensor_fill_uniform(u.w, &r, -1, 1);
    tg_tensor_requires_grad(u.a);
    tg_tensor_requires_grad(u.b);
    tg_tensor *ts[] = { u.a, u.b };
    tg_gradcheck_result res;
    ck_assert_int_eq(tg_gradcheck(ts, 2, gc_loss, &u, NULL, &res, NULL), TG_OK);
    ck_assert_msg(res.passed, "worst rel err %.3g", res.max_rel_err);
    ck_assert_int_gt(u.c.backward, 0);
    tg_tensor_free(u.a);
    tg_tensor_free(u.b);
    tg_tensor_free(u.w);
}
END_TEST

/* The custom op inside the backward protocol: h = tanh(p) read by custom ops and by
   products, the newest of which overwrites h's stale gradient before the custom ops add to
   it, while a chain's inner results reach a custom op stale (zeroed first); a concat with a
   constant trailing part (leading-column gradients); a chain of custom ops (recycled
   buffers); h given twice; a caller-owned weight whose gradient is queued. Every gradient
   must equal the same graph built with tg_scale(x, 2). */
static void protocol_graph(bool custom, tg_tensor *p, tg_tensor *w, tg_tensor *onehot,
                           double *gp, double *gw)
{
    tg_tape *t = tg_tape_new();
    tg_tensor_zero_grad(p);
    tg_tensor_zero_grad(w);
    tg_tensor *h = tg_tanh(t, p);                                   /* (2,3) */
    tg_tensor *first = tg_matmul(t, h, w);                          /* (2,3) */
    tg_tensor *d = double_it(t, h, custom);
    tg_tensor *comb = tg_concat(t, h, onehot, -1);                  /* (2,5), lead 3 */
    tg_tensor *dc = double_it(t, comb, custom);
    tg_tensor *pc = tg_matmul(t, comb, tg_tape_tensor(t, TG_F64, 2, (int64_t[]){ 5, 2 }));
    tg_tensor *chain = double_it(t, double_it(t, double_it(t, h, custom), custom), custom);
    tg_tensor *hh[2] = { h, h };
    tg_tensor *twice = custom ? tg_custom(t, &double_op, hh, 2, 2, h->shape, NULL)
                              : tg_scale(t, h, 4.0);
    tg_tensor *after = tg_matmul(t, h, w);   /* runs backward first: overwrites dh */
    tg_tensor *terms[] = { first, d, after, tg_slice(t, dc, 1, 0, 4), pc, chain, twice };
    tg_tensor *loss = NULL;
    for (int k = 0; k < 7; k++) {
        tg_tensor *s = tg_sum(t, tg_mul(t, terms[k], tg_tanh(t, terms[k])));
        loss = loss ? tg_add(t, loss, s) : s;
    }
    ck_assert_msg(tg_backward(t, loss) == TG_OK, "%s", tg_tape_errmsg(t));
    memcpy(gp, p->grad, 6 * sizeof *gp);
    memcpy(gw, w->grad, 9 * sizeof *gw);
    tg_tape_free(t);
}

START_TEST(test_custom_in_backward_protocol)
{
    tg_tensor *p = mk(TG_F64, 2, (int64_t[]){ 2, 3 }, (double[]){ 0.1, -0.4, 0.7, 0.2, 0.9, -1 });
    tg_tensor *w = mk(TG_F64, 2, (int64_t[]){ 3, 3 },
                      (double[]){ 0.5, -0.2, 0.1, 0.3, 0.8, -0.6, -0.4, 0.2, 0.7 });
    tg_tensor *onehot = mk(TG_F64, 2, (int64_t[]){ 2, 2 }, (double[]){ 1, 0, 0, 1 });
    tg_tensor_requires_grad(p);
    tg_tensor_requires_grad(w);
    double gp[2][6], gw[2][9];
    protocol_graph(false, p, w, onehot, gp[0], gw[0]);
    protocol_graph(true, p, w, onehot, gp[1], gw[1]);
    for (int i = 0; i < 6; i++)
        ck_close(gp[1][i], gp[0][i], 1e-13);
    for (int i = 0; i < 9; i++)
        ck_close(gw[1][i], gw[0][i], 1e-13);
    tg_tensor_free(p);
    tg_tensor_free(w);
    tg_tensor_free(onehot);
}
END_TEST

/* ---- the straight-through estimator of the README --------------------------------------- */
static void ste_forward(void *ctx, const tg_tensor *const *in, int nin, tg_tensor *out)
{
    (void)ctx, (void)nin;
    const float *x = in[0]->data;
    float *y = out->data;
    for (int64_t i = 0; i < out->numel; i++)
        y[i] = x[i] >= 0 ? 1.0f : -1.0f;
}

static void ste_backward(void *ctx, const tg_tensor *const *in, int nin, const tg_tensor *out,
                         const tg_tensor *dout, tg_tensor *const *din)
{
    (void)ctx, (void)nin, (void)out;
    const float *x = in[0]->data, *g = dout->data;
    float *dx = din[0]->data;
    for (int64_t i = 0; i < dout->numel; i++)
        dx[i] += fabsf(x[i]) <= 1 ? g[i] : 0;   /* pass the gradient through where |x| <= 1 */
}

static const tg_custom_op ste_op = { "sign_ste", ste_forward, ste_backward };

START_TEST(test_custom_straight_through_estimator_trains)
{
    int64_t n = 8;
    tg_tensor *w = mk(TG_F32, 1, &n, (double[]){ 0.3, -0.2, 0.1, 0.05, -0.4, 0.2, -0.1, 2.0 });
    tg_tensor *target = mk(TG_F32, 1, &n, (double[]){ -1, 1, -1, 1, 1, -1, -1, 1 });
    tg_tensor_requires_grad(w);
    tg_tape *t = tg_tape_new();
    double loss0 = -1, loss = -1;
    for (int step = 0; step < 20; step++) {
        tg_tape_reset(t);
        tg_tensor *q = tg_custom(t, &ste_op, &w, 1, 1, &n, NULL);
        tg_tensor *l = tg_mse_loss(t, q, target);
        tg_tensor_zero_grad(w);
        ck_assert_int_eq(tg_backward(t, l), TG_OK);
        loss = tg_tensor_get(l, 0);
        if (step == 0)
            loss0 = loss;
        for (int64_t i = 0; i < n; i++)
            ((float *)w->data)[i] -= 0.5f * ((float *)w->grad)[i];
    }
    ck_assert(loss0 > 1);           /* 5 of 8 signs wrong: 5 * 4 / 8 */
    ck_assert(loss == 0);           /* every sign learnt */
    ck_assert_str_eq(tg_tape_errmsg(t), "");
    tg_tensor_free(w);
    tg_tensor_free(target);
    tg_tape_free(t);
}
END_TEST

START_TEST(test_custom_error_paths)
{
    tg_tape *t = tg_tape_new();
    tg_tensor *a = mk(TG_F32, 1, (int64_t[]){ 3 }, NULL);
    tg_tensor *d = mk(TG_F64, 1, (int64_t[]){ 3 }, NULL);
    int64_t shp[1] = { 3 };
    tg_tensor *in2[2] = { a, d }, *innull[2] = { a, NULL };
    tg_custom_op no_fwd = { "nofwd", NULL, double_backward };
    tg_custom_op no_bwd = { "nobwd", double_forward, NULL };
    tg_custom_op unnamed = { NULL, double_forward, double_backward };
    tg_tensor *many[TG_CUSTOM_MAX_IN + 1];
    for (int i = 0; i <= TG_CUSTOM_MAX_IN; i++)
        many[i] = a;
#define CASE(call, status, text)                                                       \
    do {                                                                               \
        tg_tape_reset(t);                                                              \
        ck_assert_ptr_null(call);                                                      \
        ck_assert_int_eq(tg_tape_status(t), status);                                   \
        ck_assert_str_eq(tg_tape_errmsg(t), text);                                     \
    } while (0)
    CASE(tg_custom(t, NULL, &a, 1, 1, shp, NULL), TG_ERR_NULL, "custom: op is NULL");
    CASE(tg_custom(t, &no_fwd, &a, 1, 1, shp, NULL), TG_ERR_NULL, "nofwd: op->forward is NULL");
    CASE(tg_custom(t, &no_bwd, &a, 1, 1, shp, NULL), TG_ERR_NULL, "nobwd: op->backward is NULL");
    CASE(tg_custom(t, &double_op, &a, 0, 1, shp, NULL), TG_ERR_ARG,
         "double_it: 0 inputs: needs 1 to 32");
    tg_tape_reset(t);
    ck_assert_ptr_null(tg_custom(t, &double_op, &a, -1, 1, shp, NULL));
    ck_assert_int_eq(tg_tape_status(t), TG_ERR_ARG);
    tg_tape_reset(t);
    ck_assert_ptr_null(tg_custom(t, &double_op, many, TG_CUSTOM_MAX_IN + 1, 1, shp, NULL));
    ck_assert_int_eq(tg_tape_status(t), TG_ERR_ARG);
    CASE(tg_custom(t, &double_op, NULL, 1, 1, shp, NULL), TG_ERR_NULL,
         "double_it: the input array is NULL");
    CASE(tg_custom(t, &double_op, &a, 1, 1, NULL, NULL), TG_ERR_NULL,
         "double_it: shape is NULL");
    CASE(tg_custom(t, &double_op, &a, 1, 0, shp, NULL), TG_ERR_SHAPE,
         "double_it: result shape must have 1 to 4 dims, each >= 1 (ndim 0)");
    tg_tape_reset(t);
    ck_assert_ptr_null(tg_custom(t, &double_op, &a, 1, 5, (int64_t[]){ 1, 1, 1, 1, 1 }, NULL));
    ck_assert_int_eq(tg_tape_status(t), TG_ERR_SHAPE);
    tg_tape_reset(t);
    ck_assert_ptr_null(tg_custom(t, &double_op, &a, 1, 2, (int64_t[]){ 2, 0 }, NULL));
    ck_assert_int_eq(tg_tape_status(t), TG_ERR_SHAPE);
    tg_tape_reset(t);
    ck_assert_ptr_null(tg_custom(t, &double_op, innull, 2, 1, shp, NULL));
    ck_assert_int_eq(tg_tape_status(t), TG_ERR_NULL);
    ck_assert(strncmp(tg_tape_errmsg(t), "double_it:", 10) == 0);
    tg_tape_reset(t);
    ck_assert_ptr_null(tg_custom(t, &double_op, in2, 2, 1, shp, NULL));
    ck_assert_int_eq(tg_tape_status(t), TG_ERR_DTYPE);
    ck_assert(strncmp(tg_tape_errmsg(t), "double_it:", 10) == 0);
    tg_tape_reset(t);
    ck_assert_ptr_null(tg_custom(t, &unnamed, in2, 2, 1, shp, NULL));
    ck_assert(strncmp(tg_tape_errmsg(t), "custom:", 7) == 0);
    ck_assert_ptr_null(tg_custom(NULL, &double_op, &a, 1, 1, shp, NULL));
    /* the first error sticks */
    tg_tape_reset(t);
    ck_assert_ptr_null(tg_flip(t, a, 4));
    ck_assert_ptr_null(tg_custom(t, &double_op, &a, 1, 1, shp, NULL));
    ck_assert(strncmp(tg_tape_errmsg(t), "flip:", 5) == 0);
    /* out of memory while recording */
    tg_tape_free(t);
    t = tg_tape_new();
    tg_tape_set_memory_limit(t, 1);
    ck_assert_ptr_null(tg_custom(t, &double_op, &a, 1, 1, shp, NULL));
    ck_assert_int_eq(tg_tape_status(t), TG_ERR_NOMEM);
#undef CASE
    tg_tensor_free(a);
    tg_tensor_free(d);
    tg_tape_free(t);
}
END_TEST

Suite *custom_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("custom", 0),
        TG_TEST(test_custom_values_and_gradients_match_composition),
        TG_TEST(test_custom_din_null_and_no_grad),
        TG_TEST(test_custom_gradcheck),
        TG_TEST(test_custom_in_backward_protocol),
        TG_TEST(test_custom_straight_through_estimator_trains),
        TG_TEST(test_custom_error_paths),
    };
    return TG_TEST_SUITE("custom", rows);
}
