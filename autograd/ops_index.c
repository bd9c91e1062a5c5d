/* autograd/ops_index.c: ops driven by index or mask arrays: embedding and dropout. */
#include <string.h>

#include "autograd/autograd_internal.h"

/* ---- embedding ---------------------------------------------------------------------
 * forward:   Y[i,:] = W[idx[i],:]         W: (V,D)  idx: (n)  Y: (n,D)
 * backward:  dW[idx[i],:] += dY[i,:]      rows in order, so repeated indices accumulate
 *                                         the same way for any thread count
 */
static void embedding_forward(tg_node *n)
{
    const int32_t *idx = n->aux;
    int64_t rows = n->out->shape[0], D = n->out->shape[1];
    size_t row_bytes = (size_t)D * tg_dtype_size(n->out->dtype);
    for (int64_t i = 0; i < rows; i++)
        memcpy((char *)n->out->data + (size_t)i * row_bytes,
               (const char *)n->in[0]->data + (size_t)idx[i] * row_bytes, row_bytes);
}

static void embedding_backward(tg_node *n)
{
    const int32_t *idx = n->aux;
    int64_t rows = n->out->shape[0], D = n->out->shape[1];
    if (!n->in[0]->grad)
        return;
    TG_DISPATCH(n->out->dtype,
        const T *g = n->out->grad;
        T *dw = n->in[0]->grad;
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < D; j++)
                dw[idx[i] * D + j] += g[i * D + j];);
}

static const tg_op op_embedding = { "embedding", embedding_forward, embedding_backward, 0 };

tg_tensor *tg_embedding(tg_tape *tape, tg_tensor *table, const int32_t *idx, int64_t count)
{
    tg_node *n = tg_node_begin(tape, &op_embedding, 1, &table);
    if (!n)
        return NULL;
    if (!idx)
        return tg_fail(tape, TG_ERR_NULL, "embedding", "indices are NULL");
    if (table->ndim != 2)
        return tg_fail(tape, TG_ERR_SHAPE, "embedding", "table %s must be (V,D)",
                       tg_msg_shape(table));
    if (count < 1)
        return tg_fail(tape, TG_ERR_ARG, "embedding", "needs at least one index, got %lld",
                       (long long)count);
    for (int64_t i = 0; i < count; i++)
        if (idx[i] < 0 || idx[i] >= table->shape[0])
            return tg_fail(tape, TG_ERR_ARG, "embedding",
                           "index %d at position %lld out of range [0,%lld) for table %s",
                           (int)idx[i], (long long)i, (long long)table->shape[0],
                           tg_msg_shape(table));
    int32_t *copy = tg_arena_alloc(tape, (size_t)count * sizeof *copy, false, "embedding");
    if (!copy)
        return NULL;
    memcpy(copy, idx, (size_t)count * sizeof *copy);
    n->aux = copy;
    if (!tg_node_output(n, 2, (int64_t[]){ count, table->shape[1] }, false))
        return NULL;
    return tg_node_finish(n);
}

/* ---- dropout (inverted) -----------------------------------------------------------------
 * forward:   Y = X * M / (1-p)     M[i] = 0 with probability p, else 1 (drawn at record time)
 * backward:  dX += dY * M / (1-p)
 */
static void dropout_forward(tg_node *n)
{
    const unsigned char *mask = n->aux;
    int64_t len = n->out->numel;
    TG_DISPATCH(n->out->dtype,
        const T *x = n->in[0]->data;
        T *y = n->out->data;
        T keep = (T)(1.0 / (1.0 - n->scalar));
        TG_FOR(len, i, len,
            y[i] = mask[i] ? x[i] * keep : 0;););
}

static void dropout_backward(tg_node *n)
{
    const unsigned char *mask = n->aux;
    int64_t len = n->out->numel;
    if (!n->in[0]->grad)
        return;
    TG_DISPATCH(n->out->dtype,
        const T *g = n->out->grad;
        T *dx = n->in[0]->grad;
        T keep = (T)(1.0 / (1.0 - n->scalar));
        TG_FOR(len, i, len,
            dx[i] += mask[i] ? g[i] * keep : 0;););
}

static const tg_op op_dropout = { "dropout", dropout_forward, dropout_backward, 0 };

tg_tensor *tg_dropout(tg_tape *tape, tg_tensor *x, double p, tg_rng *rng)
{
    tg_node *n = tg_node_begin(tape, &op_dropout, 1, &x);
    if (!n)
        return NULL;
    if (!(p >= 0.0 && p < 1.0))
        return tg_fail(tape, TG_ERR_ARG, "dropout", "p = %g must be in [0, 1)", p);
    if (p == 0.0)
        return x;
    if (!rng)
        return tg_fail(tape, TG_ERR_NULL, "dropout", "rng is NULL");
    unsigned char *mask = tg_arena_alloc(tape, (size_t)x->numel, false, "dropout");
    if (!mask)
        return NULL;
    for (int64_t i = 0; i < x->numel; i++)
        mask[i] = tg_rng_uniform(rng) >= p;
    n->aux = mask;
    n->scalar = p;
    if (!tg_node_output(n, x->ndim, x->shape, false))
        return NULL;
    return tg_node_finish(n);
}
