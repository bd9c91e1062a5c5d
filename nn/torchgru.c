/* nn/torchgru.c: the GRU as torch.nn.GRU computes it, registered as "torchgru".
 *
 * Cho et al. (2014) with the reset gate applied after the recurrent product, as cuDNN and
 * torch.nn.GRU do (the library's "gru" applies it before, as the guide does):
 *
 *     r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
 *     z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
 *     n_t = tanh   (W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
 *     h_t = (1 - z_t) * n_t + z_t * h_{t-1}
 *
 * Two products, x @ ih.w (I,3H) and h @ hh.w (H,3H), column blocks r, z, n; parameters
 * ih.w, ih.b (3H), hh.w, hh.b (3H) are torch's weight_ih_l0, bias_ih_l0, weight_hh_l0,
 * bias_hh_l0 transposed (the biases as they are), drawn as torch draws them.
 */
#include "nn/nn.h"
#include "nn/nn_internal.h"

/* Legend: B batch, I input, H hidden. */

static tg_status torchgru_init(void *cell, tg_params *ps, const char *prefix, int input_size,
                               int hidden_size, const tg_init *init, tg_rng *rng)
{
    tg_torchgru_cell *g = cell;
    char ih[64], hh[64];
    if (!g || !prefix)
        return tg_cell_init_error("torchgru", TG_ERR_NULL, prefix, input_size, hidden_size);
    if (input_size < 1 || hidden_size < 1 || !tg_param_name(ih, prefix, "ih") ||
        !tg_param_name(hh, prefix, "hh"))
        return tg_cell_init_error("torchgru", TG_ERR_ARG, prefix, input_size, hidden_size);
    int H = hidden_size;
    tg_status st = tg_linear_init(&g->ih, ps, ih, input_size, 3 * H, H, init, rng);
    if (st == TG_OK)
        st = tg_linear_init(&g->hh, ps, hh, H, 3 * H, H, init, rng);
    if (st != TG_OK)
        return st;
    g->input_size = input_size;
    g->hidden_size = hidden_size;
    return TG_OK;
}

static void torchgru_step(tg_tape *t, const void *cell, tg_tensor *x, tg_tensor *const *state,
                          tg_tensor **next)
{
    const tg_torchgru_cell *g = cell;
    if (!TG_CELL_STEP_BEGIN(t, "torchgru", g, x, state, next, 1))
        return;
    int64_t H = g->hidden_size;
    tg_tensor *h = state[0];                                     /* x (B,I); h (B,H) */
    tg_tensor *gi        = tg_linear_apply(t, &g->ih, x);                        /* (B,3H) */
    tg_tensor *gh        = tg_linear_apply(t, &g->hh, h);                        /* (B,3H) */
    tg_tensor *rz        = tg_sigmoid(t, tg_add(t, tg_slice(t, gi, 1, 0, 2 * H),
                                                tg_slice(t, gh, 1, 0, 2 * H)));  /* (B,2H) */
    tg_tensor *reset     = tg_name(t, tg_slice(t, rz, 1, 0, H), "reset");
    tg_tensor *update    = tg_name(t, tg_slice(t, rz, 1, H, H), "update");
    tg_tensor *recurrent = tg_mul(t, reset, tg_slice(t, gh, 1, 2 * H, H));    /* r*(W h+b) */
    tg_tensor *candidate = tg_name(t, tg_tanh(t, tg_add(t, tg_slice(t, gi, 1, 2 * H, H),
                                                        recurrent)), "candidate");
    /* h' = (1 - update) * candidate + update * h */
    tg_tensor *hidden    = tg_name(t, tg_blend(t, update, candidate, h), "hidden");
    next[0] = hidden;
}

const tg_cell_type tg_torchgru_type = {
    "torchgru", 1, sizeof(tg_torchgru_cell), torchgru_init, torchgru_step,
};
