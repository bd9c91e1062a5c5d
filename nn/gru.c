/* nn/gru.c: the GRU cell in its classic form (reset applied before the candidate's matmul). */
#include "nn/nn.h"
#include "nn/nn_internal.h"

/* Legend: B batch, I input, H hidden. */

tg_status tg_gru_cell_init(tg_gru_cell *cell, tg_params *ps, const char *prefix,
                           int input_size, int hidden_size, const tg_init *init, tg_rng *rng)
{
    if (!cell)
        return tg_error_set(TG_ERR_NULL, "gru_cell_init: cell is NULL");
    const char *const names[3] = { "update", "reset", "candidate" };
    tg_linear *const gates[3] = { &cell->update, &cell->reset, &cell->candidate };
    tg_status st = tg_init_gates(ps, prefix, 3, names, gates, input_size, hidden_size, init,
                                 rng);
    if (st != TG_OK)
        return st;
    cell->input_size = input_size;
    cell->hidden_size = hidden_size;
    return TG_OK;
}

tg_tensor *tg_gru_cell_step(tg_tape *tape, const tg_gru_cell *cell, tg_tensor *x,
                            tg_tensor *h)
{
    if (!cell)
        return tg_fail(tape, TG_ERR_NULL, "gru_cell_step", "NULL cell");
    if (!tg_check_step(tape, "gru_cell_step", x, h, NULL, cell->input_size,
                       cell->hidden_size))
        return NULL;
    /* x (B,I); h and every gate (B,H) */
    tg_tensor *combine   = tg_concat(tape, h, x, 1);                           /* (B,H+I) */
    tg_tensor *update    = tg_gate(tape, tg_sigmoid, &cell->update, combine, "update");
    tg_tensor *reset     = tg_gate(tape, tg_sigmoid, &cell->reset, combine, "reset");
    tg_tensor *reset_in  = tg_concat(tape, tg_mul(tape, reset, h), x, 1);      /* (B,H+I) */
    tg_tensor *candidate = tg_gate(tape, tg_tanh, &cell->candidate, reset_in, "candidate");
    tg_tensor *keep      = tg_add_scalar(tape, tg_scale(tape, update, -1.0), 1.0); /* 1-z */
    tg_tensor *hidden    = tg_name(tape, tg_add(tape, tg_mul(tape, keep, h),
                                                tg_mul(tape, update, candidate)), "hidden");
    return hidden;
}

/* ---- the "gru" cell type: state h ------------------------------------------- */

static tg_status gru_type_init(void *cell, tg_params *ps, const char *prefix, int input_size,
                               int hidden_size, const tg_init *init, tg_rng *rng)
{
    return tg_gru_cell_init(cell, ps, prefix, input_size, hidden_size, init, rng);
}

static void gru_type_step(tg_tape *tape, const void *cell, tg_tensor *x,
                          tg_tensor *const *state, tg_tensor **next)
{
    next[0] = tg_gru_cell_step(tape, cell, x, state[0]);
}

const tg_cell_type tg_gru_type = {
    "gru", 1, sizeof(tg_gru_cell), gru_type_init, gru_type_step,
};
