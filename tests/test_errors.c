/* tests/test_errors.c: the errors suite: tg_tape_fail, scopes naming the layer and time
   step of a failure, and the reasons behind every NULL and status. */
#include <stdio.h>
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
    tg_charlm_config cfg = { .cell = TG_CELL_LSTM, .vocab = V, .layers = 2, .hidden = H };
    ck_assert_int_eq(tg_charlm_init(&m, ps, &cfg, NULL, &rng), TG_OK);
    tg_tensor *wide = tg_tensor_new(TG_F32, 2, (const int64_t[]){ 2 * H + 1, H });
    tg_linear *forget = &m.rnn.cells[1].u.lstm.forget;
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
    ck_assert_int_eq(tg_rnn_stack_init(&s, ps, "enc", TG_CELL_GRU, 2, I, H, 0, NULL, &rng),
                     TG_OK);
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

Suite *errors_suite(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("tape");
    tcase_add_test(tc, test_tape_fail_is_sticky_and_scoped);
    tcase_add_test(tc, test_scopes_nest_and_overflow);
    tcase_add_test(tc, test_charlm_error_names_step_layer_gate);
    tcase_add_test(tc, test_stack_error_deep_in_time);
    tcase_add_test(tc, test_backward_on_another_tapes_loss);
    tcase_add_test(tc, test_tensor_used_after_reset);
    suite_add_tcase(s, tc);
    return s;
}
