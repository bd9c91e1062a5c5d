/* autograd/ops_dim.c: reductions over one dim beyond sums (var, max, logsumexp), mse_loss. */
#include <math.h>
#include <string.h>

#include "autograd/autograd_internal.h"

/* Every kernel here views x as (outer, len, inner) (tg_reduce_dim_begin) and reduces the
   len values x[o, 0..len-1, i], inner apart, into y[o, i]. Sums run in double in index
   order, one output per loop iteration, so any thread count gives the same bits. */
#define DIM_LOOP(n, ...)                                                             \
    int64_t outer = (n)->arg[0], len = (n)->arg[1], inner = (n)->arg[2];             \
    TG_FOR(outer * len * inner * 4, o, outer,                                        \
        for (int64_t i = 0; i < inner; i++) {                                        \
            int64_t base = o * len * inner + i, out = o * inner + i;                 \
            (void)out;                                                               \
            __VA_ARGS__                                                              \
        })

/* Mean of len values stride apart, shifted by the first: exactly x0 when all are x0, so a
   constant row has deviations of exactly 0 (var 0, layer norm finite). */
#define SHIFTED_MEAN(T, xs, len, stride, mean)                                       \
    do {                                                                             \
        double x0_ = (double)(xs)[0], s_ = 0;                                        \
        for (int64_t k_ = 0; k_ < (len); k_++)                                       \
            s_ += (double)(xs)[k_ * (stride)] - x0_;                                 \
        (mean) = x0_ + s_ / (double)(len);                                           \
    } while (0)

/* Gives n an aux array of one elem_bytes value per output (what backward needs per
   reduced row) and finishes recording it. */
static tg_tensor *finish_with_aux(tg_node *n, size_t elem_bytes)
{
    n->aux = tg_arena_alloc(n->tape, (size_t)n->out->numel * elem_bytes, false, n->op->name);
    return n->aux ? tg_node_finish(n) : NULL;
}

/* Records op reducing x over dim, with an aux value of elem_bytes per output. */
static tg_tensor *record_dim_op(tg_tape *tape, const tg_op *op, tg_tensor *x, int dim,
                                size_t elem_bytes)
{
    tg_node *n = tg_node_begin(tape, op, 1, &x);
    if (!n || !tg_reduce_dim_begin(n, dim))
        return NULL;
    return finish_with_aux(n, elem_bytes);
}

/* ---- var_dim --------------------------------------------------------------------------
 * forward:   m = mean_k x[k]    y = sum_k (x[k] - m)^2 / (len - c)     c: the correction
 * backward:  dx[k] += dy * 2 (x[k] - m) / (len - c)
 * aux keeps m per output (double). len <= c divides by 0, as torch does (NaN, or inf).
 */
static void var_dim_forward(tg_node *n)
{
    double *mean = n->aux, denom = n->scalar;
    TG_DISPATCH(n->out->dtype,
        const T *x = n->in[0]->data;
        T *y = n->out->data;
        DIM_LOOP(n,
            const T *xs = x + base;
            double m, q = 0;
            SHIFTED_MEAN(T, xs, len, inner, m);
            for (int64_t k = 0; k < len; k++) {
                double d = (double)xs[k * inner] - m;
                q += d * d;
            }
            mean[out] = m;
            y[out] = (T)(q / denom);););
}

static void var_dim_backward(tg_node *n)
{
    const double *mean = n->aux;
    double denom = n->scalar;
    if (!n->in[0]->grad)
        return;
    TG_DISPATCH(n->out->dtype,
        const T *x = n->in[0]->data, *g = n->out->grad;
        T *dx = n->in[0]->grad;
        DIM_LOOP(n,
            double f = 2.0 * (double)g[out] / denom;
            for (int64_t k = 0; k < len; k++)
                dx[base + k * inner] += (T)(f * ((double)x[base + k * inner] - mean[out]));););
}

static const tg_op op_var_dim = { "var_dim", var_dim_forward, var_dim_backward, 0 };

tg_tensor *tg_var_dim(tg_tape *tape, tg_tensor *x, int dim, int correction)
{
    tg_node *n = tg_node_begin(tape, &op_var_dim, 1, &x);
    if (!n)
        return NULL;
    if (correction < 0)
        return tg_fail(tape, TG_ERR_ARG, "var_dim", "correction %d must be >= 0", correction);
    if (!tg_reduce_dim_begin(n, dim))
        return NULL;
    int64_t len = n->arg[1];
    n->scalar = len > correction ? (double)(len - correction) : 0.0;
    return finish_with_aux(n, sizeof(double));
}

/* ---- max_dim -----------------------------------------------------------------------------
 * forward:   y = x[k*],  k* the first index of the maximum (a NaN counts as the maximum,
 *            as torch propagates it)
 * backward:  dx[k*] += dy                                aux keeps k* per output
 */
static void max_dim_forward(tg_node *n)
{
    int64_t *arg = n->aux;
    TG_DISPATCH(n->out->dtype,
        const T *x = n->in[0]->data;
        T *y = n->out->data;
        DIM_LOOP(n,
            const T *xs = x + base;
            int64_t best = 0;
            T m = xs[0];
            for (int64_t k = 1; k < len && m == m; k++) {
                T v = xs[k * inner];
                if (v > m || v != v) {
                    m = v;
                    best = k;
                }
            }
            arg[out] = best;
            y[out] = m;););
}

static void max_dim_backward(tg_node *n)
{
    const int64_t *arg = n->aux;
    if (!n->in[0]->grad)
        return;
    TG_DISPATCH(n->out->dtype,
        const T *g = n->out->grad;
        T *dx = n->in[0]->grad;
        DIM_LOOP(n,
            dx[base + arg[out] * inner] += g[out];););
}

static const tg_op op_max_dim = { "max_dim", max_dim_forward, max_dim_backward, 0 };

tg_tensor *tg_max_dim(tg_tape *tape, tg_tensor *x, int dim)
{
    return record_dim_op(tape, &op_max_dim, x, dim, sizeof(int64_t));
}

/* ---- logsumexp_dim -------------------------------------------------------------------------
 * forward:   m = max_k x[k] (0 when it is infinite)    y = m + log sum_k e^(x[k] - m)
 *            Stable for any finite x; a row of -inf gives -inf, one with +inf gives +inf,
 *            as torch.logsumexp.
 * backward:  dx[k] += dy * e^(x[k] - y)    (NaN for a row of -inf, as torch)
 * aux keeps y per output in double, so float's backward is as exact as its forward.
 */
static void logsumexp_dim_forward(tg_node *n)
{
    double *lse = n->aux;
    TG_DISPATCH(n->out->dtype,
        const T *x = n->in[0]->data;
        T *y = n->out->data;
        DIM_LOOP(n,
            const T *xs = x + base;
            double m = (double)xs[0], s = 0;
            for (int64_t k = 1; k < len; k++)
                m = (double)xs[k * inner] > m ? (double)xs[k * inner] : m;
            if (isinf(m))
                m = 0;
            for (int64_t k = 0; k < len; k++)
                s += exp((double)xs[k * inner] - m);
            lse[out] = m + log(s);
            y[out] = (T)lse[out];););
}

static void logsumexp_dim_backward(tg_node *n)
{
    const double *lse = n->aux;
    if (!n->in[0]->grad)
        return;
    TG_DISPATCH(n->out->dtype,
        const T *x = n->in[0]->data, *g = n->out->grad;
        T *dx = n->in[0]->grad;
        DIM_LOOP(n,
            double gy = (double)g[out];
            for (int64_t k = 0; k < len; k++)
                dx[base + k * inner] += (T)(gy * exp((double)x[base + k * inner] - lse[out]));););
}

static const tg_op op_logsumexp_dim = { "logsumexp_dim", logsumexp_dim_forward,
                                        logsumexp_dim_backward, 0 };

tg_tensor *tg_logsumexp_dim(tg_tape *tape, tg_tensor *x, int dim)
{
    return record_dim_op(tape, &op_logsumexp_dim, x, dim, sizeof(double));
}

/* ---- mse_loss ------------------------------------------------------------------------------
 * forward:   y = (1/N) sum_i (a[i] - b[i])^2        a, b: one shape, N elements -> (1)
 * backward:  da[i] += dy * 2 (a[i] - b[i]) / N     db[i] -= the same
 */
static void mse_loss_forward(tg_node *n)
{
    int64_t len = n->in[0]->numel;
    TG_DISPATCH(n->out->dtype,
        const T *a = n->in[0]->data, *b = n->in[1]->data;
        double s = 0;
        for (int64_t i = 0; i < len; i++) {
            double d = (double)a[i] - (double)b[i];
            s += d * d;
        }
        ((T *)n->out->data)[0] = (T)(s / (double)len););
}

static void mse_loss_backward(tg_node *n)
{
    int64_t len = n->in[0]->numel;
    tg_tensor *a = n->in[0], *b = n->in[1];
    TG_DISPATCH(n->out->dtype,
        const T *av = a->data, *bv = b->data;
        T f = (T)(2.0 * (double)((const T *)n->out->grad)[0] / (double)len);
        T *da = a->grad, *db = b->grad;
        if (da)
            TG_FOR(len, i, len, da[i] += f * (av[i] - bv[i]););
        if (db)
            TG_FOR(len, i, len, db[i] -= f * (av[i] - bv[i]););
    );
}

static const tg_op op_mse_loss = { "mse_loss", mse_loss_forward, mse_loss_backward, 0 };

tg_tensor *tg_mse_loss(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[2] = { a, b };
    tg_node *n = tg_node_begin(tape, &op_mse_loss, 2, in);
    if (!n)
        return NULL;
    bool same = a->ndim == b->ndim;
    for (int d = 0; same && d < a->ndim; d++)
        same = a->shape[d] == b->shape[d];
    if (!same)
        return tg_fail(tape, TG_ERR_SHAPE, "mse_loss", "%s and %s must have one shape",
                       tg_msg_shape(a), tg_msg_shape(b));
    if (!tg_node_output(n, 1, (int64_t[]){ 1 }, false))
        return NULL;
    return tg_node_finish(n);
}
