/* autograd/ops_layout.c: stack, chunk, flip and one_hot: ops that arrange elements. */
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

/* ---- stack ---------------------------------------------------------------------------
 * forward:   Y[..., k, ...] = X_k     n inputs of one shape, a new dim of size n at dim
 *            Viewed as Y (outer, n, inner) and each X_k (outer, inner).
 * backward:  dX_k[o,:] += dY[o,k,:]   (overwritten when fresh)
 */
static void stack_move(tg_node *n, bool backward)
{
    int64_t outer = n->arg[0], inner = n->arg[1], count = n->nin;
    size_t es = tg_dtype_size(n->out->dtype);
    for (int k = 0; k < n->nin; k++) {
        const tg_tensor *x = n->in[k];
        if (!backward) {
            for (int64_t o = 0; o < outer; o++)
                memcpy((char *)n->out->data + (size_t)((o * count + k) * inner) * es,
                       (const char *)x->data + (size_t)(o * inner) * es, (size_t)inner * es);
        } else if (x->grad) {
            bool fresh = TG_FRESH(n, k);
            TG_DISPATCH(x->dtype,
                const T *g = n->out->grad;
                T *dx = x->grad;
                TG_FOR(outer * inner, o, outer,
                    for (int64_t i = 0; i < inner; i++)
                        dx[o * inner + i] = (fresh ? (T)0 : dx[o * inner + i]) +
                                            g[(o * count + k) * inner + i];););
        }
    }
}

static void stack_forward(tg_node *n)  { stack_move(n, false); }
static void stack_backward(tg_node *n) { stack_move(n, true); }
static const tg_op op_stack = { "stack", stack_forward, stack_backward, TG_ALL_INPUTS };

tg_tensor *tg_stack(tg_tape *tape, tg_tensor *const *xs, int count, int dim)
{
    if (tape && tg_tape_status(tape) == TG_OK && (!xs || count < 1))
        return tg_fail(tape, TG_ERR_ARG, "stack", "needs at least one tensor");
    tg_node *n = tg_node_begin(tape, &op_stack, xs ? count : 0, xs);
    if (!n)
        return NULL;
    const tg_tensor *x0 = xs[0];
    for (int k = 1; k < count; k++) {
        bool same = xs[k]->ndim == x0->ndim;
        for (int d = 0; same && d < x0->ndim; d++)
            same = xs[k]->shape[d] == x0->shape[d];
        if (!same)
            return tg_fail(tape, TG_ERR_SHAPE, "stack", "tensor %d is %s but tensor 1 is %s",
                           k + 1, tg_msg_shape(xs[k]), tg_msg_shape(x0));
    }
    if (x0->ndim >= TG_MAX_DIMS)
        return tg_fail(tape, TG_ERR_SHAPE, "stack", "%s already has %d dims, the most a "
                       "tensor has", tg_msg_shape(x0), TG_MAX_DIMS);
    dim = tg_dim_index(tape, "stack", dim, x0->ndim + 1, x0);
    if (dim < 0)
        return NULL;
    int64_t shape[TG_MAX_DIMS];
    for (int d = 0, s = 0; d <= x0->ndim; d++)
        shape[d] = d == dim ? count : x0->shape[s++];
    n->arg[0] = span(x0, 0, dim);
    n->arg[1] = span(x0, dim, x0->ndim);
    if (!tg_node_output(n, x0->ndim + 1, shape, false))
        return NULL;
    return tg_node_finish(n);
}

/* ---- chunk: n equal slices along dim ----------------------------------------------------- */
tg_status tg_chunk(tg_tape *tape, tg_tensor *x, int count, int dim, tg_tensor **out)
{
    if (!tape)
        return TG_ERR_NULL;
    for (int k = 0; out && k < count; k++)
        out[k] = NULL;
    if (tg_tape_status(tape) != TG_OK)
        return tg_tape_status(tape);
    if (!x || !out) {
        tg_fail(tape, TG_ERR_NULL, "chunk", "%s is NULL", x ? "out" : "x");
        return tg_tape_status(tape);
    }
    if (count < 1) {
        tg_fail(tape, TG_ERR_ARG, "chunk", "number of chunks %d must be >= 1", count);
        return tg_tape_status(tape);
    }
    int d = tg_dim_index(tape, "chunk", dim, x->ndim, x);
    if (d < 0)
        return tg_tape_status(tape);
    if (x->shape[d] % count != 0) {
        tg_fail(tape, TG_ERR_SHAPE, "chunk", "dim %d of %s (size %lld) does not divide into "
                "%d equal chunks", dim, tg_msg_shape(x), (long long)x->shape[d], count);
        return tg_tape_status(tape);
    }
    int64_t len = x->shape[d] / count;
    tg_tape_push_scope(tape, "chunk");          /* a slice's error reads "chunk: slice: " */
    for (int k = 0; k < count; k++)
        out[k] = tg_slice(tape, x, d, k * len, len);
    tg_tape_pop_scope(tape);
    if (tg_tape_status(tape) != TG_OK)
        for (int k = 0; k < count; k++)
            out[k] = NULL;
    return tg_tape_status(tape);
}

/* ---- flip ---------------------------------------------------------------------------------
 * forward:   Y[o,k,i] = X[o,len-1-k,i]       X viewed as (outer, len, inner)
 * backward:  dX[o,len-1-k,i] += dY[o,k,i]     (overwritten when fresh)
 */
static void flip_move(tg_node *n, bool backward)
{
    int64_t outer = n->arg[0], len = n->arg[1], inner = n->arg[2];
    const tg_tensor *x = n->in[0];
    if (backward && !x->grad)
        return;
    bool fresh = backward && TG_FRESH(n, 0);
    TG_DISPATCH(x->dtype,
        const T *src = backward ? (const T *)n->out->grad : (const T *)x->data;
        T *dst = backward ? (T *)x->grad : (T *)n->out->data;
        TG_FOR(outer * len * inner, o, outer,
            for (int64_t k = 0; k < len; k++) {
                const T *s = src + (o * len + k) * inner;
                T *d = dst + (o * len + len - 1 - k) * inner;
                for (int64_t i = 0; i < inner; i++)
                    d[i] = (backward && !fresh ? d[i] : (T)0) + s[i];
            }););
}

static void flip_forward(tg_node *n)  { flip_move(n, false); }
static void flip_backward(tg_node *n) { flip_move(n, true); }
static const tg_op op_flip = { "flip", flip_forward, flip_backward, 1u };

tg_tensor *tg_flip(tg_tape *tape, tg_tensor *x, int dim)
{
    tg_node *n = tg_node_begin(tape, &op_flip, 1, &x);
    if (!n)
        return NULL;
    dim = tg_dim_index(tape, "flip", dim, x->ndim, x);
    if (dim < 0)
        return NULL;
    n->arg[0] = span(x, 0, dim);
    n->arg[1] = x->shape[dim];
    n->arg[2] = span(x, dim + 1, x->ndim);
    if (!tg_node_output(n, x->ndim, x->shape, false))
        return NULL;
    return tg_node_finish(n);
}

/* ---- one_hot: Y[i, idx[i]] = 1, else 0; a constant (no node, no gradient) ---------------- */
tg_tensor *tg_one_hot(tg_tape *tape, tg_dtype dtype, const int32_t *idx, int64_t count,
                      int64_t classes)
{
    if (!tape || tg_tape_status(tape) != TG_OK)
        return NULL;
    if (!idx)
        return tg_fail(tape, TG_ERR_NULL, "one_hot", "indices are NULL");
    if (dtype != TG_F32 && dtype != TG_F64)
        return tg_fail(tape, TG_ERR_ARG, "one_hot", "dtype %d is neither TG_F32 nor TG_F64",
                       (int)dtype);
    if (count < 1 || classes < 1)
        return tg_fail(tape, TG_ERR_ARG, "one_hot", "needs n >= 1 and classes >= 1, got n "
                       "%lld, classes %lld", (long long)count, (long long)classes);
    for (int64_t i = 0; i < count; i++)
        if (idx[i] < 0 || idx[i] >= classes)
            return tg_fail(tape, TG_ERR_ARG, "one_hot",
                           "index %d at position %lld out of range [0,%lld)", (int)idx[i],
                           (long long)i, (long long)classes);
    tg_tensor *y = tg_tape_tensor_for(tape, "one_hot", dtype, 2,
                                      (int64_t[]){ count, classes });
    if (!y)
        return NULL;
    int32_t *hot = tg_arena_alloc(tape, (size_t)count * sizeof *hot, false, "one_hot");
    if (!hot)
        return NULL;
    memcpy(hot, idx, (size_t)count * sizeof *hot);
    TG_DISPATCH(dtype,
        T *v = y->data;
        for (int64_t i = 0; i < count; i++)
            v[i * classes + idx[i]] = 1;);
    /* products with y gather rows instead of multiplying by zeros (tg_dense_cols) */
    tg_tape_owned *tt = (tg_tape_owned *)(void *)y;
    tt->hot_col = 0;
    tt->hot = hot;
    y->flags |= TG_FLAG_HOT_TAIL;
    return y;
}
