/* autograd/ops_shape.c: ops that move elements without arithmetic: reshape, concat, slice. */
#include <string.h>

#include "autograd/autograd_internal.h"

/* Product of shape[from..to-1]. */
static int64_t span(const tg_tensor *t, int from, int to)
{
    int64_t p = 1;
    for (int d = from; d < to; d++)
        p *= t->shape[d];
    return p;
}

/* ---- reshape ----------------------------------------------------------------------
 * forward:   Y = X viewed with a new shape (shares X's data, no copy)
 * backward:  dX += dY   (same element order)
 */
static void reshape_forward(tg_node *n)
{
    (void)n;    /* the output is a view */
}

static void reshape_backward(tg_node *n)
{
    int64_t len = n->out->numel;
    if (!n->in[0]->grad)
        return;
    TG_DISPATCH(n->out->dtype,
        const T *g = n->out->grad;
        T *dx = n->in[0]->grad;
        TG_FOR(len, i, len,
            dx[i] += g[i];););
}

static const tg_op op_reshape = { "reshape", reshape_forward, reshape_backward, 0 };

tg_tensor *tg_reshape(tg_tape *tape, tg_tensor *x, int ndim, const int64_t *shape)
{
    tg_node *n = tg_node_begin(tape, &op_reshape, 1, &x);
    if (!n)
        return NULL;
    if (!shape)
        return tg_fail(tape, TG_ERR_NULL, "reshape", "shape is NULL");
    int64_t numel;
    size_t bytes;
    tg_status st = tg_shape_check(x->dtype, ndim, shape, &numel, &bytes);
    if (st != TG_OK || numel != x->numel)
        return tg_fail(tape, TG_ERR_SHAPE, "reshape", "%s cannot be viewed as %d dims of "
                       "%lld elements", tg_msg_shape(x), ndim,
                       st == TG_OK ? (long long)numel : -1LL);
    if (!tg_node_output_view(n, x, ndim, shape))
        return NULL;
    return tg_node_finish(n);
}

/* ---- concat ------------------------------------------------------------------------
 * forward:   Y = [X_0 | X_1 | ... ] along dim; every other dim agrees.
 *            Viewed as (outer, len_k * inner) blocks: row o of Y is the rows o of all X_k.
 * backward:  dX_k += the block of dY that X_k filled
 */
static void concat_move(tg_node *n, bool backward)
{
    int dim = (int)n->arg[0];
    const tg_tensor *y = n->out;
    int64_t outer = span(y, 0, dim), inner = span(y, dim + 1, y->ndim);
    int64_t width = y->shape[dim] * inner;
    size_t es = tg_dtype_size(y->dtype);
    /* inputs past the columns of dY anything computes (TG_FLAG_GRAD_LEAD, set only when dim
       is the last) needed no gradient when this was recorded: they get none */
    int64_t live = (y->flags & TG_FLAG_GRAD_LEAD) ? tg_grad_cols(y) : width;
    int64_t off = 0;
    for (int k = 0; k < n->nin; k++) {
        const tg_tensor *x = n->in[k];
        int64_t w = x->shape[dim] * inner;
        if (!backward) {
            for (int64_t o = 0; o < outer; o++)
                memcpy((char *)y->data + (size_t)(o * width + off) * es,
                       (const char *)x->data + (size_t)(o * w) * es, (size_t)w * es);
        } else if (x->grad && off < live) {
            bool fresh = TG_FRESH(n, k);
            TG_DISPATCH(y->dtype,
                const T *g = y->grad;
                T *dx = x->grad;
                TG_FOR(outer * w, o, outer,
                    for (int64_t i = 0; i < w; i++)
                        dx[o * w + i] = (fresh ? (T)0 : dx[o * w + i]) +
                                        g[o * width + off + i];););
        }
        off += w;
    }
}

static void concat_forward(tg_node *n)  { concat_move(n, false); }
static void concat_backward(tg_node *n) { concat_move(n, true); }
static const tg_op op_concat = { "concat", concat_forward, concat_backward, TG_ALL_INPUTS };

tg_tensor *tg_concat_n(tg_tape *tape, tg_tensor *const *xs, int count, int dim)
{
    if (tape && tg_tape_status(tape) == TG_OK && (!xs || count < 1))
        return tg_fail(tape, TG_ERR_ARG, "concat", "needs at least one tensor");
    tg_node *n = tg_node_begin(tape, &op_concat, xs ? count : 0, xs);
    if (!n)
        return NULL;
    const tg_tensor *x0 = xs[0];
    dim = tg_dim_index(tape, "concat", dim, x0->ndim, x0);
    if (dim < 0)
        return NULL;
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, x0->shape, sizeof shape);
    for (int k = 1; k < count; k++) {
        const tg_tensor *x = xs[k];
        bool ok = x->ndim == x0->ndim;
        for (int d = 0; ok && d < x0->ndim; d++)
            ok = d == dim || x->shape[d] == x0->shape[d];
        if (!ok)
            return tg_fail(tape, TG_ERR_SHAPE, "concat", "%s and %s differ outside dim %d",
                           tg_msg_shape(x0), tg_msg_shape(x), dim);
        shape[dim] += x->shape[dim];
    }
    n->arg[0] = dim;
    if (!tg_node_output(n, x0->ndim, shape, false))
        return NULL;
    tg_tensor *y = tg_node_finish(n);
    /* joined along the last dim with trailing inputs that need no gradient: the columns
       they fill are never read from dY (concat(h, x) with a one-hot x) */
    if (y && (y->flags & TG_FLAG_REQUIRES_GRAD) && dim == y->ndim - 1) {
        int64_t lead = 0, off = 0;
        for (int k = 0; k < count; k++) {
            off += xs[k]->shape[dim];
            if (xs[k]->flags & TG_FLAG_REQUIRES_GRAD)
                lead = off;
        }
        if (lead < y->shape[dim]) {
            y->flags |= TG_FLAG_GRAD_LEAD;
            ((tg_tape_owned *)(void *)y)->grad_cols = lead;
        }
    }
    /* a 2-D join whose last input ends in a one-hot block ends in it too (tg_dense_cols):
       the combine = [h, x] of a cell fed one-hot characters */
    const int32_t *hot;
    const tg_tensor *last = xs[count - 1];
    int64_t last_dense = tg_dense_cols(last, &hot);
    if (y && y->ndim == 2 && dim == 1 && hot) {
        tg_tape_owned *tt = (tg_tape_owned *)(void *)y;
        tt->hot_col = y->shape[1] - last->shape[1] + last_dense;
        tt->hot = hot;
        y->flags |= TG_FLAG_HOT_TAIL;
    }
    return y;
}

tg_tensor *tg_concat(tg_tape *tape, tg_tensor *a, tg_tensor *b, int dim)
{
    tg_tensor *xs[2] = { a, b };
    return tg_concat_n(tape, xs, 2, dim);
}

/* ---- slice -------------------------------------------------------------------------
 * forward:   Y = X[..., start:start+len, ...] along dim
 * backward:  dX[..., start:start+len, ...] += dY
 */
static void slice_move(tg_node *n, bool backward)
{
    const tg_tensor *x = n->in[0];
    int dim = (int)n->arg[0];
    int64_t start = n->arg[1], len = n->arg[2];
    int64_t outer = span(x, 0, dim), inner = span(x, dim + 1, x->ndim);
    int64_t xw = x->shape[dim] * inner, yw = len * inner, off = start * inner;
    size_t es = tg_dtype_size(x->dtype);
    if (!backward) {
        for (int64_t o = 0; o < outer; o++)
            memcpy((char *)n->out->data + (size_t)(o * yw) * es,
                   (const char *)x->data + (size_t)(o * xw + off) * es, (size_t)yw * es);
        return;
    }
    if (!x->grad)
        return;
    TG_DISPATCH(x->dtype,
        const T *g = n->out->grad;
        T *dx = x->grad;
        TG_FOR(outer * yw, o, outer,
            for (int64_t i = 0; i < yw; i++)
                dx[o * xw + off + i] += g[o * yw + i];););
}

static void slice_forward(tg_node *n)  { slice_move(n, false); }
static void slice_backward(tg_node *n) { slice_move(n, true); }
static const tg_op op_slice = { "slice", slice_forward, slice_backward, 0 };

tg_tensor *tg_slice(tg_tape *tape, tg_tensor *x, int dim, int64_t start, int64_t len)
{
    tg_node *n = tg_node_begin(tape, &op_slice, 1, &x);
    if (!n)
        return NULL;
    dim = tg_dim_index(tape, "slice", dim, x->ndim, x);
    if (dim < 0)
        return NULL;
    if (start < 0 || len < 1 || start > x->shape[dim] - len)
        return tg_fail(tape, TG_ERR_ARG, "slice", "[%lld, %lld) out of range for dim %d of %s",
                       (long long)start, (long long)start + (long long)len, dim,
                       tg_msg_shape(x));
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[dim] = len;
    n->arg[0] = dim;
    n->arg[1] = start;
    n->arg[2] = len;
    if (!tg_node_output(n, x->ndim, shape, false))
        return NULL;
    return tg_node_finish(n);
}
