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
 * order: the same bits for any thread count. The row kernels are in ops_norm_rows.h.
 */
enum { LANES = 8, CHUNK_ROWS = 8 };

typedef struct ln_aux {
    double *mean, *rstd;    /* (R) */
    int     gamma, beta;    /* their input index, or -1 when absent */
    void   *ones, *zeros;   /* (D) of x's dtype: gamma and beta when there are none */
} ln_aux;

#define T float
#define LN_ROW(name) ln_##name##_row_f32
#define LN_VEC ln_vec_f32
#include "autograd/ops_norm_rows.h"
#undef T
#undef LN_ROW
#undef LN_VEC
#define T double
#define LN_ROW(name) ln_##name##_row_f64
#define LN_VEC ln_vec_f64
#include "autograd/ops_norm_rows.h"
#undef T
#undef LN_ROW
#undef LN_VEC

/* The row kernel `name` (forward or backward) for element type T. */
#define LN_ROW_FOR(T, name) _Generic((T)0, float: ln_##name##_row_f32, \
                                           double: ln_##name##_row_f64)

static void layer_norm_forward(tg_node *n)
{
    const ln_aux *a = n->aux;
    const tg_tensor *x = n->in[0];
    int64_t D = x->shape[x->ndim - 1], R = x->numel / D;
    TG_DISPATCH(x->dtype,
        const T *gam = a->gamma >= 0 ? n->in[a->gamma]->data : a->ones;
        const T *bet = a->beta >= 0 ? n->in[a->beta]->data : a->zeros;
        TG_FOR(R * D * 4, r, R, {
            LN_ROW_FOR(T, forward)((const T *)x->data + r * D, gam, bet, D, n->scalar,
                                   (T *)n->out->data + r * D, &a->mean[r], &a->rstd[r]);
        }););
}

static void layer_norm_backward(tg_node *n)
{
    const ln_aux *a = n->aux;
    const tg_tensor *x = n->in[0];
    tg_tensor *gt = a->gamma >= 0 ? n->in[a->gamma] : NULL;
    tg_tensor *bt = a->beta >= 0 ? n->in[a->beta] : NULL;
    int64_t D = x->shape[x->ndim - 1], R = x->numel / D;
    int64_t nchunks = (R + CHUNK_ROWS - 1) / CHUNK_ROWS;
    bool fresh = TG_FRESH(n, 0);
    size_t es = tg_dtype_size(x->dtype);
    /* (nchunks, D) partial sums of dgamma, then of dbeta */
    void *part = tg_arena_alloc(n->tape, 2 * (size_t)(nchunks * D) * es, true, "layer_norm");
    if (!part)
        return;     /* TG_ERR_NOMEM recorded: backward fails */
    TG_DISPATCH(x->dtype,
        const T *xv = x->data, *gv = n->out->grad;
        const T *gam = gt ? gt->data : a->ones;
        T *dx = x->grad, *pgs = part, *pbs = pgs + nchunks * D;
        TG_FOR(R * D * 8, c, nchunks, {
            int64_t r1 = (c + 1) * CHUNK_ROWS < R ? (c + 1) * CHUNK_ROWS : R;
            for (int64_t r = c * CHUNK_ROWS; r < r1; r++)
                LN_ROW_FOR(T, backward)(xv + r * D, gv + r * D, gam, (T)a->mean[r],
                                        (T)a->rstd[r], D, pgs + c * D, pbs + c * D,
                                        dx ? dx + r * D : NULL, fresh);
        });
        T *dg = gt && gt->grad ? gt->grad : NULL, *db = bt && bt->grad ? bt->grad : NULL;
        if (dg || db)
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
