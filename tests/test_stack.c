/* tests/test_stack.c: the stack suite: stacked recurrent networks and the char-LM against
   a torch reference, their gradient checks, dropout, the carried state and error paths. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor_internal.h"   /* TG_PAR_THRESHOLD */
#include "tests/ref/nn_ref.h"
#include "tests/tests.h"

/* Legend: B batch, T time, I input, H hidden, V vocab. */

enum { GC_B = 2, GC_I = 3, GC_H = 4, GC_T = 4 };

/* ---- the char-LM against the torch reference ----------------------------------- */

START_TEST(test_charlm_matches_torch)
{
    const nnref_charlm *r = &nnref_charlms[_i];
    tg_charlm m;
    tg_charlm_config cfg = { tg_test_cell_type(r->kind), r->vocab, r->layers,
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
        ck_assert_msg(tg_test_max_abs_diff(tg_params_at(ps, i), r->params[i].grad, true) < 1e-10,
                      "%s grad of %s", r->kind, r->params[i].name);
    int64_t BH = (int64_t)r->B * r->hidden;
    for (int l = 0; l < r->layers; l++) {
        ck_assert(tg_test_max_abs_diff(st->tensors[l][0], r->h_n + l * BH, false) < 1e-12);
        ck_assert_int_eq(st->tensors[l][0]->flags & TG_FLAG_TAPE, 0);      /* still caller-owned */
        if (r->c_n)
            ck_assert(tg_test_max_abs_diff(st->tensors[l][1], r->c_n + l * BH, false) < 1e-12);
    }
    tg_tape_free(tape);
    tg_stack_state_free(st);
    tg_charlm_deinit(&m);
    tg_params_free(ps);
}
END_TEST


/* ---- a user's cell type, registered at run time ---------------------------------- */

/* "acc3", a cell with three state tensors, as a user would write it:
     h' = tanh(layer(concat(h, x)) + 0.5 * a),  a' = a + h',  q' = 0.9 * q + h' * h'
   (q feeds nothing back: a state the model only carries). */
typedef struct acc3_cell {
    int input_size, hidden_size;
    tg_linear layer;                                        /* (H+I) -> H */
} acc3_cell;

static tg_status acc3_init(void *cell, tg_params *ps, const char *prefix, int input_size,
                           int hidden_size, const tg_init *init, tg_rng *rng)
{
    acc3_cell *c = cell;
    char name[64];
    snprintf(name, sizeof name, "%s.layer", prefix);
    c->input_size = input_size;
    c->hidden_size = hidden_size;
    return tg_linear_init(&c->layer, ps, name, hidden_size + input_size, hidden_size,
                          hidden_size, init, rng);
}

static void acc3_step(tg_tape *t, const void *cell, tg_tensor *x, tg_tensor *const *state,
                      tg_tensor **next)
{
    const acc3_cell *c = cell;
    tg_tensor *pre = tg_linear_apply(t, &c->layer, tg_concat(t, state[0], x, 1));
    tg_tensor *h = tg_name(t, tg_tanh(t, tg_add(t, pre, tg_scale(t, state[1], 0.5))),
                           "hidden");
    next[0] = h;
    next[1] = tg_add(t, state[1], h);
    next[2] = tg_add(t, tg_scale(t, state[2], 0.9), tg_mul(t, h, h));
}

static const tg_cell_type acc3_type = { "acc3", 3, sizeof(acc3_cell), acc3_init, acc3_step };

/* A step that gives no h and records no error (a bug in a user's cell). */
static void silent_step(tg_tape *t, const void *cell, tg_tensor *x, tg_tensor *const *state,
                        tg_tensor **next)
{
    (void)t, (void)cell, (void)x, (void)state, (void)next;
}

static const tg_cell_type silent_type = { "silent", 1, sizeof(acc3_cell), acc3_init,
                                          silent_step };

/* ---- gradient checks (float64) -------------------------------------------------- */

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
    return tg_add(tape, loss, tg_scale(tape, tg_sum(tape, cur.tensors[0][0]), 0.3));
}

START_TEST(test_stack_gradcheck)
{
    stack_fixture f;
    memset(&f, 0, sizeof f);
    tg_rng rng;
    tg_rng_seed(&rng, 200 + _i);
    f.ps = tg_params_new(TG_F64);
    tg_init init = { TG_INIT_UNIFORM, 0.6, false };
    const tg_cell_type *type = tg_test_cell_type(tg_test_builtin_cells[_i]);
    ck_assert_int_eq(tg_rnn_stack_init(&f.s, f.ps, "rnn", type, 2, GC_I, GC_H, 0.3,
                                       &init, &rng), TG_OK);
    for (int t = 0; t < GC_T; t++) {
        f.x[t] = tg_test_new_f64(2, GC_B, GC_I, NULL);
        tg_tensor_fill_uniform(f.x[t], &rng, -1, 1);
        f.r[t] = tg_test_new_f64(2, GC_B, GC_H, NULL);
        tg_tensor_fill_uniform(f.r[t], &rng, -1, 1);
    }
    f.init_state = tg_stack_state_new(&f.s, TG_F64, GC_B);
    for (int l = 0; l < 2; l++) {
        tg_tensor_fill_uniform(f.init_state->tensors[l][0], &rng, -0.5, 0.5);
        if (f.init_state->tensors[l][1])
            tg_tensor_fill_uniform(f.init_state->tensors[l][1], &rng, -0.5, 0.5);
    }
    tg_gradcheck_result res;
    /* beyond the default rule, a relative error under 1e-7, which takes a step of 1e-5 */
    tg_gradcheck_opts opts = { .eps = 1e-5, .tolerance = 1e-7 };
    for (int training = 0; training < 2; training++) {   /* without, then with dropout */
        f.training = training;
        ck_assert_int_eq(tg_gradcheck_params(f.ps, stack_loss, &f, &opts, &res, NULL), TG_OK);
        ck_assert_msg(res.passed && res.max_rel_err < 1e-7, "%s stack (training %d): %g",
                      tg_test_builtin_cells[_i], training, res.max_rel_err);
    }
    tg_stack_state_free(f.init_state);
    for (int t = 0; t < GC_T; t++) {
        tg_tensor_free(f.x[t]);
        tg_tensor_free(f.r[t]);
    }
    tg_rnn_stack_deinit(&f.s);
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
    /* one-hot RNN, one-hot LSTM, embedding GRU, one-hot acc3 (a user's type with three
       state tensors): the whole model, loss over all steps */
    lm_fixture f;
    ck_assert_int_eq(tg_cell_type_register(&acc3_type), TG_OK);
    const char *kind = _i < 3 ? tg_test_builtin_cells[_i] : "acc3";
    f.ps = tg_test_charlm_params(&f.m, kind, _i == 2 ? 3 : 0, 300 + _i, TG_F64);
    for (int i = 0; i < 12; i++) {
        f.in[i] = (int32_t)((i * 7 + 3) % 11);
        f.tgt[i] = (int32_t)((i * 5 + 1) % 11);
    }
    /* The mean cross-entropy's gradients are small (many below the 1e-3 floor), so the
       finite differences' rounding error (~|loss| 1e-16 / eps) dominates: a step of 3e-5
       balances it against the O(eps^2) truncation error (worst ~2e-8 vs ~7e-8 at 1e-5). */
    tg_gradcheck_opts opts = { .eps = 3e-5, .tolerance = 1e-7 };
    tg_gradcheck_result res;
    double per[32];
    ck_assert_int_eq(tg_gradcheck_params(f.ps, lm_loss, &f, &opts, &res, per), TG_OK);
    ck_assert_msg(res.passed && res.max_rel_err < 1e-7, "%s char-LM: %g",
                  kind, res.max_rel_err);
    tg_charlm_deinit(&f.m);
    tg_params_free(f.ps);
}
END_TEST

START_TEST(test_user_cell_through_charlm)
{
    ck_assert_int_eq(tg_cell_type_register(&acc3_type), TG_OK);
    tg_test_lm lm;
    tg_test_lm_open(&lm, "acc3", 0, 21, TG_F64, 2);
    ck_assert_ptr_eq(lm.m.rnn.type, &acc3_type);
    ck_assert_str_eq(tg_params_name(lm.ps, 0), "rnn.0.layer.w");
    ck_assert_int_eq(lm.st->nstate, 3);
    ck_assert_ptr_nonnull(lm.st->tensors[1][2]);
    ck_assert_ptr_null(lm.st->tensors[1][3]);
    int32_t in[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, tgt[8] = { 2, 3, 4, 5, 6, 7, 8, 9 };
    tg_tensor *loss = tg_charlm_loss(lm.tape, &lm.m, in, tgt, 2, 4, lm.st, true, NULL);
    ck_assert_msg(loss != NULL, "%s", tg_tape_errmsg(lm.tape));
    ck_assert_int_eq(tg_backward(lm.tape, loss), TG_OK);
    double q = 0;                          /* the carried third state moved off zero */
    for (int64_t i = 0; i < lm.st->tensors[1][2]->numel; i++)
        q += tg_tensor_get(lm.st->tensors[1][2], i);
    ck_assert(q > 0);
    tg_tape_reset(lm.tape);
    ck_assert_ptr_nonnull(tg_charlm_step(lm.tape, &lm.m, in, 2, lm.st));
    tg_test_lm_close(&lm);
}
END_TEST

START_TEST(test_user_cell_that_fails_silently)
{
    ck_assert_int_eq(tg_cell_type_register(&silent_type), TG_OK);
    tg_test_lm lm;
    tg_test_lm_open(&lm, "silent", 0, 22, TG_F64, 2);
    int32_t in[4] = { 1, 2, 3, 4 };
    ck_assert_ptr_null(tg_charlm_loss(lm.tape, &lm.m, in, in, 2, 2, lm.st, false, NULL));
    ck_assert_int_eq(tg_tape_status(lm.tape), TG_ERR_ARG);
    ck_assert_msg(strstr(tg_tape_errmsg(lm.tape), "cell type \"silent\" gave no state 0 for "
                         "layer 0 and recorded no error"), "%s", tg_tape_errmsg(lm.tape));
    tg_test_lm_close(&lm);
}
END_TEST

/* ---- stacks: dropout, state ------------------------------------------------------ */

START_TEST(test_dropout_only_in_training)
{
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng rng;
    tg_rng_seed(&rng, 8);
    tg_rnn_stack s;
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "s", tg_test_cell_type("lstm"), 3, 5, 16, 0.5,
                                       NULL, &rng), TG_OK);
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
    ck_assert(memcmp(a.tensors[0][0]->data, c.tensors[0][0]->data, 64 * sizeof(double)) == 0);
    ck_assert(memcmp(a.tensors[1][0]->data, c.tensors[1][0]->data, 64 * sizeof(double)) != 0);
    /* the same seed gives the same masks */
    tg_rng_seed(&r1, 1);
    tg_stack_state e = *st;
    tg_tensor *ye = tg_rnn_stack_step(tape, &s, x, &e, true, &r1);
    ck_assert(memcmp(yc->data, ye->data, 64 * sizeof(double)) == 0);
    /* training with dropout and no rng is an error, and leaves the state alone */
    tg_stack_state f = *st;
    ck_assert_ptr_null(tg_rnn_stack_step(tape, &s, x, &f, true, NULL));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NULL);
    ck_assert_ptr_eq(f.tensors[0][0], st->tensors[0][0]);
    tg_stack_state_free(st);
    tg_tape_free(tape);
    tg_rnn_stack_deinit(&s);
    tg_params_free(ps);
}
END_TEST

START_TEST(test_stack_state_helpers)
{
    tg_params *ps = tg_params_new(TG_F32);
    tg_rng rng;
    tg_rng_seed(&rng, 9);
    tg_rnn_stack lstm, gru;
    ck_assert_int_eq(tg_rnn_stack_init(&lstm, ps, "a", tg_test_cell_type("lstm"), 2, 3, 4, 0,
                                       NULL, &rng), TG_OK);
    ck_assert_int_eq(tg_rnn_stack_init(&gru, ps, "b", tg_test_cell_type("gru"), 2, 3, 4, 0,
                                       NULL, &rng), TG_OK);
    tg_stack_state *a = tg_stack_state_new(&lstm, TG_F32, 5);
    tg_stack_state *b = tg_stack_state_new(&lstm, TG_F32, 5);
    tg_stack_state *g = tg_stack_state_new(&gru, TG_F32, 5);
    tg_stack_state *small = tg_stack_state_new(&lstm, TG_F32, 2);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->layers, 2);
    for (int l = 0; l < 2; l++) {
        ck_assert_int_eq(a->tensors[l][0]->shape[0], 5);
        ck_assert_int_eq(a->tensors[l][0]->shape[1], 4);
        ck_assert_ptr_nonnull(a->tensors[l][1]);
        ck_assert_ptr_null(g->tensors[l][1]);
        for (int64_t i = 0; i < 20; i++)
            ck_assert(tg_tensor_get(a->tensors[l][0], i) == 0.0);
        tg_tensor_fill_uniform(a->tensors[l][0], &rng, -1, 1);
        tg_tensor_fill_uniform(a->tensors[l][1], &rng, -1, 1);
    }
    ck_assert_int_eq(tg_stack_state_copy(b, a), TG_OK);
    for (int l = 0; l < 2; l++) {
        ck_assert(memcmp(a->tensors[l][0]->data, b->tensors[l][0]->data, 20 * sizeof(float)) == 0);
        ck_assert(memcmp(a->tensors[l][1]->data, b->tensors[l][1]->data, 20 * sizeof(float)) == 0);
        ck_assert_ptr_ne(a->tensors[l][0], b->tensors[l][0]);
    }
    ck_assert_int_eq(tg_stack_state_copy(b, small), TG_ERR_SHAPE);
    ck_assert_int_eq(tg_stack_state_copy(b, g), TG_ERR_SHAPE);       /* no c */
    ck_assert_int_eq(tg_stack_state_copy(NULL, g), TG_ERR_NULL);
    /* untouched */
    ck_assert(memcmp(a->tensors[0][0]->data, b->tensors[0][0]->data, 20 * sizeof(float)) == 0);
    tg_stack_state_zero(b);
    for (int l = 0; l < 2; l++)
        for (int64_t i = 0; i < 20; i++)
            ck_assert(tg_tensor_get(b->tensors[l][0], i) == 0.0 &&
                      tg_tensor_get(b->tensors[l][1], i) == 0.0);
    ck_assert_ptr_null(tg_stack_state_new(&lstm, TG_F32, 0));
    ck_assert_ptr_null(tg_stack_state_new(NULL, TG_F32, 3));
    tg_stack_state_free(NULL);
    tg_stack_state_zero(NULL);

    /* a NULL state tensor in a working state is read as zeros */
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tape_tensor(tape, TG_F32, 2, (const int64_t[]){ 5, 3 });
    tg_tensor_fill_uniform(x, &rng, -1, 1);
    tg_stack_state zero_cur = { .layers = 2 };
    tg_stack_state from_new = *b;                  /* zeroed above */
    tg_tensor *y1 = tg_rnn_stack_step(tape, &lstm, x, &zero_cur, false, NULL);
    tg_tensor *y2 = tg_rnn_stack_step(tape, &lstm, x, &from_new, false, NULL);
    ck_assert_msg(y1 && y2, "%s", tg_tape_errmsg(tape));
    ck_assert(memcmp(y1->data, y2->data, 20 * sizeof(float)) == 0);
    ck_assert_ptr_eq(zero_cur.tensors[1][0], y1);
    ck_assert_int_eq(zero_cur.nstate, 2);
    /* a state with the wrong number of layers */
    tg_stack_state one = { .layers = 1, .nstate = 2 };
    ck_assert_ptr_null(tg_rnn_stack_step(tape, &lstm, x, &one, false, NULL));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_SHAPE);
    /* a GRU's state (one tensor per layer) in an LSTM stack */
    tg_tape_reset(tape);
    x = tg_tape_tensor(tape, TG_F32, 2, (const int64_t[]){ 5, 3 });
    tg_stack_state gcur = *g;
    ck_assert_ptr_null(tg_rnn_stack_step(tape, &lstm, x, &gcur, false, NULL));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(tape), "nstate"));
    ck_assert_int_eq(tg_stack_state_copy(a, g), TG_ERR_SHAPE);
    tg_tape_free(tape);

    tg_stack_state_free(a);
    tg_stack_state_free(b);
    tg_stack_state_free(g);
    tg_stack_state_free(small);
    tg_rnn_stack_deinit(&lstm);
    tg_rnn_stack_deinit(&gru);
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
        tg_charlm_config cfg = { tg_test_cell_type(tg_test_builtin_cells[kind]), 65, 2, 32,
                                 kind == 1 ? 16 : 0, 0.2 };
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
                      tg_test_builtin_cells[kind], tg_tensor_get(loss, 0));
        ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
        tg_tape_free(tape);
        tg_stack_state_free(st);
        tg_charlm_deinit(&m);
        tg_params_free(ps);
    }
}
END_TEST

START_TEST(test_charlm_carries_state)
{
    /* one window of 8 == two windows of 4 with the state carried (the TBPTT detach) */
    tg_charlm m;
    tg_params *ps = tg_test_charlm_params(&m, "lstm", 0, 11, TG_F64);
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
        for (int k = 0; k < 2; k++)
            ck_assert(tg_test_max_abs_diff(split->tensors[l][k], whole->tensors[l][k]->data,
                                           false) < 1e-13);
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
        ck_assert(tg_test_max_abs_diff(gen->tensors[l][0], whole->tensors[l][0]->data, false) <
                  1e-13);
    tg_tape_free(tape);
    tg_stack_state_free(gen);
    tg_stack_state_free(whole);
    tg_stack_state_free(split);
    tg_charlm_deinit(&m);
    tg_params_free(ps);
}
END_TEST

START_TEST(test_charlm_errors)
{
    tg_test_lm lm;
    tg_test_lm_open(&lm, "gru", 0, 12, TG_F32, 2);
    tg_stack_state *wrong = tg_stack_state_new(&lm.m.rnn, TG_F32, 3);
    tg_stack_state *f64 = tg_stack_state_new(&lm.m.rnn, TG_F64, 2);
    tg_tensor_fill(lm.st->tensors[0][0], 0.25);
    int32_t in[6] = { 0, 1, 2, 3, 4, 5 }, tgt[6] = { 1, 2, 3, 4, 5, 6 };

    in[4] = 11;                                               /* == V: out of range */
    ck_assert_ptr_null(tg_charlm_loss(lm.tape, &lm.m, in, tgt, 2, 3, lm.st, false, NULL));
    ck_assert_int_eq(tg_tape_status(lm.tape), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(lm.tape), "charlm_loss"));
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(lm.tape), "inputs[4] = 11"));
    ck_assert(tg_tensor_get(lm.st->tensors[0][0], 0) == 0.25f);        /* state untouched */
    tg_tape_reset(lm.tape);
    in[4] = 4;
    tgt[0] = -1;
    ck_assert_ptr_null(tg_charlm_loss(lm.tape, &lm.m, in, tgt, 2, 3, lm.st, false, NULL));
    ck_assert_int_eq(tg_tape_status(lm.tape), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(lm.tape), "targets[0] = -1"));
    tg_tape_reset(lm.tape);
    tgt[0] = 1;
    /* NULL inputs, state or model, no batch rows, a state of the wrong batch or dtype */
    EXPECT_FAIL(lm.tape, tg_charlm_loss(lm.tape, &lm.m, NULL, tgt, 2, 3, lm.st, false, NULL),
                TG_ERR_NULL, "");
    EXPECT_FAIL(lm.tape, tg_charlm_loss(lm.tape, &lm.m, in, tgt, 2, 3, NULL, false, NULL),
                TG_ERR_NULL, "");
    EXPECT_FAIL(lm.tape, tg_charlm_loss(lm.tape, NULL, in, tgt, 2, 3, lm.st, false, NULL),
                TG_ERR_NULL, "");
    EXPECT_FAIL(lm.tape, tg_charlm_loss(lm.tape, &lm.m, in, tgt, 0, 3, lm.st, false, NULL),
                TG_ERR_ARG, "");
    EXPECT_FAIL(lm.tape, tg_charlm_loss(lm.tape, &lm.m, in, tgt, 2, 3, wrong, false, NULL),
                TG_ERR_SHAPE, "");
    EXPECT_FAIL(lm.tape, tg_charlm_loss(lm.tape, &lm.m, in, tgt, 2, 3, f64, false, NULL),
                TG_ERR_SHAPE, "");
    tg_tape_reset(lm.tape);
    int32_t bad_tok[2] = { 3, 99 };
    ck_assert_ptr_null(tg_charlm_step(lm.tape, &lm.m, bad_tok, 2, lm.st));
    ck_assert_int_eq(tg_tape_status(lm.tape), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_tape_errmsg(lm.tape), "tokens[1] = 99"));
    tg_tape_reset(lm.tape);
    ck_assert_ptr_null(tg_charlm_step(lm.tape, &lm.m, NULL, 2, lm.st));
    ck_assert_int_eq(tg_tape_status(lm.tape), TG_ERR_NULL);
    tg_tape_reset(lm.tape);
    /* a sticky error from before stops the loss too */
    ck_assert_ptr_null(tg_linear_apply(lm.tape, NULL, NULL));
    ck_assert_ptr_null(tg_charlm_loss(lm.tape, &lm.m, in, tgt, 2, 3, lm.st, false, NULL));
    ck_assert_int_eq(tg_tape_status(lm.tape), TG_ERR_NULL);
    ck_assert(tg_tensor_get(lm.st->tensors[0][0], 0) == 0.25f);
    tg_stack_state_free(wrong);
    tg_stack_state_free(f64);
    tg_test_lm_close(&lm);
}
END_TEST

START_TEST(test_charlm_out_of_memory)
{
    /* every allocation the model makes on the tape can fail: NOMEM, state untouched */
    tg_test_lm lm;
    tg_test_lm_open(&lm, "lstm", 0, 14, TG_F64, 2);
    tg_tensor_fill(lm.st->tensors[1][1], 0.5);
    int32_t in[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, tgt[8] = { 2, 3, 4, 5, 6, 7, 8, 9 };
    tg_tensor *loss = tg_charlm_loss(lm.tape, &lm.m, in, tgt, 2, 4, lm.st, false, NULL);
    ck_assert_ptr_nonnull(loss);
    size_t need = tg_tape_bytes_used(lm.tape);
    tg_stack_state_zero(lm.st);
    tg_tensor_fill(lm.st->tensors[1][1], 0.5);
    for (size_t limit = 64; limit < need; limit += need / 16) {
        tg_tape_free(lm.tape);
        lm.tape = tg_tape_new();
        tg_tape_set_memory_limit(lm.tape, limit);
        ck_assert_ptr_null(tg_charlm_loss(lm.tape, &lm.m, in, tgt, 2, 4, lm.st, false, NULL));
        ck_assert_int_eq(tg_tape_status(lm.tape), TG_ERR_NOMEM);
        ck_assert(tg_tensor_get(lm.st->tensors[1][1], 3) == 0.5 &&
                  tg_tensor_get(lm.st->tensors[0][0], 0) == 0.0);
    }
    tg_tape_reset(lm.tape);
    ck_assert_ptr_null(tg_charlm_loss(lm.tape, &lm.m, in, tgt, INT64_MAX / 2, 4, lm.st, false,
                                      NULL));
    ck_assert_int_eq(tg_tape_status(lm.tape), TG_ERR_ARG);
    tg_test_lm_close(&lm);
}
END_TEST

START_TEST(test_charlm_same_bits_any_thread_count)
{
    /* big enough that the kernels split across threads */
    tg_params *ps = tg_params_new(TG_F32);
    tg_rng rng;
    tg_rng_seed(&rng, 15);
    tg_charlm m;
    tg_charlm_config cfg = { tg_test_cell_type("lstm"), 65, 2, 128, 0, 0.25 };
    ck_assert_int_eq(tg_charlm_init(&m, ps, &cfg, NULL, &rng), TG_OK);
    enum { B = 320, T = 4 };        /* gates (320,128): 40960 elements, gemms 7.9M FMAs */
    _Static_assert(2 * B * 128 > TG_PAR_THRESHOLD, "a binary op on the gates stays serial");
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
    tg_charlm_deinit(&m);
    tg_params_free(ps);
}
END_TEST

START_TEST(test_charlm_step_no_malloc_after_first)
{
    /* a training step (forward + backward) allocates nothing from the second on */
    tg_test_lm lm;
    tg_test_lm_open(&lm, "lstm", 5, 13, TG_F32, 3);
    int32_t in[30], tgt[30];
    for (int i = 0; i < 30; i++) {
        in[i] = (int32_t)(i % 11);
        tgt[i] = (int32_t)((i + 1) % 11);
    }
    int64_t after_first = 0;
    float first = 0, last = 0;
    for (int step = 0; step < 4; step++) {
        tg_tape_reset(lm.tape);
        tg_params_zero_grad(lm.ps);
        tg_tensor *loss = tg_charlm_loss(lm.tape, &lm.m, in, tgt, 3, 10, lm.st, false, NULL);
        ck_assert_int_eq(tg_backward(lm.tape, loss), TG_OK);
        if (step == 0) {
            after_first = tg_tape_mallocs(lm.tape);
            first = (float)tg_tensor_get(loss, 0);
        }
        last = (float)tg_tensor_get(loss, 0);
    }
    ck_assert_int_eq(tg_tape_mallocs(lm.tape), after_first);
    ck_assert(isfinite(first) && isfinite(last));
    tg_test_lm_close(&lm);
}
END_TEST

Suite *stack_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("torch", 0),
        TG_LOOP(test_charlm_matches_torch, 3),
        TG_CASE("gradcheck", 60),
        TG_LOOP(test_stack_gradcheck, 3),
        TG_LOOP(test_charlm_gradcheck, 4),
        TG_CASE("stack", 0),
        TG_TEST(test_dropout_only_in_training),
        TG_TEST(test_stack_state_helpers),
        TG_TEST(test_charlm_loss_at_init_is_ln_v),
        TG_TEST(test_charlm_carries_state),
        TG_TEST(test_charlm_errors),
        TG_TEST(test_charlm_out_of_memory),
        TG_TEST(test_charlm_same_bits_any_thread_count),
        TG_TEST(test_charlm_step_no_malloc_after_first),
        TG_TEST(test_user_cell_through_charlm),
        TG_TEST(test_user_cell_that_fails_silently),
    };
    return TG_TEST_SUITE("stack", rows);
}
