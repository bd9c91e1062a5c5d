/* nn/regular.c: recurrent regularisers' building blocks: dropout masks drawn once and
   reused (variational dropout, weight drop) and zoneout. */
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_internal.h"

/* Legend: B batch, H hidden. */

tg_tensor *tg_dropout_mask(tg_tape *t, tg_dtype dtype, int ndim, const int64_t *shape,
                           double p, tg_rng *rng)
{
    if (!(p >= 0.0 && p < 1.0))
        return tg_fail(t, TG_ERR_ARG, "dropout_mask", "p = %g must be in [0, 1)", p);
    if (!rng)
        return tg_fail(t, TG_ERR_NULL, "dropout_mask", "rng is NULL");
    tg_tensor *m = tg_tape_tensor(t, dtype, ndim, shape);
    if (!m)
        return tg_tape_status(t) == TG_OK
                   ? tg_fail(t, TG_ERR_ARG, "dropout_mask", "bad shape or dtype")
                   : NULL;
    double keep = 1.0 / (1.0 - p);
    for (int64_t i = 0; i < m->numel; i++)       /* serially, so any thread count agrees */
        tg_tensor_set(m, i, tg_rng_uniform(rng) >= p ? keep : 0.0);
    return m;
}

tg_tensor *tg_zoneout(tg_tape *t, tg_tensor *prev, tg_tensor *next, double z, bool training,
                      tg_rng *rng)
{
    if (!(z >= 0.0 && z < 1.0))
        return tg_fail(t, TG_ERR_ARG, "zoneout", "z = %g must be in [0, 1)", z);
    if (!prev || !next)
        return tg_fail(t, TG_ERR_NULL, "zoneout", "NULL %s", prev ? "next" : "prev");
    if (z == 0.0)
        return next;
    tg_tensor *change = tg_sub(t, prev, next);                         /* prev - next */
    if (!training)                                      /* the expectation: z*prev + (1-z)*next */
        return tg_add(t, next, tg_scale(t, change, z));
    if (!rng)
        return tg_fail(t, TG_ERR_NULL, "zoneout", "rng is NULL");
    tg_tensor *keep = tg_tape_tensor(t, next->dtype, next->ndim, next->shape);
    if (!keep)
        return NULL;
    for (int64_t i = 0; i < keep->numel; i++)   /* d = 1 (keep prev) with probability z */
        tg_tensor_set(keep, i, tg_rng_uniform(rng) < z ? 1.0 : 0.0);
    return tg_add(t, next, tg_mul(t, keep, change));              /* d*prev + (1-d)*next */
}

tg_tensor *tg_weight_drop(tg_tape *t, tg_tensor *w, int64_t row0, int64_t rows, double p,
                          tg_rng *rng)
{
    if (!w)
        return tg_fail(t, TG_ERR_NULL, "weight_drop", "NULL weight");
    int64_t nrows = w->ndim == 2 ? w->shape[0] : w->numel;
    int64_t cols = w->ndim == 2 ? w->shape[1] : 1;
    if (w->ndim < 1 || w->ndim > 2 || row0 < 0 || rows < 0 || row0 + rows > nrows)
        return tg_fail(t, TG_ERR_ARG, "weight_drop", "rows %lld..%lld of a %d-D weight with "
                       "%lld rows", (long long)row0, (long long)(row0 + rows), w->ndim,
                       (long long)nrows);
    if (p == 0.0 || rows == 0)
        return w;
    tg_tensor *mask = tg_dropout_mask(t, w->dtype, w->ndim, w->shape, p, rng);
    if (!mask)
        return NULL;
    for (int64_t i = 0; i < row0 * cols; i++)         /* rows outside the range are kept */
        tg_tensor_set(mask, i, 1.0);
    for (int64_t i = (row0 + rows) * cols; i < mask->numel; i++)
        tg_tensor_set(mask, i, 1.0);
    return tg_mul(t, w, mask);
}
