/* nn/init.c: parameter initialisation (PyTorch default, char-rnn uniform, Xavier) and
   tg_linear_init, which every layer and cell builds its weights with. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/nn.h"

/* The default when a caller passes no tg_init: PyTorch's. */
static const tg_init default_init = { TG_INIT_TORCH, 0.0, false };

/* char-rnn's bound, used by TG_INIT_UNIFORM when scale is 0. */
#define CHAR_RNN_SCALE 0.08

static tg_status check_init(const tg_init *init)
{
    switch (init->kind) {
    case TG_INIT_TORCH:
    case TG_INIT_XAVIER:
        return TG_OK;
    case TG_INIT_UNIFORM:
        return isfinite(init->scale) && init->scale >= 0 ? TG_OK : TG_ERR_ARG;
    }
    return TG_ERR_ARG;
}

tg_status tg_linear_init(tg_linear *l, tg_params *ps, const char *name, int in, int out,
                         int fan, const tg_init *init, tg_rng *rng)
{
    if (!l || !ps || !name || !rng)
        return TG_ERR_NULL;
    if (!init)
        init = &default_init;
    if (in < 1 || out < 1 || fan < 1 || check_init(init) != TG_OK)
        return TG_ERR_ARG;

    char wname[80], bname[80];
    if (snprintf(wname, sizeof wname, "%s.w", name) > 63 ||
        snprintf(bname, sizeof bname, "%s.b", name) > 63)
        return TG_ERR_ARG;                       /* tg_params names hold 63 bytes */
    if (tg_params_find(ps, wname) || tg_params_find(ps, bname))
        return TG_ERR_ARG;                       /* duplicate name */

    tg_tensor *w = tg_params_add(ps, wname, 2, (const int64_t[]){ in, out });
    tg_tensor *b = w ? tg_params_add(ps, bname, 1, (const int64_t[]){ out }) : NULL;
    if (!w || !b)
        return TG_ERR_NOMEM;

    double bound;
    switch (init->kind) {
    case TG_INIT_TORCH:                 /* weights and biases: U(-1/sqrt(fan), 1/sqrt(fan)) */
        bound = 1.0 / sqrt((double)fan);
        tg_tensor_fill_uniform(w, rng, -bound, bound);
        tg_tensor_fill_uniform(b, rng, -bound, bound);
        break;
    case TG_INIT_UNIFORM:               /* weights and biases: U(-scale, scale) */
        bound = init->scale > 0 ? init->scale : CHAR_RNN_SCALE;
        tg_tensor_fill_uniform(w, rng, -bound, bound);
        tg_tensor_fill_uniform(b, rng, -bound, bound);
        break;
    case TG_INIT_XAVIER:                /* weights: U(+-sqrt(6/(in+out))), biases: 0 */
        bound = sqrt(6.0 / ((double)in + (double)out));
        tg_tensor_fill_uniform(w, rng, -bound, bound);
        tg_tensor_fill(b, 0.0);
        break;
    }
    l->w = w;
    l->b = b;
    return TG_OK;
}

tg_status tg_embedding_init(tg_tensor **table, tg_params *ps, const char *name, int vocab,
                            int dim, const tg_init *init, tg_rng *rng)
{
    if (!table || !ps || !name || !rng)
        return TG_ERR_NULL;
    if (!init)
        init = &default_init;
    if (vocab < 1 || dim < 1 || check_init(init) != TG_OK || strlen(name) > 63)
        return TG_ERR_ARG;
    if (tg_params_find(ps, name))
        return TG_ERR_ARG;
    tg_tensor *t = tg_params_add(ps, name, 2, (const int64_t[]){ vocab, dim });
    if (!t)
        return TG_ERR_NOMEM;
    double bound;
    switch (init->kind) {
    case TG_INIT_TORCH:                 /* torch.nn.Embedding: N(0, 1) */
        tg_tensor_fill_normal(t, rng, 0.0, 1.0);
        break;
    case TG_INIT_UNIFORM:
        bound = init->scale > 0 ? init->scale : CHAR_RNN_SCALE;
        tg_tensor_fill_uniform(t, rng, -bound, bound);
        break;
    case TG_INIT_XAVIER:
        bound = sqrt(6.0 / ((double)vocab + (double)dim));
        tg_tensor_fill_uniform(t, rng, -bound, bound);
        break;
    }
    *table = t;
    return TG_OK;
}
