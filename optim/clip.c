/* optim/clip.c: gradient clipping by global L2 norm (torch's clip_grad_norm_) and by value. */
#include <math.h>
#include <stdint.h>

#include "optim/optim.h"
#include "tensor/tensor_internal.h"   /* TG_DISPATCH, TG_FOR */

/*
 * The sum of squares is taken in double over fixed chunks of CHUNK elements, each chunk
 * summed left to right, then the chunk sums of a tensor in chunk order, then the tensor
 * sums in parameter order. The chunking depends only on the sizes, never on the thread
 * count, so the norm is bit-identical for any number of threads.
 */
#define CHUNK  8192
#define MAX_CHUNKS 256   /* per pass; longer tensors take several passes */

static double sumsq(const tg_tensor *t)
{
    int64_t n = t->numel, pass = (int64_t)CHUNK * MAX_CHUNKS;
    double total = 0.0;
    TG_DISPATCH(t->dtype,
        const T *g = t->grad;
        for (int64_t base = 0; base < n; base += pass) {
            int64_t len = n - base < pass ? n - base : pass;
            int64_t nc = (len + CHUNK - 1) / CHUNK;
            double part[MAX_CHUNKS];
            TG_FOR(len, c, nc,
                int64_t lo = base + c * CHUNK;
                int64_t hi = lo + CHUNK < base + len ? lo + CHUNK : base + len;
                double s = 0.0;
                for (int64_t i = lo; i < hi; i++)
                    s += (double)g[i] * (double)g[i];
                part[c] = s;);
            for (int64_t c = 0; c < nc; c++)
                total += part[c];
        });
    return total;
}

/* g = g * coef, element by element, through double. */
static void scale_grad(tg_tensor *t, double coef)
{
    int64_t n = t->numel;
    TG_DISPATCH(t->dtype,
        T *g = t->grad;
        TG_FOR(n, i, n, g[i] = (T)((double)g[i] * coef);););
}

/* g = clamp(g, -clip, clip); NaN stays NaN, as in torch.clamp. */
static void clamp_grad(tg_tensor *t, double clip)
{
    int64_t n = t->numel;
    TG_DISPATCH(t->dtype,
        T *g = t->grad;
        T hi = (T)clip, lo = -hi;
        TG_FOR(n, i, n, g[i] = g[i] > hi ? hi : g[i] < lo ? lo : g[i];););
}

double tg_clip_grad_norm(tg_params *ps, double max_norm)
{
    int np = tg_params_count(ps);
    double sum = 0.0;
    for (int j = 0; j < np; j++) {
        tg_tensor *t = tg_params_at(ps, j);
        if (t->grad)
            sum += sumsq(t);
    }
    double norm = sqrt(sum);
    if (!isfinite(norm) || !(max_norm >= 0.0))
        return norm;                       /* reported, never applied */
    double coef = max_norm / (norm + 1e-6);
    if (!(coef < 1.0))
        return norm;
    for (int j = 0; j < np; j++)
        if (tg_params_at(ps, j)->grad)
            scale_grad(tg_params_at(ps, j), coef);
    return norm;
}

void tg_clip_grad_value(tg_params *ps, double clip)
{
    if (!(clip >= 0.0))
        return;
    for (int j = 0; j < tg_params_count(ps); j++)
        if (tg_params_at(ps, j)->grad)
            clamp_grad(tg_params_at(ps, j), clip);
}
