/* tests/ref/ref_types.h: the C types of the generated reference headers *_ref.h. */
#ifndef TG_TESTS_REF_REF_TYPES_H
#define TG_TESTS_REF_REF_TYPES_H

#include <stdint.h>

/* ---- nn_ref.h (tests/test_nn.c, test_cells.c, test_stack.c) ---- */

/* One cell unrolled T steps: x (T,B,I), h0 c0 (B,H), r h c (T,B,H);
   loss = sum_t sum(h_t * r_t); d* are the gradients of loss. */
typedef struct nnref_cell {
    const char *kind;
    int B, I, H, T, ngates;
    const char *gate[4];
    const double *w[4], *b[4], *dw[4], *db[4];   /* (H+I,H), (H) */
    const double *x, *h0, *c0, *r, *h, *c, *dx, *dh0, *dc0;
    double loss;
} nnref_cell;

/* One named parameter of a char-LM: value and gradient, numel doubles each. */
typedef struct nnref_param {
    const char *name;
    int64_t numel;
    const double *value, *grad;
} nnref_param;

/* A char-LM (tg_charlm_loss from a zero state): inputs, targets (B,T);
   h_n, c_n (layers,B,H) the final state; c_n NULL unless LSTM. */
typedef struct nnref_charlm {
    const char *kind;
    int vocab, hidden, embed, layers, B, T, nparams;
    const int32_t *inputs, *targets;
    const nnref_param *params;
    const double *h_n, *c_n;
    double loss;
} nnref_charlm;

/* ---- cells_ref.h (tests/test_zoo.c) ---- */

/* One parameter: its name, shape (ndim 1 or 2), value and the loss's gradient. */
typedef struct cellref_param {
    const char *name;
    int ndim;
    int64_t shape[2];
    const double *value, *grad;
} cellref_param;

/* One cell type unrolled T steps from state s0 (nstate,B,H): x (T,B,I), r h (T,B,H);
   loss = sum_t sum(h_t * r_t); dx, ds0 its gradients. Parameters under prefix "cell". */
typedef struct cellref_case {
    const char *type;
    int B, I, H, T, nstate, nparams;
    const cellref_param *params;
    const double *x, *s0, *r, *h, *dx, *ds0;
    double loss;
} cellref_case;

/* A two-layer bidirectional network from a zero state: x (T,B,I), r out (T,B,2H);
   loss = sum(out * r). Parameters "bi.<layer>.fwd.*" and "bi.<layer>.bwd.*". */
typedef struct cellref_bidir {
    const char *type;
    int B, I, H, T, layers, nparams;
    const cellref_param *params;
    const double *x, *r, *out, *dx;
    double loss;
} cellref_bidir;

/* ---- ops_ref.h (tests/test_ops_ref.c) ---- */

/* One op applied to nin inputs (in[i] NULL: absent, as layer_norm's gamma or beta);
   loss = sum(out * r) over its outputs flattened one after the other (nout values);
   grad[i] the gradient of that loss with respect to input i. iarg: the op's int arguments
   (dim, then correction or the number of chunks); darg: eps. smooth: 0 when the inputs sit
   on a kink of the op (ties of a maximum), where a numerical gradient means nothing. */
typedef struct opsref_case {
    const char *op;
    int iarg[2];
    double darg;
    int smooth;
    int nin;
    int ndim[3];
    int64_t shape[3][4];
    const double *in[3], *grad[3];
    int64_t nout;
    const double *out, *r;
} opsref_case;

/* ---- pointwise_ref.h (tests/test_ops_pointwise_ref.c) ---- */

/* One op applied to nin float64 inputs (rounded to float for the float32 run) with the
   scalars s, s2 (pow's exponent; clamp's lo and hi); the upstream gradient is r (nout
   values, the output's shape). out and grad hold torch's output and the gradient of
   sum(out * r) for each input (NULL: no gradient, as where's mask), [0] float64 and [1]
   float32. smooth: 0 when an input sits on a kink of the op (0 for abs, a bound of clamp, a
   tie), where a numerical gradient means nothing. */
typedef struct pwref_case {
    const char *op;
    double s, s2;
    int smooth;
    int nin;
    int ndim[3];
    int64_t shape[3][4];
    const double *in[3];
    int64_t nout;
    const double *r;
    const double *out[2];
    const double *grad[2][3];
} pwref_case;

#endif /* TG_TESTS_REF_REF_TYPES_H */
