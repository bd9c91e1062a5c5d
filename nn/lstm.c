/* nn/lstm.c: the LSTM cell, step by step as the illustrated guide writes it. */
#include "nn/nn.h"
#include "nn/nn_internal.h"

/* Legend: B batch, I input, H hidden. */

tg_status tg_lstm_cell_init(tg_lstm_cell *cell, tg_params *ps, const char *prefix,
                            int input_size, int hidden_size, const tg_init *init, tg_rng *rng)
{
    if (!cell)
        return tg_error_set(TG_ERR_NULL, "lstm_cell_init: cell is NULL");
    const char *const names[4] = { "forget", "candidate", "input", "output" };
    tg_linear *const gates[4] = { &cell->forget, &cell->candidate, &cell->input, &cell->output };
    tg_status st = tg_init_gates(ps, prefix, 4, names, gates, input_size, hidden_size, init,
                                 rng, &cell->input_size, &cell->hidden_size);
    if (st == TG_OK && init && init->forget_bias_one)
        tg_tensor_fill(cell->forget.b, 1.0);
    return st;
}

/* ---- the "lstm" cell type: state h, c --------------------------------------- */

static void lstm_step(tg_tape *tape, const void *cell, tg_tensor *x, tg_tensor *const *state,
                      tg_tensor **next)
{
    const tg_lstm_cell *l = cell;
    if (!TG_CELL_STEP_BEGIN(tape, "lstm_cell_step", l, x, state, next, 2))
        return;
    tg_tensor *h = state[0], *c = state[1];                     /* x (B,I); h, c (B,H) */
    tg_tensor *combine   = tg_concat(tape, h, x, 1);                           /* (B,H+I) */
    tg_tensor *forget    = tg_gate(tape, tg_sigmoid, &l->forget, combine, "forget");
    tg_tensor *candidate = tg_gate(tape, tg_tanh, &l->candidate, combine, "candidate");
    tg_tensor *input     = tg_gate(tape, tg_sigmoid, &l->input, combine, "input");
    tg_tensor *cell_new  = tg_name(tape, tg_add(tape, tg_mul(tape, c, forget),
                                                tg_mul(tape, candidate, input)), "cell");
    tg_tensor *output    = tg_gate(tape, tg_sigmoid, &l->output, combine, "output");
    tg_tensor *hidden    = tg_name(tape, tg_mul(tape, output, tg_tanh(tape, cell_new)),
                                   "hidden");
    tg_step_end_hc(next, hidden, cell_new);
}

tg_lstm_state tg_lstm_cell_step(tg_tape *tape, const tg_lstm_cell *cell, tg_tensor *x,
                                tg_lstm_state s)
{
    tg_tensor *state[2] = { s.h, s.c }, *next[2];
    lstm_step(tape, cell, x, state, next);
    return (tg_lstm_state){ next[0], next[1] };
}

static tg_status lstm_type_init(void *cell, tg_params *ps, const char *prefix, int input_size,
                                int hidden_size, const tg_init *init, tg_rng *rng)
{
    return tg_lstm_cell_init(cell, ps, prefix, input_size, hidden_size, init, rng);
}

const tg_cell_type tg_lstm_type = {
    "lstm", 2, sizeof(tg_lstm_cell), lstm_type_init, lstm_step,
};
