/* nn/mgu.c: the Minimal Gated Unit, registered as "mgu".
 *
 * Zhou, Wu, Zhang & Zhou (2016): a GRU whose update and reset gates are one forget gate:
 *
 *     f_t  = sigmoid(W_f [h_{t-1}, x_t] + b_f)
 *     h~_t = tanh   (W_h [f_t * h_{t-1}, x_t] + b_h)
 *     h_t  = (1 - f_t) * h_{t-1} + f_t * h~_t
 *
 * Parameters (see tg_mgu_cell): forget.w, candidate.w (H+I,H), whose first H rows multiply
 * the (gated) previous h and the next I rows x, as in every cell of the guide; forget.b,
 * candidate.b (H).
 */
#include "nn/nn.h"
#include "nn/nn_internal.h"

/* Legend: B batch, I input, H hidden. */

static tg_status mgu_init(void *cell, tg_params *ps, const char *prefix, int input_size,
                          int hidden_size, const tg_init *init, tg_rng *rng)
{
    tg_mgu_cell *m = cell;
    if (!m)
        return tg_cell_init_error("mgu", TG_ERR_NULL, prefix, input_size, hidden_size);
    const char *const names[2] = { "forget", "candidate" };
    tg_linear *const gates[2] = { &m->forget, &m->candidate };
    return tg_init_gates(ps, prefix, 2, names, gates, input_size, hidden_size, init, rng,
                         &m->input_size, &m->hidden_size);
}

static void mgu_step(tg_tape *t, const void *cell, tg_tensor *x, tg_tensor *const *state,
                     tg_tensor **next)
{
    const tg_mgu_cell *m = cell;
    if (!TG_CELL_STEP_BEGIN(t, "mgu", m, x, state, next, 1))
        return;
    tg_tensor *h = state[0];                                     /* x (B,I); h (B,H) */
    tg_tensor *combine   = tg_concat(t, h, x, 1);                               /* (B,H+I) */
    tg_tensor *forget    = tg_gate(t, tg_sigmoid, &m->forget, combine, "forget");
    tg_tensor *gated_in  = tg_concat(t, tg_mul(t, forget, h), x, 1);            /* (B,H+I) */
    tg_tensor *candidate = tg_gate(t, tg_tanh, &m->candidate, gated_in, "candidate");
    /* h' = (1 - forget) * h + forget * candidate */
    tg_tensor *hidden    = tg_name(t, tg_blend(t, forget, h, candidate), "hidden");
    next[0] = hidden;
}

const tg_cell_type tg_mgu_type = {
    "mgu", 1, sizeof(tg_mgu_cell), mgu_init, mgu_step,
};
