/* nn/indrnn.c: the independently recurrent neural network, registered as "indrnn".
 *
 * Li, Li, Cook, Zhu & Gao (2018): each unit sees only its own previous output, through a
 * per-unit recurrent weight u, so the recurrence is elementwise and a ReLU cannot blow up
 * through a matrix:
 *
 *     h_t = relu(W x_t + b + u * h_{t-1})
 *
 * Parameters (see tg_indrnn_cell): input.w (I,H), input.b (H) drawn as a gate's weights;
 * u (H) drawn from U(0,1), inside the paper's range |u| <= 1 for a stable recurrence.
 */
#include "nn/nn.h"
#include "nn/nn_internal.h"

/* Legend: B batch, I input, H hidden. */

static tg_status indrnn_init(void *cell, tg_params *ps, const char *prefix, int input_size,
                             int hidden_size, const tg_init *init, tg_rng *rng)
{
    tg_indrnn_cell *c = cell;
    char input[64], u[64];
    if (!c || !prefix || !rng)
        return tg_cell_init_error("indrnn", TG_ERR_NULL, prefix, input_size, hidden_size);
    if (input_size < 1 || hidden_size < 1 || !tg_param_name(input, prefix, "input") ||
        !tg_param_name(u, prefix, "u"))
        return tg_cell_init_error("indrnn", TG_ERR_ARG, prefix, input_size, hidden_size);
    tg_status st = tg_linear_init(&c->input, ps, input, input_size, hidden_size, hidden_size,
                                  init, rng);
    if (st == TG_OK)
        st = tg_init_vector(&c->u, ps, u, hidden_size, 0.0);
    if (st != TG_OK)
        return st;
    tg_tensor_fill_uniform(c->u, rng, 0.0, 1.0);
    c->input_size = input_size;
    c->hidden_size = hidden_size;
    return TG_OK;
}

static void indrnn_step(tg_tape *t, const void *cell, tg_tensor *x, tg_tensor *const *state,
                        tg_tensor **next)
{
    const tg_indrnn_cell *c = cell;
    if (!TG_CELL_STEP_BEGIN(t, "indrnn", c, x, state, next, 1))
        return;
    tg_tensor *h = state[0];                                     /* x (B,I); h (B,H) */
    tg_tensor *input     = tg_linear_apply(t, &c->input, x);                     /* (B,H) */
    tg_tensor *recurrent = tg_mul(t, c->u, h);                                   /* (B,H) */
    tg_tensor *hidden    = tg_name(t, tg_relu(t, tg_add(t, input, recurrent)), "hidden");
    next[0] = hidden;
}

const tg_cell_type tg_indrnn_type = {
    "indrnn", 1, sizeof(tg_indrnn_cell), indrnn_init, indrnn_step,
};
