/* tests/test_gradcheck.c: the gradcheck suite: the checker itself finds right and wrong gradients. */
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

Suite *gradcheck_suite(void)
{
    Suite *s = suite_create("gradcheck");
    TCase *tc = tcase_create("checker");
    tcase_add_test(tc, test_gradcheck_passes_correct_gradients);
    tcase_add_test(tc, test_gradcheck_catches_wrong_gradient_and_says_where);
    tcase_add_test(tc, test_gradcheck_subsamples_and_params);
    tcase_add_test(tc, test_gradcheck_errors);
    suite_add_tcase(s, tc);
    return s;
}
