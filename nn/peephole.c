/* nn/peephole.c: the LSTM with peephole connections, registered as "peephole".
 *
 * Gers, Schraudolph & Schmidhuber (2002), as Graves (2013) writes it: the input and
 * forget gates look at the previous cell state, the output gate at the new one, each
 * through a per-unit (diagonal) weight p:
 *
 *     i_t = sigmoid(W_i [h_{t-1}, x_t] + b_i + p_i * c_{t-1})
 *     f_t = sigmoid(W_f [h_{t-1}, x_t] + b_f + p_f * c_{t-1})
 *     g_t = tanh   (W_g [h_{t-1}, x_t] + b_g)
 *     c_t = f_t * c_{t-1} + i_t * g_t
 *     o_t = sigmoid(W_o [h_{t-1}, x_t] + b_o + p_o * c_t)
 *     h_t = o_t * tanh(c_t)
 *
 * The four products are one (B,H+I) @ (H+I,4H) product whose column blocks are i, f, g, o.
 * Parameters (see tg_peephole_cell): gates.w (H+I,4H), gates.b (4H), peep_input,
 * peep_forget, peep_output (H).
 */
#include "nn/nn.h"
#include "nn/nn_internal.h"

/* Legend: B batch, I input, H hidden. */

static tg_status peephole_init(void *cell, tg_params *ps, const char *prefix, int input_size,
                               int hidden_size, const tg_init *init, tg_rng *rng)
{
    tg_peephole_cell *p = cell;
    char gates[64], pi[64], pf[64], po[64];
    if (!p || !prefix)
        return tg_cell_init_error("peephole", TG_ERR_NULL, prefix, input_size, hidden_size);
    if (input_size < 1 || hidden_size < 1 || !tg_param_name(gates, prefix, "gates") ||
        !tg_param_name(pi, prefix, "peep_input") || !tg_param_name(pf, prefix, "peep_forget") ||
        !tg_param_name(po, prefix, "peep_output"))
        return tg_cell_init_error("peephole", TG_ERR_ARG, prefix, input_size, hidden_size);
    int H = hidden_size;
    tg_status st = tg_linear_init(&p->gates, ps, gates, H + input_size, 4 * H, H, init, rng);
    if (st == TG_OK)
        st = tg_init_vector(&p->peep_input, ps, pi, H, 0.0);
    if (st == TG_OK)
        st = tg_init_vector(&p->peep_forget, ps, pf, H, 0.0);
    if (st == TG_OK)
        st = tg_init_vector(&p->peep_output, ps, po, H, 0.0);
    if (st != TG_OK)
        return st;
    if (init && init->forget_bias_one)
        for (int j = H; j < 2 * H; j++)
            tg_tensor_set(p->gates.b, j, 1.0);
    p->input_size = input_size;
    p->hidden_size = hidden_size;
    return TG_OK;
}

/* sigmoid(block k of pre + peep * c), reported as name: a gate that sees the cell state.
   pre (B,4H); peep (H); c (B,H) -> (B,H) */
static tg_tensor *peep_gate(tg_tape *t, tg_tensor *pre, int k, int64_t H, tg_tensor *peep,
                            tg_tensor *c, const char *name)
{
    tg_tensor *block = tg_slice(t, pre, 1, k * H, H);
    return tg_name(t, tg_sigmoid(t, tg_add(t, block, tg_mul(t, peep, c))), name);
}

static void peephole_step(tg_tape *t, const void *cell, tg_tensor *x, tg_tensor *const *state,
                          tg_tensor **next)
{
    const tg_peephole_cell *p = cell;
    if (!TG_CELL_STEP_BEGIN(t, "peephole", p, x, state, next, 2))
        return;
    int64_t H = p->hidden_size;
    tg_tensor *h = state[0], *c = state[1];                     /* x (B,I); h, c (B,H) */
    tg_tensor *combine   = tg_concat(t, h, x, 1);                               /* (B,H+I) */
    tg_tensor *pre       = tg_linear_apply(t, &p->gates, combine);              /* (B,4H)  */
    tg_tensor *input     = peep_gate(t, pre, 0, H, p->peep_input, c, "input");
    tg_tensor *forget    = peep_gate(t, pre, 1, H, p->peep_forget, c, "forget");
    tg_tensor *candidate = tg_name(t, tg_tanh(t, tg_slice(t, pre, 1, 2 * H, H)), "candidate");
    tg_tensor *cell_new  = tg_name(t, tg_add(t, tg_mul(t, forget, c),
                                             tg_mul(t, input, candidate)), "cell");
    tg_tensor *output    = peep_gate(t, pre, 3, H, p->peep_output, cell_new, "output");
    tg_tensor *hidden    = tg_name(t, tg_mul(t, output, tg_tanh(t, cell_new)), "hidden");
    tg_step_end_hc(next, hidden, cell_new);
}

const tg_cell_type tg_peephole_type = {
    "peephole", 2, sizeof(tg_peephole_cell), peephole_init, peephole_step,
};
