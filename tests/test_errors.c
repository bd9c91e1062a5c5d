/* tests/test_errors.c: the errors suite: tg_tape_fail, scopes naming the layer and time
   step of a failure, and the reasons behind every NULL and status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/tests.h"

/* Legend: B batch, T time, I input, H hidden, V vocab. */

#define ck_msg_has(msg, part)                                                          \
    ck_assert_msg(strstr((msg), (part)) != NULL, "message '%s' lacks '%s'", (msg), (part))

/* ---- tg_tape_fail and scopes ------------------------------------------------------ */

/* A user's layer that validates its input the way nn/ does. */
static tg_tensor *user_square_layer(tg_tape *tape, tg_tensor *x)
{
    if (x && x->ndim != 2)
        return tg_tape_fail(tape, TG_ERR_SHAPE, "square_layer: x has %d dims, want 2",
                            x->ndim);
    return tg_mul(tape, x, x);
}

START_TEST(test_tape_fail_is_sticky_and_scoped)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x3 = tg_tape_tensor(tape, TG_F32, 3, (const int64_t[]){ 2, 2, 2 });
    tg_tape_push_scope(tape, "encoder");
    ck_assert_ptr_null(user_square_layer(tape, x3));
    tg_tape_pop_scope(tape);
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_SHAPE);
    ck_assert_str_eq(tg_tape_errmsg(tape), "encoder: square_layer: x has 3 dims, want 2");
    /* the first error sticks: neither a later tg_tape_fail nor an op replaces it */
    ck_assert_ptr_null(tg_tape_fail(tape, TG_ERR_ARG, "second"));
    ck_assert_ptr_null(tg_neg(tape, x3));
    ck_assert_str_eq(tg_tape_errmsg(tape), "encoder: square_layer: x has 3 dims, want 2");
    tg_tape_reset(tape);
    ck_assert_int_eq(tg_tape_status(tape), TG_OK);
    /* TG_OK is not a failure status: recorded as TG_ERR_ARG; no scope, no prefix */
    ck_assert_ptr_null(tg_tape_fail(tape, TG_OK, "odd %d", 1));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_ARG);
    ck_assert_str_eq(tg_tape_errmsg(tape), "odd 1");
    /* NULL tape and unbalanced pops are harmless */
    ck_assert_ptr_null(tg_tape_fail(NULL, TG_ERR_ARG, "x"));
    tg_tape_push_scope(NULL, "x");
    tg_tape_pop_scope(NULL);
    tg_tape_pop_scope(tape);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_scopes_nest_and_overflow)
{
    tg_tape *tape = tg_tape_new();
    static const char *const names[10] = { "a", "b", "c", "d", "e", "f", "g", "h", "i", "j" };
    for (int i = 0; i < 10; i++)
        tg_tape_push_scope(tape, names[i]);
    tg_tape_pop_scope(tape);                                /* 9 pushed: 8 kept, then ... */
    ck_assert_ptr_null(tg_tanh(tape, NULL));
    ck_assert_str_eq(tg_tape_errmsg(tape), "a/b/c/d/e/f/g/h/...: tanh: operand 1 is NULL");
    for (int i = 0; i < 9; i++)
        tg_tape_pop_scope(tape);
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_tanh(tape, NULL));                /* all popped: no prefix */
    ck_assert_str_eq(tg_tape_errmsg(tape), "tanh: operand 1 is NULL");
    tg_tape_free(tape);
}
END_TEST

/* A 2-layer LSTM char-LM whose layer 1 forget weight has one row too many: the error
   names the time step, the layer and the gate. */
START_TEST(test_charlm_error_names_step_layer_gate)
{
    enum { V = 5, H = 8, B = 2, T = 20 };
    tg_params *ps = tg_params_new(TG_F32);
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_charlm m;
    tg_charlm_config cfg = { .cell = tg_test_cell_type("lstm"), .vocab = V, .layers = 2,
                             .hidden = H };
    ck_assert_int_eq(tg_charlm_init(&m, ps, &cfg, NULL, &rng), TG_OK);
    tg_tensor *wide = tg_tensor_new(TG_F32, 2, (const int64_t[]){ 2 * H + 1, H });
    tg_lstm_cell *lstm1 = m.rnn.cells[1];
    tg_linear *forget = &lstm1->forget;
    tg_tensor *keep = forget->w;
    forget->w = wide;
    tg_stack_state *st = tg_stack_state_new(&m.rnn, TG_F32, B);
    int32_t ids[B * T] = { 0 };
    tg_tape *tape = tg_tape_new();
    ck_assert_ptr_null(tg_charlm_loss(tape, &m, ids, ids, B, T, st, false, NULL));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_SHAPE);
    printf("scoped error: %s\n", tg_tape_errmsg(tape));
    ck_assert_str_eq(tg_tape_errmsg(tape),
                     "t=0/rnn.1/forget: gate: (2,16) @ (17,8): inner dimensions differ");
    forget->w = keep;
    tg_tape_reset(tape);
    ck_assert_ptr_nonnull(tg_charlm_loss(tape, &m, ids, ids, B, T, st, false, NULL));
    tg_tape_free(tape);
    tg_tensor_free(wide);
    tg_stack_state_free(st);
    tg_charlm_deinit(&m);
    tg_params_free(ps);
}
END_TEST

/* A user's loop over a stack, with its own time-step scope: a wrong width at step 17. */
START_TEST(test_stack_error_deep_in_time)
{
    enum { I = 3, H = 4, B = 2, T = 20 };
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng rng;
    tg_rng_seed(&rng, 4);
    tg_rnn_stack s;
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "enc", tg_test_cell_type("gru"), 2, I, H, 0,
                                       NULL, &rng), TG_OK);
    tg_tape *tape = tg_tape_new();
    tg_stack_state cur = { .layers = 2 };
    tg_tensor *top = NULL;
    char step_name[32];
    for (int t = 0; t < T; t++) {
        int64_t width = t == 17 ? I + 1 : I;
        tg_tensor *x = tg_tape_tensor(tape, TG_F64, 2, (const int64_t[]){ B, width });
        snprintf(step_name, sizeof step_name, "step %d", t);
        tg_tape_push_scope(tape, step_name);
        top = tg_rnn_stack_step(tape, &s, x, &cur, false, NULL);
        tg_tape_pop_scope(tape);
    }
    ck_assert_ptr_null(top);
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_SHAPE);
    ck_msg_has(tg_tape_errmsg(tape), "step 17/enc.0: gru_cell_step: x (2,4), h (2,4)");
    tg_tape_free(tape);
    tg_rnn_stack_deinit(&s);
    tg_params_free(ps);
}
END_TEST

/* ---- wrong tapes and use after reset ----------------------------------------------- */

/* x (2,3) f64 requiring grad; its square's sum recorded on tape. */
static tg_tensor *square_sum(tg_tape *tape, tg_tensor *x)
{
    return tg_sum(tape, tg_mul(tape, x, x));
}

START_TEST(test_backward_on_another_tapes_loss)
{
    tg_tensor *x = tg_tensor_new(TG_F64, 2, (const int64_t[]){ 2, 3 });
    tg_tensor_fill(x, 2.0);
    ck_assert_int_eq(tg_tensor_requires_grad(x), TG_OK);
    tg_tape *train = tg_tape_new(), *eval = tg_tape_new();
    tg_tensor *loss = square_sum(train, x);
    ck_assert_ptr_nonnull(loss);
    ck_assert_int_eq(tg_backward(eval, loss), TG_ERR_ARG);
    ck_msg_has(tg_tape_errmsg(eval), "backward: the loss belongs to another tape");
    ck_assert_double_eq(tg_tensor_grad_get(x, 0), 0.0);        /* nothing computed */
    ck_assert_int_eq(tg_tape_status(train), TG_OK);            /* the right tape is fine */
    ck_assert_int_eq(tg_backward(train, loss), TG_OK);
    ck_assert_double_eq(tg_tensor_grad_get(x, 0), 4.0);
    /* an operand from another tape is refused too */
    ck_assert_ptr_null(tg_neg(eval, loss));
    tg_tape_reset(eval);
    ck_assert_ptr_null(tg_add(eval, x, loss));
    ck_msg_has(tg_tape_errmsg(eval), "add: operand 2 belongs to another tape");
    tg_tape_free(train);
    tg_tape_free(eval);
    tg_tensor_free(x);
}
END_TEST

START_TEST(test_tensor_used_after_reset)
{
    tg_tensor *x = tg_tensor_new(TG_F64, 2, (const int64_t[]){ 2, 3 });
    ck_assert_int_eq(tg_tensor_requires_grad(x), TG_OK);
    tg_tape *tape = tg_tape_new();
    tg_tensor *h = tg_tanh(tape, x);
    tg_tensor *loss = square_sum(tape, h);
    tg_tape_reset(tape);
    /* the carried state, not copied out: the next step's first op says what happened */
    ck_assert_ptr_null(tg_mul(tape, x, h));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_ARG);
    ck_assert_str_eq(tg_tape_errmsg(tape), "mul: operand 2 was recorded before the tape's "
                     "last reset (a tape's tensors die at tg_tape_reset: copy out what must "
                     "outlive a step)");
    tg_tape_reset(tape);
    ck_assert_int_eq(tg_backward(tape, loss), TG_ERR_ARG);
    ck_msg_has(tg_tape_errmsg(tape), "backward: the loss was recorded before the tape's");
    /* a tensor made after the reset is fine */
    tg_tape_reset(tape);
    ck_assert_ptr_nonnull(square_sum(tape, tg_tanh(tape, x)));
    tg_tape_free(tape);
    tg_tensor_free(x);
}
END_TEST

/* ---- reasons of functions that are not ops ------------------------------------------ */

/* status must be want, and tg_last_error() must hold part */
#define ck_reason(status, want, part)                                                  \
    do {                                                                               \
        tg_clear_error();                                                              \
        ck_assert_int_eq((status), (want));                                            \
        ck_msg_has(tg_last_error(), (part));                                           \
        ck_assert_int_eq(tg_last_status(), (want));                                    \
    } while (0)
/* the call must return NULL, with tg_last_error() holding part */
#define ck_null_reason(call, part)                                                     \
    do {                                                                               \
        tg_clear_error();                                                              \
        ck_assert_ptr_null(call);                                                      \
        ck_msg_has(tg_last_error(), (part));                                           \
    } while (0)

START_TEST(test_tensor_reasons)
{
    ck_null_reason(tg_tensor_new(TG_F32, 5, (const int64_t[]){ 1, 1, 1, 1, 1 }),
                   "tensor_new: 5 dims (must be 1..4)");
    ck_null_reason(tg_tensor_new(TG_F32, 2, (const int64_t[]){ 2, 0 }), "every dim must be");
    ck_null_reason(tg_tensor_new(TG_F32, 1, NULL), "shape is NULL");
    ck_null_reason(tg_tensor_new((tg_dtype)7, 1, (const int64_t[]){ 2 }), "unknown dtype 7");
    ck_null_reason(tg_tensor_clone(NULL), "tensor_clone: tensor is NULL");
    ck_reason(tg_tensor_requires_grad(NULL), TG_ERR_NULL, "tensor_requires_grad: tensor is");
    tg_tape *tape = tg_tape_new();
    tg_tensor *on_tape = tg_tape_tensor(tape, TG_F32, 1, (const int64_t[]){ 3 });
    ck_reason(tg_tensor_requires_grad(on_tape), TG_ERR_ARG, "(3) is owned by a tape");
    tg_tensor *a = tg_tensor_new(TG_F32, 1, (const int64_t[]){ 3 });
    tg_tensor *b = tg_tensor_new(TG_F64, 1, (const int64_t[]){ 3 });
    tg_tensor *c = tg_tensor_new(TG_F32, 1, (const int64_t[]){ 4 });
    ck_reason(tg_tensor_fill_values(a, NULL), TG_ERR_NULL, "fill_values: values is NULL");
    ck_reason(tg_tensor_copy(NULL, a), TG_ERR_NULL, "tensor_copy: dst is NULL");
    ck_reason(tg_tensor_copy(a, b), TG_ERR_DTYPE, "tensor_copy: dst is f32 but src is f64");
    ck_reason(tg_tensor_copy(a, c), TG_ERR_SHAPE, "dst (3) and src (4) differ in size");
    /* a success leaves the last reason alone, as errno does */
    ck_assert_int_eq(tg_tensor_copy(a, a), TG_OK);
    ck_msg_has(tg_last_error(), "differ in size");
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(c);
    tg_tape_free(tape);
}
END_TEST

START_TEST(test_params_reasons)
{
    ck_null_reason(tg_params_new((tg_dtype)9), "params_new: unknown dtype 9");
    tg_params *ps = tg_params_new(TG_F32);
    ck_assert_ptr_nonnull(tg_params_add(ps, "w", 1, (const int64_t[]){ 2 }));
    ck_null_reason(tg_params_add(ps, "w", 1, (const int64_t[]){ 2 }),
                   "params_add: name \"w\" is taken");
    ck_null_reason(tg_params_add(ps, "", 1, (const int64_t[]){ 2 }), "is empty");
    ck_null_reason(tg_params_add(ps, NULL, 1, (const int64_t[]){ 2 }), "name is NULL");
    ck_null_reason(tg_params_add(NULL, "v", 1, (const int64_t[]){ 2 }), "collection is NULL");
    char longname[80];
    memset(longname, 'a', 70);
    longname[70] = '\0';
    ck_null_reason(tg_params_add(ps, longname, 1, (const int64_t[]){ 2 }),
                   "is longer than 63 bytes");
    ck_null_reason(tg_params_add(ps, "v", 5, (const int64_t[]){ 1, 1, 1, 1, 1 }),
                   "params_add: \"v\": tensor_new: 5 dims");
    ck_null_reason(tg_params_at(ps, 3), "params_at: index 3 outside [0,1)");
    ck_null_reason(tg_params_name(ps, -1), "params_name: index -1 outside [0,1)");
    ck_null_reason(tg_params_find(ps, "nope"), "no parameter is named \"nope\"");
    ck_null_reason(tg_params_find(NULL, "w"), "params_find: collection is NULL");
    tg_params_free(ps);
}
END_TEST

START_TEST(test_init_reasons)
{
    tg_params *ps = tg_params_new(TG_F32);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_linear l;
    /* tg_linear_init's causes each have their own message */
    ck_reason(tg_linear_init(&l, ps, "fc", 2, 3, 2, NULL, NULL), TG_ERR_NULL,
              "linear_init: rng is NULL");
    ck_reason(tg_linear_init(&l, ps, "fc", 0, 3, 2, NULL, &rng), TG_ERR_ARG,
              "linear_init: fc: in 0, out 3, fan 2 (all must be >= 1)");
    ck_reason(tg_linear_init(&l, ps, "fc", 2, 3, 2,
                             &(tg_init){ .kind = TG_INIT_UNIFORM, .scale = -1 }, &rng),
              TG_ERR_ARG, "fc: uniform scale -1 must be finite and >= 0");
    ck_reason(tg_linear_init(&l, ps, "fc", 2, 3, 2, &(tg_init){ .kind = (tg_init_kind)42 },
                             &rng), TG_ERR_ARG, "fc: unknown init kind 42");
    char longname[70];
    memset(longname, 'n', 62);
    longname[62] = '\0';
    ck_reason(tg_linear_init(&l, ps, longname, 2, 3, 2, NULL, &rng), TG_ERR_ARG,
              "is longer than 63 bytes");
    ck_assert_int_eq(tg_linear_init(&l, ps, "fc", 2, 3, 2, NULL, &rng), TG_OK);
    ck_reason(tg_linear_init(&l, ps, "fc", 2, 3, 2, NULL, &rng), TG_ERR_ARG,
              "linear_init: parameter name \"fc.b\" is taken");
    tg_tensor *table;
    ck_reason(tg_embedding_init(&table, ps, "emb", 0, 4, NULL, &rng), TG_ERR_ARG,
              "embedding_init: emb: vocab 0, dim 4");
    ck_reason(tg_embedding_init(&table, ps, "fc.w", 3, 4, NULL, &rng), TG_ERR_ARG,
              "embedding_init: parameter name \"fc.w\" is taken");
    ck_reason(tg_embedding_init(NULL, ps, "e", 3, 4, NULL, &rng), TG_ERR_NULL, "table is NULL");
    /* cells */
    tg_lstm_cell lc;
    tg_gru_cell gc;
    tg_rnn_cell rc;
    ck_reason(tg_lstm_cell_init(NULL, ps, "l", 3, 4, NULL, &rng), TG_ERR_NULL,
              "lstm_cell_init: cell is NULL");
    ck_reason(tg_gru_cell_init(&gc, ps, "g", 3, 0, NULL, &rng), TG_ERR_ARG,
              "g: input_size 3, hidden_size 0");
    ck_reason(tg_rnn_cell_init(&rc, ps, NULL, 3, 4, NULL, &rng), TG_ERR_NULL,
              "prefix is NULL");
    ck_assert_int_eq(tg_lstm_cell_init(&lc, ps, "l", 3, 4, NULL, &rng), TG_OK);
    ck_reason(tg_lstm_cell_init(&lc, ps, "l", 3, 4, NULL, &rng), TG_ERR_ARG,
              "\"l.forget.b\" is taken");
    tg_params_free(ps);
}
END_TEST

START_TEST(test_stack_and_charlm_reasons)
{
    tg_params *ps = tg_params_new(TG_F32);
    tg_rng rng;
    tg_rng_seed(&rng, 2);
    tg_rnn_stack s;
    const tg_cell_type *lstm = tg_test_cell_type("lstm"), *gru = tg_test_cell_type("gru");
    ck_reason(tg_rnn_stack_init(&s, ps, "r", lstm, 0, 3, 4, 0, NULL, &rng), TG_ERR_ARG,
              "rnn_stack_init: r: 0 layers (must be 1..16)");
    ck_reason(tg_rnn_stack_init(&s, ps, "r", NULL, 1, 3, 4, 0, NULL, &rng),
              TG_ERR_ARG, "rnn_stack_init: r: NULL cell type");
    ck_reason(tg_rnn_stack_init(&s, ps, "r", gru, 1, 3, 4, 1.0, NULL, &rng),
              TG_ERR_ARG, "dropout 1 outside [0,1)");
    ck_reason(tg_rnn_stack_init(&s, ps, "r", gru, 1, 3, -4, 0, NULL, &rng),
              TG_ERR_ARG, "input_size 3, hidden_size -4");
    ck_reason(tg_rnn_stack_init(&s, NULL, "r", gru, 1, 3, 4, 0, NULL, &rng),
              TG_ERR_NULL, "params is NULL");
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "r", gru, 2, 3, 4, 0, NULL, &rng),
                     TG_OK);
    tg_rnn_stack again;
    ck_reason(tg_rnn_stack_init(&again, ps, "r", gru, 2, 3, 4, 0, NULL, &rng),
              TG_ERR_ARG, "rnn_stack_init: linear_init: parameter name \"r.0.update.b\"");
    ck_null_reason(tg_stack_state_new(&s, TG_F32, 0), "stack_state_new: batch 0");
    ck_null_reason(tg_stack_state_new(NULL, TG_F32, 2), "stack_state_new: stack is NULL");
    tg_rnn_stack blank = { .layers = 0 };
    ck_null_reason(tg_stack_state_new(&blank, TG_F32, 2), "not initialised");
    tg_rnn_stack_deinit(&again);                 /* zeroed by the failed init: a no-op */
    tg_stack_state *a = tg_stack_state_new(&s, TG_F32, 2);
    tg_stack_state *b = tg_stack_state_new(&s, TG_F32, 3);
    tg_stack_state *c = tg_stack_state_new(&s, TG_F64, 2);
    ck_reason(tg_stack_state_copy(a, b), TG_ERR_SHAPE,
              "layer 0's state 0: dst (2,4) f32, src (3,4) f32 do not match");
    ck_reason(tg_stack_state_copy(a, c), TG_ERR_SHAPE, "dst (2,4) f32, src (2,4) f64");
    ck_reason(tg_stack_state_copy(NULL, c), TG_ERR_NULL, "stack_state_copy: dst is NULL");
    b->layers = 1;
    ck_reason(tg_stack_state_copy(a, b), TG_ERR_SHAPE, "dst has 2 layers of 1 tensors, src 1");
    b->layers = 2;
    tg_charlm m;
    tg_charlm_config cfg = { .cell = lstm, .vocab = 0, .layers = 1, .hidden = 4 };
    ck_reason(tg_charlm_init(&m, ps, &cfg, NULL, &rng), TG_ERR_ARG, "charlm_init: vocab 0");
    cfg.vocab = 5;
    cfg.layers = 17;
    ck_reason(tg_charlm_init(&m, ps, &cfg, NULL, &rng), TG_ERR_ARG,
              "charlm_init: 17 layers (must be 1..16)");
    cfg.layers = 1;
    cfg.dropout = -0.5;
    ck_reason(tg_charlm_init(&m, ps, &cfg, NULL, &rng), TG_ERR_ARG, "dropout -0.5 outside");
    cfg.dropout = 0;
    cfg.cell = NULL;
    ck_reason(tg_charlm_init(&m, ps, &cfg, NULL, &rng), TG_ERR_ARG, "charlm_init: NULL cell type");
    cfg.cell = lstm;
    ck_reason(tg_charlm_init(NULL, ps, &cfg, NULL, &rng), TG_ERR_NULL, "model is NULL");
    tg_params *ps2 = tg_params_new(TG_F32);
    ck_assert_ptr_nonnull(tg_params_add(ps2, "head.b", 1, (const int64_t[]){ 1 }));
    ck_reason(tg_charlm_init(&m, ps2, &cfg, NULL, &rng), TG_ERR_ARG,
              "charlm_init: linear_init: parameter name \"head.b\" is taken");
    tg_params_free(ps2);
    tg_stack_state_free(a);
    tg_stack_state_free(b);
    tg_stack_state_free(c);
    tg_rnn_stack_deinit(&s);
    tg_params_free(ps);
}
END_TEST

/* The zoo's cell types refuse bad arguments with a reason naming the type. */
START_TEST(test_cell_type_init_reasons)
{
    static const char *const types[] = { "indrnn", "lnlstm", "peephole", "torchgru" };
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    for (int k = 0; k < 4; k++) {
        const tg_cell_type *type = tg_cell_type_find(types[k]);
        ck_assert_ptr_nonnull(type);
        void *cell = calloc(1, type->size);
        char want[96];
        snprintf(want, sizeof want, "%s init: c: input_size 3, hidden_size 0", types[k]);
        ck_reason(type->init(cell, ps, "c", 3, 0, NULL, &rng), TG_ERR_ARG, want);
        snprintf(want, sizeof want, "%s init: the cell, prefix or rng is NULL", types[k]);
        ck_reason(type->init(cell, ps, NULL, 3, 4, NULL, &rng), TG_ERR_NULL, want);
        free(cell);
    }
    tg_params_free(ps);
}
END_TEST

static void report(tg_recorder *r, const char *name, int64_t cols)
{
    tg_tensor *t = tg_tensor_new(TG_F32, 2, (const int64_t[]){ 1, cols });
    tg_recorder_observe(r, name, t);
    tg_tensor_free(t);
}

START_TEST(test_recorder_reasons)
{
    ck_null_reason(tg_recorder_new(0), "recorder_new: 0 layers (must be 1..16)");
    tg_recorder *r = tg_recorder_new(1);
    tg_series s;
    ck_reason(tg_recorder_series(r, 0, &s), TG_ERR_ARG, "recorder_series: index 0 outside");
    ck_reason(tg_recorder_get(r, 0, "forget", &s), TG_ERR_ARG,
              "recorder_get: no series \"forget\" in layer 0");
    ck_reason(tg_recorder_get(r, 0, NULL, &s), TG_ERR_NULL, "name is NULL");
    ck_reason(tg_recorder_status(NULL), TG_ERR_NULL, "recorder_status: recorder is NULL");
    report(r, "forget", 3);
    report(r, "forget", 4);       /* layer 0's next report with another shape */
    ck_reason(tg_recorder_status(r), TG_ERR_SHAPE,
              "recorder: layer 0 \"forget\" reported (1,4) f32 after (1,3) f32");
    tg_recorder_clear(r);
    ck_assert_int_eq(tg_recorder_status(r), TG_OK);
    char longname[80];
    memset(longname, 'x', 70);
    longname[70] = '\0';
    report(r, longname, 3);
    ck_reason(tg_recorder_status(r), TG_ERR_ARG, "is longer than 63 bytes");
    tg_recorder_free(r);
}
END_TEST

Suite *errors_suite(void)
{
    const tg_test_row rows[] = {
        TG_CASE("tape", 0),
        TG_TEST(test_tape_fail_is_sticky_and_scoped),
        TG_TEST(test_scopes_nest_and_overflow),
        TG_TEST(test_charlm_error_names_step_layer_gate),
        TG_TEST(test_stack_error_deep_in_time),
        TG_TEST(test_backward_on_another_tapes_loss),
        TG_TEST(test_tensor_used_after_reset),
        TG_CASE("reasons", 0),
        TG_TEST(test_tensor_reasons),
        TG_TEST(test_params_reasons),
        TG_TEST(test_init_reasons),
        TG_TEST(test_stack_and_charlm_reasons),
        TG_TEST(test_recorder_reasons),
        TG_TEST(test_cell_type_init_reasons),
    };
    return TG_TEST_SUITE("errors", rows);
}
