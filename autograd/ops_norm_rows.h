/* autograd/ops_norm_rows.h: layer_norm's row kernels for one element type, T (see ops_norm.c). */
/*
 * ops_norm.c includes this file once per type, with T the element type and LN_ROW(name)
 * giving the type's function names. Each row is D elements; the math is ops_norm.c's.
 * Every sum runs in LANES interleaved partial sums (one AVX2 vector of floats), the tail
 * and the lanes then added in double in a fixed order: the same bits on either clone.
 */

/* y = (x - m) rs gamma + beta for one row; its m and rs into *mean, *rstd. */
static TG_CLONES void LN_ROW(forward)(const T *xr, const T *gam, const T *bet, int64_t D,
                                      double eps, T *restrict yr, double *mean, double *rstd)
{
    T x0 = xr[0];
    double s, q;
    LANE_SUM(T, D, j, xr[j] - x0, s);
    *mean = (double)x0 + s / (double)D;
    T m = (T)*mean;
    LANE_SUM(T, D, j, (xr[j] - m) * (xr[j] - m), q);
    *rstd = 1.0 / sqrt(q / (double)D + eps);
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
    T a1[LANES] = { 0 }, a2[LANES] = { 0 };
    int64_t j = 0;
    for (; j + LANES <= D; j += LANES)
        for (int l = 0; l < LANES; l++) {
            T xhat = (xr[j + l] - m) * rs, g = gr[j + l] * gam[j + l];
            a1[l] += g;
            a2[l] += g * xhat;
            pg[j + l] += gr[j + l] * xhat;
            pb[j + l] += gr[j + l];
        }
    double s1 = 0, s2 = 0;
    for (; j < D; j++) {
        T xhat = (xr[j] - m) * rs, g = gr[j] * gam[j];
        s1 += (double)g;
        s2 += (double)g * (double)xhat;
        pg[j] += gr[j] * xhat;
        pb[j] += gr[j];
    }
    for (int l = 0; l < LANES; l++) {
        s1 += (double)a1[l];
        s2 += (double)a2[l];
    }
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
