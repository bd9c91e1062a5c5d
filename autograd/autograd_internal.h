/* autograd/autograd_internal.h: nodes, ops, the arena and the helpers every op file uses. */
#ifndef TG_AUTOGRAD_AUTOGRAD_INTERNAL_H
#define TG_AUTOGRAD_AUTOGRAD_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "autograd/autograd.h"
#include "tensor/tensor_internal.h"
#include "tensor/vmath_internal.h"

typedef struct tg_node tg_node;

/* What an op is: its name (used in error messages) and its two halves. Backward
   always ADDS into the gradients of the inputs that have one (in->grad != NULL). */
typedef struct tg_op {
    const char *name;
    void (*forward)(tg_node *n);
    void (*backward)(tg_node *n);
    /* Inputs (bit i: input i) whose gradient backward can write instead of add to. When
       input i's buffer still holds garbage, tg_backward sets bit i of n->fresh and the
       op must overwrite every element (every element of the tg_grad_cols leading
       columns); inputs outside the mask get a zeroed buffer. */
    unsigned overwrites;
} tg_op;

enum { TG_NODE_INLINE_IN = 3 };

/* One recorded op application. Recording order is a topological order, so backward
   simply walks prev pointers from the newest node. */
struct tg_node {
    const tg_op *op;
    tg_node     *prev;                      /* recorded just before this one       */
    tg_tape     *tape;
    tg_tensor   *out;
    tg_tensor  **in;                        /* nin inputs (in_inline or arena)     */
    int          nin;
    tg_tensor   *in_inline[TG_NODE_INLINE_IN];
    double       scalar;                    /* op argument: scale, p, eps, lo, ... */
    double       scalar2;                   /* a second one: clamp's hi            */
    unsigned     fresh;                     /* backward: bit i, see tg_op.overwrites */
    int64_t      arg[4];                    /* op arguments: dim, start, len, ...  */
    void        *aux;                       /* op data kept in the arena           */
};

/* Tensor flags (beside tensor.h's): backward reached this tape tensor from the loss; its
   gradient buffer is not written yet (holds garbage). */
#define TG_FLAG_GRAD_REACHED 0x100u
#define TG_FLAG_GRAD_STALE   0x200u
/* Only the leading columns (last dim) of this tape tensor's gradient are ever read: a
   concat whose trailing inputs need no gradient (the one-hot input of combine = [h, x])
   sets it, and products skip computing the rest of their dX (tg_grad_cols). */
#define TG_FLAG_GRAD_LEAD    0x400u
/* Its gradient buffer goes to another tensor once its node has run backward. */
#define TG_FLAG_GRAD_RECYCLED 0x800u
/* Its gradient is read after its node's backward (by a queued weight gradient), so
   backward keeps the buffer instead of recycling it. */
#define TG_FLAG_GRAD_KEEP     0x1000u
/* This 2-D tape tensor ends in a one-hot block (see tg_dense_cols): made by tg_one_hot, or
   a concat whose last input is one. */
#define TG_FLAG_HOT_TAIL      0x2000u

/* Every tensor a tape makes (TG_FLAG_TAPE): the public struct and what only the tape
   needs. The stamp (tape, epoch) says which tape made it and in which epoch (the count of
   resets before it), so an operand from another tape or from before a reset is an error
   rather than garbage (tg_tape_owns). */
typedef struct tg_tape_owned {
    tg_tensor t;
    int64_t   grad_cols;   /* with TG_FLAG_GRAD_LEAD: the columns of the gradient read */
    int64_t   hot_col;     /* with TG_FLAG_HOT_TAIL: the column its one-hot block starts */
    const int32_t *hot;    /* at, and row i's 1 in that block (in the arena)           */
    const tg_tape *tape;
    uint64_t  epoch;
} tg_tape_owned;

/* Whether t, a tape tensor, was made by tape since its last reset. */
bool tg_tape_owns(const tg_tape *tape, const tg_tensor *t);

/* Columns (last dim) of t's gradient that anything reads: all, unless t says fewer. Those
   beyond may be left unwritten, also by an op told to overwrite (see tg_op.overwrites). */
static inline int64_t tg_grad_cols(const tg_tensor *t)
{
    return (t->flags & TG_FLAG_GRAD_LEAD) ? ((const tg_tape_owned *)(const void *)t)->grad_cols
                                          : t->shape[t->ndim - 1];
}

/* The columns of x (2-D) before its one-hot tail, with *hot each row's 1 in the tail:
   row i is 0 from that column on but for a 1 at that column + hot[i] (TG_FLAG_HOT_TAIL).
   A product x @ W then reads only W's rows before it and gathers one more row per row of
   x. All of x's columns and *hot NULL when x has no such tail. */
static inline int64_t tg_dense_cols(const tg_tensor *x, const int32_t **hot)
{
    const tg_tape_owned *tt = (const tg_tape_owned *)(const void *)x;
    bool tail = (x->flags & TG_FLAG_HOT_TAIL) && x->ndim == 2;
    *hot = tail ? tt->hot : NULL;
    return tail ? tt->hot_col : x->shape[x->ndim - 1];
}

/* Whether input i's gradient must be overwritten rather than added to (see tg_op). */
#define TG_FRESH(n, i) ((i) < 32 && (((n)->fresh >> (i)) & 1u))
#define TG_ALL_INPUTS (~0u)   /* tg_op.overwrites of an op that writes every input */

/* Records the first error on the tape (later ones are ignored). Returns NULL so an op
   can `return tg_fail(...)`. The message is prefixed with the scopes and "<op>: ". */
tg_tensor *tg_fail(tg_tape *tape, tg_status status, const char *op, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Pushes a scope that reads name immediately followed by index in decimal: ("t=", 17)
   reads "t=17", ("rnn.", 1) reads "rnn.1". Pop with tg_tape_pop_scope. */
void tg_tape_push_scope_index(tg_tape *tape, const char *name, int64_t index);

/* tg_tape_tensor on behalf of op, whose name its errors carry. */
tg_tensor *tg_tape_tensor_for(tg_tape *tape, const char *op, tg_dtype dtype, int ndim,
                              const int64_t *shape);

/* Arena allocation (64-byte aligned), dies at reset. NULL + TG_ERR_NOMEM recorded for
   op on failure; op NULL: an optional allocation, whose failure records nothing.
   zero: clear the bytes. */
void *tg_arena_alloc(tg_tape *tape, size_t bytes, bool zero, const char *op);

/* Begins recording op over inputs: checks the tape is usable, no input is NULL and all
   share one dtype. Returns a node (in the arena) or NULL with the error recorded. */
tg_node *tg_node_begin(tg_tape *tape, const tg_op *op, int nin, tg_tensor *const *in);

/* Gives n an output of the given shape (tape-owned, uninitialised unless zero).
   Returns false (error recorded) on bad shape or no memory. */
bool tg_node_output(tg_node *n, int ndim, const int64_t *shape, bool zero);

/* Makes the output a view of x's data with a new shape (no copy). */
bool tg_node_output_view(tg_node *n, const tg_tensor *x, int ndim, const int64_t *shape);

/* Runs n's forward, then links it into the tape when gradients are enabled and an
   input requires them (the output then requires them too). Returns n->out. */
tg_tensor *tg_node_finish(tg_node *n);

/* The fused affine-activation op "gate": sigmoid(x @ w + b) or, when tanh_act,
   tanh(x @ w + b) as one node (ops_matmul.c). nn/'s public tg_gate records it for those
   two activations. b may be NULL. */
tg_tensor *tg_affine_act_op(tg_tape *tape, tg_tensor *x, tg_tensor *w, tg_tensor *b,
                            bool tanh_act);

/* op(W) (W's leading rows, or W^T when tb, rows then all of W's) packed for
   tg_sgemm_prepacked, once per tape: a recurrent weight multiplies at every time step,
   forward (W) and backward (W^T), and a product with a one-hot tail reads only the rows
   before it. Only for a float caller-owned W being trained (requires grad) while the tape
   records gradients: such a W must not change before tg_tape_reset anyway, since backward
   reads it. NULL when not applicable or out of memory (the product then packs W itself;
   no error is recorded). */
const float *tg_packed_weight(tg_tape *tape, const tg_tensor *w, bool tb, int64_t rows);

/* ---- products that share an input (ops_groups.c) ----------------------------------- */
typedef struct tg_groups tg_groups;

/* The tape's slot for what ops_groups.c learns while recording (in the arena, so NULL
   again after a reset); NULL when products must run alone: gradients off (a weight may
   change between products) or grouping switched off. */
tg_groups **tg_tape_groups(tg_tape *tape);
/* Tests: false makes every product on the tape run alone (the default is true). */
void tg_tape_set_grouping(tg_tape *tape, bool on);
/* Tests: how many products since the reset took their result from a group's block. */
int64_t tg_tape_grouped_products(tg_tape *tape);

/* For the affine or gate product x @ w (+ b) being recorded: notes it, and returns its
   (M, N) block of the one product that computed x @ [... | w | ...] for every product of
   its group at once, row stride *ld; NULL when it must run alone (see ops_groups.c).
   The block holds x @ w over x's dense columns, started as tg_product_start starts a lone
   product with a one-hot tail (the gathered row plus b); without a tail b is not in it. */
const float *tg_group_product(tg_tape *tape, const tg_tensor *x, const tg_tensor *w,
                              const tg_tensor *b, int64_t *ld);

/* Rows 0..M-1 of y (row stride ldy, W's width and dtype) as x @ W (+ b) starts before the
   product over x's dense columns adds to it: W's row dense + hot[i] for a one-hot tail
   (tg_dense_cols), plus b; b alone when hot is NULL (then b must be given). */
void tg_product_start(const tg_tensor *w, const int32_t *hot, int64_t dense,
                      const tg_tensor *b, int64_t M, void *y, int64_t ldy);

/* Backward of a product X @ W whose W is caller-owned (a parameter, not a tape tensor):
   queues dW += X^T @ dY (X (M,K) and dY (M,N) stay valid until the tape is reset: dY
   must not be a gradient buffer, which is recycled during backward) for the
   end of tg_backward, which runs every queued product into the same W as one GEMM over
   their stacked rows (a recurrent weight used at T steps: one K = T*M product instead of
   T small ones, and W's gradient is read and written once). b, when not NULL, is a
   caller-owned bias queued with it: db += the column sums of dY, added in the same order
   as at once but with the columns split over threads. Returns false (TG_ERR_NOMEM
   recorded) when the queue entry cannot be allocated. */
bool tg_defer_weight_grad(tg_tape *tape, tg_tensor *w, tg_tensor *b, const tg_tensor *x,
                          const void *dy);

/* W's gradient row at[k] += rows[k] (W's width), for k in order (the order the ops would
   have added them), the columns in blocks of 64 split over threads: the weight gradient
   of the rows a one-hot tail gathered. With at NULL every row adds into row 0: a bias's
   column sums. */
void tg_add_rows_at(tg_tensor *w, const int64_t *at, const char *const *rows, int64_t nrows);

/* t's shape as text, "(2,3)", for an error message: one of a few rotating static
   buffers (the public tg_shape_str writes to the caller's buffer instead). */
const char *tg_msg_shape(const tg_tensor *t);

/* A dim argument for a tensor of ndim dims, Python's rule: d < 0 means ndim + d. Returns
   it in [0, ndim), or -1 with TG_ERR_ARG recorded for op ("dim -3 out of range [-2, 2)
   for (2,3)": x names the tensor, whose ndim may differ, as for stack's new dim). */
static inline int tg_dim_index(tg_tape *tape, const char *op, int dim, int ndim,
                               const tg_tensor *x)
{
    int d = dim < 0 ? dim + ndim : dim;
    if (d < 0 || d >= ndim) {
        tg_fail(tape, TG_ERR_ARG, op, "dim %d out of range [%d, %d) for %s", dim, -ndim, ndim,
                tg_msg_shape(x));
        return -1;
    }
    return d;
}

/* Starts a reduction of x over dim (negative counts from the end), kept with size 1:
   n->arg[0..2] = outer, len, inner (x viewed as (outer, len, inner)) and n's output is
   (outer, 1, inner) in x's dims. false with the error recorded. */
bool tg_reduce_dim_begin(tg_node *n, int dim);


/* The two gate activations, also used by the gate op (ops_matmul.c), which must give the
   same bits: sigmoid(x) and the backward of sigmoid and tanh from the output y. */
#define TG_SIGMOID(x) (1 / (1 + exp(-(x))))
#define TG_DSIGMOID(g, y) ((g) * (y) * (1 - (y)))
#define TG_DTANH(g, y) ((g) * (1 - (y) * (y)))

/* ---- the pointwise op tables --------------------------------------------------
 * The one place that lists the pointwise ops. A row names the op and its forward and
 * backward kernels (static functions in autograd/ops_pointwise.c, where each op's formula
 * and derivative sit above its two kernels). ops_pointwise.c expands the rows into the
 * ops' descriptors; tests/test_ops_pointwise.c expands them into gradient checks, so a
 * new row is tested automatically.
 *
 * Unary: X(name, forward, backward, domain); domain is where the gradient check samples x,
 * away from the op's kinks and poles: TG_GC_SIGNED x in +-[0.2, 2], TG_GC_POSITIVE
 * x in [0.2, 2]. The op's scalar there is 1.7 (scale, add_scalar, pow's exponent); clamp's
 * bounds are -0.85 and 0.85, so the samples fall on both sides of each.
 */
enum { TG_GC_SIGNED, TG_GC_POSITIVE };
#define TG_UNARY_OPS(X)                                                      \
    X(neg,        neg_forward,        neg_backward,        TG_GC_SIGNED)     \
    X(scale,      scale_forward,      scale_backward,      TG_GC_SIGNED)     \
    X(add_scalar, add_scalar_forward, add_scalar_backward, TG_GC_SIGNED)     \
    X(sigmoid,    sigmoid_forward,    sigmoid_backward,    TG_GC_SIGNED)     \
    X(tanh,       tanh_forward,       tanh_backward,       TG_GC_SIGNED)     \
    X(relu,       relu_forward,       relu_backward,       TG_GC_SIGNED)     \
    X(exp,        exp_forward,        exp_backward,        TG_GC_SIGNED)     \
    X(log,        log_forward,        log_backward,        TG_GC_POSITIVE)   \
    X(sqrt,       sqrt_forward,       sqrt_backward,       TG_GC_POSITIVE)   \
    X(rsqrt,      rsqrt_forward,      rsqrt_backward,      TG_GC_POSITIVE)   \
    X(pow,        pow_forward,        pow_backward,        TG_GC_POSITIVE)   \
    X(abs,        abs_forward,        abs_backward,        TG_GC_SIGNED)     \
    X(clamp,      clamp_forward,      clamp_backward,      TG_GC_SIGNED)     \
    X(softplus,   softplus_forward,   softplus_backward,   TG_GC_SIGNED)

/* Binary with broadcasting: X(name, forward, backward). */
#define TG_BINARY_OPS(X)                                  \
    X(add, add_forward, add_backward)                     \
    X(sub, sub_forward, sub_backward)                     \
    X(mul, mul_forward, mul_backward)                     \
    X(div, div_forward, div_backward)                     \
    X(maximum, maximum_forward, maximum_backward)         \
    X(minimum, minimum_forward, minimum_backward)

#endif /* TG_AUTOGRAD_AUTOGRAD_INTERNAL_H */
