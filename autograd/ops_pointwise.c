/* autograd/ops_pointwise.c: elementwise ops: the unary table and broadcasting binaries. */
#include <string.h>
#include <tgmath.h>

#include "autograd/autograd_internal.h"

/* ---- unary ops (one row each in TG_UNARY_OPS) -------------------------------------
 * forward:   y[i] = f(x[i])
 * backward:  dx[i] += f'(x[i]) * dy[i]   (written with y where cheaper: sigmoid, tanh, exp)
 *
 * UNARY_FORWARD and UNARY_BACKWARD are the loops every unary kernel runs: the formula is an
 * expression in x (the input element), y (the output element), g (the output's gradient
 * element) and s (the op's scalar), of type T (float or double, tensor_internal.h's
 * TG_DISPATCH). A float forward with a vectorised kernel (vecf, tensor/vmath_internal.h)
 * runs that over chunks instead; NULL for none. Backward overwrites a fresh gradient
 * (0 + f'), so every unary op is in TG_ALL_INPUTS.
 */
#define UNARY_FORWARD(n, vecf, ...)                                               \
    do {                                                                          \
        int64_t len = (n)->out->numel;                                            \
        double s = (n)->scalar;                                                   \
        void (*vec)(const float *, float *, int64_t) = vecf;                      \
        (void)s;                                                                  \
        if (vec && (n)->out->dtype == TG_F32) {                                   \
            const float *xs = (n)->in[0]->data;                                   \
            float *ys = (n)->out->data;                                           \
            TG_FOR_CHUNKS(len * 8, len, lo, m, vec(xs + lo, ys + lo, m););        \
            break;                                                                \
        }                                                                         \
        TG_DISPATCH((n)->out->dtype,                                              \
            const T *xs = (n)->in[0]->data;                                       \
            T *ys = (n)->out->data;                                               \
            TG_FOR(len * 8, i, len,                                               \
                T x = xs[i];                                                      \
                ys[i] = (__VA_ARGS__);););                                        \
    } while (0)

#define UNARY_BACKWARD(n, ...)                                                    \
    do {                                                                          \
        int64_t len = (n)->out->numel;                                            \
        double s = (n)->scalar;                                                   \
        (void)s;                                                                  \
        if (!(n)->in[0]->grad)                                                    \
            break;                                                                \
        bool fresh = TG_FRESH(n, 0);                                              \
        TG_DISPATCH((n)->out->dtype,                                              \
            const T *xs = (n)->in[0]->data;                                       \
            const T *ys = (n)->out->data;                                         \
            const T *gs = (n)->out->grad;                                         \
            T *dx = (n)->in[0]->grad;                                             \
            TG_FOR(len * 4, i, len,                                               \
                T x = xs[i], y = ys[i], g = gs[i];                                \
                (void)x; (void)y;                                                 \
                dx[i] = (fresh ? (T)0 : dx[i]) + (__VA_ARGS__);););               \
    } while (0)

/* neg:  y = -x                      dx = -dy */
static void neg_forward(tg_node *n)         { UNARY_FORWARD(n, NULL, -x); }
static void neg_backward(tg_node *n)        { UNARY_BACKWARD(n, -g); }

/* scale:  y = s x                   dx = s dy */
static void scale_forward(tg_node *n)       { UNARY_FORWARD(n, NULL, (T)s * x); }
static void scale_backward(tg_node *n)      { UNARY_BACKWARD(n, (T)s * g); }

/* add_scalar:  y = x + s            dx = dy */
static void add_scalar_forward(tg_node *n)  { UNARY_FORWARD(n, NULL, x + (T)s); }
static void add_scalar_backward(tg_node *n) { UNARY_BACKWARD(n, g); }

/* sigmoid:  y = 1 / (1 + e^-x)      dx = dy y (1 - y)      (the gate op's formulas) */
static void sigmoid_forward(tg_node *n)     { UNARY_FORWARD(n, tg_vsigmoidf, TG_SIGMOID(x)); }
static void sigmoid_backward(tg_node *n)    { UNARY_BACKWARD(n, TG_DSIGMOID(g, y)); }

/* tanh:  y = tanh x                 dx = dy (1 - y^2)      (the gate op's formulas) */
static void tanh_forward(tg_node *n)        { UNARY_FORWARD(n, tg_vtanhf, tanh(x)); }
static void tanh_backward(tg_node *n)       { UNARY_BACKWARD(n, TG_DTANH(g, y)); }

/* relu:  y = max(x, 0)              dx = dy where x > 0, else 0 (also at 0, as PyTorch) */
static void relu_forward(tg_node *n)        { UNARY_FORWARD(n, NULL, x > 0 ? x : 0); }
static void relu_backward(tg_node *n)       { UNARY_BACKWARD(n, x > 0 ? g : 0); }

/* exp:  y = e^x                     dx = dy y */
static void exp_forward(tg_node *n)         { UNARY_FORWARD(n, tg_vexpf, exp(x)); }
static void exp_backward(tg_node *n)        { UNARY_BACKWARD(n, g * y); }

/* log:  y = ln x                    dx = dy / x */
static void log_forward(tg_node *n)         { UNARY_FORWARD(n, NULL, log(x)); }
static void log_backward(tg_node *n)        { UNARY_BACKWARD(n, g / x); }

#define UNARY_OP(name, forward, backward, domain)                                 \
    static const tg_op op_##name = { #name, forward, backward, TG_ALL_INPUTS };
TG_UNARY_OPS(UNARY_OP)
#undef UNARY_OP

static tg_tensor *unary(tg_tape *tape, const tg_op *op, tg_tensor *x, double s)
{
    tg_node *n = tg_node_begin(tape, op, 1, &x);
    if (!n)
        return NULL;
    n->scalar = s;
    if (!tg_node_output(n, x->ndim, x->shape, false))
        return NULL;
    return tg_node_finish(n);
}

tg_tensor *tg_neg(tg_tape *t, tg_tensor *x)                { return unary(t, &op_neg, x, 0); }
tg_tensor *tg_scale(tg_tape *t, tg_tensor *x, double s)    { return unary(t, &op_scale, x, s); }
tg_tensor *tg_add_scalar(tg_tape *t, tg_tensor *x, double s)
{
    return unary(t, &op_add_scalar, x, s);
}
tg_tensor *tg_sigmoid(tg_tape *t, tg_tensor *x)            { return unary(t, &op_sigmoid, x, 0); }
tg_tensor *tg_tanh(tg_tape *t, tg_tensor *x)               { return unary(t, &op_tanh, x, 0); }
tg_tensor *tg_relu(tg_tape *t, tg_tensor *x)               { return unary(t, &op_relu, x, 0); }
tg_tensor *tg_exp(tg_tape *t, tg_tensor *x)                { return unary(t, &op_exp, x, 0); }
tg_tensor *tg_log(tg_tape *t, tg_tensor *x)                { return unary(t, &op_log, x, 0); }

/* ---- binary ops with NumPy broadcasting (one row each in TG_BINARY_OPS) ---------------
 * Shapes are aligned from the right and padded to 4 dims; a dim of size 1 stretches.
 * forward:   c[i] = f(a[ia], b[ib])       ia, ib: i with broadcast dims pinned to 0
 * backward:  da[ia] += ga(g, a, b)   db[ib] += gb(g, a, b)   summed over broadcast dims
 * Operands with the full result shape take a flat (parallel) path; a broadcast operand
 * is reduced serially in index order, so results never depend on the thread count.
 */
typedef struct bcast {
    int64_t shape[4];           /* result, padded to 4 dims */
    int64_t sa[4], sb[4];       /* element strides of a and b (0 on broadcast dims) */
    bool    a_full, b_full;     /* operand has the result's shape */
} bcast;

static void pad4(const tg_tensor *t, int64_t out[4])
{
    for (int d = 0; d < 4; d++)
        out[d] = 1;
    for (int d = 0; d < t->ndim; d++)
        out[4 - t->ndim + d] = t->shape[d];
}

static void strides4(const int64_t shape[4], const int64_t res[4], int64_t st[4])
{
    int64_t s = 1;
    for (int d = 3; d >= 0; d--) {
        st[d] = shape[d] == 1 && res[d] != 1 ? 0 : s;
        s *= shape[d];
    }
}

/* The offsets of a and b at the start of result row r (a row is the last padded dim). */
static inline void row_base(const bcast *bc, int64_t r, int64_t *oa, int64_t *ob)
{
    int64_t i2 = r % bc->shape[2], i1 = (r / bc->shape[2]) % bc->shape[1];
    int64_t i0 = r / (bc->shape[2] * bc->shape[1]);
    *oa = i0 * bc->sa[0] + i1 * bc->sa[1] + i2 * bc->sa[2];
    *ob = i0 * bc->sb[0] + i1 * bc->sb[1] + i2 * bc->sb[2];
}

/* Loops over result rows r (length L = shape[3]) with element offsets ia, ib, i and the
   inner strides sa3, sb3 (0 or 1): no division per element. _PAR splits rows over threads
   (only for loops whose rows write disjoint memory). */
#define ROW_BODY(bc, ...)                                                          \
            int64_t oa, ob;                                                        \
            row_base(bc, r, &oa, &ob);                                             \
            for (int64_t j = 0; j < L; j++) {                                      \
                int64_t i = r * L + j, ia = oa + j * sa3, ib = ob + j * sb3;       \
                (void)i; (void)ia; (void)ib;                                       \
                __VA_ARGS__                                                        \
            }
#define ROW_LOOP_VARS(bc)                                                          \
        int64_t L = (bc)->shape[3], R = (bc)->shape[0] * (bc)->shape[1] * (bc)->shape[2]; \
        int64_t sa3 = (bc)->sa[3], sb3 = (bc)->sb[3];
#define FOR_ROWS_PAR(bc, ...)                                                      \
    do {                                                                           \
        ROW_LOOP_VARS(bc)                                                          \
        TG_FOR(R * L * 2, r, R, ROW_BODY(bc, __VA_ARGS__));                       \
    } while (0)
#define FOR_ROWS(bc, ...)                                                          \
    do {                                                                           \
        ROW_LOOP_VARS(bc)                                                          \
        for (int64_t r = 0; r < R; r++) {                                          \
            ROW_BODY(bc, __VA_ARGS__)                                              \
        }                                                                          \
    } while (0)

/* BINARY_FORWARD and BINARY_GRAD are the loops every binary kernel runs; the formula is an
 * expression in a, b (the operands' elements) and g (the output's gradient element) of
 * type T. BINARY_GRAD(n, k, df) adds df into the gradient of operand k (0: a, 1: b):
 * a full-shape operand row by row in parallel (overwriting when fresh), a broadcast one
 * summed over its stretched dims in row order (zeroed first when fresh).
 */
#define BINARY_FORWARD(n, ...)                                                    \
    do {                                                                          \
        const bcast *bc = (n)->aux;                                               \
        TG_DISPATCH((n)->out->dtype,                                              \
            const T *as = (n)->in[0]->data;                                       \
            const T *bs = (n)->in[1]->data;                                       \
            T *cs = (n)->out->data;                                               \
            FOR_ROWS_PAR(bc, T a = as[ia]; T b = bs[ib]; cs[i] = (__VA_ARGS__);););  \
    } while (0)

#define BINARY_GRAD(n, k, ...)                                                    \
    do {                                                                          \
        const bcast *bc = (n)->aux;                                               \
        if (!(n)->in[k]->grad)                                                    \
            break;                                                                \
        bool full = (k) == 0 ? bc->a_full : bc->b_full, fresh = TG_FRESH(n, k);   \
        TG_DISPATCH((n)->out->dtype,                                              \
            const T *as = (n)->in[0]->data;                                       \
            const T *bs = (n)->in[1]->data;                                       \
            const T *gs = (n)->out->grad;                                         \
            T *d = (n)->in[k]->grad;      /* d[at]: operand k's element at (ia, ib) */ \
            if (full) {                                                           \
                FOR_ROWS_PAR(bc, T a = as[ia]; T b = bs[ib]; T g = gs[i];         \
                    (void)a; (void)b;                                             \
                    int64_t at = (k) == 0 ? ia : ib;                              \
                    d[at] = (fresh ? (T)0 : d[at]) + (__VA_ARGS__););             \
            } else {                                                              \
                if (fresh)                                                        \
                    memset(d, 0, (size_t)(n)->in[k]->numel * sizeof(T));          \
                FOR_ROWS(bc, T a = as[ia]; T b = bs[ib]; T g = gs[i];             \
                    (void)a; (void)b;                                             \
                    int64_t at = (k) == 0 ? ia : ib;                              \
                    d[at] += (__VA_ARGS__););                                     \
            });                                                                   \
    } while (0)

/* add:  c = a + b                   da = dc, db = dc */
static void add_forward(tg_node *n)  { BINARY_FORWARD(n, a + b); }
static void add_backward(tg_node *n)
{
    BINARY_GRAD(n, 0, g);
    BINARY_GRAD(n, 1, g);
}

/* sub:  c = a - b                   da = dc, db = -dc */
static void sub_forward(tg_node *n)  { BINARY_FORWARD(n, a - b); }
static void sub_backward(tg_node *n)
{
    BINARY_GRAD(n, 0, g);
    BINARY_GRAD(n, 1, -g);
}

/* mul:  c = a b                     da = dc b, db = dc a */
static void mul_forward(tg_node *n)  { BINARY_FORWARD(n, a * b); }
static void mul_backward(tg_node *n)
{
    BINARY_GRAD(n, 0, g * b);
    BINARY_GRAD(n, 1, g * a);
}

/* div:  c = a / b                   da = dc / b, db = -dc a / b^2 */
static void div_forward(tg_node *n)  { BINARY_FORWARD(n, a / b); }
static void div_backward(tg_node *n)
{
    BINARY_GRAD(n, 0, g / b);
    BINARY_GRAD(n, 1, -g * a / (b * b));
}

#define BINARY_OP(name, forward, backward)                                        \
    static const tg_op op_##name = { #name, forward, backward, TG_ALL_INPUTS };
TG_BINARY_OPS(BINARY_OP)
#undef BINARY_OP

static tg_tensor *binary(tg_tape *tape, const tg_op *op, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[2] = { a, b };
    tg_node *n = tg_node_begin(tape, op, 2, in);
    if (!n)
        return NULL;
    bcast *bc = tg_arena_alloc(tape, sizeof *bc, true, op->name);
    if (!bc)
        return NULL;
    int64_t pa[4], pb[4];
    pad4(a, pa);
    pad4(b, pb);
    for (int d = 0; d < 4; d++) {
        if (pa[d] != pb[d] && pa[d] != 1 && pb[d] != 1)
            return tg_fail(tape, TG_ERR_SHAPE, op->name, "%s and %s do not broadcast",
                           tg_msg_shape(a), tg_msg_shape(b));
        bc->shape[d] = pa[d] > pb[d] ? pa[d] : pb[d];
    }
    strides4(pa, bc->shape, bc->sa);
    strides4(pb, bc->shape, bc->sb);
    int ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t shape[4];
    for (int d = 0; d < ndim; d++)
        shape[d] = bc->shape[4 - ndim + d];
    bc->a_full = a->numel == bc->shape[0] * bc->shape[1] * bc->shape[2] * bc->shape[3];
    bc->b_full = b->numel == bc->shape[0] * bc->shape[1] * bc->shape[2] * bc->shape[3];
    n->aux = bc;
    if (!tg_node_output(n, ndim, shape, false))
        return NULL;
    return tg_node_finish(n);
}

tg_tensor *tg_add(tg_tape *t, tg_tensor *a, tg_tensor *b) { return binary(t, &op_add, a, b); }
tg_tensor *tg_sub(tg_tape *t, tg_tensor *a, tg_tensor *b) { return binary(t, &op_sub, a, b); }
tg_tensor *tg_mul(tg_tape *t, tg_tensor *a, tg_tensor *b) { return binary(t, &op_mul, a, b); }
tg_tensor *tg_div(tg_tape *t, tg_tensor *a, tg_tensor *b) { return binary(t, &op_div, a, b); }
