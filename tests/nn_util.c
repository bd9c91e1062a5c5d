/* tests/nn_util.c: helpers the nn, cells, stack and observe suites share. */
#include <math.h>
#include <string.h>

#include "tests/tests.h"

/* Legend: B batch, T time, I input, H hidden, V vocab. */

const char *const tg_test_builtin_cells[3] = { "rnn", "lstm", "gru" };

const tg_cell_type *tg_test_cell_type(const char *name)
{
    const tg_cell_type *type = tg_cell_type_find(name);
    ck_assert_msg(type != NULL, "no cell type \"%s\"", name);
    return type;
}

int tg_test_cell_gates(tg_test_cell *c, tg_linear **g)
{
    const char *name = c->type->name;
    if (strcmp(name, "rnn") == 0) {
        g[0] = &c->u.rnn.layer;
        return 1;
    }
    if (strcmp(name, "lstm") == 0) {
        g[0] = &c->u.lstm.forget;
        g[1] = &c->u.lstm.candidate;
        g[2] = &c->u.lstm.input;
        g[3] = &c->u.lstm.output;
        return 4;
    }
    ck_assert_str_eq(name, "gru");
    g[0] = &c->u.gru.update;
    g[1] = &c->u.gru.reset;
    g[2] = &c->u.gru.candidate;
    return 3;
}

tg_tensor *tg_test_cell_step(tg_tape *tape, const tg_test_cell *cell, tg_tensor *x,
                             tg_tensor *h, tg_tensor **c)
{
    tg_tensor *state[2] = { h, c ? *c : NULL }, *next[2] = { NULL, NULL };
    cell->type->step(tape, &cell->u, x, state, next);
    if (cell->type->nstate == 2)
        *c = next[1];
    return next[0];
}

tg_tensor *tg_test_new_f64(int ndim, int64_t d0, int64_t d1, const double *values)
{
    const int64_t shape[2] = { d0, d1 };
    tg_tensor *t = tg_tensor_new(TG_F64, ndim, shape);
    ck_assert_ptr_nonnull(t);
    if (values)
        tg_tensor_fill_values(t, values);
    ck_assert_int_eq(tg_tensor_requires_grad(t), TG_OK);
    return t;
}

double tg_test_max_abs_diff(const tg_tensor *t, const double *ref, bool grad)
{
    double worst = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        double v = grad ? tg_tensor_grad_get(t, i) : tg_tensor_get(t, i);
        worst = fmax(worst, fabs(v - ref[i]));
    }
    return worst;
}

tg_params *tg_test_charlm_params(tg_charlm *m, const char *cell, int embed, uint64_t seed,
                                 tg_dtype dtype)
{
    tg_params *ps = tg_params_new(dtype);
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_charlm_config cfg = { tg_test_cell_type(cell), 11, 2, 6, embed, 0.0 };
    ck_assert_int_eq(tg_charlm_init(m, ps, &cfg, NULL, &rng), TG_OK);
    return ps;
}

void tg_test_lm_open(tg_test_lm *lm, const char *cell, int embed, uint64_t seed,
                     tg_dtype dtype, int64_t batch)
{
    lm->ps = tg_test_charlm_params(&lm->m, cell, embed, seed, dtype);
    lm->st = tg_stack_state_new(&lm->m.rnn, dtype, batch);
    ck_assert_ptr_nonnull(lm->st);
    lm->tape = tg_tape_new();
    ck_assert_ptr_nonnull(lm->tape);
}

void tg_test_lm_close(tg_test_lm *lm)
{
    tg_tape_free(lm->tape);
    tg_stack_state_free(lm->st);
    tg_charlm_deinit(&lm->m);
    tg_params_free(lm->ps);
}
