/* nn/rnn.c: the plain (Elman) RNN cell, h' = tanh(layer(concat(h, x))). */
#include "nn/nn.h"
#include "nn/nn_internal.h"

/* Legend: B batch, I input, H hidden. */

tg_status tg_rnn_cell_init(tg_rnn_cell *cell, tg_params *ps, const char *prefix,
                           int input_size, int hidden_size, const tg_init *init, tg_rng *rng)
{
    if (!cell)
        return tg_error_set(TG_ERR_NULL, "rnn_cell_init: cell is NULL");
    const char *const names[1] = { "layer" };
    tg_linear *const gates[1] = { &cell->layer };
    return tg_init_gates(ps, prefix, 1, names, gates, input_size, hidden_size, init, rng,
                         &cell->input_size, &cell->hidden_size);
}

/* ---- the "rnn" cell type: state h ------------------------------------------- */

static void rnn_step(tg_tape *tape, const void *cell, tg_tensor *x, tg_tensor *const *state,
                     tg_tensor **next)
{
    const tg_rnn_cell *r = cell;
    if (!TG_CELL_STEP_BEGIN(tape, "rnn_cell_step", r, x, state, next, 1))
        return;
    tg_tensor *combine = tg_concat(tape, state[0], x, 1);                      /* (B,H+I) */
    tg_tensor *hidden  = tg_gate(tape, tg_tanh, &r->layer, combine, "hidden");   /* (B,H) */
    next[0] = hidden;
}

tg_tensor *tg_rnn_cell_step(tg_tape *tape, const tg_rnn_cell *cell, tg_tensor *x,
                            tg_tensor *h)
{
    tg_tensor *next;
    rnn_step(tape, cell, x, &h, &next);
    return next;
}

static tg_status rnn_type_init(void *cell, tg_params *ps, const char *prefix, int input_size,
                               int hidden_size, const tg_init *init, tg_rng *rng)
{
    return tg_rnn_cell_init(cell, ps, prefix, input_size, hidden_size, init, rng);
}

const tg_cell_type tg_rnn_type = {
    "rnn", 1, sizeof(tg_rnn_cell), rnn_type_init, rnn_step,
};
