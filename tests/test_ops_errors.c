/* tests/test_ops_errors.c: errors: sticky, NULL-propagating, every op rejecting bad shapes and arguments
   with a message that names it, never a crash. */
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#include "autograd/autograd_internal.h"
#include "tests/ops_harness.h"
#include "tests/tests.h"

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
    EXPECT_FAIL(t, tg_affine_act_op(t, m23, m23, v3, false), TG_ERR_SHAPE, "gate:");
    EXPECT_FAIL(t, tg_affine_act_op(t, m22, m23, v2, true), TG_ERR_SHAPE, "gate: bias (2)");
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
    EXPECT_FAIL(t, tg_sum_dim(t, m23, -3), TG_ERR_ARG, "sum_dim: dim -3 out of range [-2, 2)");
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

Suite *ops_errors_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("autograd", 60),
        TG_TEST(test_errors_are_sticky_and_clear_on_reset),
        TG_TEST(test_null_in_null_out),
        TG_TEST(test_every_op_rejects_bad_shapes_and_args),
        TG_TEST(test_backward_rejects_non_scalar),
    };
    return TG_TEST_SUITE("ops_errors", rows);
}
