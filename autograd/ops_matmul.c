/* autograd/ops_matmul.c: matmul, affine (x @ w + b as one node), transpose and bmm. */
#include <string.h>
#include <tgmath.h>

#include "autograd/autograd_internal.h"
#include "tensor/gemm.h"

/* C = alpha * op(A) @ op(B) + beta * C for either dtype (all pointers of dtype). */
static void gemm(tg_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                 const void *A, int64_t lda, const void *B, int64_t ldb, double beta,
                 void *C, int64_t ldc)
{
    if (dt == TG_F64)
        tg_dgemm(ta, tb, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc);
    else
        tg_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, (float)beta, C, ldc);
}

/* C = op(A) @ op(B) + beta*C for op(A) = A and a B that is a weight (its leading K rows
   when not tb): from the tape's packed copy of op(B) when there is one
   (tg_packed_weight). */
static void gemm_w(tg_tape *tape, tg_dtype dt, bool tb, int64_t M, int64_t N, int64_t K,
                   const void *A, int64_t lda, const tg_tensor *w, double beta, void *C,
                   int64_t ldc)
{
    if (K == 0 && beta == 1)
        return;
    const float *packed = tg_packed_weight(tape, w, tb, tb ? w->shape[0] : K);
    if (packed)
        tg_sgemm_prepacked(tb, M, N, K, 1.0f, A, lda, w->data, w->shape[1], packed,
                           (float)beta, C, ldc);
    else
        gemm(dt, false, tb, M, N, K, A, lda, w->data, w->shape[1], beta, C, ldc);
}

/* Whether weight_grad queues W's gradient: W is caller-owned and has a gradient buffer. */
static bool queues_weight_grad(const tg_tensor *w)
{
    return w->grad && !(w->flags & TG_FLAG_TAPE);
}

/* y = matmul or affine with weight w, just recorded: when the weight gradient will be
   queued with y's gradient as dY, backward is to keep that buffer. Returns y. */
static tg_tensor *keep_grad_for_weight(tg_tensor *y, const tg_tensor *w)
{
    if (y && queues_weight_grad(w))
        y->flags |= TG_FLAG_GRAD_KEEP;
    return y;
}

void tg_product_start(const tg_tensor *w, const int32_t *hot, int64_t dense,
                      const tg_tensor *b, int64_t M, void *y, int64_t ldy)
{
    int64_t N = w->shape[1];
    TG_DISPATCH(w->dtype,
        const T *wd = w->data;
        const T *bias = b ? b->data : NULL;
        TG_FOR(M * N, i, M,
            const T *wr = hot ? wd + (dense + hot[i]) * N : NULL;
            T *yr = (T *)y + i * ldy;
            for (int64_t j = 0; j < N; j++)
                yr[j] = !wr ? bias[j] : bias ? bias[j] + wr[j] : wr[j];););
}

/* dW += X^T @ dY at once, for X (M,K) whose columns from dense on are a one-hot tail: the
   product over the dense columns, then dY's row i added to W's row dense + hot[i]. */
static void weight_grad_now(tg_node *n, const tg_tensor *x, const void *dy, tg_tensor *w)
{
    const int32_t *hot;
    int64_t M = x->shape[0], K = x->shape[1], N = w->shape[1];
    int64_t dense = tg_dense_cols(x, &hot);
    gemm(x->dtype, true, false, dense, N, M, x->data, K, dy, N, 1.0, w->grad, N);
    if (!hot)
        return;
    int64_t *at = tg_arena_alloc(n->tape, (size_t)M * sizeof *at, false, "backward");
    const char **rows = tg_arena_alloc(n->tape, (size_t)M * sizeof *rows, false, "backward");
    if (!at || !rows)
        return;   /* TG_ERR_NOMEM recorded: backward fails */
    size_t es = tg_dtype_size(x->dtype);
    for (int64_t i = 0; i < M; i++) {
        at[i] = dense + hot[i];
        rows[i] = (const char *)dy + (size_t)(i * N) * es;
    }
    tg_add_rows_at(w, at, rows, M);
}

/* dW += X^T @ dY for X (M,K), dY (M,N), W (K,N), and db += the column sums of dY when b is
   given: queued for the end of backward when W is caller-owned (see
   tg_defer_weight_grad; b too when it is caller-owned), else at once. A dY whose buffer
   backward recycles anyway (W took a gradient after recording) is queued as a copy. */
static void weight_grad(tg_node *n, const tg_tensor *x, const void *dy, tg_tensor *w,
                        tg_tensor *b)
{
    int64_t M = x->shape[0], N = w->shape[1];
    bool queue_b = b && b->grad && !(b->flags & TG_FLAG_TAPE);
    bool queue = queues_weight_grad(w);
    if (queue && dy == n->out->grad && (n->out->flags & TG_FLAG_GRAD_RECYCLED)) {
        size_t bytes = (size_t)(M * N) * tg_dtype_size(x->dtype);
        void *copy = tg_arena_alloc(n->tape, bytes, false, "backward");
        if (!copy)
            return;   /* TG_ERR_NOMEM recorded: backward fails */
        dy = memcpy(copy, dy, bytes);
    }
    if (queue && tg_defer_weight_grad(n->tape, w, queue_b ? b : NULL, x, dy)) {
        if (queue_b)
            b = NULL;
    } else if (w->grad) {
        weight_grad_now(n, x, dy, w);
    }
    if (b && b->grad) {
        TG_DISPATCH(x->dtype,
            const T *g = dy;
            T *db = b->grad;
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++)
                    db[j] += g[i * N + j];);
    }
}

/* ---- matmul ---------------------------------------------------------------------
 * forward:   C = A @ B        A: (M,K)  B: (K,N)  C: (M,N); where A ends in a one-hot
 *            tail, its rows of B gathered and only A's dense columns multiplied
 *            (tg_dense_cols), also in the affine and gate below
 * backward:  dA += dC @ B^T   dB += A^T @ dC    (gemm accumulates straight into grads;
 *            dA only in the columns anything reads, tg_grad_cols)
 */
static void matmul_forward(tg_node *n)
{
    const tg_tensor *a = n->in[0], *b = n->in[1];
    const int32_t *hot;
    int64_t M = a->shape[0], K = a->shape[1], N = b->shape[1], dense = tg_dense_cols(a, &hot);
    if (hot)
        tg_product_start(b, hot, dense, NULL, M, n->out->data, N);
    gemm_w(n->tape, a->dtype, false, M, N, dense, a->data, K, b, hot ? 1.0 : 0.0,
           n->out->data, N);
}

static void matmul_backward(tg_node *n)
{
    const tg_tensor *a = n->in[0], *b = n->in[1];
    int64_t M = a->shape[0], K = a->shape[1], N = b->shape[1];
    if (a->grad)   /* the columns of dA anything reads (tg_grad_cols) */
        gemm_w(n->tape, a->dtype, true, M, tg_grad_cols(a), N, n->out->grad, N, b,
               TG_FRESH(n, 0) ? 0 : 1, a->grad, K);
    weight_grad(n, a, n->out->grad, n->in[1], NULL);
}

/* dA is written by one product (beta 0 when fresh); dB and the bias are added to */
static const tg_op op_matmul = { "matmul", matmul_forward, matmul_backward, 1u };

static bool check_matmul(tg_tape *tape, const char *op, const tg_tensor *a, const tg_tensor *b)
{
    if (a->ndim != 2 || b->ndim != 2) {
        tg_fail(tape, TG_ERR_SHAPE, op, "%s @ %s: operands must be 2-D", tg_msg_shape(a),
                tg_msg_shape(b));
        return false;
    }
    if (a->shape[1] != b->shape[0]) {
        tg_fail(tape, TG_ERR_SHAPE, op, "%s @ %s: inner dimensions differ", tg_msg_shape(a),
                tg_msg_shape(b));
        return false;
    }
    return true;
}

tg_tensor *tg_matmul(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[2] = { a, b };
    tg_node *n = tg_node_begin(tape, &op_matmul, 2, in);
    if (!n || !check_matmul(tape, "matmul", a, b))
        return NULL;
    if (!tg_node_output(n, 2, (int64_t[]){ a->shape[0], b->shape[1] }, false))
        return NULL;
    return keep_grad_for_weight(tg_node_finish(n), b);
}

/* ---- affine ----------------------------------------------------------------------
 * forward:   Y = X @ W + b     X: (M,K)  W: (K,N)  b: (N) added to every row  Y: (M,N)
 * backward:  dX += dY @ W^T   dW += X^T @ dY   db[j] += sum_i dY[i,j] (rows in order)
 */
/* Z = X @ W (M,N) of an affine or gate node n with bias b (or NULL), over X's dense
   columns; for a one-hot tail started from the gathered rows plus b, as also when
   bias_first (Z = b + acc). Computed in n's output, or taken from the block that computed
   the products of n's group at once (tg_group_product, float only, which starts from b
   only for a tail). Returns Z, with its row stride *ld and whether b is in it *has_bias. */
static const void *product_z(tg_node *n, const tg_tensor *b, bool bias_first, int64_t *ld,
                             bool *has_bias)
{
    const tg_tensor *x = n->in[0], *w = n->in[1];
    const int32_t *hot;
    int64_t M = x->shape[0], K = x->shape[1], N = w->shape[1], dense = tg_dense_cols(x, &hot);
    const float *block = x->dtype == TG_F32 ? tg_group_product(n->tape, x, w, b, ld) : NULL;
    *has_bias = b && (hot || (bias_first && !block));
    if (block)
        return block;
    *ld = N;
    if (hot || *has_bias)
        tg_product_start(w, hot, dense, b, M, n->out->data, N);
    gemm_w(n->tape, x->dtype, false, M, N, dense, x->data, K, w, hot || *has_bias ? 1.0 : 0.0,
           n->out->data, N);
    return n->out->data;
}

static void affine_forward(tg_node *n)
{
    const tg_tensor *bias = n->nin == 3 ? n->in[2] : NULL;
    int64_t M = n->out->shape[0], N = n->out->shape[1], ld;
    bool has_bias;
    const float *z = product_z(n, bias, true, &ld, &has_bias);
    if (z == n->out->data)
        return;
    /* from the group's block (float): Y = Z (+ b) */
    const float *b = bias && !has_bias ? bias->data : NULL;
    float *y = n->out->data;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++)
            y[i * N + j] = b ? z[i * ld + j] + b[j] : z[i * ld + j];
}

static void affine_backward(tg_node *n)
{
    const tg_tensor *x = n->in[0], *w = n->in[1];
    int64_t M = x->shape[0], K = x->shape[1], N = w->shape[1];
    if (x->grad)
        gemm_w(n->tape, x->dtype, true, M, tg_grad_cols(x), N, n->out->grad, N, w,
               TG_FRESH(n, 0) ? 0 : 1, x->grad, K);
    weight_grad(n, x, n->out->grad, n->in[1], n->nin == 3 ? n->in[2] : NULL);
}

static const tg_op op_affine = { "affine", affine_forward, affine_backward, 1u };

/* Records x @ w + b (b may be NULL) as op, arg[0] = arg: the checks affine and gate share. */
static tg_tensor *record_affine(tg_tape *tape, const tg_op *op, tg_tensor *x, tg_tensor *w,
                                tg_tensor *b, int64_t arg)
{
    tg_tensor *in[3] = { x, w, b };
    tg_node *n = tg_node_begin(tape, op, b ? 3 : 2, in);
    if (!n || !check_matmul(tape, op->name, x, w))
        return NULL;
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[1]))
        return tg_fail(tape, TG_ERR_SHAPE, op->name, "bias %s does not match %s @ %s",
                       tg_msg_shape(b), tg_msg_shape(x), tg_msg_shape(w));
    n->arg[0] = arg;
    if (!tg_node_output(n, 2, (int64_t[]){ x->shape[0], w->shape[1] }, false))
        return NULL;
    return tg_node_finish(n);
}

tg_tensor *tg_affine(tg_tape *tape, tg_tensor *x, tg_tensor *w, tg_tensor *b)
{
    return keep_grad_for_weight(record_affine(tape, &op_affine, x, w, b, 0), w);
}

/* ---- gate: affine and activation as one node -----------------------------------------
 * forward:   Y = act(X @ W + b)      act: sigmoid or tanh (the unary table's formulas)
 * backward:  dZ = dY * act'(Y), then affine's backward with dZ
 * Z = X @ W + b is never stored: the product lands in Y and the bias and activation are
 * applied there row by row while it is in cache. Bit-identical to act(tg_affine(...)):
 * the same product, the same single rounding of acc + b (or of acc + (b + the gathered
 * row) for a one-hot tail), the same activation kernels.
 */
static void gate_forward(tg_node *n)
{
    const tg_tensor *b_in = n->nin == 3 ? n->in[2] : NULL;
    int64_t M = n->out->shape[0], N = n->out->shape[1], ld;
    bool tanh_act = n->arg[0], has_bias;
    const void *z = product_z(n, b_in, false, &ld, &has_bias);
    const void *bias = b_in && !has_bias ? b_in->data : NULL;
    if (n->out->dtype == TG_F32) {
        float *y = n->out->data;
        const float *b = bias;
        TG_FOR(M * N * 8, i, M,
            float *yr = y + i * N;
            const float *zr = (const float *)z + i * ld;
            if (b) {
                for (int64_t j = 0; j < N; j++)
                    yr[j] = zr[j] + b[j];
                zr = yr;
            }
            if (tanh_act)
                tg_vtanhf(zr, yr, N);
            else
                tg_vsigmoidf(zr, yr, N););
        return;
    }
    TG_DISPATCH(n->out->dtype,     /* z is the output (ld N): only floats share products */
        T *y = n->out->data;
        const T *b = bias;
        TG_FOR(M * N * 8, i, M,
            for (int64_t j = 0; j < N; j++) {
                T v = b ? y[i * N + j] + b[j] : y[i * N + j];
                y[i * N + j] = tanh_act ? tanh(v) : TG_SIGMOID(v);
            }););
}

static void gate_backward(tg_node *n)
{
    const tg_tensor *x = n->in[0], *w = n->in[1];
    int64_t M = x->shape[0], K = x->shape[1], N = w->shape[1];
    bool tanh_act = n->arg[0];
    void *dz = tg_arena_alloc(n->tape, (size_t)(M * N) * tg_dtype_size(x->dtype), false,
                              "gate");
    if (!dz)
        return;
    /* the unary table's backward formulas, added to 0 as they would be to a fresh dZ */
    TG_DISPATCH(x->dtype,
        const T *y = n->out->data;
        const T *g = n->out->grad;
        T *d = dz;
        TG_FOR(M * N * 4, i, M * N,
            d[i] = (T)0 + (tanh_act ? TG_DTANH(g[i], y[i]) : TG_DSIGMOID(g[i], y[i]));););
    if (x->grad)
        gemm_w(n->tape, x->dtype, true, M, tg_grad_cols(x), N, dz, N, w, TG_FRESH(n, 0) ? 0 : 1,
               x->grad, K);
    weight_grad(n, x, dz, n->in[1], n->nin == 3 ? n->in[2] : NULL);
}

static const tg_op op_gate = { "gate", gate_forward, gate_backward, 1u };

tg_tensor *tg_affine_act_op(tg_tape *tape, tg_tensor *x, tg_tensor *w, tg_tensor *b,
                            bool tanh_act)
{
    return record_affine(tape, &op_gate, x, w, b, tanh_act);
}

/* ---- transpose -------------------------------------------------------------------
 * forward:   Y[j,i] = X[i,j]      X: (M,N)  Y: (N,M)
 * backward:  dX[i,j] += dY[j,i]
 */
static void transpose_forward(tg_node *n)
{
    int64_t M = n->in[0]->shape[0], N = n->in[0]->shape[1];
    TG_DISPATCH(n->out->dtype,
        const T *x = n->in[0]->data;
        T *y = n->out->data;
        TG_FOR(M * N, j, N,
            for (int64_t i = 0; i < M; i++)
                y[j * M + i] = x[i * N + j];););
}

static void transpose_backward(tg_node *n)
{
    int64_t M = n->in[0]->shape[0], N = n->in[0]->shape[1];
    if (!n->in[0]->grad)
        return;
    TG_DISPATCH(n->out->dtype,
        const T *g = n->out->grad;
        T *dx = n->in[0]->grad;
        TG_FOR(M * N, i, M,
            for (int64_t j = 0; j < N; j++)
                dx[i * N + j] += g[j * M + i];););
}

static const tg_op op_transpose = { "transpose", transpose_forward, transpose_backward, 0 };

tg_tensor *tg_transpose(tg_tape *tape, tg_tensor *x)
{
    tg_node *n = tg_node_begin(tape, &op_transpose, 1, &x);
    if (!n)
        return NULL;
    if (x->ndim != 2)
        return tg_fail(tape, TG_ERR_SHAPE, "transpose", "%s: operand must be 2-D",
                       tg_msg_shape(x));
    if (!tg_node_output(n, 2, (int64_t[]){ x->shape[1], x->shape[0] }, false))
        return NULL;
    return tg_node_finish(n);
}

/* ---- bmm ---------------------------------------------------------------------------
 * forward:   C_b = A_b @ B_b          A: (B,M,K)  B: (B,K,N)  C: (B,M,N), b = 0..B-1
 * backward:  dA_b += dC_b @ B_b^T     dB_b += A_b^T @ dC_b     (one GEMM per batch each;
 *            dA, dB overwritten when fresh)
 */
static void bmm_forward(tg_node *n)
{
    const tg_tensor *a = n->in[0], *b = n->in[1];
    int64_t batch = a->shape[0], M = a->shape[1], K = a->shape[2], N = b->shape[2];
    size_t es = tg_dtype_size(a->dtype);
    for (int64_t i = 0; i < batch; i++)
        gemm(a->dtype, false, false, M, N, K, (const char *)a->data + (size_t)(i * M * K) * es,
             K, (const char *)b->data + (size_t)(i * K * N) * es, N, 0.0,
             (char *)n->out->data + (size_t)(i * M * N) * es, N);
}

static void bmm_backward(tg_node *n)
{
    const tg_tensor *a = n->in[0], *b = n->in[1];
    int64_t batch = a->shape[0], M = a->shape[1], K = a->shape[2], N = b->shape[2];
    size_t es = tg_dtype_size(a->dtype);
    for (int64_t i = 0; i < batch; i++) {
        const char *ai = (const char *)a->data + (size_t)(i * M * K) * es;
        const char *bi = (const char *)b->data + (size_t)(i * K * N) * es;
        const char *gi = (const char *)n->out->grad + (size_t)(i * M * N) * es;
        if (a->grad)
            gemm(a->dtype, false, true, M, K, N, gi, N, bi, N, TG_FRESH(n, 0) ? 0 : 1,
                 (char *)a->grad + (size_t)(i * M * K) * es, K);
        if (b->grad)
            gemm(a->dtype, true, false, K, N, M, ai, K, gi, N, TG_FRESH(n, 1) ? 0 : 1,
                 (char *)b->grad + (size_t)(i * K * N) * es, N);
    }
}

static const tg_op op_bmm = { "bmm", bmm_forward, bmm_backward, 3u };

tg_tensor *tg_bmm(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[2] = { a, b };
    tg_node *n = tg_node_begin(tape, &op_bmm, 2, in);
    if (!n)
        return NULL;
    if (a->ndim != 3 || b->ndim != 3)
        return tg_fail(tape, TG_ERR_SHAPE, "bmm", "%s @ %s: operands must be 3-D (B,M,K) and "
                       "(B,K,N)", tg_msg_shape(a), tg_msg_shape(b));
    if (a->shape[0] != b->shape[0] || a->shape[2] != b->shape[1])
        return tg_fail(tape, TG_ERR_SHAPE, "bmm", "%s @ %s: %s", tg_msg_shape(a),
                       tg_msg_shape(b), a->shape[0] != b->shape[0] ? "batch sizes differ"
                                                  : "inner dimensions differ");
    if (!tg_node_output(n, 3, (int64_t[]){ a->shape[0], a->shape[1], b->shape[2] }, false))
        return NULL;
    return tg_node_finish(n);
}
