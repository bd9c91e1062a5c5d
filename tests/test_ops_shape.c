/* tests/test_ops_shape.c: the shape ops (reshape, concat, slice): forward values and gradient checks. */
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#include "autograd/autograd_internal.h"
#include "tests/ops_harness.h"
#include "tests/tests.h"

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

Suite *ops_shape_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("forward", 0),
        TG_TEST(test_shape_ops_forward),
        TG_CASE("gradcheck", 60),
        TG_TEST(test_shape_ops_gradcheck),
    };
    return TG_TEST_SUITE("ops_shape", rows);
}
