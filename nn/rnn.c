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
    tg_status st = tg_init_gates(ps, prefix, 1, names, gates, input_size, hidden_size, init,
                                 rng);
    if (st != TG_OK)
        return st;
    cell->input_size = input_size;
    cell->hidden_size = hidden_size;
    return TG_OK;
}

tg_tensor *tg_rnn_cell_step(tg_tape *tape, const tg_rnn_cell *cell, tg_tensor *x,
                            tg_tensor *h)
{
    if (!cell)
        return tg_fail(tape, TG_ERR_NULL, "rnn_cell_step", "NULL cell");
    if (!tg_check_step(tape, "rnn_cell_step", x, h, NULL, cell->input_size,
                       cell->hidden_size))
        return NULL;
    tg_tensor *combine = tg_concat(tape, h, x, 1);                             /* (B,H+I) */
    tg_tensor *hidden  = tg_gate(tape, tg_tanh, &cell->layer, combine, "hidden"); /* (B,H) */
    return hidden;
}

/* ---- the "rnn" cell type: state h ------------------------------------------- */

static tg_status rnn_type_init(void *cell, tg_params *ps, const char *prefix, int input_size,
                               int hidden_size, const tg_init *init, tg_rng *rng)
{
    return tg_rnn_cell_init(cell, ps, prefix, input_size, hidden_size, init, rng);
}

static void rnn_type_step(tg_tape *tape, const void *cell, tg_tensor *x,
                          tg_tensor *const *state, tg_tensor **next)
{
    next[0] = tg_rnn_cell_step(tape, cell, x, state[0]);
}

const tg_cell_type tg_rnn_type = {
    "rnn", 1, sizeof(tg_rnn_cell), rnn_type_init, rnn_type_step,
};
