/* autograd/ops_norm.c: layer_norm, one fused node with its own numerically stable backward. */
#include <math.h>
#include <string.h>

#include "autograd/autograd_internal.h"

/* ---- layer_norm over the last dim ------------------------------------------------------
 * x viewed as (R,D) rows; gamma, beta (D), each optional (then 1 and 0).
 * forward:   m_r = mean_j x[r,j]    v_r = mean_j (x[r,j] - m_r)^2    s_r = 1/sqrt(v_r + eps)
 *            xhat = (x - m_r) s_r            y = xhat * gamma + beta
 * backward:  g = dy * gamma
 *            dx[r,j] += s_r (g[r,j] - mean_j g[r,:] - xhat[r,j] mean_j (g xhat)[r,:])
 *            dgamma += sum_r dy xhat         dbeta += sum_r dy
 * m_r and s_r are kept per row (aux). m_r is x[r,0] plus the mean of the x - x[r,0], so a
 * constant row has xhat exactly 0 and stays finite. Row sums run in LANES interleaved
 * partial sums (vectorisable), combined in a fixed order; rows are split over threads in
 * fixed chunks of CHUNK_ROWS, and dgamma, dbeta add the chunks' partial sums in chunk
 * order: the same bits for any thread count.
 */
enum { LANES = 8, CHUNK_ROWS = 8 };

typedef struct ln_aux {
    double *mean, *rstd;    /* (R) */
    int     gamma, beta;    /* their input index, or -1 when absent */
    void   *ones, *zeros;   /* (D) of x's dtype: gamma and beta when there are none */
} ln_aux;

/* sum_j f(x[j]) for j < D in LANES partial sums (type T), combined in double in a fixed
   order; f reads the element through the name v. */
#define LANE_SUM(T, D, v, f, result)                                               \
    do {                                                                           \
        T acc_[LANES] = { 0 };                                                     \
        int64_t j_ = 0;                                                            \
        for (; j_ + LANES <= (D); j_ += LANES)                                     \
            for (int l_ = 0; l_ < LANES; l_++) {                                   \
                int64_t v = j_ + l_;                                               \
                acc_[l_] += (f);                                                   \
            }                                                                      \
        double s_ = 0;                                                             \
        for (; j_ < (D); j_++) {                                                   \
            int64_t v = j_;                                                        \
            s_ += (double)(f);                                                     \
        }                                                                          \
        for (int l_ = 0; l_ < LANES; l_++)                                         \
            s_ += (double)acc_[l_];                                                \
        (result) = s_;                                                             \
    } while (0)

static void layer_norm_forward(tg_node *n)
{
    const ln_aux *a = n->aux;
    const tg_tensor *x = n->in[0];
    int64_t D = x->shape[x->ndim - 1], R = x->numel / D;
    double eps = n->scalar;
    TG_DISPATCH(x->dtype,
        const T *gam = a->gamma >= 0 ? n->in[a->gamma]->data : a->ones;
        const T *bet = a->beta >= 0 ? n->in[a->beta]->data : a->zeros;
        TG_FOR(R * D * 4, r, R, {
            const T *xr = (const T *)x->data + r * D;
            T *restrict yr = (T *)n->out->data + r * D;
            T x0 = xr[0];
            double s, q;
            LANE_SUM(T, D, j, xr[j] - x0, s);
            double mean = (double)x0 + s / (double)D;
            T m = (T)mean;
            LANE_SUM(T, D, j, (xr[j] - m) * (xr[j] - m), q);
            double rstd = 1.0 / sqrt(q / (double)D + eps);
            T rs = (T)rstd;
            a->mean[r] = mean;
            a->rstd[r] = rstd;
            for (int64_t j = 0; j < D; j++)
                yr[j] = (xr[j] - m) * rs * gam[j] + bet[j];
        }););
}

/* Row r's dx (overwritten when fresh, else added to) from g = dy * gamma, in two passes:
   s1 = sum g and s2 = sum g * xhat together in LANES partial sums, then dx. gam is gamma
   or ones. Loops without branches inside, so gcc vectorises them. */
#define LN_BACKWARD_DX(T, xr, gr, gam, m, rs, D, fresh, dr)                       \
    do {                                                                           \
        T a1_[LANES] = { 0 }, a2_[LANES] = { 0 };                                  \
        int64_t j_ = 0;                                                            \
        for (; j_ + LANES <= (D); j_ += LANES)                                     \
            for (int l_ = 0; l_ < LANES; l_++) {                                   \
                T g_ = (gr)[j_ + l_] * (gam)[j_ + l_];                             \
                a1_[l_] += g_;                                                     \
                a2_[l_] += g_ * (((xr)[j_ + l_] - (m)) * (rs));                    \
            }                                                                      \
        double s1_ = 0, s2_ = 0;                                                   \
        for (; j_ < (D); j_++) {                                                   \
            double g_ = (double)((gr)[j_] * (gam)[j_]);                            \
            s1_ += g_;                                                             \
            s2_ += g_ * (double)(((xr)[j_] - (m)) * (rs));                         \
        }                                                                          \
        for (int l_ = 0; l_ < LANES; l_++) {                                       \
            s1_ += (double)a1_[l_];                                                \
            s2_ += (double)a2_[l_];                                                \
        }                                                                          \
        T c1_ = (T)(s1_ / (double)(D)), c2_ = (T)(s2_ / (double)(D)) * (rs);       \
        if (fresh)                                                                 \
            for (int64_t j = 0; j < (D); j++)                                      \
                (dr)[j] = (rs) * ((gr)[j] * (gam)[j] - c1_ - ((xr)[j] - (m)) * c2_); \
        else                                                                       \
            for (int64_t j = 0; j < (D); j++)                                      \
                (dr)[j] += (rs) * ((gr)[j] * (gam)[j] - c1_ - ((xr)[j] - (m)) * c2_); \
    } while (0)

/* Rows [r0, r1): dx, and into pg and pb (when given) the rows' sums of dy * xhat and of
   dy, in row order (the first row overwrites). */
#define LN_BACKWARD_ROWS(T, r0, r1)                                                \
    for (int64_t r = (r0); r < (r1); r++) {                                        \
        const T *xr = xv + r * D, *gr = gv + r * D;                                \
        T m = (T)a->mean[r], rs = (T)a->rstd[r];                                   \
        bool first = r == (r0);                                                    \
        if (dx)                                                                    \
            LN_BACKWARD_DX(T, xr, gr, gam, m, rs, D, fresh, dx + r * D);           \
        if (pg && first)                                                           \
            for (int64_t j = 0; j < D; j++)                                        \
                pg[j] = gr[j] * ((xr[j] - m) * rs);                                \
        else if (pg)                                                               \
            for (int64_t j = 0; j < D; j++)                                        \
                pg[j] += gr[j] * ((xr[j] - m) * rs);                               \
        if (pb && first)                                                           \
            memcpy(pb, gr, (size_t)D * sizeof *pb);                                \
        else if (pb)                                                               \
            for (int64_t j = 0; j < D; j++)                                        \
                pb[j] += gr[j];                                                    \
    }

static void layer_norm_backward(tg_node *n)
{
    const ln_aux *a = n->aux;
    const tg_tensor *x = n->in[0];
    tg_tensor *gt = a->gamma >= 0 ? n->in[a->gamma] : NULL;
    tg_tensor *bt = a->beta >= 0 ? n->in[a->beta] : NULL;
    int64_t D = x->shape[x->ndim - 1], R = x->numel / D;
    int64_t nchunks = (R + CHUNK_ROWS - 1) / CHUNK_ROWS;
    bool fresh = TG_FRESH(n, 0), want_g = gt && gt->grad, want_b = bt && bt->grad;
    size_t es = tg_dtype_size(x->dtype);
    void *part = NULL;  /* (nchunks, D) partial sums of dgamma, then of dbeta */
    if (want_g || want_b) {
        part = tg_arena_alloc(n->tape, 2 * (size_t)(nchunks * D) * es, false, "layer_norm");
        if (!part)
            return;     /* TG_ERR_NOMEM recorded: backward fails */
    }
    TG_DISPATCH(x->dtype,
        const T *xv = x->data, *gv = n->out->grad;
        const T *gam = gt ? gt->data : a->ones;
        T *dx = x->grad, *pgs = part, *pbs = pgs ? pgs + nchunks * D : NULL;
        TG_FOR(R * D * 8, c, nchunks, {
            T *pg = want_g ? pgs + c * D : NULL, *pb = want_b ? pbs + c * D : NULL;
            int64_t r1 = (c + 1) * CHUNK_ROWS < R ? (c + 1) * CHUNK_ROWS : R;
            LN_BACKWARD_ROWS(T, c * CHUNK_ROWS, r1)
        });
        T *dg = want_g ? gt->grad : NULL, *db = want_b ? bt->grad : NULL;
        TG_FOR(nchunks * D * 2, j, D, {
            for (int64_t c = 0; c < nchunks; c++) {
                if (dg)
                    dg[j] += pgs[c * D + j];
                if (db)
                    db[j] += pbs[c * D + j];
            }
        }););
}

static const tg_op op_layer_norm = { "layer_norm", layer_norm_forward, layer_norm_backward,
                                     1u /* x's gradient is overwritten when fresh */ };

/* Checks that gamma or beta (what) is absent or (D) for x's last dim D. */
static bool ln_param_ok(tg_tape *tape, const tg_tensor *p, const char *what, const tg_tensor *x)
{
    if (!p || (p->ndim == 1 && p->shape[0] == x->shape[x->ndim - 1]))
        return true;
    tg_fail(tape, TG_ERR_SHAPE, "layer_norm", "%s %s must be (%lld) for x %s", what,
            tg_msg_shape(p), (long long)x->shape[x->ndim - 1], tg_msg_shape(x));
    return false;
}

tg_tensor *tg_layer_norm(tg_tape *tape, tg_tensor *x, tg_tensor *gamma, tg_tensor *beta,
                         double eps)
{
    if (tape && tg_tape_status(tape) == TG_OK && !x)
        return tg_fail(tape, TG_ERR_NULL, "layer_norm", "x is NULL");
    tg_tensor *in[3] = { x, NULL, NULL };
    int nin = 1, gi = -1, bi = -1;
    if (gamma)
        gi = nin, in[nin++] = gamma;
    if (beta)
        bi = nin, in[nin++] = beta;
    tg_node *n = tg_node_begin(tape, &op_layer_norm, nin, in);
    if (!n)
        return NULL;
    if (!(eps >= 0) || isinf(eps))
        return tg_fail(tape, TG_ERR_ARG, "layer_norm", "eps %g must be finite and >= 0", eps);
    if (!ln_param_ok(tape, gamma, "gamma", x) || !ln_param_ok(tape, beta, "beta", x))
        return NULL;
    int64_t R = x->numel / x->shape[x->ndim - 1];
    ln_aux *a = tg_arena_alloc(tape, sizeof *a, false, "layer_norm");
    double *stats = a ? tg_arena_alloc(tape, 2 * (size_t)R * sizeof *stats, false,
                                       "layer_norm") : NULL;
    if (!stats)
        return NULL;
    *a = (ln_aux){ .mean = stats, .rstd = stats + R, .gamma = gi, .beta = bi };
    int64_t D = x->shape[x->ndim - 1];
    size_t row_bytes = (size_t)D * tg_dtype_size(x->dtype);
    if (!gamma) {
        a->ones = tg_arena_alloc(tape, row_bytes, false, "layer_norm");
        if (!a->ones)
            return NULL;
        TG_DISPATCH(x->dtype,
            for (int64_t j = 0; j < D; j++)
                ((T *)a->ones)[j] = 1;);
    }
    if (!beta && !(a->zeros = tg_arena_alloc(tape, row_bytes, true, "layer_norm")))
        return NULL;
    n->aux = a;
    n->scalar = eps;
    if (!tg_node_output(n, x->ndim, x->shape, false))
        return NULL;
    return tg_node_finish(n);
}
