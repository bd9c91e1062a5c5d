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
    return tg_init_gates(ps, prefix, 3, names, gates, input_size, hidden_size, init, rng,
                         &cell->input_size, &cell->hidden_size);
}

/* ---- the "gru" cell type: state h ------------------------------------------- */

static void gru_step(tg_tape *tape, const void *cell, tg_tensor *x, tg_tensor *const *state,
                     tg_tensor **next)
{
    const tg_gru_cell *g = cell;
    if (!TG_CELL_STEP_BEGIN(tape, "gru_cell_step", g, x, state, next, 1))
        return;
    tg_tensor *h = state[0];                                     /* x (B,I); h (B,H) */
    tg_tensor *combine   = tg_concat(tape, h, x, 1);                           /* (B,H+I) */
    tg_tensor *update    = tg_gate(tape, tg_sigmoid, &g->update, combine, "update");
    tg_tensor *reset     = tg_gate(tape, tg_sigmoid, &g->reset, combine, "reset");
    tg_tensor *reset_in  = tg_concat(tape, tg_mul(tape, reset, h), x, 1);      /* (B,H+I) */
    tg_tensor *candidate = tg_gate(tape, tg_tanh, &g->candidate, reset_in, "candidate");
    /* h' = (1 - update) * h + update * candidate */
    tg_tensor *hidden    = tg_name(tape, tg_blend(tape, update, h, candidate), "hidden");
    next[0] = hidden;
}

tg_tensor *tg_gru_cell_step(tg_tape *tape, const tg_gru_cell *cell, tg_tensor *x,
                            tg_tensor *h)
{
    tg_tensor *next;
    gru_step(tape, cell, x, &h, &next);
    return next;
}

static tg_status gru_type_init(void *cell, tg_params *ps, const char *prefix, int input_size,
                               int hidden_size, const tg_init *init, tg_rng *rng)
{
    return tg_gru_cell_init(cell, ps, prefix, input_size, hidden_size, init, rng);
}

const tg_cell_type tg_gru_type = {
    "gru", 1, sizeof(tg_gru_cell), gru_type_init, gru_step,
};
