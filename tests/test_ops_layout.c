/* tests/test_ops_layout.c: stack, chunk, flip, bmm and one_hot: known values, repeated
   inputs (fresh and accumulated gradients), negative dims and every error path. */
#include <string.h>

#include "tests/ops_harness.h"
#include "tests/tests.h"

static void expect_shape(const tg_tensor *t, int ndim, const int64_t *shape)
{
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, ndim);
    for (int d = 0; d < ndim; d++)
        ck_assert_int_eq(t->shape[d], shape[d]);
}

START_TEST(test_layout_known_values)
{
    tg_tape *t = tg_tape_new();
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        tg_tensor *a = mk(dt, 2, (int64_t[]){ 2, 3 }, (double[]){ 1, 2, 3, 4, 5, 6 });
        tg_tensor *b = mk(dt, 2, (int64_t[]){ 2, 3 }, (double[]){ 7, 8, 9, 10, 11, 12 });
        tg_tensor *ab[] = { a, b };
        tg_tensor *s0 = tg_stack(t, ab, 2, 0), *s1 = tg_stack(t, ab, 2, 1);
        tg_tensor *s2 = tg_stack(t, ab, 2, -1);
        expect_shape(s0, 3, (int64_t[]){ 2, 2, 3 });
        expect_values_n(s0, (double[]){ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, 12, 0);
        expect_shape(s1, 3, (int64_t[]){ 2, 2, 3 });
        expect_values_n(s1, (double[]){ 1, 2, 3, 7, 8, 9, 4, 5, 6, 10, 11, 12 }, 12, 0);
        expect_shape(s2, 3, (int64_t[]){ 2, 3, 2 });
        expect_values_n(s2, (double[]){ 1, 7, 2, 8, 3, 9, 4, 10, 5, 11, 6, 12 }, 12, 0);
        expect_values_n(tg_flip(t, a, 0), (double[]){ 4, 5, 6, 1, 2, 3 }, 6, 0);
        expect_values_n(tg_flip(t, a, -1), (double[]){ 3, 2, 1, 6, 5, 4 }, 6, 0);
        tg_tensor *parts[3];
        ck_assert_int_eq(tg_chunk(t, a, 3, -1, parts), TG_OK);
        for (int k = 0; k < 3; k++) {
            expect_shape(parts[k], 2, (int64_t[]){ 2, 1 });
            expect_values_n(parts[k], (double[]){ k + 1, k + 4 }, 2, 0);
        }
        ck_assert_int_eq(tg_chunk(t, a, 1, 0, parts), TG_OK);
        expect_values_n(parts[0], (double[]){ 1, 2, 3, 4, 5, 6 }, 6, 0);
        /* (2,1,2) @ (2,2,1): [1 2].[3 4]^T = 11, [5 6].[7 8]^T = 83 */
        tg_tensor *x = mk(dt, 3, (int64_t[]){ 2, 1, 2 }, (double[]){ 1, 2, 5, 6 });
        tg_tensor *y = mk(dt, 3, (int64_t[]){ 2, 2, 1 }, (double[]){ 3, 4, 7, 8 });
        tg_tensor *p = tg_bmm(t, x, y);
        expect_shape(p, 3, (int64_t[]){ 2, 1, 1 });
        expect_values_n(p, (double[]){ 11, 83 }, 2, 0);
        tg_tensor *oh = tg_one_hot(t, dt, (int32_t[]){ 1, 0, 1 }, 3, 2);
        expect_shape(oh, 2, (int64_t[]){ 3, 2 });
        expect_values_n(oh, (double[]){ 0, 1, 1, 0, 0, 1 }, 6, 0);
        ck_assert(!(oh->flags & TG_FLAG_REQUIRES_GRAD));
        ck_assert_int_eq(tg_tape_status(t), TG_OK);
        tg_tensor *all[] = { a, b, x, y };
        for (int i = 0; i < 4; i++)
            tg_tensor_free(all[i]);
        tg_tape_reset(t);
    }
    tg_tape_free(t);
}
END_TEST

/* The same tensor twice: the first use may overwrite a stale gradient, the second adds; a
   tape input (h) and a caller-owned one (p) both. */
START_TEST(test_layout_repeated_inputs_accumulate)
{
    tg_tape *t = tg_tape_new();
    tg_tensor *p = mk(TG_F64, 3, (int64_t[]){ 1, 2, 2 }, (double[]){ 1, 2, 3, 4 });
    ck_assert_int_eq(tg_tensor_requires_grad(p), TG_OK);
    tg_tensor *h = tg_scale(t, p, 1.0);
    tg_tensor *hs[] = { h, h, p };
    tg_tensor *s = tg_stack(t, hs, 3, 0);                   /* d/dp = 3 */
    tg_tensor *f = tg_flip(t, h, 2);                         /* d/dp = 1 */
    tg_tensor *sq = tg_bmm(t, h, h);                         /* h @ h */
    tg_tensor *loss = tg_add(t, tg_add(t, tg_sum(t, s), tg_sum(t, f)), tg_sum(t, sq));
    ck_assert_int_eq(tg_backward(t, loss), TG_OK);
    /* d sum(H @ H) / dH[i][j] = (row j's sum) + (column i's sum) */
    const double *hv = p->data, *g = p->grad;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            double want = 4;   /* stack 3 + flip 1 */
            for (int k = 0; k < 2; k++)
                want += hv[j * 2 + k] + hv[k * 2 + i];
            ck_close(g[i * 2 + j], want, 1e-14);
        }
    tg_tensor_free(p);
    tg_tape_free(t);
}
END_TEST

START_TEST(test_layout_error_paths)
{
    tg_tape *t = tg_tape_new();
    tg_tensor *m23 = mk(TG_F32, 2, (int64_t[]){ 2, 3 }, NULL);
    tg_tensor *m32 = mk(TG_F32, 2, (int64_t[]){ 3, 2 }, NULL);
    tg_tensor *d23 = mk(TG_F64, 2, (int64_t[]){ 2, 3 }, NULL);
    tg_tensor *b234 = mk(TG_F32, 3, (int64_t[]){ 2, 3, 4 }, NULL);
    tg_tensor *b345 = mk(TG_F32, 3, (int64_t[]){ 3, 4, 5 }, NULL);
    tg_tensor *b245 = mk(TG_F32, 3, (int64_t[]){ 2, 4, 5 }, NULL);
    tg_tensor *b4 = mk(TG_F32, 4, (int64_t[]){ 1, 1, 1, 1 }, NULL);
    tg_tensor *pair[] = { m23, m32 }, *mixed[] = { m23, d23 }, *withnull[] = { m23, NULL };
    tg_tensor *four[] = { b4, b4 };
    EXPECT_FAIL(t, tg_stack(t, pair, 2, 0), TG_ERR_SHAPE,
                "stack: tensor 2 is (3,2) but tensor 1 is (2,3)");
    EXPECT_FAIL(t, tg_stack(t, mixed, 2, 0), TG_ERR_DTYPE, "stack:");
    EXPECT_FAIL(t, tg_stack(t, withnull, 2, 0), TG_ERR_NULL, "stack:");
    EXPECT_FAIL(t, tg_stack(t, pair, 0, 0), TG_ERR_ARG, "stack: needs at least one tensor");
    EXPECT_FAIL(t, tg_stack(t, NULL, 2, 0), TG_ERR_ARG, "stack: needs at least one tensor");
    EXPECT_FAIL(t, tg_stack(t, pair, 1, 3), TG_ERR_ARG, "stack: dim 3 out of range [-3, 3)");
    EXPECT_FAIL(t, tg_stack(t, pair, 1, -4), TG_ERR_ARG, "stack: dim -4 out of range");
    EXPECT_FAIL(t, tg_stack(t, four, 2, 0), TG_ERR_SHAPE, "stack: (1,1,1,1) already has 4");
    EXPECT_FAIL(t, tg_flip(t, m23, 2), TG_ERR_ARG, "flip: dim 2 out of range [-2, 2)");
    EXPECT_FAIL(t, tg_flip(t, NULL, 0), TG_ERR_NULL, "flip:");
    EXPECT_FAIL(t, tg_bmm(t, m23, m32), TG_ERR_SHAPE, "bmm: (2,3) @ (3,2): operands must be 3-D");
    EXPECT_FAIL(t, tg_bmm(t, b234, b345), TG_ERR_SHAPE, "bmm: (2,3,4) @ (3,4,5): batch sizes");
    EXPECT_FAIL(t, tg_bmm(t, b234, b234), TG_ERR_SHAPE, "bmm: (2,3,4) @ (2,3,4): inner dim");
    EXPECT_FAIL(t, tg_bmm(t, b234, NULL), TG_ERR_NULL, "bmm:");
    tg_tape_reset(t);
    ck_assert_ptr_nonnull(tg_bmm(t, b234, b245));
    int32_t idx[] = { 0, 3, 1 };
    EXPECT_FAIL(t, tg_one_hot(t, TG_F32, idx, 3, 3), TG_ERR_ARG,
                "one_hot: index 3 at position 1 out of range [0,3)");
    EXPECT_FAIL(t, tg_one_hot(t, TG_F32, (int32_t[]){ -1 }, 1, 3), TG_ERR_ARG, "one_hot: index");
    EXPECT_FAIL(t, tg_one_hot(t, TG_F32, NULL, 3, 4), TG_ERR_NULL, "one_hot: indices are NULL");
    EXPECT_FAIL(t, tg_one_hot(t, TG_F32, idx, 0, 4), TG_ERR_ARG, "one_hot: needs n >= 1");
    EXPECT_FAIL(t, tg_one_hot(t, TG_F32, idx, 3, 0), TG_ERR_ARG, "one_hot: needs n >= 1");
    EXPECT_FAIL(t, tg_one_hot(t, (tg_dtype)7, idx, 3, 4), TG_ERR_ARG, "one_hot: dtype 7");
    ck_assert_ptr_null(tg_one_hot(NULL, TG_F32, idx, 3, 4));

    /* chunk: a status, the outputs all NULL on failure */
    tg_tensor *out[4] = { m23, m23, m23, m23 };
    tg_tape_reset(t);
    ck_assert_int_eq(tg_chunk(t, m23, 2, 1, out), TG_ERR_SHAPE);
    ck_assert(out[0] == NULL && out[1] == NULL);
    ck_assert_str_eq(tg_tape_errmsg(t),
                     "chunk: dim 1 of (2,3) (size 3) does not divide into 2 equal chunks");
    tg_tape_reset(t);
    ck_assert_int_eq(tg_chunk(t, m23, 0, 1, out), TG_ERR_ARG);
    ck_assert_str_eq(tg_tape_errmsg(t), "chunk: number of chunks 0 must be >= 1");
    tg_tape_reset(t);
    ck_assert_int_eq(tg_chunk(t, m23, 2, -3, out), TG_ERR_ARG);
    ck_assert(out[0] == NULL && out[1] == NULL);
    ck_assert_str_eq(tg_tape_errmsg(t), "chunk: dim -3 out of range [-2, 2) for (2,3)");
    tg_tape_reset(t);
    ck_assert_int_eq(tg_chunk(t, NULL, 2, 0, out), TG_ERR_NULL);
    ck_assert_str_eq(tg_tape_errmsg(t), "chunk: x is NULL");
    tg_tape_reset(t);
    ck_assert_int_eq(tg_chunk(t, m23, 2, 0, NULL), TG_ERR_NULL);
    ck_assert_str_eq(tg_tape_errmsg(t), "chunk: out is NULL");
    ck_assert_int_eq(tg_chunk(NULL, m23, 2, 0, out), TG_ERR_NULL);
    /* a tape that already failed: chunk keeps and returns its first error */
    tg_tape_reset(t);
    ck_assert_ptr_null(tg_flip(t, m23, 5));
    out[0] = m23;
    ck_assert_int_eq(tg_chunk(t, m23, 2, 0, out), TG_ERR_ARG);
    ck_assert(out[0] == NULL);
    ck_assert(strncmp(tg_tape_errmsg(t), "flip:", 5) == 0);

    tg_tensor *all[] = { m23, m32, d23, b234, b345, b245, b4 };
    for (int i = 0; i < 7; i++)
        tg_tensor_free(all[i]);
    tg_tape_free(t);
}
END_TEST

Suite *ops_layout_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("layout", 0),
        TG_TEST(test_layout_known_values),
        TG_TEST(test_layout_repeated_inputs_accumulate),
        TG_TEST(test_layout_error_paths),
    };
    return TG_TEST_SUITE("ops_layout", rows);
}
