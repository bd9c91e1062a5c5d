/* fuzz/ckpt_model.h: the fixed models the checkpoint fuzzer loads into (and its seeds hold). */
#ifndef TG_FUZZ_CKPT_MODEL_H
#define TG_FUZZ_CKPT_MODEL_H

#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"

/*
 * The first byte of a fuzz input is a mode, the rest is the checkpoint file:
 *   bit 0  recompute the trailing CRC-32, so mutations reach the parser behind it
 *   bit 1  write the real file size into the header's size field (offset 16)
 *   bit 2-3  the model: 0 f32 + Adam, 1 f64 + Adam, 2 f32 + SGD (nesterov momentum),
 *            3 f64 + RMSprop (centered, momentum): every kind of state buffer
 *   bit 4  load with no optimizer (opt NULL)
 */
enum {
    MODE_FIX_CRC = 1,
    MODE_FIX_SIZE = 2,
    MODE_MODEL_SHIFT = 2,
    MODE_NO_OPT = 16
};

/* Shapes like a tiny char-LM's (names with dots, ranks 1 and 2) plus a rank-4 tensor. */
static tg_params *ckpt_model_params(int model)
{
    tg_params *ps = tg_params_new(model == 1 || model == 3 ? TG_F64 : TG_F32);
    if (!ps)
        return NULL;
    bool ok = tg_params_add(ps, "embed", 2, (const int64_t[]){ 4, 3 })
              && tg_params_add(ps, "rnn.0.forget.w", 2, (const int64_t[]){ 5, 2 })
              && tg_params_add(ps, "rnn.0.forget.b", 1, (const int64_t[]){ 2 })
              && tg_params_add(ps, "k", 4, (const int64_t[]){ 1, 2, 1, 2 })
              && tg_params_add(ps, "head.w", 2, (const int64_t[]){ 2, 4 });
    if (!ok) {
        tg_params_free(ps);
        return NULL;
    }
    return ps;
}

static tg_optim_config ckpt_model_config(int model)
{
    tg_optim_config c;
    switch (model) {
    case 2:
        c = tg_optim_defaults(TG_SGD);
        c.momentum = 0.9;
        c.nesterov = true;
        break;
    case 3:
        c = tg_optim_defaults(TG_RMSPROP);
        c.centered = true;
        c.momentum = 0.5;
        break;
    default:
        c = tg_optim_defaults(TG_ADAM);
        c.weight_decay = 0.01;
        break;
    }
    return c;
}

/* Fills values and gradients from seed and takes two optimizer steps (so every state
   buffer holds non-zero values). Returns false on failure. */
static bool ckpt_model_train(tg_params *ps, tg_optim *opt, uint64_t seed)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    for (int i = 0; i < tg_params_count(ps); i++)
        tg_tensor_fill_uniform(tg_params_at(ps, i), &rng, -1.0, 1.0);
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < tg_params_count(ps); i++) {
            tg_tensor *t = tg_params_at(ps, i);
            for (int64_t k = 0; k < t->numel; k++) {
                double g = tg_rng_normal(&rng);
                if (t->dtype == TG_F64)
                    ((double *)t->grad)[k] = g;
                else
                    ((float *)t->grad)[k] = (float)g;
            }
        }
        if (opt && tg_optim_step(opt) != TG_OK)
            return false;
    }
    return true;
}

#endif /* TG_FUZZ_CKPT_MODEL_H */
