/* tests/test_gradcheck.c: the gradcheck suite: the checker itself finds right and wrong gradients. */
#include <stdio.h>
#include <string.h>

#include "autograd/autograd_internal.h"
#include "tests/tests.h"

typedef struct fn_arg { tg_tensor *x, *w; } fn_arg;

/* loss = sum(tanh(x @ w)) */
static tg_tensor *good_fn(tg_tape *tape, void *user)
{
    fn_arg *a = user;
    return tg_sum(tape, tg_tanh(tape, tg_matmul(tape, a->x, a->w)));
}

/* An op whose backward is deliberately wrong (2x the true gradient of x^2/2... of x). */
static void wrong_forward(tg_node *n)
{
    for (int64_t i = 0; i < n->out->numel; i++)
        ((double *)n->out->data)[i] = ((double *)n->in[0]->data)[i];
}
static void wrong_backward(tg_node *n)
{
    for (int64_t i = 0; i < n->out->numel; i++)
        ((double *)n->in[0]->grad)[i] += 2 * ((double *)n->out->grad)[i];
}
static const tg_op op_wrong = { "wrong", wrong_forward, wrong_backward, 0 };

static tg_tensor *wrong_fn(tg_tape *tape, void *user)
{
    fn_arg *a = user;
    tg_node *n = tg_node_begin(tape, &op_wrong, 1, &a->x);
    if (!n || !tg_node_output(n, a->x->ndim, a->x->shape, false))
        return NULL;
    return tg_sum(tape, tg_node_finish(n));
}

static tg_tensor *failing_fn(tg_tape *tape, void *user)
{
    fn_arg *a = user;
    return tg_matmul(tape, a->w, a->w);   /* (3,2) @ (3,2): shape error */
}

static void make_args(fn_arg *a)
{
    tg_rng r;
    tg_rng_seed(&r, 8);
    a->x = tg_tensor_new(TG_F64, 2, (int64_t[]){ 4, 3 });
    a->w = tg_tensor_new(TG_F64, 2, (int64_t[]){ 3, 2 });
    tg_tensor_fill_uniform(a->x, &r, -1, 1);
    tg_tensor_fill_uniform(a->w, &r, -1, 1);
    tg_tensor_requires_grad(a->x);
    tg_tensor_requires_grad(a->w);
}

START_TEST(test_gradcheck_passes_correct_gradients)
{
    fn_arg a;
    make_args(&a);
    tg_tensor *ts[2] = { a.x, a.w };
    tg_gradcheck_result res;
    double per[2];
    ck_assert_int_eq(tg_gradcheck(ts, 2, good_fn, &a, NULL, &res, per), TG_OK);
    ck_assert(res.passed);
    ck_assert_int_eq(res.checked, 18);
    ck_assert(res.max_rel_err < 1e-8);
    ck_assert(per[0] <= res.max_rel_err && per[1] <= res.max_rel_err);
    ck_close(tg_tensor_grad_get(a.x, 0), 0, 0);   /* gradients left zeroed */
    tg_tensor_free(a.x);
    tg_tensor_free(a.w);
}
END_TEST

START_TEST(test_gradcheck_catches_wrong_gradient_and_says_where)
{
    fn_arg a;
    make_args(&a);
    tg_gradcheck_result res;
    ck_assert_int_eq(tg_gradcheck(&a.x, 1, wrong_fn, &a, NULL, &res, NULL), TG_OK);
    ck_assert(!res.passed);
    ck_close(res.max_rel_err, 0.5, 1e-6);         /* |2 - 1| / 2 */
    ck_assert_int_eq(res.worst_tensor, 0);
    ck_assert(res.worst_index >= 0 && res.worst_index < 12);
    ck_close(res.analytic, 2, 1e-12);
    ck_close(res.numeric, 1, 1e-8);
    tg_tensor_free(a.x);
    tg_tensor_free(a.w);
}
END_TEST

START_TEST(test_gradcheck_subsamples_and_params)
{
    fn_arg a;
    make_args(&a);
    tg_params *ps = tg_params_new(TG_F64);
    tg_tensor *w = tg_params_add(ps, "w", 2, (int64_t[]){ 3, 2 });
    tg_tensor_copy(w, a.w);
    fn_arg b = { a.x, w };
    tg_gradcheck_result res;
    tg_gradcheck_opts opts = { .eps = 1e-5, .max_per_tensor = 2 };
    ck_assert_int_eq(tg_gradcheck_params(ps, good_fn, &b, &opts, &res, NULL), TG_OK);
    ck_assert(res.passed);
    ck_assert_int_eq(res.checked, 2);
    tg_params_free(ps);
    tg_tensor_free(a.x);
    tg_tensor_free(a.w);
}
END_TEST

START_TEST(test_gradcheck_errors)
{
    fn_arg a;
    make_args(&a);
    tg_gradcheck_result res;
    tg_tensor *f32 = tg_tensor_new(TG_F32, 1, (int64_t[]){ 2 });
    tg_tensor_requires_grad(f32);
    tg_tensor *nograd = tg_tensor_new(TG_F64, 1, (int64_t[]){ 2 });
    ck_assert_int_eq(tg_gradcheck(NULL, 1, good_fn, &a, NULL, &res, NULL), TG_ERR_NULL);
    ck_assert_int_eq(tg_gradcheck(&a.x, 0, good_fn, &a, NULL, &res, NULL), TG_ERR_ARG);
    ck_assert_int_eq(tg_gradcheck(&f32, 1, good_fn, &a, NULL, &res, NULL), TG_ERR_DTYPE);
    ck_assert_int_eq(tg_gradcheck(&nograd, 1, good_fn, &a, NULL, &res, NULL), TG_ERR_ARG);
    ck_assert_int_eq(tg_gradcheck(&a.x, 1, failing_fn, &a, NULL, &res, NULL), TG_ERR_SHAPE);
    ck_assert_int_eq(tg_gradcheck_params(NULL, good_fn, &a, NULL, &res, NULL), TG_ERR_NULL);
    tg_params *empty = tg_params_new(TG_F64);
    ck_assert_int_eq(tg_gradcheck_params(empty, good_fn, &a, NULL, &res, NULL), TG_ERR_ARG);
    tg_params_free(empty);
    tg_tensor_free(f32);
    tg_tensor_free(nograd);
    tg_tensor_free(a.x);
    tg_tensor_free(a.w);
}
END_TEST

/* ---- the default rule on a layer-normalised model ----------------------------------
 * y = layer_norm(x) * gamma + beta over the last dim, composed from ops:
 *     mean = sum_dim(x) / D,  var = sum_dim((x - mean)^2) / D,
 *     y = (x - mean) * exp(-0.5 log(var + 1e-5)) * gamma + beta,  loss = sum(tanh(y) * r)
 * x's rows spread only ~0.05, so 1/std is steep: the third derivatives that make a
 * central difference's truncation error are large.
 */
typedef struct ln_arg {
    tg_tensor *x, *gamma, *beta, *r;   /* (4,6), (6), (6), (4,6) */
    double wrong;                       /* != 0: a backward off by this factor */
} ln_arg;

/* identity whose backward multiplies by (1 + n->scalar): a subtly wrong gradient */
static void off_forward(tg_node *n)
{
    memcpy(n->out->data, n->in[0]->data, (size_t)n->out->numel * sizeof(double));
}
static void off_backward(tg_node *n)
{
    for (int64_t i = 0; i < n->out->numel; i++)
        ((double *)n->in[0]->grad)[i] += (1 + n->scalar) * ((double *)n->out->grad)[i];
}
static const tg_op op_off = { "off", off_forward, off_backward, 0 };

static tg_tensor *ln_loss(tg_tape *t, void *user)
{
    ln_arg *a = user;
    double D = (double)a->x->shape[1];
    tg_tensor *x = a->x;
    if (a->wrong != 0) {
        tg_node *n = tg_node_begin(t, &op_off, 1, &x);
        if (!n || !tg_node_output(n, x->ndim, x->shape, false))
            return NULL;
        n->scalar = a->wrong;
        x = tg_node_finish(n);
    }
    tg_tensor *mean = tg_scale(t, tg_sum_dim(t, x, 1), 1 / D);                  /* (4,1) */
    tg_tensor *xc   = tg_sub(t, x, mean);                                        /* (4,6) */
    tg_tensor *var  = tg_scale(t, tg_sum_dim(t, tg_mul(t, xc, xc), 1), 1 / D);   /* (4,1) */
    tg_tensor *rstd = tg_exp(t, tg_scale(t, tg_log(t, tg_add_scalar(t, var, 1e-5)), -0.5));
    tg_tensor *y    = tg_add(t, tg_mul(t, tg_mul(t, xc, rstd), a->gamma), a->beta);
    return tg_sum(t, tg_mul(t, tg_tanh(t, y), a->r));
}

static void ln_args(ln_arg *a)
{
    tg_rng rng;
    tg_rng_seed(&rng, 21);
    a->x = tg_tensor_new(TG_F64, 2, (int64_t[]){ 4, 6 });
    a->gamma = tg_tensor_new(TG_F64, 1, (int64_t[]){ 6 });
    a->beta = tg_tensor_new(TG_F64, 1, (int64_t[]){ 6 });
    a->r = tg_tensor_new(TG_F64, 2, (int64_t[]){ 4, 6 });
    tg_tensor_fill_uniform(a->x, &rng, -0.05, 0.05);
    tg_tensor_fill_uniform(a->gamma, &rng, 0.5, 1.5);
    tg_tensor_fill_uniform(a->beta, &rng, -0.5, 0.5);
    tg_tensor_fill_uniform(a->r, &rng, -1, 1);
    tg_tensor_requires_grad(a->x);
    tg_tensor_requires_grad(a->gamma);
    tg_tensor_requires_grad(a->beta);
    a->wrong = 0;
}

static void ln_free(ln_arg *a)
{
    tg_tensor_free(a->x);
    tg_tensor_free(a->gamma);
    tg_tensor_free(a->beta);
    tg_tensor_free(a->r);
}

/* The worst relative error over x, gamma and beta with step eps; *passed: the rule. */
static double ln_check(ln_arg *a, const tg_gradcheck_opts *opts, int *passed)
{
    tg_tensor *ts[3] = { a->x, a->gamma, a->beta };
    tg_gradcheck_result res;
    ck_assert_int_eq(tg_gradcheck(ts, 3, ln_loss, a, opts, &res, NULL), TG_OK);
    *passed = res.passed;
    return res.max_rel_err;
}

START_TEST(test_gradcheck_default_passes_layer_norm)
{
    ln_arg a;
    ln_args(&a);
    int passed;
    double err = ln_check(&a, NULL, &passed);
    ck_assert_msg(passed, "a correct layer-norm model fails the default rule: %g", err);
    /* the old rule (step 1e-5, relative error 1e-7) fails it on truncation error alone,
       which falls with the square of the step: 10x smaller step, ~100x smaller error */
    int old_passed, small_passed;
    double old = ln_check(&a, &(tg_gradcheck_opts){ .eps = 1e-5, .tolerance = 1e-7 },
                          &old_passed);
    double small = ln_check(&a, &(tg_gradcheck_opts){ .eps = 1e-6 }, &small_passed);
    double big = ln_check(&a, &(tg_gradcheck_opts){ .eps = 1e-4 }, &small_passed);
    printf("gradcheck layer norm: default %.3g (passed), step 1e-4 %.3g, 1e-5 %.3g "
           "(old tolerance 1e-7: %s), 1e-6 %.3g\n", err, big, old,
           old_passed ? "passed" : "failed", small);
    ck_assert(!old_passed);
    ck_assert_msg(big / old > 30, "truncation error should fall ~100x: %g -> %g", big, old);
    ln_free(&a);
}
END_TEST

START_TEST(test_gradcheck_default_fails_wrong_gradient)
{
    ln_arg a;
    ln_args(&a);
    a.wrong = 0.01;                   /* x's gradient 1% too large */
    int passed;
    double err = ln_check(&a, NULL, &passed);
    ck_assert_msg(!passed, "a 1%% wrong gradient passes: %g", err);
    /* a shrinking step does not make a real bug go away */
    double smaller = ln_check(&a, &(tg_gradcheck_opts){ .eps = 1e-7 }, &passed);
    ck_assert(!passed);
    ck_assert_msg(smaller > 0.5 * err, "%g -> %g", err, smaller);
    ln_free(&a);
}
END_TEST

START_TEST(test_gradcheck_hands_back_the_loss_functions_message)
{
    fn_arg a;
    make_args(&a);
    tg_gradcheck_result res;
    tg_clear_error();
    ck_assert_int_eq(tg_gradcheck(&a.x, 1, failing_fn, &a, NULL, &res, NULL), TG_ERR_SHAPE);
    ck_assert_str_eq(tg_last_error(), "gradcheck: the loss function failed: matmul: (3,2) @ "
                     "(3,2): inner dimensions differ");
    ck_assert_int_eq(tg_last_status(), TG_ERR_SHAPE);
    tg_tensor *f32 = tg_tensor_new(TG_F32, 1, (int64_t[]){ 2 });
    ck_assert_int_eq(tg_gradcheck(&f32, 1, good_fn, &a, NULL, &res, NULL), TG_ERR_DTYPE);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "tensor 0 is float32"));
    ck_assert_int_eq(tg_gradcheck(&a.x, 1, NULL, &a, NULL, &res, NULL), TG_ERR_NULL);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "fn is NULL"));
    tg_tensor *nograd = tg_tensor_new(TG_F64, 1, (int64_t[]){ 2 });
    ck_assert_int_eq(tg_gradcheck(&nograd, 1, good_fn, &a, NULL, &res, NULL), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "has no gradient"));
    tg_params *empty = tg_params_new(TG_F64);
    ck_assert_int_eq(tg_gradcheck_params(empty, good_fn, &a, NULL, &res, NULL), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "collection is empty"));
    tg_params_free(empty);
    tg_tensor_free(nograd);
    tg_tensor_free(f32);
    tg_tensor_free(a.x);
    tg_tensor_free(a.w);
}
END_TEST

Suite *gradcheck_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("checker", 0),
        TG_TEST(test_gradcheck_passes_correct_gradients),
        TG_TEST(test_gradcheck_catches_wrong_gradient_and_says_where),
        TG_TEST(test_gradcheck_subsamples_and_params),
        TG_TEST(test_gradcheck_errors),
        TG_TEST(test_gradcheck_default_passes_layer_norm),
        TG_TEST(test_gradcheck_default_fails_wrong_gradient),
        TG_TEST(test_gradcheck_hands_back_the_loss_functions_message),
    };
    return TG_TEST_SUITE("gradcheck", rows);
}
