/* autograd/ops_norm_rows.h: layer_norm's row kernels for one element type, T (see ops_norm.c). */
/*
 * ops_norm.c includes this file once per type, with T the element type and LN_ROW(name)
 * giving the type's function names. Each row is D elements; the math is ops_norm.c's.
 * Every sum runs in LANES interleaved partial sums (one AVX2 vector of floats), the tail
 * and the lanes then added in double in a fixed order: the same bits on either clone.
 */

/* LANES elements of T: one AVX2 vector of floats (two of doubles). Plain loops over
 * arrays of LANES partial sums compiled to lane shuffles; these compile to straight vector
 * arithmetic, lane for lane the same operations, so the same bits. */
typedef T LN_VEC __attribute__((vector_size(LANES * sizeof(T))));

/* The LANES partial sums, in lane order, added to the tail's sum `tail`. (Vectors go by
 * pointer: these helpers are built for the baseline ABI and inlined into either clone.) */
static inline double LN_ROW(total)(const LN_VEC *acc, double tail)
{
    for (int l = 0; l < LANES; l++)
        tail += (double)(*acc)[l];
    return tail;
}

/* sum_j (x[j] - c)^p for p = 1 or 2, in LANES partial sums (see the file's header). */
static inline double LN_ROW(centred_sum)(const T *xr, int64_t D, T c, int p)
{
    LN_VEC acc = { 0 };
    int64_t j = 0;
    for (; j + LANES <= D; j += LANES) {
        LN_VEC d;
        memcpy(&d, xr + j, sizeof d);
        d -= c;
        acc += p == 1 ? d : d * d;
    }
    double tail = 0;
    for (; j < D; j++)
        tail += (double)(p == 1 ? xr[j] - c : (xr[j] - c) * (xr[j] - c));
    return LN_ROW(total)(&acc, tail);
}

/* y = (x - m) rs gamma + beta for one row; its m and rs into *mean, *rstd. */
static TG_CLONES void LN_ROW(forward)(const T *xr, const T *gam, const T *bet, int64_t D,
                                      double eps, T *restrict yr, double *mean, double *rstd)
{
    T x0 = xr[0];
    *mean = (double)x0 + LN_ROW(centred_sum)(xr, D, x0, 1) / (double)D;
    T m = (T)*mean;
    *rstd = 1.0 / sqrt(LN_ROW(centred_sum)(xr, D, m, 2) / (double)D + eps);
    T rs = (T)*rstd;
    for (int64_t j = 0; j < D; j++)
        yr[j] = (xr[j] - m) * rs * gam[j] + bet[j];
}

/* One row's backward, g = dy * gamma, xhat = (x - m) rs:
 *   pass 1: s1 = sum g, s2 = sum g xhat; pg += dy xhat, pb += dy (the chunk's dgamma,
 *           dbeta partial sums)
 *   pass 2: dx = rs (g - s1/D - xhat s2/D), overwritten when fresh, else added; dx NULL
 *           when x needs no gradient. */
static TG_CLONES void LN_ROW(backward)(const T *xr, const T *gr, const T *gam, T m, T rs,
                                       int64_t D, T *restrict pg, T *restrict pb,
                                       T *restrict dx, bool fresh)
{
    LN_VEC a1 = { 0 }, a2 = { 0 };
    int64_t j = 0;
    for (; j + LANES <= D; j += LANES) {
        LN_VEC x, dy, gm, sg, sb;   /* x, dy, gamma and the chunk's partial sums here */
        memcpy(&x, xr + j, sizeof x);
        memcpy(&dy, gr + j, sizeof dy);
        memcpy(&gm, gam + j, sizeof gm);
        memcpy(&sg, pg + j, sizeof sg);
        memcpy(&sb, pb + j, sizeof sb);
        LN_VEC xhat = (x - m) * rs, g = dy * gm;
        a1 += g;
        a2 += g * xhat;
        sg += dy * xhat;
        sb += dy;
        memcpy(pg + j, &sg, sizeof sg);
        memcpy(pb + j, &sb, sizeof sb);
    }
    double s1 = 0, s2 = 0;
    for (; j < D; j++) {
        T xhat = (xr[j] - m) * rs, g = gr[j] * gam[j];
        s1 += (double)g;
        s2 += (double)g * (double)xhat;
        pg[j] += gr[j] * xhat;
        pb[j] += gr[j];
    }
    s1 = LN_ROW(total)(&a1, s1);
    s2 = LN_ROW(total)(&a2, s2);
    if (!dx)
        return;
    T c1 = (T)(s1 / (double)D), c2 = (T)(s2 / (double)D) * rs;
    if (fresh)
        for (j = 0; j < D; j++)
            dx[j] = rs * (gr[j] * gam[j] - c1 - (xr[j] - m) * c2);
    else
        for (j = 0; j < D; j++)
            dx[j] += rs * (gr[j] * gam[j] - c1 - (xr[j] - m) * c2);
}
