/* optim/clip.c: gradient clipping by global L2 norm (torch's clip_grad_norm_) and by value. */
#include <math.h>
#include <stdint.h>

#include "optim/optim.h"

#define PAR_MIN 32768   /* elements below which a loop stays on one thread */

/*
 * The sum of squares is taken in double over fixed chunks of CHUNK elements, each chunk
 * summed left to right, then the chunk sums of a tensor in chunk order, then the tensor
 * sums in parameter order. The chunking depends only on the sizes, never on the thread
 * count, so the norm is bit-identical for any number of threads.
 */
#define CHUNK  8192
#define MAX_CHUNKS 256   /* per pass; longer tensors take several passes */

static double sumsq_f64(const double *g, int64_t n)
{
    double total = 0.0;
    for (int64_t base = 0; base < n; base += (int64_t)CHUNK * MAX_CHUNKS) {
        int64_t len = n - base < (int64_t)CHUNK * MAX_CHUNKS ? n - base
                                                              : (int64_t)CHUNK * MAX_CHUNKS;
        int nc = (int)((len + CHUNK - 1) / CHUNK);
        double part[MAX_CHUNKS];
        #pragma omp parallel for schedule(static) if (len > PAR_MIN)
        for (int c = 0; c < nc; c++) {
            int64_t lo = base + (int64_t)c * CHUNK;
            int64_t hi = lo + CHUNK < base + len ? lo + CHUNK : base + len;
            double s = 0.0;
            for (int64_t i = lo; i < hi; i++)
                s += g[i] * g[i];
            part[c] = s;
        }
        for (int c = 0; c < nc; c++)
            total += part[c];
    }
    return total;
}

static double sumsq_f32(const float *g, int64_t n)
{
    double total = 0.0;
    for (int64_t base = 0; base < n; base += (int64_t)CHUNK * MAX_CHUNKS) {
        int64_t len = n - base < (int64_t)CHUNK * MAX_CHUNKS ? n - base
                                                              : (int64_t)CHUNK * MAX_CHUNKS;
        int nc = (int)((len + CHUNK - 1) / CHUNK);
        double part[MAX_CHUNKS];
        #pragma omp parallel for schedule(static) if (len > PAR_MIN)
        for (int c = 0; c < nc; c++) {
            int64_t lo = base + (int64_t)c * CHUNK;
            int64_t hi = lo + CHUNK < base + len ? lo + CHUNK : base + len;
            double s = 0.0;
            for (int64_t i = lo; i < hi; i++)
                s += (double)g[i] * (double)g[i];
            part[c] = s;
        }
        for (int c = 0; c < nc; c++)
            total += part[c];
    }
    return total;
}

double tg_clip_grad_norm(tg_params *ps, double max_norm)
{
    int np = tg_params_count(ps);
    double sum = 0.0;
    for (int j = 0; j < np; j++) {
        tg_tensor *t = tg_params_at(ps, j);
        if (!t->grad)
            continue;
        sum += t->dtype == TG_F64 ? sumsq_f64(t->grad, t->numel)
                                  : sumsq_f32(t->grad, t->numel);
    }
    double norm = sqrt(sum);
    if (!isfinite(norm) || !(max_norm >= 0.0))
        return norm;                       /* reported, never applied */
    double coef = max_norm / (norm + 1e-6);
    if (!(coef < 1.0))
        return norm;
    for (int j = 0; j < np; j++) {
        tg_tensor *t = tg_params_at(ps, j);
        int64_t n = t->numel;
        if (!t->grad)
            continue;
        if (t->dtype == TG_F64) {
            double *g = t->grad;
            #pragma omp parallel for schedule(static) if (n > PAR_MIN)
            for (int64_t i = 0; i < n; i++)
                g[i] = g[i] * coef;
        } else {
            float *g = t->grad;
            #pragma omp parallel for schedule(static) if (n > PAR_MIN)
            for (int64_t i = 0; i < n; i++)
                g[i] = (float)((double)g[i] * coef);
        }
    }
    return norm;
}

void tg_clip_grad_value(tg_params *ps, double clip)
{
    if (!(clip >= 0.0))
        return;
    int np = tg_params_count(ps);
    for (int j = 0; j < np; j++) {
        tg_tensor *t = tg_params_at(ps, j);
        int64_t n = t->numel;
        if (!t->grad)
            continue;
        if (t->dtype == TG_F64) {
            double *g = t->grad;
            #pragma omp parallel for schedule(static) if (n > PAR_MIN)
            for (int64_t i = 0; i < n; i++)   /* NaN stays NaN, as in torch.clamp */
                g[i] = g[i] > clip ? clip : g[i] < -clip ? -clip : g[i];
        } else {
            float *g = t->grad;
            float hi = (float)clip, lo = -hi;
            #pragma omp parallel for schedule(static) if (n > PAR_MIN)
            for (int64_t i = 0; i < n; i++)
                g[i] = g[i] > hi ? hi : g[i] < lo ? lo : g[i];
        }
    }
}
