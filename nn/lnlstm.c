/* nn/lnlstm.c: the layer-normalised LSTM, registered as "lnlstm".
 *
 * Ba, Kiros & Hinton (2016), as PyTorch's fastrnns benchmark writes it (LayerNormLSTMCell):
 * the 4H gate pre-activations of the input product and of the recurrent product are layer
 * normalised separately, and so is the new cell state; the layer norms' shifts are the
 * only biases. LN(v) = (v - mean(v)) / sqrt(var(v) + 1e-5) * gamma + beta over each row.
 *
 *     a_t          = LN_ih(x_t @ W_ih) + LN_hh(h_{t-1} @ W_hh)        (B,4H): i, f, g, o
 *     i, f, o      = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o)
 *     g            = tanh(a_g)
 *     c_t          = LN_cell(f * c_{t-1} + i * g)
 *     h_t          = o * tanh(c_t)
 *
 * Parameters (see tg_lnlstm_cell): ih.w (I,4H), hh.w (H,4H), column blocks i, f, g, o;
 * ln_ih.gamma/.beta and ln_hh.gamma/.beta (4H); ln_cell.gamma/.beta (H).
 */
#include "nn/nn.h"
#include "nn/nn_internal.h"

/* Legend: B batch, I input, H hidden. */

/* torch.nn.LayerNorm's default */
#define LN_EPS 1e-5

/* Adds "<prefix>.<name>.gamma" (ones) and ".beta" (zeros), each (n). */
static tg_status init_layer_norm(tg_params *ps, const char *prefix, const char *name, int n,
                                 tg_tensor **gamma, tg_tensor **beta)
{
    char base[64], g[64], b[64];
    if (!tg_param_name(base, prefix, name) || !tg_param_name(g, base, "gamma") ||
        !tg_param_name(b, base, "beta"))
        return tg_error_set(TG_ERR_ARG, "lnlstm init: %.64s.%s: a parameter name longer than "
                            "63 bytes", prefix, name);
    tg_status st = tg_init_vector(gamma, ps, g, n, 1.0);
    return st == TG_OK ? tg_init_vector(beta, ps, b, n, 0.0) : st;
}

static tg_status lnlstm_init(void *cell, tg_params *ps, const char *prefix, int input_size,
                             int hidden_size, const tg_init *init, tg_rng *rng)
{
    tg_lnlstm_cell *c = cell;
    char ih[64], hh[64];
    if (!c || !prefix)
        return tg_cell_init_error("lnlstm", TG_ERR_NULL, prefix, input_size, hidden_size);
    if (input_size < 1 || hidden_size < 1 || !tg_param_name(ih, prefix, "ih.w") ||
        !tg_param_name(hh, prefix, "hh.w"))
        return tg_cell_init_error("lnlstm", TG_ERR_ARG, prefix, input_size, hidden_size);
    int H = hidden_size;
    tg_status st = tg_init_weight(&c->w_ih, ps, ih, input_size, 4 * H, H, init, rng);
    if (st == TG_OK)
        st = tg_init_weight(&c->w_hh, ps, hh, H, 4 * H, H, init, rng);
    if (st == TG_OK)
        st = init_layer_norm(ps, prefix, "ln_ih", 4 * H, &c->ln_ih_gamma, &c->ln_ih_beta);
    if (st == TG_OK)
        st = init_layer_norm(ps, prefix, "ln_hh", 4 * H, &c->ln_hh_gamma, &c->ln_hh_beta);
    if (st == TG_OK)
        st = init_layer_norm(ps, prefix, "ln_cell", H, &c->ln_cell_gamma, &c->ln_cell_beta);
    if (st != TG_OK)
        return st;
    if (init && init->forget_bias_one)
        for (int j = H; j < 2 * H; j++)
            tg_tensor_set(c->ln_ih_beta, j, 1.0);
    c->input_size = input_size;
    c->hidden_size = hidden_size;
    return TG_OK;
}

static void lnlstm_step(tg_tape *t, const void *cell, tg_tensor *x, tg_tensor *const *state,
                        tg_tensor **next)
{
    const tg_lnlstm_cell *c = cell;
    if (!TG_CELL_STEP_BEGIN(t, "lnlstm", c, x, state, next, 2))
        return;
    tg_tensor *h = state[0], *c_prev = state[1];                 /* x (B,I); h, c (B,H) */
    tg_tensor *igates    = tg_layer_norm(t, tg_affine(t, x, c->w_ih, NULL), c->ln_ih_gamma,
                                         c->ln_ih_beta, LN_EPS);                 /* (B,4H) */
    tg_tensor *hgates    = tg_layer_norm(t, tg_affine(t, h, c->w_hh, NULL), c->ln_hh_gamma,
                                         c->ln_hh_beta, LN_EPS);                 /* (B,4H) */
    tg_tensor *gates     = tg_add(t, igates, hgates);                            /* (B,4H) */
    tg_tensor *pre[4];                                         /* i, f, g, o: each (B,H) */
    tg_chunk(t, gates, 4, 1, pre);
    tg_tensor *input     = tg_name(t, tg_sigmoid(t, pre[0]), "input");
    tg_tensor *forget    = tg_name(t, tg_sigmoid(t, pre[1]), "forget");
    tg_tensor *candidate = tg_name(t, tg_tanh(t, pre[2]), "candidate");
    tg_tensor *output    = tg_name(t, tg_sigmoid(t, pre[3]), "output");
    tg_tensor *cell_sum  = tg_add(t, tg_mul(t, forget, c_prev), tg_mul(t, input, candidate));
    tg_tensor *cell_new  = tg_name(t, tg_layer_norm(t, cell_sum, c->ln_cell_gamma,
                                                    c->ln_cell_beta, LN_EPS), "cell");
    tg_tensor *hidden    = tg_name(t, tg_mul(t, output, tg_tanh(t, cell_new)), "hidden");
    tg_step_end_hc(next, hidden, cell_new);
}

const tg_cell_type tg_lnlstm_type = {
    "lnlstm", 2, sizeof(tg_lnlstm_cell), lnlstm_init, lnlstm_step,
};
