/* autograd/autograd.h: the tape (arena + node list), the ops it records, and backward. */
#ifndef TG_AUTOGRAD_AUTOGRAD_H
#define TG_AUTOGRAD_AUTOGRAD_H

#include <stdbool.h>
#include <stdint.h>

#include "tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Usage: every op takes the tape first and returns a tensor owned by the tape.
 *
 *     tg_tape *tape = tg_tape_new();
 *     tg_tensor *y = tg_tanh(tape, tg_matmul(tape, x, w));   // NULL flows through
 *     tg_tensor *loss = tg_mean(tape, y);
 *     if (tg_backward(tape, loss) != TG_OK)                  // checked once
 *         fprintf(stderr, "%s\n", tg_tape_errmsg(tape));
 *     tg_tape_reset(tape);                                   // O(1), keeps the memory
 *
 * Errors are sticky: the first failing op records a status and a message naming
 * the op and the shapes, and returns NULL; every later op on the tape returns NULL.
 */
typedef struct tg_tape tg_tape;

/* A new, empty tape with gradient recording on. NULL when out of memory. */
tg_tape *tg_tape_new(void);

/* Forgets every node and tensor recorded since the last reset, clears the error,
   and keeps the arena's memory, so the next step allocates nothing. O(1).
   Using a tensor of the tape after a reset is a bug. An op or tg_backward given one
   fails with TG_ERR_ARG, "operand 1 was recorded before the tape's last reset", as long
   as the bytes where its header lived have not been reused: always before the new step
   allocates that far, which covers the usual mistake (a hidden state carried into the
   next step without being copied out). It cannot be detected once a tensor of the new
   step has been made at the same address (the pointer then names that tensor), nor
   when the caller reads or writes ->data itself, nor after tg_tape_free. A tensor of
   another tape is refused the same way ("belongs to another tape"). */
void tg_tape_reset(tg_tape *tape);

/* Frees the tape and everything it owns. NULL is a no-op. */
void tg_tape_free(tg_tape *tape);

/* The first error recorded since the last reset (TG_OK when none). */
tg_status tg_tape_status(const tg_tape *tape);

/* The message of the first error, e.g. "matmul: (50,193) @ (192,128): inner dimensions
   differ"; "" when there is none. Valid until the next reset. */
const char *tg_tape_errmsg(const tg_tape *tape);

/* false: inference mode. Ops compute their results but keep no nodes and no gradients
   flow (like torch.no_grad()). true (the default): record for backward. */
void tg_tape_set_grad_enabled(tg_tape *tape, bool enabled);
bool tg_tape_grad_enabled(const tg_tape *tape);

/* Runs backward from loss (a one-element tensor recorded on this tape): seeds
   dloss = 1 and walks the nodes newest first, ADDING into the gradients of every
   tensor that requires them (parameters and requires_grad leaves accumulate across
   calls, as in PyTorch; call zero_grad between steps).
   Returns the tape's sticky error if it has one, TG_ERR_NULL for a NULL loss,
   TG_ERR_SHAPE when loss has more than one element, TG_ERR_ARG when it is not on the
   tape (recorded on another tape, or before this tape's last reset) or gradients are
   disabled; TG_ERR_NOMEM when gradient buffers cannot be had. */
tg_status tg_backward(tg_tape *tape, tg_tensor *loss);

/* A zero-filled tensor owned by the tape (dies at reset): scratch inputs such as
   an initial hidden state. NULL (and a sticky error) on bad shape or no memory. */
tg_tensor *tg_tape_tensor(tg_tape *tape, tg_dtype dtype, int ndim, const int64_t *shape);

/* Bytes of arena memory in use now, and the most ever in use (since tg_tape_new). */
size_t tg_tape_bytes_used(const tg_tape *tape);
size_t tg_tape_bytes_peak(const tg_tape *tape);
/* Number of malloc calls the tape has made since tg_tape_new (for "no malloc per step"). */
int64_t tg_tape_mallocs(const tg_tape *tape);

/* Caps the arena at limit bytes (0: no cap). Past the cap an op fails with
   TG_ERR_NOMEM exactly as a failed malloc would: for testing out-of-memory paths. */
void tg_tape_set_memory_limit(tg_tape *tape, size_t limit);

/* ---- errors from user code, and where they happened ---------------------------
 * A user's cell or layer fails the way the library's ops do: it validates its inputs and
 * returns tg_tape_fail(tape, TG_ERR_SHAPE, "mycell: x is %s", ...), which records the
 * first error on the tape exactly as a failing op does (later errors are ignored) and
 * returns NULL. A status of TG_OK is recorded as TG_ERR_ARG. */
tg_tensor *tg_tape_fail(tg_tape *tape, tg_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Scopes name where an error happened: the message of a failure while scopes are pushed
   starts with them, outermost first, joined by '/', e.g. "t=17/rnn.1/forget: gate:
   (50,193) @ (192,128): inner dimensions differ" (the char-LM pushes the time step, a
   stack its layers, a cell's gate its name). Only the pointer is kept, so pushing costs
   no formatting or allocation: name must stay valid until it is popped. Push and pop in
   pairs; scopes are independent of tg_tape_reset. Past 8 nested scopes the inner ones
   read "...". NULL tape: no-op. */
void tg_tape_push_scope(tg_tape *tape, const char *name);
void tg_tape_pop_scope(tg_tape *tape);

/* ---- observing named steps ------------------------------------------------
 * Cells name their intermediate results (tg_name(tape, f, "forget")); a program that
 * wants to see them (gate viewers, diagnostics) installs an observer, which is called
 * with the name and the tensor each time a named result is computed. Without an
 * observer tg_name costs one branch. The tensor is only valid during the call.
 */
typedef void (*tg_observer_fn)(void *user, const char *name, const tg_tensor *t);
void tg_tape_set_observer(tg_tape *tape, tg_observer_fn fn, void *user);
/* Reports t under name to the tape's observer, if any; returns t (NULL passes through). */
tg_tensor *tg_name(tg_tape *tape, tg_tensor *t, const char *name);

/* ---- ops ------------------------------------------------------------------
 * Tape first, result owned by the tape, NULL + sticky error on failure.
 * All operands share one dtype (no promotion: a mix is TG_ERR_DTYPE); shapes that
 * do not fit the op are TG_ERR_SHAPE; bad indices, dims and ranges are TG_ERR_ARG.
 */

/* Elementwise a (op) b with NumPy broadcasting (shapes aligned from the right,
   dims of size 1 stretch). Backward reduces over the broadcast dims. */
tg_tensor *tg_add(tg_tape *tape, tg_tensor *a, tg_tensor *b);
tg_tensor *tg_sub(tg_tape *tape, tg_tensor *a, tg_tensor *b);
tg_tensor *tg_mul(tg_tape *tape, tg_tensor *a, tg_tensor *b);
tg_tensor *tg_div(tg_tape *tape, tg_tensor *a, tg_tensor *b);
/* max(a, b) and min(a, b), broadcasting; NaN where either is NaN. The gradient goes to the
   larger (smaller) operand, half to each on a tie, as torch.maximum/minimum. */
tg_tensor *tg_maximum(tg_tape *tape, tg_tensor *a, tg_tensor *b);
tg_tensor *tg_minimum(tg_tape *tape, tg_tensor *a, tg_tensor *b);
/* mask != 0 ? a : b elementwise, broadcasting over all three (torch.where(mask != 0, a, b)):
   a NaN in mask counts as true, -0 as false. mask has a's and b's dtype (0 and 1 from a
   comparison or tg_one_hot) and gets no gradient; a and b get dc where they were chosen.
   TG_ERR_SHAPE when the three do not broadcast. */
tg_tensor *tg_where(tg_tape *tape, tg_tensor *mask, tg_tensor *a, tg_tensor *b);

tg_tensor *tg_scale(tg_tape *tape, tg_tensor *x, double s);      /* s * x */
tg_tensor *tg_add_scalar(tg_tape *tape, tg_tensor *x, double s); /* x + s */

/* Pointwise functions. sigmoid and tanh compute their backward from the output. */
tg_tensor *tg_neg(tg_tape *tape, tg_tensor *x);     /* -x                         */
tg_tensor *tg_sigmoid(tg_tape *tape, tg_tensor *x); /* 1 / (1 + e^-x)             */
tg_tensor *tg_tanh(tg_tape *tape, tg_tensor *x);    /* tanh x                      */
tg_tensor *tg_relu(tg_tape *tape, tg_tensor *x);    /* max(x, 0); gradient 0 at 0 */
tg_tensor *tg_exp(tg_tape *tape, tg_tensor *x);     /* e^x                         */
tg_tensor *tg_log(tg_tape *tape, tg_tensor *x);     /* ln x (x <= 0 gives -inf/NaN, as libm) */

/* More pointwise functions, with PyTorch's values and gradients, also at the edges (a
   derivative that is infinite there is inf, as in torch; a NaN input gives NaN). */
tg_tensor *tg_sqrt(tg_tape *tape, tg_tensor *x);    /* x^(1/2); d/dx = 1/(2 sqrt x): inf at 0 */
tg_tensor *tg_rsqrt(tg_tape *tape, tg_tensor *x);   /* 1/sqrt x; d/dx = -x^(-3/2)/2      */
/* x^p; d/dx = p x^(p-1), and 0 for p = 0 (x^0 = 1 everywhere, NaN included). At x = 0 the
   derivative is 0 for p > 1, 1 for p = 1, inf (or -inf) for p < 1, as torch.pow. */
tg_tensor *tg_pow(tg_tape *tape, tg_tensor *x, double p);
tg_tensor *tg_abs(tg_tape *tape, tg_tensor *x);     /* |x|; d/dx = sign x, 0 at x = 0 */
/* min(max(x, lo), hi); the gradient passes where lo <= x <= hi (bounds included) and is 0
   elsewhere, as torch.clamp. As in torch, lo > hi is no error: every element becomes hi
   (gradient 0); a NaN bound makes every element NaN. */
tg_tensor *tg_clamp(tg_tape *tape, tg_tensor *x, double lo, double hi);
/* log(1 + e^x), computed as max(x, 0) + log(1 + e^-|x|): finite for any finite x (+-1000
   included); d/dx = sigmoid x. torch's F.softplus returns x itself above its threshold
   20; this stays exact there, a difference below 2.1e-9. */
tg_tensor *tg_softplus(tg_tape *tape, tg_tensor *x);

/* (M,K) @ (K,N) -> (M,N). */
tg_tensor *tg_matmul(tg_tape *tape, tg_tensor *a, tg_tensor *b);
/* x @ w + b in one node: x (M,K), w (K,N), b (N) broadcast over rows -> (M,N).
   Same values as tg_add(tg_matmul(x, w), b); b may be NULL (then it is x @ w). */
tg_tensor *tg_affine(tg_tape *tape, tg_tensor *x, tg_tensor *w, tg_tensor *b);
/* 2-D transpose: (M,N) -> (N,M). */
tg_tensor *tg_transpose(tg_tape *tape, tg_tensor *x);
/* Same elements, new shape (numel must agree). */
tg_tensor *tg_reshape(tg_tape *tape, tg_tensor *x, int ndim, const int64_t *shape);
/* Joins a and b along dim (negative counts from the end, -1 the last); every other dim must
   agree. */
tg_tensor *tg_concat(tg_tape *tape, tg_tensor *a, tg_tensor *b, int dim);
/* Joins n >= 1 tensors along dim (every other dim must agree), one node for all. */
tg_tensor *tg_concat_n(tg_tape *tape, tg_tensor *const *xs, int n, int dim);
/* x[..., start:start+len, ...] along dim (len >= 1, within bounds; a negative dim counts
   from the end). */
tg_tensor *tg_slice(tg_tape *tape, tg_tensor *x, int dim, int64_t start, int64_t len);

tg_tensor *tg_sum(tg_tape *tape, tg_tensor *x);              /* all elements -> (1) */
tg_tensor *tg_mean(tg_tape *tape, tg_tensor *x);             /* all elements -> (1) */

/* ---- reductions over one dim ----------------------------------------------------------
 * Each reduces x over dim and keeps it with size 1: (2,3,4) over dim 1 -> (2,1,4).
 * Every dim argument of every op follows Python's rule: d < 0 means ndim + d, so -1 is
 * the last dim; a dim outside [-ndim, ndim) is TG_ERR_ARG. Sums run in double, in a
 * fixed order (the same bits for any thread count).
 */
/* Sum over dim. */
tg_tensor *tg_sum_dim(tg_tape *tape, tg_tensor *x, int dim);
/* Mean over dim (torch.mean(x, dim, keepdim=True)). */
tg_tensor *tg_mean_dim(tg_tape *tape, tg_tensor *x, int dim);
/* Variance over dim, sum (x - mean)^2 / (len - correction): correction 0 is the biased
   variance, 1 the unbiased one (torch.var(x, dim, correction=c, keepdim=True)). A constant
   row gives exactly 0 (the mean is taken relative to the row's first element). When len
   <= correction the division is by 0, as in torch (NaN, or inf).
   TG_ERR_ARG for a correction < 0 or a bad dim. */
tg_tensor *tg_var_dim(tg_tape *tape, tg_tensor *x, int dim, int correction);
/* Maximum over dim (the values of torch.max(x, dim, keepdim=True)). The gradient goes to
   the first index holding the maximum; a NaN counts as the maximum, as torch propagates
   it. TG_ERR_ARG for a bad dim. */
tg_tensor *tg_max_dim(tg_tape *tape, tg_tensor *x, int dim);
/* log sum exp over dim, stable (the maximum is subtracted first): values of +-1000 stay
   finite. As torch.logsumexp: a row all -inf gives -inf (and a NaN gradient), a row
   holding +inf gives +inf. TG_ERR_ARG for a bad dim. */
tg_tensor *tg_logsumexp_dim(tg_tape *tape, tg_tensor *x, int dim);

/* ---- normalisation and losses --------------------------------------------------------- */
/* Layer norm over the last dim D, as torch.nn.functional.layer_norm(x, (D,), gamma, beta,
   eps): y = (x - mean) / sqrt(var + eps) * gamma + beta per row, var biased. gamma and
   beta are (D) or NULL (then 1 and 0). One node with its own backward; a constant row
   gives y = beta and finite gradients. Bit-identical for any thread count.
   TG_ERR_SHAPE when gamma or beta is not (D); TG_ERR_ARG for eps < 0 or not finite;
   TG_ERR_NULL for a NULL x. */
tg_tensor *tg_layer_norm(tg_tape *tape, tg_tensor *x, tg_tensor *gamma, tg_tensor *beta,
                         double eps);
/* Mean squared error: the mean over all elements of (a - b)^2 -> (1), gradients to both
   (torch.nn.functional.mse_loss). TG_ERR_SHAPE unless a and b have one shape (no
   broadcasting). */
tg_tensor *tg_mse_loss(tg_tape *tape, tg_tensor *a, tg_tensor *b);

/* Over the last dim, numerically stable (max subtracted). */
tg_tensor *tg_softmax(tg_tape *tape, tg_tensor *x);
tg_tensor *tg_log_softmax(tg_tape *tape, tg_tensor *x);

/* Mean over rows of -log softmax(logits)[row, targets[row]]: logits (N,C) -> (1).
   Fused and stable (logits of +-1000 stay finite). targets (N values in [0,C)) are
   copied, so the caller may reuse the buffer at once. Like torch's cross_entropy. */
tg_tensor *tg_cross_entropy(tg_tape *tape, tg_tensor *logits, const int32_t *targets);

/* Rows of table (V,D) picked by idx (n values in [0,V)) -> (n,D). idx is copied.
   Gradients of repeated indices accumulate. */
tg_tensor *tg_embedding(tg_tape *tape, tg_tensor *table, const int32_t *idx, int64_t n);

/* Inverted dropout: each element is zeroed with probability p and the others are
   scaled by 1/(1-p); the mask comes from rng (deterministic for a seed).
   p == 0 returns x itself. p must be in [0, 1). */
tg_tensor *tg_dropout(tg_tape *tape, tg_tensor *x, double p, tg_rng *rng);

/* ---- arranging elements ----------------------------------------------------------------
 * Dims may be negative (d < 0 means ndim + d); outside the range is TG_ERR_ARG.
 */
/* Joins n >= 1 tensors of one shape along a new dim (torch.stack): n of (2,3) stacked at
   dim 1 give (2,n,3). A negative dim counts in the result's dims, so -1 appends a last dim.
   TG_ERR_SHAPE when the shapes differ or the result would have more than TG_MAX_DIMS
   dims; TG_ERR_ARG for no tensors or a bad dim; TG_ERR_NULL for a NULL tensor. */
tg_tensor *tg_stack(tg_tape *tape, tg_tensor *const *xs, int n, int dim);
/* Splits x along dim into n equal parts (slices, torch.chunk when it divides evenly) into
   out[0..n-1], tape-owned. Returns the tape's status: on failure every out[k] is NULL and
   the tape holds the error: TG_ERR_SHAPE when dim's size does not divide by n; TG_ERR_ARG
   for n < 1 or a bad dim; TG_ERR_NULL for a NULL x or out (TG_ERR_NULL, nothing recorded,
   for a NULL tape). */
tg_status tg_chunk(tg_tape *tape, tg_tensor *x, int n, int dim, tg_tensor **out);
/* x with dim reversed (torch.flip(x, [dim])): a sequence (T,B,I) flipped along time for
   the backward direction of a bidirectional layer. TG_ERR_ARG for a bad dim. */
tg_tensor *tg_flip(tg_tape *tape, tg_tensor *x, int dim);
/* Batched matrix product (torch.bmm): a (B,M,K) @ b (B,K,N) -> (B,M,N), one GEMM per batch
   element. TG_ERR_SHAPE unless both are 3-D with equal B and matching K. */
tg_tensor *tg_bmm(tg_tape *tape, tg_tensor *a, tg_tensor *b);
/* A constant (n,classes) tensor of dtype, row i all 0 but a 1 at column idx[i]
   (torch.nn.functional.one_hot): no gradient; idx is read during the call only. Products
   with it, or with a concat whose last input it is ([h, x] of a cell), gather rows of the
   weight instead of multiplying zeros: do not write into its data.
   TG_ERR_ARG for an index outside [0,classes), n < 1, classes < 1 or a bad dtype;
   TG_ERR_NULL for NULL idx. */
tg_tensor *tg_one_hot(tg_tape *tape, tg_dtype dtype, const int32_t *idx, int64_t n,
                      int64_t classes);

/* ---- user-defined ops ------------------------------------------------------------------
 * An op with its own forward and backward (PyTorch's autograd.Function), for what cannot
 * be composed from ops: a straight-through estimator, a clipped or reversed gradient, a
 * kernel of your own. forward writes out->data (zeroed before the call) from the inputs'
 * data. backward gets dout, a tensor of out's shape whose data is dloss/dout, and din[i], a
 * tensor of input i's dtype and shape whose data is that input's gradient buffer, and
 * ADDS into din[i]->data (din[i] is NULL when input i needs no gradient; when one tensor
 * is given twice, both din point at its one buffer). dout and din are valid during the
 * call only. ctx is the caller's, passed back unchanged; name is used in error messages.
 * The example in README.md ("A custom op") is a straight-through estimator.
 */
#define TG_CUSTOM_MAX_IN 32
typedef struct tg_custom_op {
    const char *name;
    void (*forward)(void *ctx, const tg_tensor *const *in, int nin, tg_tensor *out);
    void (*backward)(void *ctx, const tg_tensor *const *in, int nin, const tg_tensor *out,
                     const tg_tensor *dout, tg_tensor *const *din);
} tg_custom_op;
/* Records op applied to in[0..nin-1] (one dtype; 1 <= nin <= TG_CUSTOM_MAX_IN) with a
   result of the given shape and in[0]'s dtype, owned by the tape. op, its name and ctx
   must stay valid until the tape is reset (backward calls them). Gradient-checkable with
   tg_gradcheck like any op.
   TG_ERR_NULL for a NULL op, forward, backward, in, input or shape; TG_ERR_ARG for nin
   out of range; TG_ERR_DTYPE for inputs of two dtypes; TG_ERR_SHAPE for a bad shape. */
tg_tensor *tg_custom(tg_tape *tape, const tg_custom_op *op, tg_tensor *const *in, int nin,
                     int ndim, const int64_t *shape, void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* TG_AUTOGRAD_AUTOGRAD_H */
