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
 * element) and s, s2 (the op's scalars, double), of type T (float or double,
 * tensor_internal.h's TG_DISPATCH). A float forward with a vectorised kernel (vecf,
 * tensor/vmath_internal.h) runs that over chunks instead; NULL for none. Backward overwrites a fresh gradient
 * (0 + f'), so every unary op is in TG_ALL_INPUTS.
 */
#define UNARY_FORWARD(n, vecf, ...)                                               \
    do {                                                                          \
        int64_t len = (n)->out->numel;                                            \
        double s = (n)->scalar, s2 = (n)->scalar2;                                \
        void (*vec)(const float *, float *, int64_t) = vecf;                      \
        (void)s; (void)s2;                                                        \
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
        double s = (n)->scalar, s2 = (n)->scalar2;                                \
        (void)s; (void)s2;                                                        \
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

/* sqrt:  y = x^(1/2)                dx = dy / (2 y)    (inf at 0, as PyTorch) */
static void sqrt_forward(tg_node *n)        { UNARY_FORWARD(n, NULL, sqrt(x)); }
static void sqrt_backward(tg_node *n)       { UNARY_BACKWARD(n, g / (2 * y)); }

/* rsqrt:  y = x^(-1/2)              dx = -dy y^3 / 2 */
static void rsqrt_forward(tg_node *n)       { UNARY_FORWARD(n, NULL, 1 / sqrt(x)); }
static void rsqrt_backward(tg_node *n)      { UNARY_BACKWARD(n, (T)-0.5 * g * (y * y * y)); }

/* x^p as PyTorch computes it, so the bits agree: exponents 0, 1, +-1/2, -1, 2, 3 and -2
   by their own formulas (pow(x, 0) = 1 also for a NaN x; pow(x, 1/2) = sqrt(x), so -0
   gives -0), any other by the C library's pow in the tensor's precision. */
#define DEFINE_TORCH_POW(name, T)                                                  \
    static inline T name(T x, double p)                                            \
    {                                                                              \
        if (p == 0)                                                                \
            return 1;                                                              \
        if (p == 1)                                                                \
            return x;                                                              \
        if (p == 0.5)                                                              \
            return sqrt(x);                                                        \
        if (p == -0.5)                                                             \
            return 1 / sqrt(x);                                                    \
        if (p == -1)                                                               \
            return 1 / x;                                                          \
        if (p == 2)                                                                \
            return x * x;                                                          \
        if (p == 3)                                                                \
            return x * x * x;                                                      \
        if (p == -2)                                                               \
            return 1 / (x * x);                                                    \
        return pow(x, (T)p);                                                       \
    }
DEFINE_TORCH_POW(torch_powf, float)
DEFINE_TORCH_POW(torch_pow, double)
#define TORCH_POW(x, p) _Generic((x), float: torch_powf, default: torch_pow)(x, p)

/* pow:  y = x^p (p = s)             dx = dy (p x^(p-1)), and 0 for p = 0 (PyTorch's rule:
 * the derivative at x = 0 is p 0^(p-1): 0 for p > 1, dy for p = 1, inf for p < 1) */
static void pow_forward(tg_node *n)         { UNARY_FORWARD(n, NULL, TORCH_POW(x, s)); }
static void pow_backward(tg_node *n)
{
    UNARY_BACKWARD(n, s == 0 ? (T)0 : g * ((T)s * TORCH_POW(x, s - 1)));
}

/* abs:  y = |x|                     dx = dy sign(x), sign(0) = sign(NaN) = 0 (PyTorch's sgn) */
static void abs_forward(tg_node *n)         { UNARY_FORWARD(n, NULL, fabs(x)); }
static void abs_backward(tg_node *n)        { UNARY_BACKWARD(n, g * (T)((x > 0) - (x < 0))); }

/* min(max(x, lo), hi) in the tensor's precision, as PyTorch: lo > hi gives hi everywhere, a
   NaN x stays NaN, and a NaN bound makes every element NaN. */
#define DEFINE_CLAMP(name, T)                                                      \
    static inline T name(T x, T lo, T hi)                                          \
    {                                                                              \
        if (lo != lo || hi != hi)                                                  \
            return lo + hi;                                                        \
        T y = x < lo ? lo : x;                                                     \
        return y > hi ? hi : y;                                                    \
    }
DEFINE_CLAMP(clampf_value, float)
DEFINE_CLAMP(clamp_value, double)
#define CLAMP(x, lo, hi) _Generic((x), float: clampf_value, default: clamp_value)(x, lo, hi)

/* clamp:  y = min(max(x, lo), hi) (lo = s, hi = s2)
 *         dx = dy where lo <= x <= hi (the bounds included, as PyTorch), else 0 */
static void clamp_forward(tg_node *n)       { UNARY_FORWARD(n, NULL, CLAMP(x, (T)s, (T)s2)); }
static void clamp_backward(tg_node *n)
{
    UNARY_BACKWARD(n, x >= (T)s && x <= (T)s2 ? g : (T)0);
}

/* softplus:  y = log(1 + e^x) = max(x, 0) + log(1 + e^-|x|)   (no overflow at any x)
 *            dx = dy sigmoid(x) */
static void softplus_forward(tg_node *n)
{
    UNARY_FORWARD(n, NULL, (x > 0 ? x : 0) + log1p(exp(-fabs(x))));
}
static void softplus_backward(tg_node *n)   { UNARY_BACKWARD(n, g * TG_SIGMOID(x)); }

#define UNARY_OP(name, forward, backward, domain)                                 \
    static const tg_op op_##name = { #name, forward, backward, TG_ALL_INPUTS };
TG_UNARY_OPS(UNARY_OP)
#undef UNARY_OP

static tg_tensor *unary(tg_tape *tape, const tg_op *op, tg_tensor *x, double s, double s2)
{
    tg_node *n = tg_node_begin(tape, op, 1, &x);
    if (!n)
        return NULL;
    n->scalar = s;
    n->scalar2 = s2;
    if (!tg_node_output(n, x->ndim, x->shape, false))
        return NULL;
    return tg_node_finish(n);
}

tg_tensor *tg_neg(tg_tape *t, tg_tensor *x)              { return unary(t, &op_neg, x, 0, 0); }
tg_tensor *tg_scale(tg_tape *t, tg_tensor *x, double s)  { return unary(t, &op_scale, x, s, 0); }
tg_tensor *tg_add_scalar(tg_tape *t, tg_tensor *x, double s)
{
    return unary(t, &op_add_scalar, x, s, 0);
}
tg_tensor *tg_sigmoid(tg_tape *t, tg_tensor *x)          { return unary(t, &op_sigmoid, x, 0, 0); }
tg_tensor *tg_tanh(tg_tape *t, tg_tensor *x)             { return unary(t, &op_tanh, x, 0, 0); }
tg_tensor *tg_relu(tg_tape *t, tg_tensor *x)             { return unary(t, &op_relu, x, 0, 0); }
tg_tensor *tg_exp(tg_tape *t, tg_tensor *x)              { return unary(t, &op_exp, x, 0, 0); }
tg_tensor *tg_log(tg_tape *t, tg_tensor *x)              { return unary(t, &op_log, x, 0, 0); }
tg_tensor *tg_sqrt(tg_tape *t, tg_tensor *x)             { return unary(t, &op_sqrt, x, 0, 0); }
tg_tensor *tg_rsqrt(tg_tape *t, tg_tensor *x)            { return unary(t, &op_rsqrt, x, 0, 0); }
tg_tensor *tg_pow(tg_tape *t, tg_tensor *x, double p)    { return unary(t, &op_pow, x, p, 0); }
tg_tensor *tg_abs(tg_tape *t, tg_tensor *x)              { return unary(t, &op_abs, x, 0, 0); }
tg_tensor *tg_clamp(tg_tape *t, tg_tensor *x, double lo, double hi)
{
    return unary(t, &op_clamp, x, lo, hi);
}
tg_tensor *tg_softplus(tg_tape *t, tg_tensor *x)         { return unary(t, &op_softplus, x, 0, 0); }

/* ---- broadcasting: binary ops (one row each in TG_BINARY_OPS) and where ---------------
 * Shapes are aligned from the right and padded to 4 dims; a dim of size 1 stretches.
 * forward:   c[i] = f(a[ia], b[ib])       ia, ib: i with broadcast dims pinned to 0
 * backward:  da[ia] += ga(g, a, b)   db[ib] += gb(g, a, b)   summed over broadcast dims
 * where has a third operand (mask, a, b at ia, ib, ic). Operands with the full result
 * shape take a flat (parallel) path; a broadcast operand is reduced serially in index
 * order, so results never depend on the thread count.
 */
enum { BCAST_MAX_IN = 3 };
typedef struct bcast {
    int64_t shape[4];                   /* result, padded to 4 dims                       */
    int64_t st[BCAST_MAX_IN][4];        /* each operand's element strides (0 on broadcast
                                           dims; all 0 for an operand the op lacks)      */
    bool    full[BCAST_MAX_IN];         /* operand has the result's shape                 */
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

/* The operands' offsets o[k] at the start of result row r (a row is the last padded dim). */
static inline void row_base(const bcast *bc, int64_t r, int64_t o[BCAST_MAX_IN])
{
    int64_t i2 = r % bc->shape[2], i1 = (r / bc->shape[2]) % bc->shape[1];
    int64_t i0 = r / (bc->shape[2] * bc->shape[1]);
    for (int k = 0; k < BCAST_MAX_IN; k++)
        o[k] = i0 * bc->st[k][0] + i1 * bc->st[k][1] + i2 * bc->st[k][2];
}

/* Loops over result rows r (length L = shape[3]) with the result's element offset i and
   the operands' ia, ib, ic (inner strides s3[k], 0 or 1): no division per element. _PAR
   splits rows over threads (only for loops whose rows write disjoint memory). */
#define ROW_BODY(bc, ...)                                                          \
            int64_t o[BCAST_MAX_IN];                                               \
            row_base(bc, r, o);                                                    \
            for (int64_t j = 0; j < L; j++) {                                      \
                int64_t i = r * L + j, ia = o[0] + j * s3[0], ib = o[1] + j * s3[1]; \
                int64_t ic = o[2] + j * s3[2];                                     \
                (void)i; (void)ia; (void)ib; (void)ic;                             \
                __VA_ARGS__                                                        \
            }
#define ROW_LOOP_VARS(bc)                                                          \
        int64_t L = (bc)->shape[3], R = (bc)->shape[0] * (bc)->shape[1] * (bc)->shape[2]; \
        const int64_t s3[BCAST_MAX_IN] = { (bc)->st[0][3], (bc)->st[1][3], (bc)->st[2][3] };
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

/* BCAST_FORWARD and BCAST_GRAD are the loops every broadcasting kernel runs. load declares
 * the formula's operands of type T from the inputs' data x0, x1, x2 at ia, ib, ic; the
 * formula is an expression in them and g (the output's gradient element).
 * BCAST_GRAD(n, k, load, df) adds df into the gradient of input k: a full-shape operand row
 * by row in parallel (overwriting when fresh), a broadcast one summed over its stretched
 * dims in row order (zeroed first when fresh). The binary ops' load is a = x0[ia],
 * b = x1[ib] (BINARY_FORWARD, BINARY_GRAD).
 */
#define BCAST_DATA(n)                                                             \
            const T *x0 = (n)->in[0]->data;                                       \
            const T *x1 = (n)->in[1]->data;                                       \
            const T *x2 = (n)->nin > 2 ? (n)->in[2]->data : NULL;                 \
            (void)x0; (void)x1; (void)x2;
#define BCAST_FORWARD(n, load, ...)                                               \
    do {                                                                          \
        const bcast *bc = (n)->aux;                                               \
        TG_DISPATCH((n)->out->dtype,                                              \
            BCAST_DATA(n)                                                         \
            T *cs = (n)->out->data;                                               \
            FOR_ROWS_PAR(bc, load cs[i] = (__VA_ARGS__);););                      \
    } while (0)

#define BCAST_GRAD(n, k, load, ...)                                               \
    do {                                                                          \
        const bcast *bc = (n)->aux;                                               \
        if (!(n)->in[k]->grad)                                                    \
            break;                                                                \
        bool fresh = TG_FRESH(n, k);                                              \
        TG_DISPATCH((n)->out->dtype,                                              \
            BCAST_DATA(n)                                                         \
            const T *gs = (n)->out->grad;                                         \
            T *d = (n)->in[k]->grad;   /* d[at]: input k's element at ia, ib or ic */ \
            if (bc->full[k]) {                                                    \
                FOR_ROWS_PAR(bc, load T g = gs[i];                                \
                    int64_t at = (k) == 0 ? ia : (k) == 1 ? ib : ic;              \
                    d[at] = (fresh ? (T)0 : d[at]) + (__VA_ARGS__););             \
            } else {                                                              \
                if (fresh)                                                        \
                    memset(d, 0, (size_t)(n)->in[k]->numel * sizeof(T));          \
                FOR_ROWS(bc, load T g = gs[i];                                    \
                    int64_t at = (k) == 0 ? ia : (k) == 1 ? ib : ic;              \
                    d[at] += (__VA_ARGS__););                                     \
            });                                                                   \
    } while (0)

#define BINARY_LOAD T a = x0[ia]; T b = x1[ib]; (void)a; (void)b;
#define BINARY_FORWARD(n, ...) BCAST_FORWARD(n, BINARY_LOAD, __VA_ARGS__)
#define BINARY_GRAD(n, k, ...) BCAST_GRAD(n, k, BINARY_LOAD, __VA_ARGS__)

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

/* maximum:  c = max(a, b), NaN when either is NaN
 *           da = dc where a > b, db = dc where b > a, dc/2 to each on a tie (PyTorch's rule;
 *           where a or b is NaN neither comparison holds and both get dc, as in torch) */
static void maximum_forward(tg_node *n)
{
    BINARY_FORWARD(n, a != a ? a : b != b ? b : a < b ? b : a);
}
static void maximum_backward(tg_node *n)
{
    BINARY_GRAD(n, 0, a == b ? g / 2 : a < b ? (T)0 : g);
    BINARY_GRAD(n, 1, a == b ? g / 2 : a > b ? (T)0 : g);
}

/* minimum:  c = min(a, b), NaN when either is NaN
 *           da = dc where a < b, db = dc where b < a, dc/2 to each on a tie */
static void minimum_forward(tg_node *n)
{
    BINARY_FORWARD(n, a != a ? a : b != b ? b : b < a ? b : a);
}
static void minimum_backward(tg_node *n)
{
    BINARY_GRAD(n, 0, a == b ? g / 2 : a > b ? (T)0 : g);
    BINARY_GRAD(n, 1, a == b ? g / 2 : a < b ? (T)0 : g);
}

#define BINARY_OP(name, forward, backward)                                        \
    static const tg_op op_##name = { #name, forward, backward, TG_ALL_INPUTS };
TG_BINARY_OPS(BINARY_OP)
#undef BINARY_OP

/* Records op over nin broadcasting inputs: the result's shape, n->aux's strides and the
   output. names[k] (NULL: none) prefixes operand k's shape in the error message. */
static tg_tensor *broadcast_op(tg_tape *tape, const tg_op *op, int nin, tg_tensor *const *in,
                               const char *const *names)
{
    tg_node *n = tg_node_begin(tape, op, nin, in);
    if (!n)
        return NULL;
    bcast *bc = tg_arena_alloc(tape, sizeof *bc, true, op->name);
    if (!bc)
        return NULL;
    int64_t pad[BCAST_MAX_IN][4];
    int ndim = 0;
    for (int d = 0; d < 4; d++)
        bc->shape[d] = 1;
    for (int k = 0; k < nin; k++) {
        pad4(in[k], pad[k]);
        ndim = in[k]->ndim > ndim ? in[k]->ndim : ndim;
        for (int d = 0; d < 4; d++) {
            if (pad[k][d] != bc->shape[d] && pad[k][d] != 1 && bc->shape[d] != 1) {
                const char *nm[BCAST_MAX_IN] = { "", "", "" };
                for (int i = 0; names && i < nin; i++)
                    nm[i] = names[i];
                return nin == 2
                    ? tg_fail(tape, TG_ERR_SHAPE, op->name, "%s%s and %s%s do not broadcast",
                              nm[0], tg_msg_shape(in[0]), nm[1], tg_msg_shape(in[1]))
                    : tg_fail(tape, TG_ERR_SHAPE, op->name,
                              "%s%s, %s%s and %s%s do not broadcast", nm[0],
                              tg_msg_shape(in[0]), nm[1], tg_msg_shape(in[1]), nm[2],
                              tg_msg_shape(in[2]));
            }
            bc->shape[d] = pad[k][d] > bc->shape[d] ? pad[k][d] : bc->shape[d];
        }
    }
    int64_t numel = bc->shape[0] * bc->shape[1] * bc->shape[2] * bc->shape[3];
    for (int k = 0; k < nin; k++) {
        strides4(pad[k], bc->shape, bc->st[k]);
        bc->full[k] = in[k]->numel == numel;
    }
    int64_t shape[4];
    for (int d = 0; d < ndim; d++)
        shape[d] = bc->shape[4 - ndim + d];
    n->aux = bc;
    if (!tg_node_output(n, ndim, shape, false))
        return NULL;
    return tg_node_finish(n);
}

static tg_tensor *binary(tg_tape *tape, const tg_op *op, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[2] = { a, b };
    return broadcast_op(tape, op, 2, in, NULL);
}

tg_tensor *tg_add(tg_tape *t, tg_tensor *a, tg_tensor *b) { return binary(t, &op_add, a, b); }
tg_tensor *tg_sub(tg_tape *t, tg_tensor *a, tg_tensor *b) { return binary(t, &op_sub, a, b); }
tg_tensor *tg_mul(tg_tape *t, tg_tensor *a, tg_tensor *b) { return binary(t, &op_mul, a, b); }
tg_tensor *tg_div(tg_tape *t, tg_tensor *a, tg_tensor *b) { return binary(t, &op_div, a, b); }
tg_tensor *tg_maximum(tg_tape *t, tg_tensor *a, tg_tensor *b)
{
    return binary(t, &op_maximum, a, b);
}
tg_tensor *tg_minimum(tg_tape *t, tg_tensor *a, tg_tensor *b)
{
    return binary(t, &op_minimum, a, b);
}

/* ---- where ---------------------------------------------------------------------------
 * forward:   c[i] = mask[im] != 0 ? a[ia] : b[ib]      (all three broadcast to c's shape)
 * backward:  da[ia] += dc where mask != 0   db[ib] += dc where mask == 0   (summed over
 *            broadcast dims); the mask gets no gradient (a zeroed one when it needs one)
 * The kernels' ia, ib, ic are the inputs mask, a and b.
 */
#define WHERE_LOAD T m = x0[ia]; T a = x1[ib]; T b = x2[ic]; (void)a; (void)b;
static void where_forward(tg_node *n) { BCAST_FORWARD(n, WHERE_LOAD, m != 0 ? a : b); }
static void where_backward(tg_node *n)
{
    BCAST_GRAD(n, 1, WHERE_LOAD, m != 0 ? g : (T)0);
    BCAST_GRAD(n, 2, WHERE_LOAD, m != 0 ? (T)0 : g);
}
static const tg_op op_where = { "where", where_forward, where_backward, 0x6u /* a, b */ };

tg_tensor *tg_where(tg_tape *t, tg_tensor *mask, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[3] = { mask, a, b };
    static const char *const names[3] = { "mask ", "a ", "b " };
    return broadcast_op(t, &op_where, 3, in, names);
}
