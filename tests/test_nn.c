/* tests/test_nn.c: the nn suite: parameter initialisation, linear layers and gates. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/ref/nn_ref.h"
#include "tests/tests.h"

/* Legend: B batch, T time, I input, H hidden, V vocab. */

/* ---- init ------------------------------------------------------------------- */

START_TEST(test_init_torch_bounds_and_names)
{
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_lstm_cell cell;
    tg_init init = { TG_INIT_TORCH, 0, false };
    ck_assert_int_eq(tg_lstm_cell_init(&cell, ps, "enc", 3, 5, &init, &rng), TG_OK);
    ck_assert_int_eq(cell.input_size, 3);
    ck_assert_int_eq(cell.hidden_size, 5);
    ck_assert_int_eq(tg_params_count(ps), 8);
    const char *names[8] = { "enc.forget.w", "enc.forget.b", "enc.candidate.w",
                             "enc.candidate.b", "enc.input.w", "enc.input.b", "enc.output.w",
                             "enc.output.b" };
    double bound = 1 / sqrt(5.0), sum_abs = 0;
    for (int i = 0; i < 8; i++) {
        ck_assert_str_eq(tg_params_name(ps, i), names[i]);
        tg_tensor *t = tg_params_at(ps, i);
        if (i % 2 == 0) {
            ck_assert_int_eq(t->ndim, 2);
            ck_assert_int_eq(t->shape[0], 8);           /* H + I */
            ck_assert_int_eq(t->shape[1], 5);
        } else {
            ck_assert_int_eq(t->ndim, 1);
            ck_assert_int_eq(t->shape[0], 5);
        }
        for (int64_t j = 0; j < t->numel; j++) {
            ck_assert(fabs(tg_tensor_get(t, j)) <= bound);
            sum_abs += fabs(tg_tensor_get(t, j));
        }
    }
    ck_assert_ptr_eq(cell.forget.w, tg_params_find(ps, "enc.forget.w"));
    ck_assert_ptr_eq(cell.output.b, tg_params_find(ps, "enc.output.b"));
    /* U(-a, a) has mean |x| = a/2: 180 draws land near it */
    ck_assert(fabs(sum_abs / 180 - bound / 2) < 0.1 * bound);
    tg_params_free(ps);
}
END_TEST

START_TEST(test_init_uniform_and_xavier)
{
    tg_params *ps = tg_params_new(TG_F32);
    tg_rng rng;
    tg_rng_seed(&rng, 2);
    tg_gru_cell g;
    tg_init uni = { TG_INIT_UNIFORM, 0.08, false };
    ck_assert_int_eq(tg_gru_cell_init(&g, ps, "g", 4, 6, &uni, &rng), TG_OK);
    double most = 0;
    for (int i = 0; i < tg_params_count(ps); i++)
        for (int64_t j = 0; j < tg_params_at(ps, i)->numel; j++)
            most = fmax(most, fabs(tg_tensor_get(tg_params_at(ps, i), j)));
    ck_assert(most <= 0.08 && most > 0.06);
    /* scale 0 means char-rnn's 0.08 too */
    tg_init uni0 = { TG_INIT_UNIFORM, 0, false };
    tg_linear l;
    ck_assert_int_eq(tg_linear_init(&l, ps, "u0", 50, 20, 50, &uni0, &rng), TG_OK);
    most = 0;
    for (int64_t j = 0; j < l.w->numel; j++)
        most = fmax(most, fabs(tg_tensor_get(l.w, j)));
    ck_assert(most <= 0.08 && most > 0.07);

    tg_init xav = { TG_INIT_XAVIER, 0, false };
    ck_assert_int_eq(tg_linear_init(&l, ps, "x", 30, 10, 30, &xav, &rng), TG_OK);
    double bound = sqrt(6.0 / 40);
    most = 0;
    for (int64_t j = 0; j < l.w->numel; j++)
        most = fmax(most, fabs(tg_tensor_get(l.w, j)));
    ck_assert(most <= bound && most > 0.9 * bound);
    for (int64_t j = 0; j < l.b->numel; j++)
        ck_assert(tg_tensor_get(l.b, j) == 0.0);
    /* a plain linear with TG_INIT_TORCH uses fan (in) */
    tg_init tor = { TG_INIT_TORCH, 0, false };
    ck_assert_int_eq(tg_linear_init(&l, ps, "t", 100, 10, 100, &tor, &rng), TG_OK);
    most = 0;
    for (int64_t j = 0; j < l.w->numel; j++)
        most = fmax(most, fabs(tg_tensor_get(l.w, j)));
    ck_assert(most <= 0.1 && most > 0.09);
    tg_params_free(ps);
}
END_TEST

START_TEST(test_init_forget_bias_one)
{
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_init init = { TG_INIT_UNIFORM, 0.08, true };
    tg_lstm_cell c;
    ck_assert_int_eq(tg_lstm_cell_init(&c, ps, "l", 2, 4, &init, &rng), TG_OK);
    for (int j = 0; j < 4; j++) {
        ck_assert(tg_tensor_get(c.forget.b, j) == 1.0);
        ck_assert(fabs(tg_tensor_get(c.input.b, j)) <= 0.08);
        ck_assert(fabs(tg_tensor_get(c.output.b, j)) <= 0.08);
    }
    /* through the stack and the char-LM too */
    tg_charlm m;
    tg_charlm_config cfg = { tg_test_cell_type("lstm"), 7, 2, 5, 0, 0.0 };
    tg_params *ps2 = tg_params_new(TG_F64);
    ck_assert_int_eq(tg_charlm_init(&m, ps2, &cfg, &init, &rng), TG_OK);
    for (int l = 0; l < 2; l++) {
        const tg_lstm_cell *lc = m.rnn.cells[l];
        for (int j = 0; j < 5; j++)
            ck_assert(tg_tensor_get(lc->forget.b, j) == 1.0);
    }
    tg_charlm_deinit(&m);
    tg_params_free(ps2);
    tg_params_free(ps);
}
END_TEST

START_TEST(test_init_deterministic)
{
    tg_charlm a, b, c;
    tg_params *pa = tg_test_charlm_params(&a, "gru", 4, 42, TG_F64);
    tg_params *pb = tg_test_charlm_params(&b, "gru", 4, 42, TG_F64);
    tg_params *pc = tg_test_charlm_params(&c, "gru", 4, 43, TG_F64);
    ck_assert_int_eq(tg_params_count(pa), tg_params_count(pb));
    ck_assert_int_eq(tg_params_count(pa), 1 + 2 * 3 * 2 + 2);
    ck_assert_str_eq(tg_params_name(pa, 0), "embed");
    ck_assert_str_eq(tg_params_name(pa, 1), "rnn.0.update.w");
    ck_assert_str_eq(tg_params_name(pa, 13), "head.w");
    int differ = 0;
    for (int i = 0; i < tg_params_count(pa); i++) {
        tg_tensor *x = tg_params_at(pa, i), *y = tg_params_at(pb, i), *z = tg_params_at(pc, i);
        ck_assert(memcmp(x->data, y->data, (size_t)x->numel * sizeof(double)) == 0);
        differ += memcmp(x->data, z->data, (size_t)x->numel * sizeof(double)) != 0;
    }
    ck_assert_int_eq(differ, tg_params_count(pa));
    const tg_gru_cell *g0 = a.rnn.cells[0], *g1 = a.rnn.cells[1];
    ck_assert_int_eq((int)g1->update.w->shape[0], 12);   /* H + H */
    ck_assert_int_eq((int)g0->update.w->shape[0], 10);   /* H + E */
    tg_charlm_deinit(&a);
    tg_charlm_deinit(&b);
    tg_charlm_deinit(&c);
    tg_params_free(pa);
    tg_params_free(pb);
    tg_params_free(pc);
}
END_TEST

/* The largest |(Q^T Q - I)[i][j]| over the leading n x n block of w (rows >= n, n). */
static double orthogonality_error(const tg_tensor *w, int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double dot = 0;
            for (int64_t r = 0; r < n; r++)
                dot += tg_tensor_get(w, r * n + i) * tg_tensor_get(w, r * n + j);
            worst = fmax(worst, fabs(dot - (i == j ? 1.0 : 0.0)));
        }
    return worst;
}

START_TEST(test_init_orthogonal_block)
{
    tg_rng rng, again;
    tg_rng_seed(&rng, 7);
    tg_rng_seed(&again, 7);
    /* (H + I, H) with H 6, I 3: the first 6 rows become orthogonal, the rest stay */
    tg_tensor *w = tg_tensor_new(TG_F64, 2, (const int64_t[]){ 9, 6 });
    tg_tensor *w2 = tg_tensor_new(TG_F64, 2, (const int64_t[]){ 9, 6 });
    tg_tensor_fill(w, 0.25);
    ck_assert_int_eq(tg_init_orthogonal(w, 6, &rng), TG_OK);
    ck_assert_int_eq(tg_init_orthogonal(w2, 6, &again), TG_OK);
    ck_assert_double_le(orthogonality_error(w, 6), 1e-12);
    for (int64_t k = 36; k < 54; k++)
        ck_assert_double_eq(tg_tensor_get(w, k), 0.25);
    for (int64_t k = 0; k < 36; k++)       /* the same seed draws the same matrix */
        ck_assert_double_eq(tg_tensor_get(w, k), tg_tensor_get(w2, k));
    tg_tensor_free(w);
    tg_tensor_free(w2);
}
END_TEST

START_TEST(test_init_orthogonal_errors)
{
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    tg_tensor *tall = tg_tensor_new(TG_F32, 2, (const int64_t[]){ 3, 4 });
    tg_tensor *v = tg_tensor_new(TG_F32, 1, (const int64_t[]){ 4 });
    ck_assert_int_eq(tg_init_orthogonal(NULL, 4, &rng), TG_ERR_NULL);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "NULL tensor"));
    ck_assert_int_eq(tg_init_orthogonal(tall, 4, NULL), TG_ERR_NULL);
    ck_assert_int_eq(tg_init_orthogonal(tall, 4, &rng), TG_ERR_ARG);   /* 3 rows < 4 */
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "init_orthogonal"));
    ck_assert_int_eq(tg_init_orthogonal(tall, 3, &rng), TG_ERR_ARG);   /* 4 columns != 3 */
    ck_assert_int_eq(tg_init_orthogonal(v, 4, &rng), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "not 2-D"));
    ck_assert_int_eq(tg_init_orthogonal(tall, 0, &rng), TG_ERR_ARG);
    tg_tensor_free(tall);
    tg_tensor_free(v);
}
END_TEST

/* TG_INIT_ORTHOGONAL in a char-LM: recurrent blocks orthogonal, biases zero, the head
   Xavier; one-hot input rows N(0,1) (beyond Xavier's bound); with an embedding the input
   rows stay Xavier. */
START_TEST(test_init_orthogonal_charlm)
{
    for (int embed = 0; embed <= 4; embed += 4) {
        tg_params *ps = tg_params_new(TG_F64);
        tg_rng rng;
        tg_rng_seed(&rng, 3);
        tg_charlm m;
        tg_charlm_config cfg = { .cell = tg_test_cell_type("lstm"), .vocab = 11, .layers = 2,
                                 .hidden = 6, .embed = embed };
        tg_init init = { TG_INIT_ORTHOGONAL, 0, false };
        ck_assert_int_eq(tg_charlm_init(&m, ps, &cfg, &init, &rng), TG_OK);
        for (int l = 0; l < 2; l++) {
            char wname[32], bname[32];
            snprintf(wname, sizeof wname, "rnn.%d.forget.w", l);
            snprintf(bname, sizeof bname, "rnn.%d.forget.b", l);
            tg_tensor *w = tg_params_find(ps, wname), *b = tg_params_find(ps, bname);
            ck_assert_ptr_nonnull(w);
            ck_assert_double_le(orthogonality_error(w, 6), 1e-12);
            for (int64_t k = 0; k < b->numel; k++)
                ck_assert_double_eq(tg_tensor_get(b, k), 0.0);
        }
        tg_tensor *w0 = tg_params_find(ps, "rnn.0.input.w");    /* (6 + I, 6) */
        double xavier0 = sqrt(6.0 / (double)(w0->shape[0] + 6)), big = 0;
        for (int64_t k = 36; k < w0->numel; k++)
            big = fmax(big, fabs(tg_tensor_get(w0, k)));
        if (embed)
            ck_assert_double_le(big, xavier0);
        else
            ck_assert_double_gt(big, xavier0);        /* N(0,1) over 66 draws */
        double xavier_head = sqrt(6.0 / (6.0 + 11.0));
        for (int64_t k = 0; k < m.head.w->numel; k++)
            ck_assert_double_le(fabs(tg_tensor_get(m.head.w, k)), xavier_head);
        tg_charlm_deinit(&m);
        tg_params_free(ps);
    }
}
END_TEST

START_TEST(test_init_errors)
{
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng rng;
    tg_rng_seed(&rng, 4);
    tg_linear l;
    tg_init bad = { TG_INIT_UNIFORM, -1, false };
    tg_init weird = { (tg_init_kind)9, 0, false };
    ck_assert_int_eq(tg_linear_init(NULL, ps, "a", 2, 2, 2, NULL, &rng), TG_ERR_NULL);
    ck_assert_int_eq(tg_linear_init(&l, NULL, "a", 2, 2, 2, NULL, &rng), TG_ERR_NULL);
    ck_assert_int_eq(tg_linear_init(&l, ps, NULL, 2, 2, 2, NULL, &rng), TG_ERR_NULL);
    ck_assert_int_eq(tg_linear_init(&l, ps, "a", 2, 2, 2, NULL, NULL), TG_ERR_NULL);
    ck_assert_int_eq(tg_linear_init(&l, ps, "a", 0, 2, 2, NULL, &rng), TG_ERR_ARG);
    ck_assert_int_eq(tg_linear_init(&l, ps, "a", 2, -1, 2, NULL, &rng), TG_ERR_ARG);
    ck_assert_int_eq(tg_linear_init(&l, ps, "a", 2, 2, 0, NULL, &rng), TG_ERR_ARG);
    ck_assert_int_eq(tg_linear_init(&l, ps, "a", 2, 2, 2, &bad, &rng), TG_ERR_ARG);
    ck_assert_int_eq(tg_linear_init(&l, ps, "a", 2, 2, 2, &weird, &rng), TG_ERR_ARG);
    char longname[70];
    memset(longname, 'n', 62);
    longname[62] = '\0';
    ck_assert_int_eq(tg_linear_init(&l, ps, longname, 2, 2, 2, NULL, &rng), TG_ERR_ARG);
    ck_assert_int_eq(tg_params_count(ps), 0);
    ck_assert_int_eq(tg_linear_init(&l, ps, "a", 2, 2, 2, NULL, &rng), TG_OK);
    ck_assert_int_eq(tg_linear_init(&l, ps, "a", 2, 2, 2, NULL, &rng), TG_ERR_ARG); /* dup */
    tg_rnn_cell rc;
    ck_assert_int_eq(tg_rnn_cell_init(&rc, ps, "r", 0, 3, NULL, &rng), TG_ERR_ARG);
    ck_assert_int_eq(tg_rnn_cell_init(NULL, ps, "r", 2, 3, NULL, &rng), TG_ERR_NULL);
    tg_rnn_stack s;
    const tg_cell_type *lstm = tg_test_cell_type("lstm");
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "s", lstm, 0, 2, 3, 0, NULL, &rng), TG_ERR_ARG);
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "s", lstm, TG_MAX_LAYERS + 1, 2, 3, 0, NULL,
                                       &rng), TG_ERR_ARG);
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "s", lstm, 2, 2, 3, 1.0, NULL, &rng),
                     TG_ERR_ARG);
    ck_assert(strstr(tg_last_error(), "dropout 1 outside [0,1)"));
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "s", lstm, 2, 2, 3, -0.1, NULL, &rng),
                     TG_ERR_ARG);
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "s", NULL, 2, 2, 3, 0, NULL, &rng), TG_ERR_ARG);
    ck_assert_str_eq(tg_last_error(), "rnn_stack_init: s: NULL cell type");
    tg_cell_type broken = *lstm;
    broken.nstate = 0;
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "s", &broken, 2, 2, 3, 0, NULL, &rng),
                     TG_ERR_ARG);
    ck_assert_int_eq(tg_rnn_stack_init(&s, NULL, "s", lstm, 2, 2, 3, 0, NULL, &rng),
                     TG_ERR_NULL);
    ck_assert_int_eq(tg_params_count(ps), 2);            /* nothing added but "a" */
    /* a layer that fails (layer 1's names are taken) leaves nothing to release */
    ck_assert_int_eq(tg_linear_init(&l, ps, "t.1.layer", 3, 3, 3, NULL, &rng), TG_OK);
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "t", tg_test_cell_type("rnn"), 2, 2, 3, 0, NULL,
                                       &rng), TG_ERR_ARG);
    ck_assert_ptr_null(s.type);
    ck_assert_ptr_null(s.cells[0]);
    tg_charlm m;
    tg_charlm_config cfg = { NULL, 5, 1, 4, 0, 0 };
    ck_assert_int_eq(tg_charlm_init(&m, ps, &cfg, NULL, &rng), TG_ERR_ARG);   /* no type */
    ck_assert_str_eq(tg_last_error(), "charlm_init: NULL cell type");
    cfg.cell = tg_test_cell_type("gru");
    cfg.vocab = 0;
    ck_assert_int_eq(tg_charlm_init(&m, ps, &cfg, NULL, &rng), TG_ERR_ARG);   /* vocab 0 */
    cfg.vocab = 5;
    cfg.embed = -1;
    ck_assert_int_eq(tg_charlm_init(&m, ps, &cfg, NULL, &rng), TG_ERR_ARG);
    ck_assert_int_eq(tg_charlm_init(&m, ps, NULL, NULL, &rng), TG_ERR_NULL);
    cfg.embed = 0;                          /* the head fails after the stack: released */
    ck_assert_int_eq(tg_linear_init(&l, ps, "head", 3, 3, 3, NULL, &rng), TG_OK);
    ck_assert_int_eq(tg_charlm_init(&m, ps, &cfg, NULL, &rng), TG_ERR_ARG);
    ck_assert_ptr_null(m.rnn.cells[0]);
    tg_params_free(ps);
}
END_TEST

/* ---- linear and gate ---------------------------------------------------------- */

START_TEST(test_linear_apply_values)
{
    /* x (2,3) @ w (3,2) + b (2), by hand */
    tg_tensor *x = tg_test_new_f64(2, 2, 3, (const double[]){ 1, 2, 3, -1, 0, 2 });
    tg_tensor *w = tg_test_new_f64(2, 3, 2, (const double[]){ 1, 0, 0, 1, 2, -1 });
    tg_tensor *b = tg_test_new_f64(1, 2, 1, (const double[]){ 0.5, -0.5 });
    tg_linear l = { w, b };
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_linear_apply(tape, &l, x);
    ck_assert_ptr_nonnull(y);
    const double want[4] = { 7.5, -1.5, 3.5, -2.5 };
    for (int i = 0; i < 4; i++)
        ck_close(tg_tensor_get(y, i), want[i], 1e-15);
    tg_tensor *g = tg_gate(tape, tg_tanh, &l, x, "g");
    for (int i = 0; i < 4; i++)
        ck_close(tg_tensor_get(g, i), tanh(want[i]), 1e-15);
    /* errors are sticky and name the op */
    ck_assert_ptr_null(tg_linear_apply(tape, NULL, x));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(tape), "linear"));
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_gate(tape, NULL, &l, x, "g"));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_gate(tape, tg_sigmoid, NULL, x, "g"));   /* the one-node gate's path */
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(tape), "linear: NULL layer"));
    tg_tape_reset(tape);
    tg_linear wrong = { b, b };
    ck_assert_ptr_null(tg_linear_apply(tape, &wrong, x));
    ck_assert_int_ne(tg_tape_status(tape), TG_OK);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(b);
}
END_TEST

Suite *nn_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("init", 0),
        TG_TEST(test_init_torch_bounds_and_names),
        TG_TEST(test_init_uniform_and_xavier),
        TG_TEST(test_init_forget_bias_one),
        TG_TEST(test_init_deterministic),
        TG_TEST(test_init_errors),
        TG_TEST(test_init_orthogonal_block),
        TG_TEST(test_init_orthogonal_errors),
        TG_TEST(test_init_orthogonal_charlm),
        TG_CASE("linear", 0),
        TG_TEST(test_linear_apply_values),
    };
    return TG_TEST_SUITE("nn", rows);
}
