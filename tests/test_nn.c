/* tests/test_nn.c: the nn suite: init, linear, the cells against a torch reference and
   gradient checks, stacked networks, state helpers, dropout and the char-LM. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/ref/nn_ref.h"
#include "tests/tests.h"

/* Legend: B batch, T time, I input, H hidden, V vocab. */

/* ---- helpers ---------------------------------------------------------------- */

/* The gates of a cell in struct order (the reference header's order); returns count. */
static int cell_gates(tg_cell *c, tg_linear **g)
{
    switch (c->kind) {
    case TG_CELL_RNN:
        g[0] = &c->u.rnn.layer;
        return 1;
    case TG_CELL_LSTM:
        g[0] = &c->u.lstm.forget;
        g[1] = &c->u.lstm.candidate;
        g[2] = &c->u.lstm.input;
        g[3] = &c->u.lstm.output;
        return 4;
    case TG_CELL_GRU:
        g[0] = &c->u.gru.update;
        g[1] = &c->u.gru.reset;
        g[2] = &c->u.gru.candidate;
        return 3;
    }
    return 0;
}

/* One step of any cell kind; *c is read and replaced for LSTM. Returns the new h. */
static tg_tensor *cell_step(tg_tape *tape, const tg_cell *cell, tg_tensor *x, tg_tensor *h,
                            tg_tensor **c)
{
    switch (cell->kind) {
    case TG_CELL_RNN:
        return tg_rnn_cell_step(tape, &cell->u.rnn, x, h);
    case TG_CELL_LSTM: {
        tg_lstm_state s = tg_lstm_cell_step(tape, &cell->u.lstm, x, (tg_lstm_state){ h, *c });
        *c = s.c;
        return s.h;
    }
    case TG_CELL_GRU:
        return tg_gru_cell_step(tape, &cell->u.gru, x, h);
    }
    return NULL;
}

static tg_tensor *new_f64(int ndim, int64_t d0, int64_t d1, const double *values)
{
    const int64_t shape[2] = { d0, d1 };
    tg_tensor *t = tg_tensor_new(TG_F64, ndim, shape);
    ck_assert_ptr_nonnull(t);
    if (values)
        tg_tensor_fill_values(t, values);
    ck_assert_int_eq(tg_tensor_requires_grad(t), TG_OK);
    return t;
}

static double max_abs_diff(const tg_tensor *t, const double *ref, bool grad)
{
    double worst = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        double v = grad ? tg_tensor_grad_get(t, i) : tg_tensor_get(t, i);
        worst = fmax(worst, fabs(v - ref[i]));
    }
    return worst;
}

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
    tg_charlm_config cfg = { TG_CELL_LSTM, 7, 2, 5, 0, 0.0 };
    tg_params *ps2 = tg_params_new(TG_F64);
    ck_assert_int_eq(tg_charlm_init(&m, ps2, &cfg, &init, &rng), TG_OK);
    for (int l = 0; l < 2; l++)
        for (int j = 0; j < 5; j++)
            ck_assert(tg_tensor_get(m.rnn.cells[l].u.lstm.forget.b, j) == 1.0);
    tg_params_free(ps2);
    tg_params_free(ps);
}
END_TEST

/* Builds a 2-layer char-LM of kind into a new collection seeded with seed. */
static tg_params *charlm_params(tg_charlm *m, tg_cell_kind kind, int embed, uint64_t seed,
                                tg_dtype dtype)
{
    tg_params *ps = tg_params_new(dtype);
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_charlm_config cfg = { kind, 11, 2, 6, embed, 0.0 };
    ck_assert_int_eq(tg_charlm_init(m, ps, &cfg, NULL, &rng), TG_OK);
    return ps;
}

START_TEST(test_init_deterministic)
{
    tg_charlm a, b, c;
    tg_params *pa = charlm_params(&a, TG_CELL_GRU, 4, 42, TG_F64);
    tg_params *pb = charlm_params(&b, TG_CELL_GRU, 4, 42, TG_F64);
    tg_params *pc = charlm_params(&c, TG_CELL_GRU, 4, 43, TG_F64);
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
    ck_assert_int_eq((int)a.rnn.cells[1].u.gru.update.w->shape[0], 12);   /* H + H */
    ck_assert_int_eq((int)a.rnn.cells[0].u.gru.update.w->shape[0], 10);   /* H + E */
    tg_params_free(pa);
    tg_params_free(pb);
    tg_params_free(pc);
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
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "s", TG_CELL_LSTM, 0, 2, 3, 0, NULL, &rng),
                     TG_ERR_ARG);
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "s", TG_CELL_LSTM, TG_MAX_LAYERS + 1, 2, 3, 0,
                                       NULL, &rng), TG_ERR_ARG);
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "s", TG_CELL_LSTM, 2, 2, 3, 1.0, NULL, &rng),
                     TG_ERR_ARG);
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "s", TG_CELL_LSTM, 2, 2, 3, -0.1, NULL, &rng),
                     TG_ERR_ARG);
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "s", (tg_cell_kind)7, 2, 2, 3, 0, NULL, &rng),
                     TG_ERR_ARG);
    tg_charlm m;
    tg_charlm_config cfg = { TG_CELL_GRU, 0, 1, 4, 0, 0 };
    ck_assert_int_eq(tg_charlm_init(&m, ps, &cfg, NULL, &rng), TG_ERR_ARG);   /* vocab 0 */
    cfg.vocab = 5;
    cfg.embed = -1;
    ck_assert_int_eq(tg_charlm_init(&m, ps, &cfg, NULL, &rng), TG_ERR_ARG);
    ck_assert_int_eq(tg_charlm_init(&m, ps, NULL, NULL, &rng), TG_ERR_NULL);
    tg_params_free(ps);
}
END_TEST

START_TEST(test_cell_kind_names)
{
    ck_assert_str_eq(tg_cell_kind_name(TG_CELL_RNN), "rnn");
    ck_assert_str_eq(tg_cell_kind_name(TG_CELL_LSTM), "lstm");
    ck_assert_str_eq(tg_cell_kind_name(TG_CELL_GRU), "gru");
    ck_assert_int_eq(tg_cell_kind_parse("gru"), TG_CELL_GRU);
    ck_assert_int_eq(tg_cell_kind_parse("lstm"), TG_CELL_LSTM);
    ck_assert_int_eq(tg_cell_kind_parse("rnn"), TG_CELL_RNN);
    ck_assert_int_eq(tg_cell_kind_parse("transformer"), -1);
    ck_assert_int_eq(tg_cell_kind_parse(NULL), -1);
}
END_TEST

/* ---- linear and gate ---------------------------------------------------------- */

START_TEST(test_linear_apply_values)
{
    /* x (2,3) @ w (3,2) + b (2), by hand */
    tg_tensor *x = new_f64(2, 2, 3, (const double[]){ 1, 2, 3, -1, 0, 2 });
    tg_tensor *w = new_f64(2, 3, 2, (const double[]){ 1, 0, 0, 1, 2, -1 });
    tg_tensor *b = new_f64(1, 2, 1, (const double[]){ 0.5, -0.5 });
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

/* ---- the cells against the torch reference ------------------------------------- */

/* A cell built as an outside program would: public struct fields filled with
   caller-owned tensors (no tg_params). */
typedef struct ref_cell {
    const nnref_cell *r;
    tg_cell cell;
    tg_tensor *w[4], *b[4];
    tg_tensor *x[8], *h0, *c0;
} ref_cell;

static void ref_cell_build(ref_cell *rc, const nnref_cell *r)
{
    memset(rc, 0, sizeof *rc);
    rc->r = r;
    int kind = tg_cell_kind_parse(r->kind);
    ck_assert_int_ge(kind, 0);
    rc->cell.kind = (tg_cell_kind)kind;
    tg_linear *gates[4];
    int n = cell_gates(&rc->cell, gates);
    ck_assert_int_eq(n, r->ngates);
    for (int g = 0; g < n; g++) {
        rc->w[g] = new_f64(2, r->H + r->I, r->H, r->w[g]);
        rc->b[g] = new_f64(1, r->H, 1, r->b[g]);
        gates[g]->w = rc->w[g];
        gates[g]->b = rc->b[g];
    }
    switch (rc->cell.kind) {      /* the sizes are the same field in every cell struct */
    case TG_CELL_RNN:
        rc->cell.u.rnn.input_size = r->I;
        rc->cell.u.rnn.hidden_size = r->H;
        break;
    case TG_CELL_LSTM:
        rc->cell.u.lstm.input_size = r->I;
        rc->cell.u.lstm.hidden_size = r->H;
        break;
    case TG_CELL_GRU:
        rc->cell.u.gru.input_size = r->I;
        rc->cell.u.gru.hidden_size = r->H;
        break;
    }
    for (int t = 0; t < r->T; t++)
        rc->x[t] = new_f64(2, r->B, r->I, r->x + t * r->B * r->I);
    rc->h0 = new_f64(2, r->B, r->H, r->h0);
    rc->c0 = r->c0 ? new_f64(2, r->B, r->H, r->c0) : NULL;
}

static void ref_cell_free(ref_cell *rc)
{
    for (int g = 0; g < 4; g++) {
        tg_tensor_free(rc->w[g]);
        tg_tensor_free(rc->b[g]);
    }
    for (int t = 0; t < 8; t++)
        tg_tensor_free(rc->x[t]);
    tg_tensor_free(rc->h0);
    tg_tensor_free(rc->c0);
}

START_TEST(test_cell_matches_torch)
{
    const nnref_cell *r = &nnref_cells[_i];
    ref_cell rc;
    ref_cell_build(&rc, r);
    tg_tape *tape = tg_tape_new();
    tg_tensor *h = rc.h0, *c = rc.c0, *loss = NULL;
    int64_t BH = (int64_t)r->B * r->H;
    for (int t = 0; t < r->T; t++) {
        h = cell_step(tape, &rc.cell, rc.x[t], h, &c);
        ck_assert_msg(h != NULL, "%s step %d: %s", r->kind, t, tg_tape_errmsg(tape));
        ck_assert(max_abs_diff(h, r->h + t * BH, false) < 1e-12);
        if (r->c)
            ck_assert(max_abs_diff(c, r->c + t * BH, false) < 1e-12);
        const double *rt = r->r + t * BH;
        tg_tensor *rt_t = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ r->B, r->H });
        memcpy(rt_t->data, rt, (size_t)BH * sizeof(double));
        tg_tensor *term = tg_sum(tape, tg_mul(tape, h, rt_t));
        loss = loss ? tg_add(tape, loss, term) : term;
    }
    ck_close(tg_tensor_get(loss, 0), r->loss, 1e-12);
    ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
    for (int g = 0; g < r->ngates; g++) {
        ck_assert_msg(max_abs_diff(rc.w[g], r->dw[g], true) < 1e-10, "%s d%s.w", r->kind,
                      r->gate[g]);
        ck_assert_msg(max_abs_diff(rc.b[g], r->db[g], true) < 1e-10, "%s d%s.b", r->kind,
                      r->gate[g]);
    }
    for (int t = 0; t < r->T; t++)
        ck_assert(max_abs_diff(rc.x[t], r->dx + t * r->B * r->I, true) < 1e-10);
    ck_assert(max_abs_diff(rc.h0, r->dh0, true) < 1e-10);
    if (rc.c0)
        ck_assert(max_abs_diff(rc.c0, r->dc0, true) < 1e-10);
    tg_tape_free(tape);
    ref_cell_free(&rc);
}
END_TEST

START_TEST(test_charlm_matches_torch)
{
    const nnref_charlm *r = &nnref_charlms[_i];
    tg_charlm m;
    tg_charlm_config cfg = { (tg_cell_kind)tg_cell_kind_parse(r->kind), r->vocab, r->layers,
                             r->hidden, r->embed, 0.0 };
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    ck_assert_int_eq(tg_charlm_init(&m, ps, &cfg, NULL, &rng), TG_OK);
    ck_assert_int_eq(tg_params_count(ps), r->nparams);
    for (int i = 0; i < r->nparams; i++) {
        ck_assert_str_eq(tg_params_name(ps, i), r->params[i].name);
        ck_assert_int_eq(tg_params_at(ps, i)->numel, r->params[i].numel);
        tg_tensor_fill_values(tg_params_at(ps, i), r->params[i].value);
    }
    tg_stack_state *st = tg_stack_state_new(&m.rnn, TG_F64, r->B);
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_charlm_loss(tape, &m, r->inputs, r->targets, r->B, r->T, st, true,
                                     NULL);
    ck_assert_msg(loss != NULL, "%s", tg_tape_errmsg(tape));
    ck_close(tg_tensor_get(loss, 0), r->loss, 1e-12);
    ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
    for (int i = 0; i < r->nparams; i++)
        ck_assert_msg(max_abs_diff(tg_params_at(ps, i), r->params[i].grad, true) < 1e-10,
                      "%s grad of %s", r->kind, r->params[i].name);
    int64_t BH = (int64_t)r->B * r->hidden;
    for (int l = 0; l < r->layers; l++) {
        ck_assert(max_abs_diff(st->h[l], r->h_n + l * BH, false) < 1e-12);
        ck_assert_int_eq(st->h[l]->flags & TG_FLAG_TAPE, 0);      /* still caller-owned */
        if (r->c_n)
            ck_assert(max_abs_diff(st->c[l], r->c_n + l * BH, false) < 1e-12);
    }
    tg_tape_free(tape);
    tg_stack_state_free(st);
    tg_params_free(ps);
}
END_TEST

/* ---- observer: every gate is reported under its guide name ---------------------- */

typedef struct seen { char names[16][16]; int n; } seen;

static void record_name(void *user, const char *name, const tg_tensor *t)
{
    seen *s = user;
    ck_assert_ptr_nonnull(t);
    if (s->n < 16)
        snprintf(s->names[s->n++], 16, "%s", name);
}

START_TEST(test_cells_report_named_steps)
{
    static const char *const want[3][7] = {
        { "hidden" },
        { "forget", "candidate", "input", "cell", "output", "hidden" },
        { "update", "reset", "candidate", "hidden" },
    };
    static const int count[3] = { 1, 6, 4 };
    const nnref_cell *r = &nnref_cells[_i];
    ref_cell rc;
    ref_cell_build(&rc, r);
    tg_tape *tape = tg_tape_new();
    seen s = { .n = 0 };
    tg_tape_set_observer(tape, record_name, &s);
    tg_tensor *c = rc.c0;
    ck_assert_ptr_nonnull(cell_step(tape, &rc.cell, rc.x[0], rc.h0, &c));
    ck_assert_int_eq(s.n, count[_i]);
    for (int k = 0; k < count[_i]; k++)
        ck_assert_str_eq(s.names[k], want[_i][k]);
    tg_tape_free(tape);
    ref_cell_free(&rc);
}
END_TEST

/* ---- cell step errors ----------------------------------------------------------- */

START_TEST(test_cell_step_errors)
{
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng rng;
    tg_rng_seed(&rng, 6);
    tg_lstm_cell lc;
    tg_gru_cell gc;
    tg_rnn_cell rc;
    ck_assert_int_eq(tg_lstm_cell_init(&lc, ps, "l", 3, 4, NULL, &rng), TG_OK);
    ck_assert_int_eq(tg_gru_cell_init(&gc, ps, "g", 3, 4, NULL, &rng), TG_OK);
    ck_assert_int_eq(tg_rnn_cell_init(&rc, ps, "r", 3, 4, NULL, &rng), TG_OK);
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 3 });
    tg_tensor *xbad = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 5 });
    tg_tensor *h = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 4 });
    tg_tensor *hbad = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 3, 4 });
    tg_tensor *h32 = tg_tape_tensor(tape, TG_F32, 2, (const int64_t[]){ 2, 4 });

    tg_lstm_state s = tg_lstm_cell_step(tape, &lc, xbad, (tg_lstm_state){ h, h });
    ck_assert_ptr_null(s.h);
    ck_assert_ptr_null(s.c);
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(tape), "lstm_cell_step"));
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(tape), "(2,5)"));
    /* sticky: a correct step after the error still returns NULL */
    s = tg_lstm_cell_step(tape, &lc, x, (tg_lstm_state){ h, h });
    ck_assert_ptr_null(s.h);
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_SHAPE);
    tg_tape_reset(tape);

    x = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 3 });
    h = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 4 });
    hbad = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 3, 4 });
    h32 = tg_tape_tensor(tape, TG_F32, 2, (const int64_t[]){ 2, 4 });
    ck_assert_ptr_null(tg_gru_cell_step(tape, &gc, x, hbad));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(tape), "gru_cell_step"));
    tg_tape_reset(tape);
    x = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 3 });
    h32 = tg_tape_tensor(tape, TG_F32, 2, (const int64_t[]){ 2, 4 });
    ck_assert_ptr_null(tg_rnn_cell_step(tape, &rc, x, h32));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_DTYPE);
    tg_tape_reset(tape);
    h = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 4 });
    ck_assert_ptr_null(tg_rnn_cell_step(tape, NULL, h, h));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    tg_tape_reset(tape);
    h = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 4 });
    ck_assert_ptr_null(tg_rnn_cell_step(tape, &rc, NULL, h));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    tg_tape_reset(tape);
    x = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 3 });
    h = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 2, 4 });
    s = tg_lstm_cell_step(tape, &lc, x, (tg_lstm_state){ h, NULL });
    ck_assert_ptr_null(s.h);
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    s = tg_lstm_cell_step(tape, NULL, x, (tg_lstm_state){ h, h });
    ck_assert_ptr_null(s.c);
    tg_tape_free(tape);
    tg_params_free(ps);
}
END_TEST

/* ---- gradient checks (float64) -------------------------------------------------- */

enum { GC_B = 2, GC_I = 3, GC_H = 4, GC_T = 4 };

typedef struct cell_fixture {
    tg_params *ps;
    tg_cell cell;
    tg_tensor *x[GC_T], *h0, *c0, *r[GC_T];
} cell_fixture;

/* sum over t of sum(h_t * r_t) (+ sum(c_t) for LSTM): every step feeds the loss */
static tg_tensor *cell_loss(tg_tape *tape, void *user)
{
    cell_fixture *f = user;
    tg_tensor *h = f->h0, *c = f->c0, *loss = NULL;
    for (int t = 0; t < GC_T; t++) {
        h = cell_step(tape, &f->cell, f->x[t], h, &c);
        tg_tensor *term = tg_sum(tape, tg_mul(tape, h, f->r[t]));
        if (c)
            term = tg_add(tape, term, tg_scale(tape, tg_sum(tape, c), 0.1));
        loss = loss ? tg_add(tape, loss, term) : term;
    }
    return loss;
}

static void cell_fixture_init(cell_fixture *f, tg_cell_kind kind)
{
    memset(f, 0, sizeof *f);
    tg_rng rng;
    tg_rng_seed(&rng, 100 + kind);
    f->ps = tg_params_new(TG_F64);
    tg_init init = { TG_INIT_UNIFORM, 0.7, false };
    f->cell.kind = kind;
    tg_status st = kind == TG_CELL_RNN
        ? tg_rnn_cell_init(&f->cell.u.rnn, f->ps, "c", GC_I, GC_H, &init, &rng)
        : kind == TG_CELL_LSTM
        ? tg_lstm_cell_init(&f->cell.u.lstm, f->ps, "c", GC_I, GC_H, &init, &rng)
        : tg_gru_cell_init(&f->cell.u.gru, f->ps, "c", GC_I, GC_H, &init, &rng);
    ck_assert_int_eq(st, TG_OK);
    for (int t = 0; t < GC_T; t++) {
        f->x[t] = new_f64(2, GC_B, GC_I, NULL);
        tg_tensor_fill_uniform(f->x[t], &rng, -1, 1);
        f->r[t] = new_f64(2, GC_B, GC_H, NULL);
        tg_tensor_fill_uniform(f->r[t], &rng, -1, 1);
    }
    f->h0 = new_f64(2, GC_B, GC_H, NULL);
    tg_tensor_fill_uniform(f->h0, &rng, -0.5, 0.5);
    if (kind == TG_CELL_LSTM) {
        f->c0 = new_f64(2, GC_B, GC_H, NULL);
        tg_tensor_fill_uniform(f->c0, &rng, -0.5, 0.5);
    }
}

static void cell_fixture_free(cell_fixture *f)
{
    for (int t = 0; t < GC_T; t++) {
        tg_tensor_free(f->x[t]);
        tg_tensor_free(f->r[t]);
    }
    tg_tensor_free(f->h0);
    tg_tensor_free(f->c0);
    tg_params_free(f->ps);
}

START_TEST(test_cell_gradcheck)
{
    cell_fixture f;
    cell_fixture_init(&f, (tg_cell_kind)_i);
    tg_gradcheck_result res;
    ck_assert_int_eq(tg_gradcheck_params(f.ps, cell_loss, &f, NULL, &res, NULL), TG_OK);
    ck_assert_msg(res.passed && res.max_rel_err < 1e-7, "%s params: worst %g",
                  tg_cell_kind_name((tg_cell_kind)_i), res.max_rel_err);
    ck_assert_int_eq(res.checked, tg_params_numel(f.ps));
    /* and the inputs: every x_t, h0 (and c0) */
    tg_tensor *ins[GC_T + 2];
    int n = 0;
    for (int t = 0; t < GC_T; t++)
        ins[n++] = f.x[t];
    ins[n++] = f.h0;
    if (f.c0)
        ins[n++] = f.c0;
    ck_assert_int_eq(tg_gradcheck(ins, n, cell_loss, &f, NULL, &res, NULL), TG_OK);
    ck_assert_msg(res.passed && res.max_rel_err < 1e-7, "%s inputs: worst %g",
                  tg_cell_kind_name((tg_cell_kind)_i), res.max_rel_err);
    cell_fixture_free(&f);
}
END_TEST

typedef struct stack_fixture {
    tg_params *ps;
    tg_rnn_stack s;
    tg_tensor *x[GC_T], *r[GC_T];
    tg_stack_state *init_state;
    bool training;
} stack_fixture;

/* loss over all steps of a 2-layer stack, dropout masks reseeded every call */
static tg_tensor *stack_loss(tg_tape *tape, void *user)
{
    stack_fixture *f = user;
    tg_rng rng;
    tg_rng_seed(&rng, 77);
    tg_stack_state cur = *f->init_state;
    tg_tensor *loss = NULL;
    for (int t = 0; t < GC_T; t++) {
        tg_tensor *top = tg_rnn_stack_step(tape, &f->s, f->x[t], &cur, f->training, &rng);
        tg_tensor *term = tg_sum(tape, tg_mul(tape, top, f->r[t]));
        loss = loss ? tg_add(tape, loss, term) : term;
    }
    /* the lower layer's final state feeds the loss too */
    return tg_add(tape, loss, tg_scale(tape, tg_sum(tape, cur.h[0]), 0.3));
}

START_TEST(test_stack_gradcheck)
{
    stack_fixture f;
    memset(&f, 0, sizeof f);
    tg_rng rng;
    tg_rng_seed(&rng, 200 + _i);
    f.ps = tg_params_new(TG_F64);
    tg_init init = { TG_INIT_UNIFORM, 0.6, false };
    ck_assert_int_eq(tg_rnn_stack_init(&f.s, f.ps, "rnn", (tg_cell_kind)_i, 2, GC_I, GC_H, 0.3,
                                       &init, &rng), TG_OK);
    for (int t = 0; t < GC_T; t++) {
        f.x[t] = new_f64(2, GC_B, GC_I, NULL);
        tg_tensor_fill_uniform(f.x[t], &rng, -1, 1);
        f.r[t] = new_f64(2, GC_B, GC_H, NULL);
        tg_tensor_fill_uniform(f.r[t], &rng, -1, 1);
    }
    f.init_state = tg_stack_state_new(&f.s, TG_F64, GC_B);
    for (int l = 0; l < 2; l++) {
        tg_tensor_fill_uniform(f.init_state->h[l], &rng, -0.5, 0.5);
        if (f.init_state->c[l])
            tg_tensor_fill_uniform(f.init_state->c[l], &rng, -0.5, 0.5);
    }
    tg_gradcheck_result res;
    for (int training = 0; training < 2; training++) {   /* without, then with dropout */
        f.training = training;
        ck_assert_int_eq(tg_gradcheck_params(f.ps, stack_loss, &f, NULL, &res, NULL), TG_OK);
        ck_assert_msg(res.passed && res.max_rel_err < 1e-7, "%s stack (training %d): %g",
                      tg_cell_kind_name((tg_cell_kind)_i), training, res.max_rel_err);
    }
    tg_stack_state_free(f.init_state);
    for (int t = 0; t < GC_T; t++) {
        tg_tensor_free(f.x[t]);
        tg_tensor_free(f.r[t]);
    }
    tg_params_free(f.ps);
}
END_TEST

typedef struct lm_fixture {
    tg_charlm m;
    tg_params *ps;
    int32_t in[12], tgt[12];
} lm_fixture;

static tg_tensor *lm_loss(tg_tape *tape, void *user)
{
    lm_fixture *f = user;
    tg_stack_state *st = tg_stack_state_new(&f->m.rnn, TG_F64, 2);   /* zeros each call */
    tg_tensor *loss = tg_charlm_loss(tape, &f->m, f->in, f->tgt, 2, 6, st, false, NULL);
    tg_stack_state_free(st);
    return loss;
}

START_TEST(test_charlm_gradcheck)
{
    /* one-hot RNN, one-hot LSTM, embedding GRU: the whole model, loss over all steps */
    lm_fixture f;
    tg_cell_kind kind = (tg_cell_kind)_i;
    f.ps = charlm_params(&f.m, kind, kind == TG_CELL_GRU ? 3 : 0, 300 + _i, TG_F64);
    for (int i = 0; i < 12; i++) {
        f.in[i] = (int32_t)((i * 7 + 3) % 11);
        f.tgt[i] = (int32_t)((i * 5 + 1) % 11);
    }
    /* The mean cross-entropy's gradients are small (many below the 1e-3 floor), so the
       finite differences' rounding error (~|loss| 1e-16 / eps) dominates: a step of 3e-5
       balances it against the O(eps^2) truncation error (worst ~2e-8 vs ~7e-8 at 1e-5). */
    tg_gradcheck_opts opts = { .eps = 3e-5 };
    tg_gradcheck_result res;
    double per[32];
    ck_assert_int_eq(tg_gradcheck_params(f.ps, lm_loss, &f, &opts, &res, per), TG_OK);
    ck_assert_msg(res.passed && res.max_rel_err < 1e-7, "%s char-LM: %g",
                  tg_cell_kind_name(kind), res.max_rel_err);
    tg_params_free(f.ps);
}
END_TEST

/* ---- stacks: dropout, state ------------------------------------------------------ */

START_TEST(test_dropout_only_in_training)
{
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng rng;
    tg_rng_seed(&rng, 8);
    tg_rnn_stack s;
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "s", TG_CELL_LSTM, 3, 5, 16, 0.5, NULL, &rng),
                     TG_OK);
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ 4, 5 });
    tg_tensor_fill_uniform(x, &rng, -1, 1);
    tg_stack_state *st = tg_stack_state_new(&s, TG_F64, 4);
    tg_rng r1, r2;
    tg_rng_seed(&r1, 1);
    tg_rng_seed(&r2, 2);
    tg_stack_state a = *st, b = *st, c = *st, d = *st;
    tg_tensor *ya = tg_rnn_stack_step(tape, &s, x, &a, false, &r1);   /* eval: no dropout */
    tg_tensor *yb = tg_rnn_stack_step(tape, &s, x, &b, false, NULL);  /* eval needs no rng */
    tg_tensor *yc = tg_rnn_stack_step(tape, &s, x, &c, true, &r1);
    tg_tensor *yd = tg_rnn_stack_step(tape, &s, x, &d, true, &r2);
    ck_assert_msg(ya && yb && yc && yd, "%s", tg_tape_errmsg(tape));
    ck_assert(memcmp(ya->data, yb->data, 64 * sizeof(double)) == 0);
    ck_assert(memcmp(ya->data, yc->data, 64 * sizeof(double)) != 0);
    ck_assert(memcmp(yc->data, yd->data, 64 * sizeof(double)) != 0);
    /* layer 0 sees no dropout (it applies between layers only) */
    ck_assert(memcmp(a.h[0]->data, c.h[0]->data, 64 * sizeof(double)) == 0);
    ck_assert(memcmp(a.h[1]->data, c.h[1]->data, 64 * sizeof(double)) != 0);
    /* the same seed gives the same masks */
    tg_rng_seed(&r1, 1);
    tg_stack_state e = *st;
    tg_tensor *ye = tg_rnn_stack_step(tape, &s, x, &e, true, &r1);
    ck_assert(memcmp(yc->data, ye->data, 64 * sizeof(double)) == 0);
    /* training with dropout and no rng is an error, and leaves the state alone */
    tg_stack_state f = *st;
    ck_assert_ptr_null(tg_rnn_stack_step(tape, &s, x, &f, true, NULL));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    ck_assert_ptr_eq(f.h[0], st->h[0]);
    tg_stack_state_free(st);
    tg_tape_free(tape);
    tg_params_free(ps);
}
END_TEST

START_TEST(test_stack_state_helpers)
{
    tg_params *ps = tg_params_new(TG_F32);
    tg_rng rng;
    tg_rng_seed(&rng, 9);
    tg_rnn_stack lstm, gru;
    ck_assert_int_eq(tg_rnn_stack_init(&lstm, ps, "a", TG_CELL_LSTM, 2, 3, 4, 0, NULL, &rng),
                     TG_OK);
    ck_assert_int_eq(tg_rnn_stack_init(&gru, ps, "b", TG_CELL_GRU, 2, 3, 4, 0, NULL, &rng),
                     TG_OK);
    tg_stack_state *a = tg_stack_state_new(&lstm, TG_F32, 5);
    tg_stack_state *b = tg_stack_state_new(&lstm, TG_F32, 5);
    tg_stack_state *g = tg_stack_state_new(&gru, TG_F32, 5);
    tg_stack_state *small = tg_stack_state_new(&lstm, TG_F32, 2);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->layers, 2);
    for (int l = 0; l < 2; l++) {
        ck_assert_int_eq(a->h[l]->shape[0], 5);
        ck_assert_int_eq(a->h[l]->shape[1], 4);
        ck_assert_ptr_nonnull(a->c[l]);
        ck_assert_ptr_null(g->c[l]);
        for (int64_t i = 0; i < 20; i++)
            ck_assert(tg_tensor_get(a->h[l], i) == 0.0);
        tg_tensor_fill_uniform(a->h[l], &rng, -1, 1);
        tg_tensor_fill_uniform(a->c[l], &rng, -1, 1);
    }
    ck_assert_int_eq(tg_stack_state_copy(b, a), TG_OK);
    for (int l = 0; l < 2; l++) {
        ck_assert(memcmp(a->h[l]->data, b->h[l]->data, 20 * sizeof(float)) == 0);
        ck_assert(memcmp(a->c[l]->data, b->c[l]->data, 20 * sizeof(float)) == 0);
        ck_assert_ptr_ne(a->h[l], b->h[l]);
    }
    ck_assert_int_eq(tg_stack_state_copy(b, small), TG_ERR_SHAPE);
    ck_assert_int_eq(tg_stack_state_copy(b, g), TG_ERR_SHAPE);       /* no c */
    ck_assert_int_eq(tg_stack_state_copy(NULL, g), TG_ERR_NULL);
    ck_assert(memcmp(a->h[0]->data, b->h[0]->data, 20 * sizeof(float)) == 0);  /* untouched */
    tg_stack_state_zero(b);
    for (int l = 0; l < 2; l++)
        for (int64_t i = 0; i < 20; i++)
            ck_assert(tg_tensor_get(b->h[l], i) == 0.0 && tg_tensor_get(b->c[l], i) == 0.0);
    ck_assert_ptr_null(tg_stack_state_new(&lstm, TG_F32, 0));
    ck_assert_ptr_null(tg_stack_state_new(NULL, TG_F32, 3));
    tg_stack_state_free(NULL);
    tg_stack_state_zero(NULL);

    /* a NULL h/c in a working state is read as zeros */
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tape_tensor(tape, TG_F32, 2, (const int64_t[]){ 5, 3 });
    tg_tensor_fill_uniform(x, &rng, -1, 1);
    tg_stack_state zero_cur = { .layers = 2 };
    tg_stack_state from_new = *b;                  /* zeroed above */
    tg_tensor *y1 = tg_rnn_stack_step(tape, &lstm, x, &zero_cur, false, NULL);
    tg_tensor *y2 = tg_rnn_stack_step(tape, &lstm, x, &from_new, false, NULL);
    ck_assert_msg(y1 && y2, "%s", tg_tape_errmsg(tape));
    ck_assert(memcmp(y1->data, y2->data, 20 * sizeof(float)) == 0);
    ck_assert_ptr_eq(zero_cur.h[1], y1);
    /* a state with the wrong number of layers */
    tg_stack_state one = { .layers = 1 };
    ck_assert_ptr_null(tg_rnn_stack_step(tape, &lstm, x, &one, false, NULL));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_SHAPE);
    tg_tape_free(tape);

    tg_stack_state_free(a);
    tg_stack_state_free(b);
    tg_stack_state_free(g);
    tg_stack_state_free(small);
    tg_params_free(ps);
}
END_TEST

/* ---- the char-LM ------------------------------------------------------------------ */

START_TEST(test_charlm_loss_at_init_is_ln_v)
{
    for (int kind = 0; kind < 3; kind++) {
        tg_params *ps = tg_params_new(TG_F32);
        tg_rng rng;
        tg_rng_seed(&rng, 10);
        tg_charlm m;
        tg_charlm_config cfg = { (tg_cell_kind)kind, 65, 2, 32, kind == 1 ? 16 : 0, 0.2 };
        tg_init init = { TG_INIT_UNIFORM, 0.08, kind == 1 };
        ck_assert_int_eq(tg_charlm_init(&m, ps, &cfg, &init, &rng), TG_OK);
        enum { B = 4, T = 10 };
        int32_t in[B * T], tgt[B * T];
        for (int i = 0; i < B * T; i++) {
            in[i] = (int32_t)tg_rng_below(&rng, 65);
            tgt[i] = (int32_t)tg_rng_below(&rng, 65);
        }
        tg_stack_state *st = tg_stack_state_new(&m.rnn, TG_F32, B);
        tg_tape *tape = tg_tape_new();
        tg_tensor *loss = tg_charlm_loss(tape, &m, in, tgt, B, T, st, true, &rng);
        ck_assert_msg(loss != NULL, "%s", tg_tape_errmsg(tape));
        ck_assert_msg(fabs(tg_tensor_get(loss, 0) - log(65.0)) < 0.05, "%s: loss %g",
                      tg_cell_kind_name((tg_cell_kind)kind), tg_tensor_get(loss, 0));
        ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
        tg_tape_free(tape);
        tg_stack_state_free(st);
        tg_params_free(ps);
    }
}
END_TEST

START_TEST(test_charlm_carries_state)
{
    /* one window of 8 == two windows of 4 with the state carried (the TBPTT detach) */
    tg_charlm m;
    tg_params *ps = charlm_params(&m, TG_CELL_LSTM, 0, 11, TG_F64);
    enum { B = 2, T = 8 };
    int32_t in[B * T], tgt[B * T], in_a[B * 4], in_b[B * 4], tgt_a[B * 4], tgt_b[B * 4];
    for (int i = 0; i < B * T; i++) {
        in[i] = (int32_t)((i * 3 + 1) % 11);
        tgt[i] = (int32_t)((i * 7 + 2) % 11);
    }
    for (int b = 0; b < B; b++)
        for (int t = 0; t < 4; t++) {
            in_a[b * 4 + t] = in[b * T + t];
            in_b[b * 4 + t] = in[b * T + 4 + t];
            tgt_a[b * 4 + t] = tgt[b * T + t];
            tgt_b[b * 4 + t] = tgt[b * T + 4 + t];
        }
    tg_stack_state *whole = tg_stack_state_new(&m.rnn, TG_F64, B);
    tg_stack_state *split = tg_stack_state_new(&m.rnn, TG_F64, B);
    tg_tape *tape = tg_tape_new();
    double lw = tg_tensor_get(tg_charlm_loss(tape, &m, in, tgt, B, T, whole, false, NULL), 0);
    tg_tape_reset(tape);
    double la = tg_tensor_get(tg_charlm_loss(tape, &m, in_a, tgt_a, B, 4, split, false, NULL),
                              0);
    tg_tape_reset(tape);                       /* the carried state outlives the tape */
    double lb = tg_tensor_get(tg_charlm_loss(tape, &m, in_b, tgt_b, B, 4, split, false, NULL),
                              0);
    ck_close((la + lb) / 2, lw, 1e-12);
    for (int l = 0; l < 2; l++) {
        ck_assert(max_abs_diff(split->h[l], whole->h[l]->data, false) < 1e-13);
        ck_assert(max_abs_diff(split->c[l], whole->c[l]->data, false) < 1e-13);
    }
    /* tg_charlm_step agrees with the loss: step through the same tokens */
    tg_stack_state *gen = tg_stack_state_new(&m.rnn, TG_F64, B);
    tg_tape_reset(tape);
    tg_tape_set_grad_enabled(tape, false);
    double ce = 0;
    for (int t = 0; t < T; t++) {
        int32_t tok[B] = { in[t], in[T + t] };
        tg_tensor *logits = tg_charlm_step(tape, &m, tok, B, gen);
        ck_assert_msg(logits != NULL, "%s", tg_tape_errmsg(tape));
        ck_assert_int_eq(logits->shape[0], B);
        ck_assert_int_eq(logits->shape[1], 11);
        int32_t tt[B] = { tgt[t], tgt[T + t] };
        ce += tg_tensor_get(tg_cross_entropy(tape, logits, tt), 0) / T;
    }
    ck_close(ce, lw, 1e-12);
    for (int l = 0; l < 2; l++)
        ck_assert(max_abs_diff(gen->h[l], whole->h[l]->data, false) < 1e-13);
    tg_tape_free(tape);
    tg_stack_state_free(gen);
    tg_stack_state_free(whole);
    tg_stack_state_free(split);
    tg_params_free(ps);
}
END_TEST

START_TEST(test_charlm_errors)
{
    tg_charlm m;
    tg_params *ps = charlm_params(&m, TG_CELL_GRU, 0, 12, TG_F32);
    tg_stack_state *st = tg_stack_state_new(&m.rnn, TG_F32, 2);
    tg_stack_state *wrong = tg_stack_state_new(&m.rnn, TG_F32, 3);
    tg_stack_state *f64 = tg_stack_state_new(&m.rnn, TG_F64, 2);
    tg_tensor_fill(st->h[0], 0.25);
    int32_t in[6] = { 0, 1, 2, 3, 4, 5 }, tgt[6] = { 1, 2, 3, 4, 5, 6 };
    tg_tape *tape = tg_tape_new();

    in[4] = 11;                                               /* == V: out of range */
    ck_assert_ptr_null(tg_charlm_loss(tape, &m, in, tgt, 2, 3, st, false, NULL));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(tape), "charlm_loss"));
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(tape), "inputs[4] = 11"));
    ck_assert(tg_tensor_get(st->h[0], 0) == 0.25f);           /* state untouched */
    tg_tape_reset(tape);
    in[4] = 4;
    tgt[0] = -1;
    ck_assert_ptr_null(tg_charlm_loss(tape, &m, in, tgt, 2, 3, st, false, NULL));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(tape), "targets[0] = -1"));
    tg_tape_reset(tape);
    tgt[0] = 1;
    ck_assert_ptr_null(tg_charlm_loss(tape, &m, NULL, tgt, 2, 3, st, false, NULL));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_charlm_loss(tape, &m, in, tgt, 2, 3, NULL, false, NULL));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_charlm_loss(tape, NULL, in, tgt, 2, 3, st, false, NULL));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_charlm_loss(tape, &m, in, tgt, 0, 3, st, false, NULL));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_ARG);
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_charlm_loss(tape, &m, in, tgt, 2, 3, wrong, false, NULL));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_SHAPE);
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_charlm_loss(tape, &m, in, tgt, 2, 3, f64, false, NULL));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_SHAPE);
    tg_tape_reset(tape);
    int32_t bad_tok[2] = { 3, 99 };
    ck_assert_ptr_null(tg_charlm_step(tape, &m, bad_tok, 2, st));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(tape), "tokens[1] = 99"));
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_charlm_step(tape, &m, NULL, 2, st));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    tg_tape_reset(tape);
    /* a sticky error from before stops the loss too */
    ck_assert_ptr_null(tg_linear_apply(tape, NULL, NULL));
    ck_assert_ptr_null(tg_charlm_loss(tape, &m, in, tgt, 2, 3, st, false, NULL));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    ck_assert(tg_tensor_get(st->h[0], 0) == 0.25f);
    tg_tape_free(tape);
    tg_stack_state_free(st);
    tg_stack_state_free(wrong);
    tg_stack_state_free(f64);
    tg_params_free(ps);
}
END_TEST

START_TEST(test_charlm_out_of_memory)
{
    /* every allocation the model makes on the tape can fail: NOMEM, state untouched */
    tg_charlm m;
    tg_params *ps = charlm_params(&m, TG_CELL_LSTM, 0, 14, TG_F64);
    tg_stack_state *st = tg_stack_state_new(&m.rnn, TG_F64, 2);
    tg_tensor_fill(st->c[1], 0.5);
    int32_t in[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, tgt[8] = { 2, 3, 4, 5, 6, 7, 8, 9 };
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_charlm_loss(tape, &m, in, tgt, 2, 4, st, false, NULL);
    ck_assert_ptr_nonnull(loss);
    size_t need = tg_tape_bytes_used(tape);
    tg_stack_state_zero(st);
    tg_tensor_fill(st->c[1], 0.5);
    for (size_t limit = 64; limit < need; limit += need / 16) {
        tg_tape_free(tape);
        tape = tg_tape_new();
        tg_tape_set_memory_limit(tape, limit);
        ck_assert_ptr_null(tg_charlm_loss(tape, &m, in, tgt, 2, 4, st, false, NULL));
        ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NOMEM);
        ck_assert(tg_tensor_get(st->c[1], 3) == 0.5 && tg_tensor_get(st->h[0], 0) == 0.0);
    }
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_charlm_loss(tape, &m, in, tgt, INT64_MAX / 2, 4, st, false, NULL));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_ARG);
    tg_tape_free(tape);
    tg_stack_state_free(st);
    tg_params_free(ps);
}
END_TEST

START_TEST(test_charlm_same_bits_any_thread_count)
{
    /* big enough that the kernels split across threads */
    tg_params *ps = tg_params_new(TG_F32);
    tg_rng rng;
    tg_rng_seed(&rng, 15);
    tg_charlm m;
    tg_charlm_config cfg = { TG_CELL_LSTM, 65, 2, 128, 0, 0.25 };
    ck_assert_int_eq(tg_charlm_init(&m, ps, &cfg, NULL, &rng), TG_OK);
    enum { B = 64, T = 4 };             /* gates (64,128): 8192 elements, gemms 1.6M FMAs */
    int32_t in[B * T], tgt[B * T];
    for (int i = 0; i < B * T; i++) {
        in[i] = (int32_t)tg_rng_below(&rng, 65);
        tgt[i] = (int32_t)tg_rng_below(&rng, 65);
    }
    int64_t total = tg_params_numel(ps);
    float *grads[2];
    float loss[2];
    for (int run = 0; run < 2; run++) {
        tg_set_num_threads(run == 0 ? 1 : 2);
        tg_stack_state *st = tg_stack_state_new(&m.rnn, TG_F32, B);
        tg_tape *tape = tg_tape_new();
        tg_rng drop;
        tg_rng_seed(&drop, 16);
        tg_params_zero_grad(ps);
        tg_tensor *l = tg_charlm_loss(tape, &m, in, tgt, B, T, st, true, &drop);
        ck_assert_int_eq(tg_backward(tape, l), TG_OK);
        loss[run] = (float)tg_tensor_get(l, 0);
        grads[run] = malloc((size_t)total * sizeof(float));
        int64_t off = 0;
        for (int i = 0; i < tg_params_count(ps); i++) {
            tg_tensor *p = tg_params_at(ps, i);
            memcpy(grads[run] + off, p->grad, (size_t)p->numel * sizeof(float));
            off += p->numel;
        }
        tg_tape_free(tape);
        tg_stack_state_free(st);
    }
    ck_assert(memcmp(&loss[0], &loss[1], sizeof(float)) == 0);
    ck_assert(memcmp(grads[0], grads[1], (size_t)total * sizeof(float)) == 0);
    free(grads[0]);
    free(grads[1]);
    tg_params_free(ps);
}
END_TEST

START_TEST(test_charlm_step_no_malloc_after_first)
{
    /* a training step (forward + backward) allocates nothing from the second on */
    tg_charlm m;
    tg_params *ps = charlm_params(&m, TG_CELL_LSTM, 5, 13, TG_F32);
    tg_stack_state *st = tg_stack_state_new(&m.rnn, TG_F32, 3);
    int32_t in[30], tgt[30];
    for (int i = 0; i < 30; i++) {
        in[i] = (int32_t)(i % 11);
        tgt[i] = (int32_t)((i + 1) % 11);
    }
    tg_tape *tape = tg_tape_new();
    int64_t after_first = 0;
    float first = 0, last = 0;
    for (int step = 0; step < 4; step++) {
        tg_tape_reset(tape);
        tg_params_zero_grad(ps);
        tg_tensor *loss = tg_charlm_loss(tape, &m, in, tgt, 3, 10, st, false, NULL);
        ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
        if (step == 0) {
            after_first = tg_tape_mallocs(tape);
            first = (float)tg_tensor_get(loss, 0);
        }
        last = (float)tg_tensor_get(loss, 0);
    }
    ck_assert_int_eq(tg_tape_mallocs(tape), after_first);
    ck_assert(isfinite(first) && isfinite(last));
    tg_tape_free(tape);
    tg_stack_state_free(st);
    tg_params_free(ps);
}
END_TEST

Suite *nn_suite(void)
{
    Suite *s = suite_create("nn");
    TCase *tc = tcase_create("init");
    tcase_add_test(tc, test_init_torch_bounds_and_names);
    tcase_add_test(tc, test_init_uniform_and_xavier);
    tcase_add_test(tc, test_init_forget_bias_one);
    tcase_add_test(tc, test_init_deterministic);
    tcase_add_test(tc, test_init_errors);
    tcase_add_test(tc, test_cell_kind_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("cells");
    tcase_add_test(tc, test_linear_apply_values);
    tcase_add_loop_test(tc, test_cell_matches_torch, 0, 3);
    tcase_add_loop_test(tc, test_charlm_matches_torch, 0, 3);
    tcase_add_loop_test(tc, test_cells_report_named_steps, 0, 3);
    tcase_add_test(tc, test_cell_step_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("gradcheck");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_cell_gradcheck, 0, 3);
    tcase_add_loop_test(tc, test_stack_gradcheck, 0, 3);
    tcase_add_loop_test(tc, test_charlm_gradcheck, 0, 3);
    suite_add_tcase(s, tc);

    tc = tcase_create("stack");
    tcase_add_test(tc, test_dropout_only_in_training);
    tcase_add_test(tc, test_stack_state_helpers);
    tcase_add_test(tc, test_charlm_loss_at_init_is_ln_v);
    tcase_add_test(tc, test_charlm_carries_state);
    tcase_add_test(tc, test_charlm_errors);
    tcase_add_test(tc, test_charlm_out_of_memory);
    tcase_add_test(tc, test_charlm_same_bits_any_thread_count);
    tcase_add_test(tc, test_charlm_step_no_malloc_after_first);
    suite_add_tcase(s, tc);
    return s;
}
