/* autograd/ops_reduce.c: sum, mean, sum_dim, mean_dim, softmax, log_softmax and cross_entropy. */
#include <string.h>
#include <tgmath.h>

#include "autograd/autograd_internal.h"

/* Sum of n values in a fixed order (in double), whatever the thread count. */
#define SUM_IN_ORDER(T, xs, n, out)                                                \
    do {                                                                           \
        double acc_ = 0;                                                           \
        for (int64_t i_ = 0; i_ < (n); i_++)                                       \
            acc_ += (double)(xs)[i_];                                              \
        (out) = acc_;                                                              \
    } while (0)

/* ---- sum and mean ------------------------------------------------------------------
 * forward:   y = sum_i x[i]            (mean: y = sum_i x[i] / n)
 * backward:  dx[i] += dy               (mean: dx[i] += dy / n)
 * n->scalar holds the factor: 1 for sum, 1/n for mean.
 */
static void sum_forward(tg_node *n)
{
    double total;
    TG_DISPATCH(n->out->dtype,
        SUM_IN_ORDER(T, (const T *)n->in[0]->data, n->in[0]->numel, total);
        ((T *)n->out->data)[0] = (T)(total * n->scalar););
}

static void sum_backward(tg_node *n)
{
    int64_t len = n->in[0]->numel;
    if (!n->in[0]->grad)
        return;
    TG_DISPATCH(n->out->dtype,
        T g = ((const T *)n->out->grad)[0] * (T)n->scalar;
        T *dx = n->in[0]->grad;
        TG_FOR(len, i, len,
            dx[i] += g;););
}

static const tg_op op_sum = { "sum", sum_forward, sum_backward, 0 };
static const tg_op op_mean = { "mean", sum_forward, sum_backward, 0 };

static tg_tensor *reduce_all(tg_tape *tape, const tg_op *op, tg_tensor *x, bool mean)
{
    tg_node *n = tg_node_begin(tape, op, 1, &x);
    if (!n)
        return NULL;
    n->scalar = mean ? 1.0 / (double)x->numel : 1.0;
    if (!tg_node_output(n, 1, (int64_t[]){ 1 }, false))
        return NULL;
    return tg_node_finish(n);
}

tg_tensor *tg_sum(tg_tape *tape, tg_tensor *x)  { return reduce_all(tape, &op_sum, x, false); }
tg_tensor *tg_mean(tg_tape *tape, tg_tensor *x) { return reduce_all(tape, &op_mean, x, true); }

/* ---- sum_dim and mean_dim ------------------------------------------------------------
 * forward:   Y[o,0,i] = s * sum_k X[o,k,i]      X viewed as (outer, len, inner)
 * backward:  dX[o,k,i] += s * dY[o,0,i]         s = n->scalar: 1 (sum), 1/len (mean)
 */
static void sum_dim_forward(tg_node *n)
{
    int64_t outer = n->arg[0], len = n->arg[1], inner = n->arg[2];
    double s = n->scalar;
    TG_DISPATCH(n->out->dtype,
        const T *x = n->in[0]->data;
        T *y = n->out->data;
        TG_FOR(outer * len * inner, o, outer,
            for (int64_t i = 0; i < inner; i++) {
                double acc = 0;
                for (int64_t k = 0; k < len; k++)
                    acc += (double)x[(o * len + k) * inner + i];
                y[o * inner + i] = (T)(acc * s);
            }););
}

static void sum_dim_backward(tg_node *n)
{
    int64_t outer = n->arg[0], len = n->arg[1], inner = n->arg[2];
    if (!n->in[0]->grad)
        return;
    TG_DISPATCH(n->out->dtype,
        const T *g = n->out->grad;
        T *dx = n->in[0]->grad;
        T s = (T)n->scalar;
        TG_FOR(outer * len * inner, o, outer,
            for (int64_t k = 0; k < len; k++)
                for (int64_t i = 0; i < inner; i++)
                    dx[(o * len + k) * inner + i] += s * g[o * inner + i];););
}

static const tg_op op_sum_dim = { "sum_dim", sum_dim_forward, sum_dim_backward, 0 };
static const tg_op op_mean_dim = { "mean_dim", sum_dim_forward, sum_dim_backward, 0 };

bool tg_reduce_dim_begin(tg_node *n, int dim)
{
    const tg_tensor *x = n->in[0];
    int d = tg_dim_index(n->tape, n->op->name, dim, x->ndim, x);
    if (d < 0)
        return false;
    int64_t shape[TG_MAX_DIMS], outer = 1, inner = 1;
    memcpy(shape, x->shape, sizeof shape);
    for (int k = 0; k < d; k++)
        outer *= x->shape[k];
    for (int k = d + 1; k < x->ndim; k++)
        inner *= x->shape[k];
    n->arg[0] = outer;
    n->arg[1] = x->shape[d];
    n->arg[2] = inner;
    shape[d] = 1;
    return tg_node_output(n, x->ndim, shape, false);
}

static tg_tensor *sum_like_dim(tg_tape *tape, const tg_op *op, tg_tensor *x, int dim,
                               bool mean)
{
    tg_node *n = tg_node_begin(tape, op, 1, &x);
    if (!n || !tg_reduce_dim_begin(n, dim))
        return NULL;
    n->scalar = mean ? 1.0 / (double)n->arg[1] : 1.0;
    return tg_node_finish(n);
}

tg_tensor *tg_sum_dim(tg_tape *tape, tg_tensor *x, int dim)
{
    return sum_like_dim(tape, &op_sum_dim, x, dim, false);
}

tg_tensor *tg_mean_dim(tg_tape *tape, tg_tensor *x, int dim)
{
    return sum_like_dim(tape, &op_mean_dim, x, dim, true);
}

/* ---- softmax and log_softmax over the last dim -----------------------------------------
 * rows r of C columns; m = max_j x[r,j]; s = sum_j e^(x[r,j]-m)
 * softmax:      y = e^(x-m) / s          dx += y * (dy - sum_j dy*y)
 * log_softmax:  y = x - m - log s        dx += dy - e^y * sum_j dy
 */
#define ROWS_COLS(t) int64_t cols = (t)->shape[(t)->ndim - 1], rows = (t)->numel / cols

static void softmax_forward(tg_node *n)
{
    ROWS_COLS(n->out);
    bool logsm = n->arg[0];
    TG_DISPATCH(n->out->dtype,
        const T *x = n->in[0]->data;
        T *y = n->out->data;
        TG_FOR(rows * cols * 8, r, rows, {
            const T *xr = x + r * cols;
            T *yr = y + r * cols;
            T m = xr[0];
            for (int64_t j = 1; j < cols; j++)
                m = xr[j] > m ? xr[j] : m;
            double s = 0;
            for (int64_t j = 0; j < cols; j++)
                s += (double)exp(xr[j] - m);
            if (logsm) {
                T lse = m + (T)log(s);
                for (int64_t j = 0; j < cols; j++)
                    yr[j] = xr[j] - lse;
            } else {
                for (int64_t j = 0; j < cols; j++)
                    yr[j] = (T)((double)exp(xr[j] - m) / s);
            }
        }););
}

static void softmax_backward(tg_node *n)
{
    ROWS_COLS(n->out);
    bool logsm = n->arg[0];
    if (!n->in[0]->grad)
        return;
    TG_DISPATCH(n->out->dtype,
        const T *y = n->out->data;
        const T *g = n->out->grad;
        T *dx = n->in[0]->grad;
        TG_FOR(rows * cols * 4, r, rows, {
            const T *yr = y + r * cols, *gr = g + r * cols;
            T *dr = dx + r * cols;
            double dot = 0;
            for (int64_t j = 0; j < cols; j++)
                dot += logsm ? (double)gr[j] : (double)gr[j] * (double)yr[j];
            for (int64_t j = 0; j < cols; j++)
                dr[j] += logsm ? gr[j] - exp(yr[j]) * (T)dot : yr[j] * (gr[j] - (T)dot);
        }););
}

static const tg_op op_softmax = { "softmax", softmax_forward, softmax_backward, 0 };
static const tg_op op_log_softmax = { "log_softmax", softmax_forward, softmax_backward, 0 };

static tg_tensor *softmax_like(tg_tape *tape, const tg_op *op, tg_tensor *x, bool logsm)
{
    tg_node *n = tg_node_begin(tape, op, 1, &x);
    if (!n)
        return NULL;
    n->arg[0] = logsm;
    if (!tg_node_output(n, x->ndim, x->shape, false))
        return NULL;
    return tg_node_finish(n);
}

tg_tensor *tg_softmax(tg_tape *tape, tg_tensor *x)
{
    return softmax_like(tape, &op_softmax, x, false);
}

tg_tensor *tg_log_softmax(tg_tape *tape, tg_tensor *x)
{
    return softmax_like(tape, &op_log_softmax, x, true);
}

/* ---- cross_entropy -------------------------------------------------------------------
 * forward:   lse_r = m_r + log sum_j e^(x[r,j] - m_r)      loss = (1/N) sum_r (lse_r - x[r,t_r])
 * backward:  dx[r,j] += dloss / N * (e^(x[r,j] - lse_r) - [j == t_r])
 * aux holds the targets (copied) followed by lse (N doubles), so backward needs no softmax.
 * Sums and lse are in double; float logits take e^x from the vectorised tg_vexpf.
 */
typedef struct ce_aux {
    int32_t *targets;   /* (N) */
    double  *lse;       /* (N) */
    double  *row_loss;  /* (N) summed in order after the parallel loop */
} ce_aux;

/* float rows: e^(x[j] - shift) for j in [j0, j0 + len) into e, with the vectorised exp */
enum { CE_CHUNK = 256 };
static inline void ce_exp_f32(const float *x, double shift, int64_t len, float *e)
{
    for (int64_t j = 0; j < len; j++)
        e[j] = (float)((double)x[j] - shift);
    tg_vexpf(e, e, len);
}

static void cross_entropy_forward(tg_node *n)
{
    ce_aux *a = n->aux;
    ROWS_COLS(n->in[0]);
    if (n->out->dtype == TG_F32) {
        const float *x = n->in[0]->data;
        TG_FOR(rows * cols * 8, r, rows, {
            const float *xr = x + r * cols;
            float m = xr[0], e[CE_CHUNK];
            for (int64_t j = 1; j < cols; j++)
                m = xr[j] > m ? xr[j] : m;
            double s = 0;
            for (int64_t j0 = 0; j0 < cols; j0 += CE_CHUNK) {
                int64_t len = cols - j0 < CE_CHUNK ? cols - j0 : CE_CHUNK;
                ce_exp_f32(xr + j0, m, len, e);
                for (int64_t j = 0; j < len; j++)
                    s += e[j];
            }
            a->lse[r] = m + log(s);
            a->row_loss[r] = a->lse[r] - (double)xr[a->targets[r]];
        });
        double total;
        SUM_IN_ORDER(double, a->row_loss, rows, total);
        ((float *)n->out->data)[0] = (float)(total / (double)rows);
        return;
    }
    TG_DISPATCH(n->out->dtype,
        const T *x = n->in[0]->data;
        TG_FOR(rows * cols * 8, r, rows, {
            const T *xr = x + r * cols;
            double m = (double)xr[0];
            for (int64_t j = 1; j < cols; j++)
                m = (double)xr[j] > m ? (double)xr[j] : m;
            double s = 0;
            for (int64_t j = 0; j < cols; j++)
                s += exp((double)xr[j] - m);
            a->lse[r] = m + log(s);
            a->row_loss[r] = a->lse[r] - (double)xr[a->targets[r]];
        });
        double total;
        SUM_IN_ORDER(double, a->row_loss, rows, total);
        ((T *)n->out->data)[0] = (T)(total / (double)rows););
}

static void cross_entropy_backward(tg_node *n)
{
    const ce_aux *a = n->aux;
    ROWS_COLS(n->in[0]);
    if (!n->in[0]->grad)
        return;
    if (n->out->dtype == TG_F32) {
        const float *x = n->in[0]->data;
        float *dx = n->in[0]->grad;
        double g = (double)((const float *)n->out->grad)[0] / (double)rows;
        TG_FOR(rows * cols * 8, r, rows, {
            const float *xr = x + r * cols;
            float *dr = dx + r * cols, e[CE_CHUNK];
            for (int64_t j0 = 0; j0 < cols; j0 += CE_CHUNK) {
                int64_t len = cols - j0 < CE_CHUNK ? cols - j0 : CE_CHUNK;
                ce_exp_f32(xr + j0, a->lse[r], len, e);
                for (int64_t j = 0; j < len; j++)
                    dr[j0 + j] += (float)(g * e[j]);
            }
            dr[a->targets[r]] -= (float)g;
        });
        return;
    }
    TG_DISPATCH(n->out->dtype,
        const T *x = n->in[0]->data;
        T *dx = n->in[0]->grad;
        double g = (double)((const T *)n->out->grad)[0] / (double)rows;
        TG_FOR(rows * cols * 8, r, rows, {
            const T *xr = x + r * cols;
            T *dr = dx + r * cols;
            for (int64_t j = 0; j < cols; j++)
                dr[j] += (T)(g * exp((double)xr[j] - a->lse[r]));
            dr[a->targets[r]] -= (T)g;
        }););
}

static const tg_op op_cross_entropy = { "cross_entropy", cross_entropy_forward,
                                        cross_entropy_backward, 0 };

tg_tensor *tg_cross_entropy(tg_tape *tape, tg_tensor *logits, const int32_t *targets)
{
    tg_node *n = tg_node_begin(tape, &op_cross_entropy, 1, &logits);
    if (!n)
        return NULL;
    if (!targets)
        return tg_fail(tape, TG_ERR_NULL, "cross_entropy", "targets is NULL");
    if (logits->ndim != 2)
        return tg_fail(tape, TG_ERR_SHAPE, "cross_entropy", "logits %s must be (N,C)",
                       tg_msg_shape(logits));
    int64_t rows = logits->shape[0], cols = logits->shape[1];
    for (int64_t r = 0; r < rows; r++)
        if (targets[r] < 0 || targets[r] >= cols)
            return tg_fail(tape, TG_ERR_ARG, "cross_entropy",
                           "target %d at row %lld out of range [0,%lld) for logits %s",
                           (int)targets[r], (long long)r, (long long)cols,
                           tg_msg_shape(logits));
    ce_aux *a = tg_arena_alloc(tape, sizeof *a, false, "cross_entropy");
    if (!a)
        return NULL;
    a->targets = tg_arena_alloc(tape, (size_t)rows * sizeof *a->targets, false, "cross_entropy");
    a->lse = tg_arena_alloc(tape, (size_t)rows * sizeof *a->lse, false, "cross_entropy");
    a->row_loss = tg_arena_alloc(tape, (size_t)rows * sizeof *a->row_loss, false,
                                 "cross_entropy");
    if (!a->targets || !a->lse || !a->row_loss)
        return NULL;
    memcpy(a->targets, targets, (size_t)rows * sizeof *targets);
    n->aux = a;
    if (!tg_node_output(n, 1, (int64_t[]){ 1 }, false))
        return NULL;
    return tg_node_finish(n);
}
