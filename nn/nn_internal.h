/* nn/nn_internal.h: helpers shared by the nn/ files (not public). */
#ifndef TG_NN_NN_INTERNAL_H
#define TG_NN_NN_INTERNAL_H

#include <stddef.h>

#include "autograd/autograd_internal.h"  /* tg_fail, tg_arena_alloc */
#include "nn/nn.h"

/* True when t is a 2-D tensor of shape (rows, cols) and dtype. */
bool tg_is_matrix(const tg_tensor *t, tg_dtype dtype, int64_t rows, int64_t cols);

/* Checks a cell step's operands: x (B,I), h (B,H) and, when c is given, c (B,H).
   NULL operands pass (the ops report them). On a mismatch records TG_ERR_SHAPE with a
   message naming who and the shapes, and returns false. */
bool tg_check_step(tg_tape *tape, const char *who, const tg_tensor *x, const tg_tensor *h,
                   const tg_tensor *c, int input_size, int hidden_size);

/* Sets the reason a cell type's init refuses its arguments (tg_last_error) and returns
   status: TG_ERR_NULL (a NULL cell, prefix or rng) or TG_ERR_ARG (sizes below 1, or a
   parameter name past 63 bytes). */
tg_status tg_cell_init_error(const char *type, tg_status status, const char *prefix,
                             int input_size, int hidden_size);

/* Adds one gate layer per name, "<prefix>.<name>.w" (H+I, H) and ".b" (H), the shape
   every cell's gates share, in the order given (which fixes the RNG draws), then stores
   input_size and hidden_size in *cell_input and *cell_hidden (the cell struct's members
   its step checks). Returns TG_ERR_NULL / TG_ERR_ARG (sizes < 1) or tg_linear_init's
   status; the sizes are stored only on TG_OK. */
tg_status tg_init_gates(tg_params *ps, const char *prefix, int n, const char *const *names,
                        tg_linear *const *gates, int input_size, int hidden_size,
                        const tg_init *init, tg_rng *rng, int *cell_input, int *cell_hidden);

/* TG_INIT_ORTHOGONAL's second pass over the params [first, end) a recurrent stack added:
   every gate weight "*.w" of shape (H + I, H) gets an orthogonal recurrent block
   (tg_init_orthogonal) and, when one_hot_rows = I > 0, the input rows of layer 0 (the
   params named layer0 "<prefix>.0.") N(0,1)
   (multiplying a one-hot vector selects one of them: they are an embedding table, and
   N(0,1) is torch.nn.Embedding's init). Draws in parameter order. */
tg_status tg_init_orthogonal_stack(tg_params *ps, int first, int end, int hidden,
                                   int one_hot_rows, const char *layer0, tg_rng *rng);

/* Adds the weight name (in,out) to ps, drawn as tg_linear_init draws its w (fan is the n
   of TG_INIT_TORCH; NULL init means TG_INIT_TORCH): for a product with no bias of its own.
   Returns TG_ERR_NULL / TG_ERR_ARG (bad sizes or init, a name taken or over 63 bytes) /
   TG_ERR_NOMEM. */
tg_status tg_init_weight(tg_tensor **w, tg_params *ps, const char *name, int in, int out,
                         int fan, const tg_init *init, tg_rng *rng);

/* Adds the vector name (n) to ps with every element value (a layer norm's gain or shift,
   a cell's per-unit weights). Returns TG_ERR_* as tg_init_weight. */
tg_status tg_init_vector(tg_tensor **v, tg_params *ps, const char *name, int n, double value);

/* "<prefix>.<name>" into out (64 bytes, a tg_params name). False when it does not fit. */
bool tg_param_name(char *out, const char *prefix, const char *name);

/* The start of a cell type's step: sets next[0..nstate-1] to NULL, then checks that cell,
   state and next are given and that x (B,I) and every state[k] (B,H) fit input_size and
   hidden_size (NULL operands pass: the ops report them). On failure records the error
   under who and returns false. */
bool tg_step_begin(tg_tape *tape, const char *who, const void *cell, tg_tensor *x,
                   tg_tensor *const *state, tg_tensor **next, int nstate, int input_size,
                   int hidden_size);

/* tg_step_begin for a cell struct c (NULL allowed: reported) with members input_size and
   hidden_size, as every nn/ cell struct begins. c is evaluated more than once. */
#define TG_CELL_STEP_BEGIN(tape, who, c, x, state, next, nstate)                         \
    tg_step_begin((tape), (who), (c), (x), (state), (next), (nstate),                   \
                  (c) ? (c)->input_size : 0, (c) ? (c)->hidden_size : 0)

/* The end of a step whose state is h, c (the LSTM family): next[0] = h and next[1] = c
   when h was computed. Otherwise next stays all NULL as tg_step_begin left it (c alone
   may have been computed before the step failed). */
void tg_step_end_hc(tg_tensor **next, tg_tensor *h, tg_tensor *c);

/* (1 - z) * a + z * b: the GRU family's new h, its gate z (B,H) blending a and b (B,H).
   Tape-owned; NULL with the tape's error. */
tg_tensor *tg_blend(tg_tape *tape, tg_tensor *z, tg_tensor *a, tg_tensor *b);

/* Records the params [first, count) of ps as layer l's, for tg_rnn_stack_recurrent's
   probe (allocating s->probe on first use). TG_ERR_NOMEM with a reason, or TG_OK. */
tg_status tg_stack_probe_note(tg_rnn_stack *s, int l, tg_params *ps, int first);
/* Frees what tg_stack_probe_note allocated and the rows found (NULL: nothing). */
void      tg_stack_probe_free(struct tg_stack_probe *pr);

/* Checks the stack's dropout and regularisers for a step: each in [0,1), an rng when one
   acts in training, and, for weight drop and variational dropout in training, recurrent
   weights the cell struct holds (probing the cell the first time). False with the
   tape's error (TG_ERR_ARG / TG_ERR_NULL / TG_ERR_NOMEM) otherwise. */
bool tg_stack_check_regularisers(tg_tape *t, const tg_rnn_stack *s, bool training,
                                 tg_rng *rng);

/* Draws a window's masks for steps over x (B,I) from rng: for each layer in order, the
   variational dropout masks of its input and its h (when var_dropout > 0), then its
   weight-dropped cell (when weight_drop > 0). Tape-owned; NULL with the tape's error. */
const tg_stack_window *tg_stack_draw_window(tg_tape *t, const tg_rnn_stack *s,
                                            const tg_tensor *x, tg_rng *rng);

#endif /* TG_NN_NN_INTERNAL_H */
