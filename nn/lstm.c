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
                                 rng);
    if (st != TG_OK)
        return st;
    if (init && init->forget_bias_one)
        tg_tensor_fill(cell->forget.b, 1.0);
    cell->input_size = input_size;
    cell->hidden_size = hidden_size;
    return TG_OK;
}

tg_lstm_state tg_lstm_cell_step(tg_tape *tape, const tg_lstm_cell *cell, tg_tensor *x,
                                tg_lstm_state s)
{
    tg_lstm_state next = { NULL, NULL };
    if (!cell) {
        tg_fail(tape, TG_ERR_NULL, "lstm_cell_step", "NULL cell");
        return next;
    }
    if (!tg_check_step(tape, "lstm_cell_step", x, s.h, s.c, cell->input_size,
                       cell->hidden_size))
        return next;
    /* x (B,I); s.h, s.c and every gate (B,H) */
    tg_tensor *combine   = tg_concat(tape, s.h, x, 1);                         /* (B,H+I) */
    tg_tensor *forget    = tg_gate(tape, tg_sigmoid, &cell->forget, combine, "forget");
    tg_tensor *candidate = tg_gate(tape, tg_tanh, &cell->candidate, combine, "candidate");
    tg_tensor *input     = tg_gate(tape, tg_sigmoid, &cell->input, combine, "input");
    tg_tensor *cell_new  = tg_name(tape, tg_add(tape, tg_mul(tape, s.c, forget),
                                                tg_mul(tape, candidate, input)), "cell");
    tg_tensor *output    = tg_gate(tape, tg_sigmoid, &cell->output, combine, "output");
    tg_tensor *hidden    = tg_name(tape, tg_mul(tape, output, tg_tanh(tape, cell_new)),
                                   "hidden");
    if (hidden) {
        next.h = hidden;
        next.c = cell_new;
    }
    return next;
}

/* ---- the "lstm" cell type: state h, c --------------------------------------- */

static tg_status lstm_type_init(void *cell, tg_params *ps, const char *prefix, int input_size,
                                int hidden_size, const tg_init *init, tg_rng *rng)
{
    return tg_lstm_cell_init(cell, ps, prefix, input_size, hidden_size, init, rng);
}

static void lstm_type_step(tg_tape *tape, const void *cell, tg_tensor *x,
                           tg_tensor *const *state, tg_tensor **next)
{
    tg_lstm_state s = tg_lstm_cell_step(tape, cell, x, (tg_lstm_state){ state[0], state[1] });
    next[0] = s.h;
    next[1] = s.c;
}

const tg_cell_type tg_lstm_type = {
    "lstm", 2, sizeof(tg_lstm_cell), lstm_type_init, lstm_type_step,
};
